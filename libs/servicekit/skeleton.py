"""A service that so far has only its event store, its relay and an HTTP app with health checks: the shape
admissions and transfers start from before their processes arrive."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fastapi import FastAPI

from servicekit.auth import TokenVerifier
from servicekit.database import KIT_SCHEMA_DDL, connect_pool, migrate
from servicekit.http import AppParts, create_app
from servicekit.relay import OutboxRelay, RelaySettings
from servicekit.settings import ServiceSettings
from servicekit.telemetry import setup_telemetry


@dataclass(frozen=True)
class StoreOnlyService:
    service: str
    topic: str
    partitions: int
    description: str

    @property
    def schema(self) -> str:
        return self.service

    def create_api(self, settings: ServiceSettings) -> FastAPI:
        setup_telemetry(self.service)
        migrate(settings.database_url, schema=self.schema, ddl=[KIT_SCHEMA_DDL])
        pool = connect_pool(settings.database_url, schema=self.schema, min_size=1, max_size=4)

        async def database_ready() -> tuple[bool, str]:
            with pool.connection() as conn:
                conn.execute("SELECT 1")
            return True, "ok"

        return create_app(AppParts(
            title=f"Party register: {self.service}", version="0.1.0", description=self.description,
            verifier=TokenVerifier(issuer=settings.auth_issuer, audience=settings.auth_audience,
                                   jwks_url=settings.auth_jwks_url, jwks_file=settings.jwks_file),
            routers=[], readiness={"database": database_ready},
        ))

    def run_relay(self, settings: ServiceSettings, stop: threading.Event) -> None:
        setup_telemetry(f"{self.service}-relay")
        migrate(settings.database_url, schema=self.schema, ddl=[KIT_SCHEMA_DDL])
        OutboxRelay(RelaySettings(
            database_url=settings.database_url, schema=self.schema, service=self.service, topic=self.topic,
            partitions=self.partitions, bootstrap_servers=settings.kafka_bootstrap_servers,
            lease_ttl_s=settings.relay_lease_ttl_s,
        )).run(stop)
