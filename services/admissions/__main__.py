"""`python -m admissions api | relay`."""

from admissions import main
from servicekit.runner import dispatch, run_worker, serve

# Import workers are spawned processes that import this module again: only a direct run dispatches.
if __name__ == "__main__":
    dispatch("admissions", {
        "api": lambda: serve("admissions", main.create_api, port_env="ADMISSIONS_PORT", default_port=main.DEFAULT_PORT),
        "relay": lambda: run_worker("admissions-relay", main.run_relay),
    })
