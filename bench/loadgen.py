"""A lean HTTP/1.1 load generator (asyncio streams, keep-alive, pre-built requests), so that on a 2-core
machine the client costs little next to the server it measures."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any


def build_post(host: str, port: int, path: str, token: str, body: dict[str, object]) -> bytes:
    payload = json.dumps(body, ensure_ascii=False).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _run(host: str, port: int, clients: int, duration_s: float, make_request: Callable[[], bytes],
               expect_status: int) -> tuple[int, list[float]]:
    done = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(make_request())
                status, body = await _read_response(reader)
                if status != expect_status:
                    raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
                latencies.append(time.perf_counter() - started)
                done += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return done, latencies


class KeepAliveClient:
    """One keep-alive connection posting JSON, for latency figures: `httpx.AsyncClient` spends ~4.5 ms of its
    own per request on this machine (measured: `{ __typename }` at 6.1 ms through it, 1.6 ms through this), more
    than the server it would be measuring."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post_json(self, path: str, body: dict[str, object]) -> tuple[int, object]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(build_post(self.host, self.port, path, self.token, body))
        status, payload = await _read_response(reader)
        return status, json.loads(payload)

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


class BlockingKeepAlive:
    """The same over a plain socket, for a probe that polls from a thread of its own: no event loop to share, and
    a request costs the probe ~0.1 ms."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self._connect()

    def _connect(self) -> None:
        self._socket = socket.create_connection((self.host, self.port))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending = b""

    def post_json(self, path: str, body: dict[str, object]) -> tuple[int, object]:
        request = build_post(self.host, self.port, path, self.token, body)
        try:
            self._socket.sendall(request)
            self._pending += self._receive()
        except (ConnectionError, BrokenPipeError):
            # The server closed the connection while it idled (uvicorn keeps one 5 s): nothing of the request
            # was answered, so it goes again on a new one, as an HTTP client library would send it.
            self._socket.close()
            self._connect()
            self._socket.sendall(request)
        while b"\r\n\r\n" not in self._pending:
            self._pending += self._receive()
        head, _, rest = self._pending.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(rest) < length:
            rest += self._receive()
        self._pending = rest[length:]
        return int(head.split(b" ", 2)[1]), json.loads(rest[:length])

    def _receive(self) -> bytes:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise ConnectionError(f"{self.host}:{self.port} closed the connection")
        return chunk

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> BlockingKeepAlive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def run_load(host: str, port: int, *, clients: int, duration_s: float, make_request: Callable[[], bytes],
             expect_status: int = 201) -> float:
    """Requests per second completed by `clients` keep-alive connections during `duration_s`."""
    started = time.perf_counter()
    done, _ = asyncio.run(_run(host, port, clients, duration_s, make_request, expect_status))
    return done / (time.perf_counter() - started)


def unit_requests(host: str, port: int, token: str, parent_id: str) -> Callable[[], bytes]:
    def make() -> bytes:
        return build_post(host, port, "/units", token, {
            "code": uuid.uuid4().hex[:20], "name": "Đảng bộ phường", "kind": "commune_committee",
            "parent_id": parent_id, "established_on": "2025-07-01"})

    return make


async def _paced(host: str, port: int, rate: float, until: threading.Event, make_request: Callable[[], bytes],
                 connections: int) -> int:
    done = 0
    interval = connections / rate

    async def worker(offset: float) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, port)
        due = time.perf_counter() + offset
        try:
            while not until.is_set():
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                writer.write(make_request())
                status, body = await _read_response(reader)
                if status != 201:
                    raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
                done += 1
                due += interval
        finally:
            writer.close()

    await asyncio.gather(*(worker(i * interval / connections) for i in range(connections)))
    return done


def run_paced(host: str, port: int, *, rate: float, until: threading.Event, make_request: Callable[[], bytes],
              connections: int = 8) -> float:
    """Sustains `rate` requests per second (as long as the server keeps up) until `until` is set; returns the
    rate achieved."""
    started = time.perf_counter()
    done = asyncio.run(_paced(host, port, rate, until, make_request, connections))
    return done / (time.perf_counter() - started)


def _paced_units(host: str, port: int, token: str, parent_id: str, rate: float, stop: Any, result: Any) -> None:
    until = threading.Event()

    def relay_stop() -> None:
        stop.wait()
        until.set()

    threading.Thread(target=relay_stop, daemon=True).start()
    result.put(run_paced(host, port, rate=rate, until=until, make_request=unit_requests(host, port, token, parent_id)))


class PacedUnitsInAnotherProcess:
    """Sustains `rate` unit-establishing commands/s from a process of its own while the block runs, so the load
    shares no interpreter lock with what measures beside it; `achieved` is the rate sustained."""

    def __init__(self, host: str, port: int, token: str, parent_id: str, rate: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._result: Any = context.Queue()
        self._process = context.Process(target=_paced_units,
                                        args=(host, port, token, parent_id, rate, self._stop, self._result))
        self.achieved = 0.0

    def __enter__(self) -> PacedUnitsInAnotherProcess:
        self._process.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.achieved = float(self._result.get(timeout=60))
        self._process.join(timeout=60)
