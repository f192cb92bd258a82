"""Composition root of the registry: builds the store, the command bus, the HTTP app and the relay."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from contracts import topics
from fastapi import FastAPI
from psycopg_pool import ConnectionPool
from servicekit.auth import TokenVerifier
from servicekit.commands import CommandBus
from servicekit.database import KIT_SCHEMA_DDL, connect_pool, migrate
from servicekit.http import AppParts, ProblemError, ReadinessCheck, create_app
from servicekit.pgstore import PostgresEventStore
from servicekit.relay import OutboxRelay, RelaySettings
from servicekit.settings import ServiceSettings
from servicekit.store import InMemoryEventStore
from servicekit.telemetry import setup_telemetry

from registry.adapters import http_api
from registry.application.handlers import OutsideScope
from registry.domain.errors import DomainError

SCHEMA = "registry"
SERVICE = "registry"
DEFAULT_PORT = 8101


@dataclass
class Registry:
    settings: ServiceSettings
    pool: ConnectionPool
    store: PostgresEventStore
    bus: CommandBus


def build(settings: ServiceSettings) -> Registry:
    migrate(settings.database_url, schema=SCHEMA, ddl=[KIT_SCHEMA_DDL])
    pool = connect_pool(settings.database_url, schema=SCHEMA, min_size=2, max_size=20)
    store = PostgresEventStore(pool, schema=SCHEMA, topic=topics.REGISTRY)
    return Registry(settings=settings, pool=pool, store=store, bus=CommandBus(store))


def outside_scope(exc: Exception) -> ProblemError:
    return ProblemError(403, "outside-scope", "Outside the caller's subtree", detail=str(exc))


def verifier_for(settings: ServiceSettings) -> TokenVerifier:
    return TokenVerifier(issuer=settings.auth_issuer, audience=settings.auth_audience,
                         jwks_url=settings.auth_jwks_url, jwks_file=settings.jwks_file)


def http_app(bus: CommandBus, verifier: TokenVerifier, readiness: dict[str, ReadinessCheck]) -> FastAPI:
    return create_app(AppParts(
        title="Party register: registry",
        version="1.0.0",
        description="Organization units and member records of the city's party organization. Every operation "
                    "but the health checks and these docs needs a bearer token; errors are RFC 9457 problem "
                    "documents with a stable `code`.",
        verifier=verifier,
        routers=[http_api.build_router(bus)],
        readiness=readiness,
        error_mappers={DomainError: http_api.domain_problem, OutsideScope: outside_scope},
    ))


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, built without a database (for `docs/export.py`)."""
    app = http_app(CommandBus(InMemoryEventStore()), TokenVerifier(issuer="-", audience="-"), {})
    return app.openapi()


def create_api(settings: ServiceSettings) -> FastAPI:
    setup_telemetry(SERVICE)
    registry = build(settings)

    async def database_ready() -> tuple[bool, str]:
        with registry.pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM outbox").fetchone()
        backlog = row[0] if row else 0
        return backlog < 100_000, f"outbox backlog {backlog}"

    app = http_app(registry.bus, verifier_for(settings), {"database": database_ready})
    app.state.registry = registry
    return app


def relay_settings(settings: ServiceSettings) -> RelaySettings:
    return RelaySettings(
        database_url=settings.database_url, schema=SCHEMA, service=SERVICE, topic=topics.REGISTRY,
        partitions=topics.PARTITIONS[topics.REGISTRY], bootstrap_servers=settings.kafka_bootstrap_servers,
        lease_ttl_s=settings.relay_lease_ttl_s,
    )


def run_relay(settings: ServiceSettings, stop: threading.Event) -> None:
    setup_telemetry(f"{SERVICE}-relay")
    migrate(settings.database_url, schema=SCHEMA, ddl=[KIT_SCHEMA_DDL])
    OutboxRelay(relay_settings(settings)).run(stop)
