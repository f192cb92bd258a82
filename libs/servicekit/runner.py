"""Process entry points shared by the services: `api` under uvicorn, background workers until SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from servicekit import collector
from servicekit.jsonlog import setup_logging
from servicekit.settings import ServiceSettings

if TYPE_CHECKING:
    # Only the API imports FastAPI: a spawned import worker imports this module again and need not.
    from fastapi import FastAPI


def load_settings() -> ServiceSettings:
    try:
        return ServiceSettings()
    except Exception as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def listening_socket(host: str, port: int) -> socket.socket:
    """A listener with TCP_NODELAY, which accepted connections inherit on Linux: without it a response
    written in two parts waits out the client's delayed ACK (40 ms per request)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(service: str, create_api: Callable[[ServiceSettings], FastAPI], *, port_env: str,
          default_port: int) -> None:
    """Serve the API; `<SERVICE>_WORKERS` > 1 forks that many processes sharing one listening socket,
    each building its own app and pools after the fork."""
    import uvicorn

    settings = load_settings()
    setup_logging(service, settings.log_level)
    port = int(os.environ.get(port_env, default_port))
    workers = max(1, int(os.environ.get(f"{service.upper()}_WORKERS", "1")))
    sock = listening_socket(settings.host, port)
    children: list[int] = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            children.clear()
            break
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)
        raise KeyboardInterrupt

    app = create_api(settings)
    collector.settle_after_start()
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if children:
        signal.signal(signal.SIGTERM, forward)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        for child in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)


def run_worker(service: str, work: Callable[[ServiceSettings, threading.Event], None]) -> None:
    settings = load_settings()
    setup_logging(service, settings.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    collector.settle_after_start()
    work(settings, stop)


def dispatch(service: str, commands: dict[str, Callable[[], None]]) -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in commands:
        print(f"usage: python -m {service} {{{'|'.join(commands)}}}", file=sys.stderr)
        raise SystemExit(2)
    commands[name]()
