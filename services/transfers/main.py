"""Composition root of transfers: the event store, the (empty) HTTP API and the relay of `transfers`."""

from __future__ import annotations

import threading

from fastapi import FastAPI

from contracts import topics
from servicekit.auth import TokenVerifier
from servicekit.database import KIT_SCHEMA_DDL, connect_pool, migrate
from servicekit.http import AppParts, create_app
from servicekit.relay import OutboxRelay, RelaySettings
from servicekit.settings import ServiceSettings
from servicekit.telemetry import setup_telemetry

SCHEMA = "transfers"
SERVICE = "transfers"
DEFAULT_PORT = 8103


def create_api(settings: ServiceSettings) -> FastAPI:
    setup_telemetry(SERVICE)
    migrate(settings.database_url, schema=SCHEMA, ddl=[KIT_SCHEMA_DDL])
    pool = connect_pool(settings.database_url, schema=SCHEMA, min_size=1, max_size=4)

    async def database_ready() -> tuple[bool, str]:
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        return True, "ok"

    return create_app(AppParts(
        title="Party register: transfers",
        version="0.1.0",
        description="Skeleton: the transfers process arrives next round on the same kit.",
        verifier=TokenVerifier(issuer=settings.auth_issuer, audience=settings.auth_audience,
                               jwks_url=settings.auth_jwks_url, jwks_file=settings.jwks_file),
        routers=[],
        readiness={"database": database_ready},
    ))


def run_relay(settings: ServiceSettings, stop: threading.Event) -> None:
    setup_telemetry(f"{SERVICE}-relay")
    migrate(settings.database_url, schema=SCHEMA, ddl=[KIT_SCHEMA_DDL])
    OutboxRelay(RelaySettings(
        database_url=settings.database_url, schema=SCHEMA, service=SERVICE, topic=topics.TRANSFERS,
        partitions=topics.PARTITIONS[topics.TRANSFERS], bootstrap_servers=settings.kafka_bootstrap_servers,
        lease_ttl_s=settings.relay_lease_ttl_s,
    )).run(stop)
