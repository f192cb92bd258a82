"""`python -m gateway api | projector | reconcile | rebuild [--from-store] [--workers N]`."""

import argparse
import sys

from gateway import wiring
from servicekit.runner import dispatch, run_worker, serve


def _serve_api() -> None:
    from gateway import main

    serve("gateway", main.create_api, port_env="GATEWAY_PORT", default_port=main.DEFAULT_PORT)


def _rebuild(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway rebuild")
    parser.add_argument("--from-store", action="store_true", help="read the registry's event store, not the topic")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes applying the topic side by side (default: one per core)")
    options = parser.parse_args(args)
    if options.workers is not None and options.workers < 1:
        parser.error("--workers must be at least 1")
    return wiring.run_rebuild(from_store=options.from_store, workers=options.workers)


if __name__ == "__main__":
    dispatch("gateway", {
        "api": _serve_api,
        "projector": lambda: run_worker("gateway-projector", wiring.run_projector),
        "reconcile": lambda: sys.exit(wiring.run_reconcile()),
        "rebuild": lambda: sys.exit(_rebuild(sys.argv[2:])),
    })
