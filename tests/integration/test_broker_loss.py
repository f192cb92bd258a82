"""Losing the in-memory broker: relays republish from the store, consumers resynchronize, nothing doubles."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicekit.consumer import ConsumerSettings, EventConsumer
from servicekit.database import connect
from servicekit.embedded.broker import EmbeddedBroker
from servicekit.pgstore import PostgresEventStore
from servicekit.relay import OutboxRelay, RelaySettings
from tests.integration.test_consumer import EFFECTS_DDL, record_effect
from tests.support.kit import event, metadata, pg_store, wait_until


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    yield broker
    broker.stop()


def projection(database_url: str, schema: str) -> list[tuple[str, int, int]]:
    with connect(database_url, schema=schema) as conn:
        return [tuple(r) for r in conn.execute("SELECT stream_id, version, n FROM effects ORDER BY 1, 2").fetchall()]


class Worker:
    def __init__(self, target: object) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=target.run, args=(self.stop,), daemon=True)  # type: ignore[attr-defined]
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_after_a_broker_restart_the_projection_ends_identical_to_a_clean_run(
    database_url: str, schema: str, topic: str, own_broker: EmbeddedBroker
) -> None:
    store: PostgresEventStore
    store, pool = pg_store(database_url, schema, topic)
    clean_schema = f"{schema}_clean"
    _, clean_pool = pg_store(database_url, clean_schema, topic)
    for p in (pool, clean_pool):
        with p.connection() as conn:
            conn.execute(EFFECTS_DDL)
    bootstrap = own_broker.bootstrap_servers
    relay = OutboxRelay(RelaySettings(database_url=database_url, schema=schema, service="registry", topic=topic,
                                      partitions=4, bootstrap_servers=bootstrap, lease_ttl_s=3, idle_poll_s=0.05,
                                      topic_check_interval_s=0.5))
    consumer = EventConsumer(ConsumerSettings(name="survivor", database_url=database_url, schema=schema,
                                              bootstrap_servers=bootstrap, topics=(topic,), lease_ttl_s=3,
                                              topic_check_interval_s=0.5), record_effect)
    relay_worker, consumer_worker = Worker(relay), Worker(consumer)
    try:
        streams = [f"unit-{uuid.uuid4()}" for _ in range(30)]
        for version in range(1, 6):
            for stream in streams:
                store.append(stream_id=stream, expected_version=version - 1, events=[event(version)],
                             metadata=metadata())
        wait_until(lambda: len(projection(database_url, schema)) == 150, timeout_s=60, message="first projection")

        own_broker.kill()
        own_broker.start()

        more = [f"unit-{uuid.uuid4()}" for _ in range(10)]
        for version in range(6, 9):
            for stream in streams:
                store.append(stream_id=stream, expected_version=version - 1, events=[event(version)],
                             metadata=metadata())
        for stream in more:
            store.append(stream_id=stream, expected_version=0, events=[event(1), event(2)], metadata=metadata())
        expected_rows = 30 * 8 + 10 * 2
        wait_until(lambda: len(projection(database_url, schema)) == expected_rows, timeout_s=90,
                   message="projection after the broker loss")
        wait_until(lambda: relay.published_total >= 150 + expected_rows, timeout_s=60, message="republication")
        assert relay.broker_losses == 1
    finally:
        relay_worker.halt()
        consumer_worker.halt()

    clean = EventConsumer(ConsumerSettings(name="clean", database_url=database_url, schema=clean_schema,
                                           bootstrap_servers=bootstrap, topics=(topic,), lease_ttl_s=3),
                          record_effect)
    assert clean.lease.acquire()
    wait_until(lambda: clean.poll_once() >= 0 and len(projection(database_url, clean_schema)) == expected_rows,
               timeout_s=60, interval_s=0, message="clean projection")
    clean.close()
    survivor = projection(database_url, schema)
    assert survivor == projection(database_url, clean_schema)
    assert len(set(survivor)) == len(survivor) == expected_rows, "no double effects"
    pool.close()
    clean_pool.close()
