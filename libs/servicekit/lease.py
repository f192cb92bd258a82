"""Leases with fencing epochs: one active relay (or consumer) per name, with safe takeover."""

from __future__ import annotations

import os
import socket
import time
import uuid

import psycopg


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """A row in `leases`. Taking it over bumps the epoch; writes fenced by the epoch fail for a stalled
    former holder. A session advisory lock alone would vanish with its connection and break behind a
    pooler, so the lease is data."""

    def __init__(self, conn: psycopg.Connection, *, name: str, ttl_s: float, holder: str | None = None) -> None:
        self._conn = conn
        self.name = name
        self.ttl_s = ttl_s
        self.holder = holder or holder_name()
        self.epoch: int | None = None
        self._renewed_at = 0.0

    @property
    def held(self) -> bool:
        return self.epoch is not None

    def acquire(self) -> bool:
        with self._conn.transaction():
            row = self._conn.execute(
                "INSERT INTO leases (name, epoch, holder, expires_at)"
                " VALUES (%s, 1, %s, now() + make_interval(secs => %s))"
                " ON CONFLICT (name) DO UPDATE SET epoch = leases.epoch + 1, holder = EXCLUDED.holder,"
                " expires_at = EXCLUDED.expires_at WHERE leases.expires_at < now() RETURNING epoch",
                (self.name, self.holder, self.ttl_s),
            ).fetchone()
        if row is None:
            return False
        self.epoch = int(row[0])
        self._renewed_at = time.monotonic()
        return True

    def renew_if_due(self) -> bool:
        """Keep the lease; False when it was lost (taken over after we stalled)."""
        if self.epoch is None:
            return False
        if time.monotonic() - self._renewed_at < self.ttl_s / 3:
            return True
        with self._conn.transaction():
            row = self._conn.execute(
                "UPDATE leases SET expires_at = now() + make_interval(secs => %s)"
                " WHERE name = %s AND epoch = %s RETURNING 1",
                (self.ttl_s, self.name, self.epoch),
            ).fetchone()
        if row is None:
            self.epoch = None
            return False
        self._renewed_at = time.monotonic()
        return True

    def release(self) -> None:
        if self.epoch is None:
            return
        with self._conn.transaction():
            self._conn.execute(
                "UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = %s AND epoch = %s",
                (self.name, self.epoch),
            )
        self.epoch = None
