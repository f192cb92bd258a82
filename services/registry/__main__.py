"""`python -m registry api | relay | reactions | import FILE`."""

import sys

from servicekit.runner import dispatch, run_worker, serve

# Import workers are spawned processes that import this module again: only a direct run dispatches, and only it
# imports the HTTP stack.
if __name__ == "__main__":
    from registry import main

    dispatch("registry", {
        "api": lambda: serve("registry", main.create_api, port_env="REGISTRY_PORT", default_port=main.DEFAULT_PORT),
        "relay": lambda: run_worker("registry-relay", main.run_relay),
        "reactions": lambda: run_worker("registry-reactions", main.run_reactions),
        "import": lambda: sys.exit(main.run_import(sys.argv[2])) if len(sys.argv) > 2 else sys.exit(
            "usage: python -m registry import FILE"),
    })
