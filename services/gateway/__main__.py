"""`python -m gateway api | projector | reconcile | rebuild [--from-store]`."""

import sys

from gateway import wiring
from servicekit.runner import dispatch, run_worker, serve


def _serve_api() -> None:
    from gateway import main

    serve("gateway", main.create_api, port_env="GATEWAY_PORT", default_port=main.DEFAULT_PORT)


if __name__ == "__main__":
    dispatch("gateway", {
        "api": _serve_api,
        "projector": lambda: run_worker("gateway-projector", wiring.run_projector),
        "reconcile": lambda: sys.exit(wiring.run_reconcile()),
        "rebuild": lambda: sys.exit(wiring.run_rebuild(from_store="--from-store" in sys.argv[2:])),
    })
