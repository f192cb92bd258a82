"""A lean HTTP/1.1 load generator (asyncio streams, keep-alive, pre-built requests), so that on a 2-core
machine the client costs little next to the server it measures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable


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
