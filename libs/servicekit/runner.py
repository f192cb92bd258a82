"""Process entry points shared by the services: `api` under uvicorn, background workers until SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

from fastapi import FastAPI

from servicekit.jsonlog import setup_logging
from servicekit.settings import ServiceSettings


def load_settings() -> ServiceSettings:
    try:
        return ServiceSettings()
    except Exception as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def serve(service: str, create_api: Callable[[ServiceSettings], FastAPI], *, port_env: str,
          default_port: int) -> None:
    import uvicorn

    settings = load_settings()
    setup_logging(service, settings.log_level)
    port = int(os.environ.get(port_env, default_port))
    app = create_api(settings)
    uvicorn.run(app, host=settings.host, port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)


def run_worker(service: str, work: Callable[[ServiceSettings, threading.Event], None]) -> None:
    settings = load_settings()
    setup_logging(service, settings.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    work(settings, stop)


def dispatch(service: str, commands: dict[str, Callable[[], None]]) -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in commands:
        print(f"usage: python -m {service} {{{'|'.join(commands)}}}", file=sys.stderr)
        raise SystemExit(2)
    commands[name]()
