"""`python -m transfers api | relay`."""

from servicekit.runner import dispatch, run_worker, serve
from transfers import main

# Import workers are spawned processes that import this module again: only a direct run dispatches.
if __name__ == "__main__":
    dispatch("transfers", {
        "api": lambda: serve("transfers", main.create_api, port_env="TRANSFERS_PORT", default_port=main.DEFAULT_PORT),
        "relay": lambda: run_worker("transfers-relay", main.run_relay),
    })
