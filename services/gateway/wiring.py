"""The gateway's projector, rebuild and reconcile, without its GraphQL and HTTP layers: a rebuild or a projector
started without them is ready ~1.3 s sooner (the API's imports), and `python -m gateway` imports `main` only to
serve."""

from __future__ import annotations

import os
import threading

from contracts import registry_v1, topics
from gateway.projections import CATCH_UP_FROM, PROJECTIONS, CatchingUp, prepare_session
from gateway.projections.base import batch_dispatcher, dispatcher
from servicekit.consumer import ConsumerSettings, EventConsumer
from servicekit.database import CONSUMER_SCHEMA_DDL, connect, migrate
from servicekit.settings import ServiceSettings
from servicekit.telemetry import setup_telemetry

SCHEMA = "gateway"
SERVICE = "gateway"
PROJECTOR = "gateway-projector"
CONSUMED_TOPICS = (topics.REGISTRY,)
# Records a poll, so a transaction, for the projector and a rebuild while behind, above the kit's 2,000: the member
# rows a batch rewrites (one each time one of its events comes) are rewritten less often. At `small`, a rebuild's
# processes took 11.4 s against 13.5 s, PostgreSQL 8.3 CPU-s against 9.6, and the demo's projections were done
# 34–36 s after the load began against 38–39 s; 20,000 or 30,000 gave no more.
CATCH_UP_POLL_RECORDS = 10_000


def migrate_gateway(settings: ServiceSettings) -> None:
    migrate(settings.database_url, schema=SCHEMA, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in PROJECTIONS)])


def projector(settings: ServiceSettings) -> EventConsumer:
    batches = CatchingUp(batch_dispatcher(PROJECTIONS), behind=lambda: consumer.total_lag(),
                         from_events=int(os.environ.get("GATEWAY_CATCH_UP_FROM", CATCH_UP_FROM)),
                         beside=lambda: connect(settings.database_url, schema=SCHEMA))
    consumer = EventConsumer(
        ConsumerSettings(name=PROJECTOR, database_url=settings.database_url, schema=SCHEMA,
                         bootstrap_servers=settings.kafka_bootstrap_servers, topics=CONSUMED_TOPICS,
                         lease_ttl_s=settings.relay_lease_ttl_s, flush_commits=False,
                         prepare_session=prepare_session, catch_up_poll_records=CATCH_UP_POLL_RECORDS),
        dispatcher(PROJECTIONS),
        catalogues=[registry_v1.CATALOGUE],
        batch_handler=batches,
        when_caught_up=batches.when_caught_up,
    )
    return consumer


def run_projector(settings: ServiceSettings, stop: threading.Event) -> None:
    from gateway.projections.members import ANNOUNCE_CHANGES

    setup_telemetry(f"{SERVICE}-projector")
    migrate_gateway(settings)
    ANNOUNCE_CHANGES.set(True)
    projector(settings).run(stop)


def run_reconcile() -> int:
    from gateway.reconcile import differences
    from servicekit.database import connect
    from servicekit.runner import load_settings

    settings = load_settings()
    with connect(settings.database_url, schema=SCHEMA, autocommit=True) as conn:
        found = differences(conn)
    for unit, dimension, value, kept, recounted in found:
        print(f"unit {unit} {dimension}={value}: kept {kept}, recounted {recounted}")
    print(f"{len(found)} differences")
    return 1 if found else 0


def run_rebuild(*, from_store: bool = False, workers: int | None = None) -> int:
    """From the topic, or (`--from-store`) from the registry's event store: REGISTRY_STORE_URL (default the
    gateway's own DATABASE_URL, as in the embedded stack) and REGISTRY_STORE_SCHEMA (default `registry`; a
    comma-separated list for several registers, as the `national` demo keeps one per province). `workers` processes
    (default: one per core) apply it side by side: from the topic, each a share of the partitions (at most one
    per partition); from the stores, each a share of the streams."""
    from gateway.rebuild import RebuildProgress, rebuild
    from servicekit.runner import load_settings

    settings = load_settings()
    setup_telemetry(f"{SERVICE}-rebuild")

    def make_consumer(schema: str) -> EventConsumer:
        return EventConsumer(
            ConsumerSettings(name=PROJECTOR, database_url=settings.database_url, schema=schema,
                             bootstrap_servers=settings.kafka_bootstrap_servers, topics=CONSUMED_TOPICS,
                             lease_ttl_s=settings.relay_lease_ttl_s, trace_events=False, flush_commits=False,
                             prepare_session=prepare_session, catch_up_poll_records=CATCH_UP_POLL_RECORDS),
            dispatcher(PROJECTIONS), catalogues=[registry_v1.CATALOGUE],
            batch_handler=batch_dispatcher(PROJECTIONS))

    from servicekit.replay import StoreReplay

    replays: list[StoreReplay] = []
    if from_store:
        replays = [StoreReplay(os.environ.get("REGISTRY_STORE_URL", settings.database_url), schema=schema.strip(),
                               service="registry", topic=topics.REGISTRY)
                   for schema in os.environ.get("REGISTRY_STORE_SCHEMA", "registry").split(",")]
    applied = rebuild(settings, live_schema=SCHEMA, make_consumer=make_consumer,
                      ddl=[p.ddl for p in PROJECTIONS], progress=RebuildProgress(), from_store=replays,
                      workers=workers if workers is not None else os.cpu_count() or 1)
    print(f"\nrebuilt from {applied:,} events and swapped in")
    return 0
