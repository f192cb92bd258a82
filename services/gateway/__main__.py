"""`python -m gateway api | projector | reconcile | rebuild [--from-store]`."""

import sys

from gateway import main
from servicekit.runner import dispatch, run_worker, serve

# Import workers are spawned processes that import this module again: only a direct run dispatches.
if __name__ == "__main__":
    dispatch("gateway", {
        "api": lambda: serve("gateway", main.create_api, port_env="GATEWAY_PORT", default_port=main.DEFAULT_PORT),
        "projector": lambda: run_worker("gateway-projector", main.run_projector),
        "reconcile": lambda: sys.exit(main.run_reconcile()),
        "rebuild": lambda: sys.exit(main.run_rebuild(from_store="--from-store" in sys.argv[2:])),
    })
