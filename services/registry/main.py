"""Composition root of the registry: the HTTP app, relay and reactions over the store and bus of `wiring`."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from contracts import topics
from registry.adapters import http_api, queries
from registry.adapters.imports_runner import import_from_command_line
from registry.application.handlers import OutsideScope, RegistryCommands
from registry.domain.errors import DomainError
from registry.wiring import SCHEMA as SCHEMA
from registry.wiring import SERVICE as SERVICE
from registry.wiring import Registry as Registry
from registry.wiring import build as build
from registry.wiring import migrate_registry as migrate_registry
from registry.wiring import views_for as views_for
from servicekit.auth import Actor, TokenVerifier
from servicekit.commands import CommandBus
from servicekit.http import AppParts, ProblemError, ReadinessCheck, create_app
from servicekit.relay import OutboxRelay, RelaySettings
from servicekit.settings import ServiceSettings
from servicekit.store import InMemoryEventStore
from servicekit.telemetry import setup_telemetry

DEFAULT_PORT = 8101
REACTIONS = "registry-reactions"


def outside_scope(exc: Exception) -> ProblemError:
    return ProblemError(403, "outside-scope", "Outside the caller's subtree", detail=str(exc))


def verifier_for(settings: ServiceSettings) -> TokenVerifier:
    return TokenVerifier(issuer=settings.auth_issuer, audience=settings.auth_audience,
                         jwks_url=settings.auth_jwks_url, jwks_file=settings.jwks_file)


def http_app(registry: Any, verifier: TokenVerifier, readiness: dict[str, ReadinessCheck]) -> FastAPI:
    routers = [http_api.build_router(registry.bus, registry.commands, registry.unit_id_by_code,
                                     getattr(registry, "imports", None) or _OfflineImports())]
    if registry.store is not None:
        routers.append(queries.build_router(registry.store, registry.check_scope))
    return create_app(AppParts(
        title="Party register: registry",
        version="1.0.0",
        description="Organization units and member records of the city's party organization. Every operation "
                    "but the health checks and these docs needs a bearer token; errors are RFC 9457 problem "
                    "documents with a stable `code`. Commands accept `Idempotency-Key` (a retry returns the "
                    "first answer and writes nothing) and, on one aggregate, `If-Match: <version>`.",
        verifier=verifier,
        routers=routers,
        readiness=readiness,
        error_mappers={DomainError: http_api.domain_problem, OutsideScope: outside_scope},
    ))


@dataclass
class _Offline:
    bus: CommandBus
    commands: RegistryCommands
    store: Any

    def unit_id_by_code(self, code: str) -> str | None:
        return None

    def check_scope(self, actor: Actor, unit_id: str) -> None:
        return None


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, built without a database (for `docs/export.py`)."""
    offline = _Offline(CommandBus(InMemoryEventStore()), RegistryCommands(views_for), _StoreStub())
    return http_app(offline, TokenVerifier(issuer="-", audience="-"), {}).openapi()


class _OfflineImports:
    """Stands in for the import runner when only the OpenAPI document is built."""


class _StoreStub:
    def read_stream(self, stream_id: str) -> list[Any]:
        return []


def create_api(settings: ServiceSettings) -> FastAPI:
    setup_telemetry(SERVICE)
    registry = build(settings)

    async def database_ready() -> tuple[bool, str]:
        with registry.pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM outbox").fetchone()
        backlog = row[0] if row else 0
        return backlog < 100_000, f"outbox backlog {backlog}"

    app = http_app(registry, verifier_for(settings), {"database": database_ready})
    app.state.registry = registry

    @app.on_event("startup")
    def resume_imports() -> None:
        registry.imports.resume_unfinished()

    return app


def relay_settings(settings: ServiceSettings) -> RelaySettings:
    return RelaySettings(
        database_url=settings.database_url, schema=SCHEMA, service=SERVICE, topic=topics.REGISTRY,
        partitions=topics.PARTITIONS[topics.REGISTRY], bootstrap_servers=settings.kafka_bootstrap_servers,
        lease_ttl_s=settings.relay_lease_ttl_s,
    )


def run_relay(settings: ServiceSettings, stop: threading.Event) -> None:
    setup_telemetry(f"{SERVICE}-relay")
    migrate_registry(settings)
    OutboxRelay(relay_settings(settings)).run(stop)


def reaction_handler(registry: Registry) -> Any:
    """Applies a foreign fact inside the consumer's transaction, retrying a version conflict from a savepoint."""
    import psycopg

    from registry.application.reactions import CATALOGUES, REACTIONS, command_id_for, taking_effect
    from registry.domain.policy import legal_basis
    from servicekit.commands import CommandContext
    from servicekit.consumer import ConsumedEvent, RetryLater
    from servicekit.pgstore import PostgresTransaction
    from servicekit.store import ConcurrencyError

    def handle(conn: psycopg.Connection, event: ConsumedEvent) -> None:
        reaction = REACTIONS.get((event.source, event.event_type))
        if reaction is None:
            return
        fact = CATALOGUES[event.source].decode(event.event_type, event.data)
        envelope = event.envelope
        context = CommandContext(
            actor=f"{event.source} ({envelope.actor})", command_id=command_id_for(envelope.id),
            correlation_id=_uuid_or_none(envelope.correlation_id), causation_id=_uuid_or_none(envelope.id),
            traceparent=envelope.traceparent, tracestate=envelope.tracestate,
            legal_basis=legal_basis(taking_effect(fact, registry.commands.clock())))
        for attempt in range(5):
            try:
                with conn.transaction():
                    tx = PostgresTransaction(conn, topic=registry.store.topic,
                                             channel=f"outbox_{registry.store.schema}")
                    registry.bus.run_in(tx, context, reaction(registry.commands, fact))
                return
            except (ConcurrencyError, psycopg.errors.UniqueViolation):
                if attempt == 4:
                    raise
            except DomainError as exc:
                # Topics are ordered per key, not with each other: a fact about a member may come before
                # the fact that enrols them. It waits and is retried (servicekit.consumer.RetryLater).
                if exc.code == "member-not-found":
                    raise RetryLater(str(exc)) from exc
                if exc.code == "no-change":
                    return
                raise

    return handle


def _uuid_or_none(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def run_reactions(settings: ServiceSettings, stop: threading.Event) -> None:
    from contracts import admissions_v1, transfers_v1
    from servicekit.consumer import ConsumerSettings, EventConsumer

    setup_telemetry(f"{SERVICE}-reactions")
    registry = build(settings, max_pool=2)
    EventConsumer(
        ConsumerSettings(name=REACTIONS, database_url=settings.database_url, schema=SCHEMA,
                         bootstrap_servers=settings.kafka_bootstrap_servers,
                         topics=(topics.ADMISSIONS, topics.TRANSFERS), lease_ttl_s=settings.relay_lease_ttl_s,
                         fetch_max_wait_ms=100),
        reaction_handler(registry),
        catalogues=[admissions_v1.CATALOGUE, transfers_v1.CATALOGUE],
    ).run(stop)


def run_import(path: str) -> int:
    """`python -m registry import FILE`: validate and write a roll with a progress bar."""
    from pathlib import Path

    from servicekit.jsonlog import setup_logging
    from servicekit.runner import load_settings

    settings = load_settings()
    setup_logging(SERVICE, "WARNING")
    registry = build(settings, max_pool=4)
    return import_from_command_line(registry.imports, Path(path), actor="command-line import")
