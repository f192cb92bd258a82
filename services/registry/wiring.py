"""The registry's store, command bus and import runner, without its HTTP layer: what the API, the relay, the
demo loader and the import workers share. An import worker is a spawned process that imports this module
again, and importing the HTTP stack cost each worker ~2 s of a large import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg_pool import ConnectionPool

from contracts import topics
from registry.adapters import read_views
from registry.adapters.imports_runner import ImportRunner
from registry.application.handlers import RegistryCommands, Scope, authorize
from registry.domain.policy import CARD_PROVINCE_CODE
from servicekit.commands import CommandBus, StateCache, UnitOfWork
from servicekit.database import CONSUMER_SCHEMA_DDL, KIT_SCHEMA_DDL, connect_pool, migrate
from servicekit.pgstore import OutboxDoorbell, PostgresEventStore
from servicekit.settings import ServiceSettings

if TYPE_CHECKING:
    from servicekit.auth import Actor

SCHEMA = "registry"
SERVICE = "registry"
# Two processes: on this 2-core machine one validates and builds events while PostgreSQL stores the other's.
IMPORT_WORKERS = 2
# Aggregate states a process keeps between commands (REGISTRY_STATE_CACHE): a member's is ~2 KB.
STATE_CACHE = 10_000


@dataclass
class Registry:
    settings: ServiceSettings
    pool: ConnectionPool
    store: PostgresEventStore
    bus: CommandBus
    commands: RegistryCommands
    imports: ImportRunner

    def close(self) -> None:
        if self.store.doorbell is not None:
            self.store.doorbell.close()
        self.pool.close()

    def unit_id_by_code(self, code: str) -> str | None:
        with self.pool.connection() as conn:
            return read_views.PostgresRegistryViews(conn).unit_id_by_code(code)

    def check_scope(self, actor: Actor, unit_id: str) -> None:
        with self.pool.connection() as conn:
            authorize(read_views.PostgresRegistryViews(conn), Scope(actor.unit_code), unit_id)


def views_for(uow: UnitOfWork) -> read_views.PostgresRegistryViews:
    return read_views.PostgresRegistryViews(uow.tx.conn)  # type: ignore[attr-defined]


def migrate_registry(settings: ServiceSettings, schema: str | None = None) -> None:
    migrate(settings.database_url, schema=schema or SCHEMA, ddl=[KIT_SCHEMA_DDL, CONSUMER_SCHEMA_DDL, read_views.DDL])


def build(settings: ServiceSettings, *, max_pool: int = 20, schema: str | None = None, topic: str | None = None,
          card_code: str | None = None, state_cache: int | None = None) -> Registry:
    """`card_code`: the provincial committee's code its card numbers begin with (REGISTRY_CARD_CODE, default 01,
    Hanoi's): each provincial register runs its own registry. `state_cache`: how many aggregate states to keep
    between commands (servicekit.commands.StateCache; REGISTRY_STATE_CACHE, default STATE_CACHE; 0 for none)."""
    schema = schema or SCHEMA
    topic = topic or topics.REGISTRY
    card_code = card_code or os.environ.get("REGISTRY_CARD_CODE", CARD_PROVINCE_CODE)
    if len(card_code) != 2 or not card_code.isdigit():
        raise ValueError(f"REGISTRY_CARD_CODE is a provincial committee's two digits, not {card_code!r}")
    migrate_registry(settings, schema)
    pool = connect_pool(settings.database_url, schema=schema, min_size=2, max_size=max_pool)
    store = PostgresEventStore(pool, schema=schema, topic=topic,
                               doorbell=OutboxDoorbell(settings.database_url, schema=schema))
    cached = state_cache if state_cache is not None else int(os.environ.get("REGISTRY_STATE_CACHE", STATE_CACHE))
    bus = CommandBus(store, inline=read_views.project_inline, states=StateCache(cached) if cached > 0 else None)
    commands = RegistryCommands(views_for, card_code=card_code)
    imports = ImportRunner(pool=pool, bus=bus, commands=commands, files_dir=settings.data_dir / "imports",
                           workers=IMPORT_WORKERS, worker_entry=import_worker,
                           job_settings={"database_url": settings.database_url, "schema": schema, "topic": topic,
                                         "data_dir": str(settings.data_dir), "card_code": card_code})
    return Registry(settings=settings, pool=pool, store=store, bus=bus, commands=commands, imports=imports)


def import_worker(pipe: Any, job: Any) -> None:
    """Entry point of an import worker process (spawned): its own pool, bus and commands."""
    from registry.adapters.imports_runner import run_worker_slice
    from servicekit.jsonlog import setup_logging

    setup_logging(SERVICE, "WARNING")
    settings = ServiceSettings(DATABASE_URL=job.database_url, KAFKA_BOOTSTRAP_SERVERS="unused",
                               PARTY_DATA_DIR=job.data_dir)
    registry = build(settings, schema=job.schema, topic=job.topic, max_pool=2, card_code=job.card_code)
    try:
        with registry.pool.connection() as conn:
            run_worker_slice(pipe, job, registry.bus, registry.commands, conn)
    except Exception as exc:
        pipe.send(("failed", f"{type(exc).__name__}: {exc}", 0, 0))
        raise
    finally:
        registry.close()
