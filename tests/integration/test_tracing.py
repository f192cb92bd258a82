"""One trace id spans the HTTP request, the relay's publish and the projector's handling."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from servicekit.devissuer import mint
from servicekit.relay import OutboxRelay
from servicekit.settings import ServiceSettings
from tests.support.kit import wait_until


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def test_one_trace_follows_a_command_from_http_through_kafka_into_the_projection(
    spans: InMemorySpanExporter, database_url: str, bootstrap_servers: str, issuer_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway import wiring as gateway_wiring
    from registry import main as registry_main
    from registry import wiring as registry_wiring

    suffix = uuid.uuid4().hex[:8]
    # The API's store (wiring) and the relay (main) on one private schema.
    monkeypatch.setattr(registry_wiring, "SCHEMA", f"registry_{suffix}")
    monkeypatch.setattr(registry_main, "SCHEMA", f"registry_{suffix}")
    monkeypatch.setattr(gateway_wiring, "SCHEMA", f"gateway_{suffix}")
    topic = f"party.registry.trace.{suffix}"
    monkeypatch.setattr(registry_main.topics, "REGISTRY", topic)
    monkeypatch.setattr(gateway_wiring, "CONSUMED_TOPICS", (topic,))
    monkeypatch.setitem(registry_main.topics.PARTITIONS, topic, 2)
    settings = ServiceSettings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
                               AUTH_JWKS_FILE=issuer_dir / "jwks.json")
    token = mint(issuer_dir, role="city-admin", unit=None)
    with TestClient(registry_main.create_api(settings)) as client:
        response = client.post("/units", json={"code": f"T{suffix}", "name": "Đảng bộ thử", "kind": "city_committee",
                                               "established_on": "2020-01-01"},
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    relay = OutboxRelay(registry_main.relay_settings(settings))
    assert relay.lease.acquire()
    assert relay.publish_batch() == 1
    relay.close()
    gateway_wiring.migrate_gateway(settings)
    projector = gateway_wiring.projector(settings)
    assert projector.lease.acquire()
    wait_until(lambda: projector.poll_once() >= 0 and projector.applied_total == 1, interval_s=0)
    projector.close()

    finished = spans.get_finished_spans()
    http = next(s for s in finished if s.name == "POST /units")
    publish = next(s for s in finished if s.name == f"{topic} publish")
    process = next(s for s in finished if s.name == f"{topic} process")
    trace_id = http.context.trace_id
    assert publish.context.trace_id == trace_id
    assert process.context.trace_id == trace_id
    assert process.parent is not None and process.parent.span_id == publish.context.span_id


def test_the_events_of_one_command_share_one_publish_span_and_keep_their_order(
    spans: InMemorySpanExporter, database_url: str, bootstrap_servers: str, schema: str, topic: str,
) -> None:
    from tests.support.kit import read_topic

    parents = _two_commands_published(database_url, bootstrap_servers, schema, topic)

    published = [s for s in spans.get_finished_spans() if s.name == f"{topic} publish"]
    assert [s.attributes["messaging.batch.message_count"] for s in published] == [3, 2]
    assert [format(s.context.trace_id, "032x") for s in published] == [p.split("-")[1] for p in parents]
    records = read_topic(bootstrap_servers, topic, expect_at_least=5)
    assert [r.version for r in records] == [1, 2, 3, 4, 5], "one key, one partition, in version order"
    span_of = [r.envelope.traceparent.split("-")[2] for r in records if r.envelope.traceparent]
    assert span_of == [format(published[0].context.span_id, "016x")] * 3 + [
        format(published[1].context.span_id, "016x")] * 2


def test_the_events_of_one_command_share_one_consumer_span_under_their_publish_span(
    spans: InMemorySpanExporter, database_url: str, bootstrap_servers: str, schema: str, topic: str,
) -> None:
    from servicekit.consumer import ConsumedEvent, ConsumerSettings, EventConsumer

    _two_commands_published(database_url, bootstrap_servers, schema, topic)
    batches: list[list[int]] = []

    def apply_batch(conn: object, events: list[ConsumedEvent]) -> None:
        batches.append([e.version for e in events])

    consumer = EventConsumer(ConsumerSettings(name="traced", database_url=database_url, schema=schema,
                                              bootstrap_servers=bootstrap_servers, topics=(topic,), lease_ttl_s=5),
                             lambda conn, e: None, batch_handler=apply_batch)
    assert consumer.lease.acquire()
    wait_until(lambda: consumer.poll_once() >= 0 and consumer.applied_total == 5, interval_s=0)
    consumer.close()

    assert batches == [[1, 2, 3, 4, 5]], "one poll brought both commands' events"
    finished = spans.get_finished_spans()
    published = [s for s in finished if s.name == f"{topic} publish"]
    processed = [s for s in finished if s.name == f"{topic} process"]
    assert [s.attributes["messaging.batch.message_count"] for s in processed] == [3, 2]
    assert [s.attributes["party.stream_version"] for s in processed] == [1, 4]
    assert [s.parent.span_id for s in processed if s.parent] == [s.context.span_id for s in published]
    assert [s.context.trace_id for s in processed] == [s.context.trace_id for s in published]


def _two_commands_published(database_url: str, bootstrap_servers: str, schema: str, topic: str) -> list[str]:
    """Two commands on one stream, events 1-3 and 4-5, each with a trace parent of its own, in the store and
    through the relay; returns the trace parents."""
    import dataclasses

    from servicekit.relay import RelaySettings
    from tests.support.kit import event, metadata, pg_store

    store, pool = pg_store(database_url, schema, topic)
    parents = [f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01" for _ in range(2)]
    commands = [dataclasses.replace(metadata(), traceparent=parent) for parent in parents]
    stream = f"unit-{uuid.uuid4()}"
    store.append(stream_id=stream, expected_version=0, events=[event(1), event(2), event(3)], metadata=commands[0])
    store.append(stream_id=stream, expected_version=3, events=[event(4), event(5)], metadata=commands[1])
    pool.close()
    relay = OutboxRelay(RelaySettings(database_url=database_url, schema=schema, service="registry", topic=topic,
                                      partitions=2, bootstrap_servers=bootstrap_servers, lease_ttl_s=5))
    assert relay.lease.acquire()
    assert relay.publish_batch() == 5
    relay.close()
    return parents
