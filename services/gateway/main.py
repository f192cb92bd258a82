"""Composition root of the gateway's GraphQL app; the projector, rebuild and reconcile are in gateway.wiring."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from fastapi import FastAPI, Request
from psycopg_pool import AsyncConnectionPool

from gateway import wiring
from gateway.api.context import GraphQLEndpoint
from gateway.api.schema import schema
from gateway.read_models import ReadModels
from servicekit import kafka as kafka_setup
from servicekit.auth import TokenVerifier
from servicekit.http import AppParts, create_app
from servicekit.settings import ServiceSettings
from servicekit.telemetry import setup_telemetry

DEFAULT_PORT = 8000


def settings_registry_url(settings: ServiceSettings) -> str:
    import os

    return os.environ.get("REGISTRY_URL", f"http://127.0.0.1:{os.environ.get('REGISTRY_PORT', '8101')}")


def graphiql_page(request: Request) -> bool:
    """A browser may load the GraphiQL page without a token; its queries still need one."""
    return (request.url.path == "/graphql" and request.method == "GET"
            and "text/html" in request.headers.get("accept", ""))


def create_api(settings: ServiceSettings) -> FastAPI:
    setup_telemetry(wiring.SERVICE)
    wiring.migrate_gateway(settings)
    # Connections are made again every two minutes: a statement prepared on stale statistics (a bulk load before
    # they were analysed, a schema swapped in) keeps its plan for the connection's life (the city's statistics at
    # 80-111 ms instead of 4-9 until the API restarted, measured twice).
    pool = AsyncConnectionPool(
        settings.database_url, min_size=2, max_size=20, open=False, max_lifetime=120,
        kwargs={"autocommit": True, "options": f"-c search_path={wiring.SCHEMA},public"},
    )
    read_models = ReadModels(pool)
    lag_probe = ProjectionLagProbe(settings)

    async def database_ready() -> tuple[bool, str]:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return True, "ok"

    async def demo_loaded() -> tuple[bool, str]:
        """`make up` marks a first start's demo load; the data is not there to serve until it ends."""
        marker = settings.data_dir / "demo-loading"
        if marker.exists():
            return False, marker.read_text(encoding="utf-8", errors="replace").strip() or "demo data loading"
        return True, "ok"

    async def projections_caught_up() -> tuple[bool, str]:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT topic, partition, topic_id, next_offset FROM consumer_offsets WHERE consumer = %s",
                (wiring.PROJECTOR,),
            )
            rows = await cur.fetchall()
        return await asyncio.to_thread(lag_probe.caught_up, {(r[0], r[1]): (r[2], r[3]) for r in rows})

    async def statistics_counted() -> tuple[bool, str]:
        """After catching up from far behind, the projector counts the running sums again, and the statistics are
        refused meanwhile (STATISTICS_PENDING): not ready until they are counted."""
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT since FROM statistics_pending")
            row = await cur.fetchone()
        return (True, "ok") if row is None else (False, f"statistics being counted since {row[0].isoformat()}")

    import httpx

    from gateway.api.subscriptions import ChangeFeed

    registry_client = httpx.AsyncClient(base_url=settings_registry_url(settings), timeout=60)
    change_feed = ChangeFeed(settings.database_url)
    verifier = TokenVerifier(issuer=settings.auth_issuer, audience=settings.auth_audience,
                             jwks_url=settings.auth_jwks_url, jwks_file=settings.jwks_file)
    endpoint = GraphQLEndpoint(schema, read_models=read_models, registry=registry_client, change_feed=change_feed,
                               verifier=verifier)

    app = create_app(AppParts(
        title="Party register: gateway",
        version="1.0.0",
        description="GraphQL over the read projections at /graphql.",
        verifier=verifier,
        routers=[],
        mounts={"/graphql": endpoint},
        readiness={"database": database_ready, "demo": demo_loaded, "projections": projections_caught_up,
                   "statistics": statistics_counted},
        allow_anonymous=graphiql_page,
    ))

    app.state.read_models = read_models

    @app.on_event("startup")
    async def open_pool() -> None:
        await pool.open(wait=True, timeout=30)
        change_feed.start()

    @app.on_event("shutdown")
    async def close_pool() -> None:
        await change_feed.stop()
        await pool.close()
        await registry_client.aclose()
        lag_probe.close()

    return app


class ProjectionLagProbe:
    """Compares the projector's stored progress with the topics' end offsets.

    Its admin client and consumer last from one check to the next, one check at a time. Its admin client was made,
    and the topics described twice, for each check: 5.6 ms of the API's CPU and a connection to the broker each time
    (1.8 ms now), and `make up` and the tests ask for readiness ten times a second while a load is projected. A
    check that finds another under way for longer than `wait_s` (a broker that does not answer) answers "not ready"
    rather than queue up behind it and hold one of the threads the API's blocking calls share."""

    wait_s = 1.0

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._admin: Any = None
        self._consumer: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def caught_up(self, progress: dict[tuple[str, int], tuple[str, int]]) -> tuple[bool, str]:
        if not self._lock.acquire(timeout=self.wait_s):
            return False, "the previous readiness check is still waiting for the broker"
        try:
            if self._closed:
                return False, "shutting down"
            return self._caught_up(progress)
        except Exception:
            # Made again at the next check: a broker that went away (or lost its log) is asked afresh.
            self._close_clients()
            raise
        finally:
            if self._closed:
                self._close_clients()
            self._lock.release()

    def _caught_up(self, progress: dict[tuple[str, int], tuple[str, int]]) -> tuple[bool, str]:
        from kafka import TopicPartition

        if self._admin is None:
            self._admin = kafka_setup.new_admin(self._settings.kafka_bootstrap_servers, client_id="gateway-readiness")
        described = self._admin.describe_topics(list(wiring.CONSUMED_TOPICS))
        ids = kafka_setup.ids_of(described)
        if set(ids) != set(wiring.CONSUMED_TOPICS):
            return False, f"topics missing: {sorted(set(wiring.CONSUMED_TOPICS) - set(ids))}"
        if self._consumer is None:
            self._consumer = kafka_setup.new_end_probe(self._settings.kafka_bootstrap_servers,
                                                       client_id="gateway-readiness")
        partitions = [TopicPartition(d["name"], p["partition_index"]) for d in described for p in d["partitions"]]
        positions = {}
        for tp in partitions:
            topic_id, next_offset = progress.get((tp.topic, tp.partition), ("", 0))
            positions[tp] = next_offset if topic_id == ids[tp.topic] else 0
        ends = kafka_setup.partition_ends(self._consumer, partitions, positions=positions)
        behind = sum(max(0, ends[tp] - positions[tp]) for tp in partitions)
        return behind == 0, f"{behind} records behind"

    def close(self) -> None:
        """At shutdown: closes the clients now, or lets the check under way close them as it ends."""
        self._closed = True
        if self._lock.acquire(timeout=self.wait_s):
            try:
                self._close_clients()
            finally:
                self._lock.release()

    def _close_clients(self) -> None:
        clients, self._admin, self._consumer = (self._admin, self._consumer), None, None
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):  # closing what failed must not hide why it failed
                    client.close()
