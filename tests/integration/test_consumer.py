"""The consumer applies each (stream, version) once, whatever Kafka redelivers, and dead-letters poison."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from kafka.partitioner.default import murmur2

from contracts.envelope import Envelope
from contracts.topics import dead_letter_topic
from servicekit import kafka as kafka_setup
from servicekit.consumer import ConsumedEvent, ConsumerSettings, EventConsumer
from servicekit.database import connect
from servicekit.pgstore import PostgresEventStore
from servicekit.relay import OutboxRelay, RelaySettings
from tests.support.kit import event, metadata, read_topic, wait_until

EFFECTS_DDL = """
CREATE TABLE IF NOT EXISTS effects (stream_id text, version int, n int);
CREATE TABLE IF NOT EXISTS totals (stream_id text PRIMARY KEY, applied int NOT NULL);
"""


def record_effect(conn: psycopg.Connection, e: ConsumedEvent) -> None:
    if e.data.get("poison"):
        raise ValueError("this event cannot be applied")
    conn.execute("INSERT INTO effects VALUES (%s, %s, %s)", (e.stream_id, e.version, e.data.get("n")))
    conn.execute("INSERT INTO totals VALUES (%s, 1) ON CONFLICT (stream_id) DO UPDATE SET applied = totals.applied + 1",
                 (e.stream_id,))


def publish_all(database_url: str, schema: str, topic: str, bootstrap: str) -> None:
    relay = OutboxRelay(RelaySettings(database_url=database_url, schema=schema, service="registry", topic=topic,
                                      partitions=4, bootstrap_servers=bootstrap, lease_ttl_s=5))
    assert relay.lease.acquire()
    while relay.publish_batch():
        pass
    relay.close()


def consumer_for(database_url: str, schema: str, topic: str, bootstrap: str, name: str | None = None,
                 handler: Any = record_effect) -> EventConsumer:
    consumer = EventConsumer(ConsumerSettings(name=name or f"c-{schema}", database_url=database_url, schema=schema,
                                              bootstrap_servers=bootstrap, topics=(topic,), lease_ttl_s=5), handler)
    assert consumer.lease.acquire()
    return consumer


def drain(consumer: EventConsumer, *, until_applied: int, timeout_s: float = 30) -> None:
    wait_until(lambda: consumer.poll_once() >= 0 and consumer.applied_total >= until_applied, timeout_s=timeout_s,
               interval_s=0, message=f"{until_applied} events applied")


def effects(database_url: str, schema: str) -> list[tuple[str, int]]:
    with connect(database_url, schema=schema) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT stream_id, version FROM effects ORDER BY 1, 2").fetchall()]


def write(store: PostgresEventStore, streams: list[str], versions: int) -> None:
    for version in range(1, versions + 1):
        for stream in streams:
            store.append(stream_id=stream, expected_version=version - 1, events=[event(version)], metadata=metadata())


def ids_on_every_partition(streams: int, partitions: int = 4) -> list[str]:
    """New stream ids that the relay's key (the subject) spreads over every partition: a test that needs each
    partition to hold records cannot leave that to chance (12 random ids miss one of 4 partitions 13% of runs)."""
    while True:
        ids = [f"unit-{uuid.uuid4()}" for _ in range(streams)]
        hit = {(murmur2(i.split("-", 1)[1].encode()) & 0x7FFFFFFF) % partitions for i in ids}
        if len(hit) == partitions:
            return ids


def published(store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap: str, *, streams: int,
              versions: int, on_every_partition: bool = False) -> list[str]:
    """`streams` new streams of `versions` events each, in the store and on the topic; returns their ids."""
    ids = ids_on_every_partition(streams) if on_every_partition else [f"unit-{uuid.uuid4()}" for _ in range(streams)]
    write(store, ids, versions)
    publish_all(database_url, schema, topic, bootstrap)
    return ids


def test_a_redelivered_batch_causes_no_second_effect(store: PostgresEventStore, database_url: str, schema: str,
                                                     topic: str, bootstrap_servers: str) -> None:
    published(store, database_url, schema, topic, bootstrap_servers, streams=5, versions=4)
    consumer = consumer_for(database_url, schema, topic, bootstrap_servers)
    drain(consumer, until_applied=20)
    before = effects(database_url, schema)
    assert len(before) == 20
    assert consumer._consumer is not None
    for tp in consumer._consumer.assignment():
        consumer._consumer.seek_to_beginning(tp)
    for _ in range(20):
        consumer.poll_once()
    assert effects(database_url, schema) == before
    assert consumer.applied_total == 20
    consumer.close()


def test_consumers_sharing_the_partitions_each_apply_only_theirs_and_together_everything(
        store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str) -> None:
    """What a rebuild in shares relies on (gateway.rebuild): disjoint partitions, and every stream whole in one."""
    streams = published(store, database_url, schema, topic, bootstrap_servers, streams=12, versions=3,
                        on_every_partition=True)
    shares = [consumer_for(database_url, schema, topic, bootstrap_servers, name=f"share-{i}") for i in range(2)]
    for index, consumer in enumerate(shares):
        consumer.take_share(index, 2)
    assert shares[0].partition_counts() == {topic: 4}
    owned = []
    for consumer in shares:
        kafka_consumer = consumer._ensure_consumer()
        assert kafka_consumer is not None
        owned.append({tp.partition for tp in kafka_consumer.assignment()})
    assert owned == [{0, 2}, {1, 3}]
    for consumer in shares:
        wait_until(lambda c=consumer: c.poll_once() >= 0 and c.total_lag() == 0 and bool(c.lag), timeout_s=30,
                   interval_s=0, message="a share caught up")
    applied = [consumer.applied_total for consumer in shares]
    assert all(n > 0 for n in applied) and sum(applied) == 36
    by_stream: dict[str, list[int]] = {}
    for stream, version in effects(database_url, schema):
        by_stream.setdefault(stream, []).append(version)
    assert len(by_stream) == len(streams) and all(v == [1, 2, 3] for v in by_stream.values())
    with pytest.raises(ValueError):
        shares[0].take_share(2, 2)
    for consumer in shares:
        consumer.close()


def test_a_consumer_behind_polls_its_catch_up_records_and_nearly_caught_up_the_kits(
        store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str) -> None:
    published(store, database_url, schema, topic, bootstrap_servers, streams=15, versions=2)
    consumer = EventConsumer(ConsumerSettings(name=f"c-{schema}", database_url=database_url, schema=schema,
                                              bootstrap_servers=bootstrap_servers, topics=(topic,),
                                              catch_up_poll_records=3), record_effect)
    applied: list[int] = []
    wait_until(lambda: applied.append(consumer.poll_once()) is None and consumer.applied_total == 30,
               timeout_s=30, interval_s=0, message="every event applied")
    polls = [n for n in applied if n]
    assert polls[0] == 3, "behind by as yet unknown, a poll brings the catch-up count"
    assert max(polls) > 3, "within behind_from_records of the end, the kit's count"
    consumer.close()


def test_a_consumer_says_when_it_has_caught_up_between_polls(
        store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str) -> None:
    published(store, database_url, schema, topic, bootstrap_servers, streams=4, versions=2)
    told: list[tuple[int, psycopg.pq.TransactionStatus]] = []
    consumer = EventConsumer(
        ConsumerSettings(name=f"c-{schema}", database_url=database_url, schema=schema,
                         bootstrap_servers=bootstrap_servers, topics=(topic,), catch_up_poll_records=3),
        record_effect,
        when_caught_up=lambda conn: told.append((consumer.applied_total, conn.info.transaction_status)))
    wait_until(lambda: consumer.poll_once() >= 0 and bool(told), timeout_s=30, interval_s=0,
               message="the consumer said it had caught up")
    assert told[0] == (8, psycopg.pq.TransactionStatus.IDLE), "told once every event applied, outside a transaction"
    consumer.close()


def test_a_share_applies_its_partitions_while_another_share_of_the_same_consumer_is_mid_batch(
        store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str) -> None:
    """A batch locks its own partitions' progress, not the consumer's every row: the shares of a rebuild (one
    consumer name, disjoint partitions) waited for each other's transactions, 30% of their time."""
    published(store, database_url, schema, topic, bootstrap_servers, streams=12, versions=2, on_every_partition=True)
    shares = [EventConsumer(ConsumerSettings(name="one-projection", database_url=database_url, schema=schema,
                                             bootstrap_servers=bootstrap_servers, topics=(topic,)), record_effect)
              for _ in range(2)]
    for index, consumer in enumerate(shares):
        consumer.take_share(index, 2)
    wait_until(lambda: shares[1].poll_once() >= 0 and shares[1].total_lag() == 0 and bool(shares[1].lag),
               timeout_s=30, interval_s=0, message="the second share caught up")
    with connect(database_url, schema=schema) as other_share:
        held = other_share.execute("SELECT partition FROM consumer_offsets WHERE consumer = 'one-projection'"
                                   " FOR UPDATE").fetchall()
        assert sorted(r[0] for r in held) == [1, 3]
        caught_up = threading.Event()

        def first_share() -> None:
            wait_until(lambda: shares[0].poll_once() >= 0 and shares[0].total_lag() == 0 and bool(shares[0].lag),
                       timeout_s=30, interval_s=0, message="the first share caught up")
            caught_up.set()

        worker = threading.Thread(target=first_share, daemon=True)
        worker.start()
        applied_meanwhile = caught_up.wait(timeout=30)
        other_share.rollback()
    worker.join(timeout=30)
    assert applied_meanwhile, "the first share waited for the other's transaction"
    assert shares[0].applied_total > 0 and shares[0].applied_total + shares[1].applied_total == 24
    for consumer in shares:
        consumer.close()


def test_a_batch_cut_off_by_a_lost_database_connection_is_applied_once_the_database_is_back(
        store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str) -> None:
    """No record arrives after the failure: nothing but the consumer itself can bring the lost batch back."""
    streams = published(store, database_url, schema, topic, bootstrap_servers, streams=6, versions=2)
    cut: list[int] = []

    def cut_off_once(conn: psycopg.Connection, e: ConsumedEvent) -> None:
        if not cut:
            cut.append(e.version)
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # as a PostgreSQL restart does
        record_effect(conn, e)

    consumer = consumer_for(database_url, schema, topic, bootstrap_servers, name="cut-off", handler=cut_off_once)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,))
    worker.start()
    try:
        wait_until(lambda: len(effects(database_url, schema)) == 12, timeout_s=30,
                   message="every event applied after the connection came back")
    finally:
        stop.set()
        worker.join(timeout=10)
    assert cut, "the connection was cut in the middle of a batch"
    assert effects(database_url, schema) == sorted((f"registry/{s.split('-', 1)[1]}", v) for s in streams
                                                   for v in (1, 2))


def test_a_kafka_client_that_stops_fetching_while_records_wait_is_made_again(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published(store, database_url, schema, topic, bootstrap_servers, streams=4, versions=2)
    consumer = consumer_for(database_url, schema, topic, bootstrap_servers, name="stalls")
    consumer.stall_after_s = 1.0
    consumer.lag_interval_s = 0.05
    assert consumer._ensure_consumer() is not None
    stuck = consumer._consumer
    assert stuck is not None
    # What kafka-python 3.0 did: every poll returns nothing, for good, while the partitions hold records.
    monkeypatch.setattr(stuck, "poll", lambda **_: {})
    started = time.monotonic()
    drain(consumer, until_applied=8, timeout_s=30)
    assert consumer.restarts == 1
    assert consumer._consumer is not stuck
    assert time.monotonic() - started >= consumer.stall_after_s, "made again only after the stall lasted"
    assert len(effects(database_url, schema)) == 8
    consumer.close()


def test_the_lag_is_read_from_the_fetch_responses_and_the_broker_is_asked_only_now_and_then(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    published(store, database_url, schema, topic, bootstrap_servers, streams=1, versions=8)
    consumer = consumer_for(database_url, schema, topic, bootstrap_servers, name="lags")
    consumer.lag_interval_s = 0.0
    consumer.ends_asked_interval_s = 3600.0
    client = consumer._ensure_consumer()
    assert client is not None
    client.config["max_poll_records"] = 2
    polls = applied = 0
    while applied == 0:
        applied, polls = consumer.poll_once(), polls + 1
        assert polls < 200
    assert consumer.total_lag() == 8 - applied, "the records fetched and not yet applied are behind"
    drain(consumer, until_applied=8)
    wait_until(lambda: consumer.poll_once() >= 0 and None not in [client.highwater(tp) for tp in client.assignment()],
               timeout_s=10, interval_s=0, message="a fetch response from every partition")
    asked = consumer.ends_asked
    for _ in range(20):
        consumer.poll_once()
    assert consumer.total_lag() == 0 and len(consumer.lag) == 4
    assert consumer.ends_asked == asked, "20 measures of the lag, none of them a request"
    consumer.close()


def test_a_consumer_far_behind_asks_for_a_long_fetch_wait_and_for_the_short_one_once_caught_up(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    streams = [f"unit-{uuid.uuid4()}" for _ in range(6)]
    for version in range(1, 11):
        # A publish per version: Tansu counts a partition's end from its last record batch.
        for stream in streams:
            store.append(stream_id=stream, expected_version=version - 1, events=[event(version)], metadata=metadata())
        publish_all(database_url, schema, topic, bootstrap_servers)
    consumer = consumer_for(database_url, schema, topic, bootstrap_servers, name="waits")
    consumer.behind_from_records = 20
    consumer.lag_interval_s = 0.0
    client = consumer._ensure_consumer()
    assert client is not None
    consumer._measure_lag(client)
    consumer._fit_fetch_wait(client, brought_records=False)
    assert consumer.total_lag() >= consumer.behind_from_records
    assert client._fetcher.config["fetch_max_wait_ms"] == consumer.catch_up_fetch_wait_ms
    drain(consumer, until_applied=60)
    consumer.poll_once()
    assert consumer.total_lag() == 0
    assert client._fetcher.config["fetch_max_wait_ms"] == kafka_setup.CONSUMER_SETTINGS["fetch_max_wait_ms"]
    consumer.close()


def _caught_up_on_one_stream(store: PostgresEventStore, database_url: str, schema: str, topic: str,
                             bootstrap_servers: str, *, name: str, versions: int) -> tuple[EventConsumer, Any, str]:
    """A consumer that has applied `versions` events of a new stream; with its Kafka client and the stream."""
    stream = f"unit-{uuid.uuid4()}"
    write(store, [stream], versions)
    publish_all(database_url, schema, topic, bootstrap_servers)
    consumer = consumer_for(database_url, schema, topic, bootstrap_servers, name=name)
    drain(consumer, until_applied=versions)
    client = consumer._consumer
    assert client is not None
    return consumer, client, stream


def test_a_short_fetch_wait_that_brings_nothing_while_records_wait_is_lengthened_and_shortened_again(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    """An aged Tansu answers a 5 ms fetch empty however few records wait (its read outlasts the wait)."""
    from kafka import TopicPartition

    short = kafka_setup.CONSUMER_SETTINGS["fetch_max_wait_ms"]
    consumer, client, _ = _caught_up_on_one_stream(store, database_url, schema, topic, bootstrap_servers,
                                                   name="fitted", versions=1)
    waits = client._fetcher.config
    assert waits["fetch_max_wait_ms"] == short
    consumer._fit_fetch_wait(client, brought_records=False)
    assert waits["fetch_max_wait_ms"] == short, "caught up: nothing waited, the short wait stands"

    consumer.lag = {TopicPartition(topic, 0): 3}
    seen = []
    for _ in range(6):
        consumer._fit_fetch_wait(client, brought_records=False)
        seen.append(waits["fetch_max_wait_ms"])
    limit = consumer.settings.poll_timeout_ms
    assert seen == [min(limit, short * 2 ** n) for n in range(1, 7)]
    consumer.lag = {TopicPartition(topic, 0): 0}
    for _ in range(consumer.shorten_after_polls):
        consumer._fit_fetch_wait(client, brought_records=True)
    assert waits["fetch_max_wait_ms"] == limit // 2
    consumer.lag = {TopicPartition(topic, 0): consumer.behind_from_records}
    consumer._fit_fetch_wait(client, brought_records=False)
    assert waits["fetch_max_wait_ms"] == consumer.catch_up_fetch_wait_ms, "far behind: the long wait, not doubled"
    consumer.lag = {TopicPartition(topic, 0): 0}
    consumer._fit_fetch_wait(client, brought_records=True)
    assert waits["fetch_max_wait_ms"] == limit // 2
    consumer.close()


def test_a_quiet_consumer_asks_for_the_idle_fetch_wait_and_records_bring_the_short_one_back(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    short = kafka_setup.CONSUMER_SETTINGS["fetch_max_wait_ms"]
    consumer, client, stream = _caught_up_on_one_stream(store, database_url, schema, topic, bootstrap_servers,
                                                        name="quiet", versions=2)
    consumer.idle_after_s = 0.3
    assert consumer.idle_fetch_wait_ms > short
    assert client._fetcher.config["fetch_max_wait_ms"] == short, "records have just come"
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        consumer.poll_once()
    assert client._fetcher.config["fetch_max_wait_ms"] == consumer.idle_fetch_wait_ms
    store.append(stream_id=stream, expected_version=2, events=[event(3)], metadata=metadata())
    publish_all(database_url, schema, topic, bootstrap_servers)
    drain(consumer, until_applied=3)
    assert client._fetcher.config["fetch_max_wait_ms"] == short
    assert [version for _, version in effects(database_url, schema)] == [1, 2, 3]
    consumer.close()


def test_a_consumer_with_nothing_to_read_is_not_taken_for_stalled(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    write(store, [f"unit-{uuid.uuid4()}"], 2)
    publish_all(database_url, schema, topic, bootstrap_servers)
    consumer = consumer_for(database_url, schema, topic, bootstrap_servers, name="idles")
    consumer.stall_after_s = 0.5
    consumer.lag_interval_s = 0.05
    drain(consumer, until_applied=2)
    made = consumer._consumer
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        consumer.poll_once()
    assert consumer.restarts == 0 and consumer._consumer is made
    consumer.close()


def test_a_batch_whose_streams_another_consumer_applied_meanwhile_rolls_back_and_is_read_again(
        store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str) -> None:
    """Progress is read without locks and written only where it still stands as read: a former holder of the lease
    finishing a batch of the same streams makes this batch roll back and be read again, never apply twice."""
    name = f"moved-{schema}"
    first, second = published(store, database_url, schema, topic, bootstrap_servers, streams=2, versions=1)
    interfered: list[tuple[str, int]] = []

    def applied_elsewhere_meanwhile(conn: psycopg.Connection, e: ConsumedEvent) -> None:
        if e.stream_id.endswith(first.split("-", 1)[1]) and (e.stream_id, e.version) not in interfered:
            interfered.append((e.stream_id, e.version))
            with connect(database_url, schema=schema, autocommit=True) as other, other.transaction():
                other.execute("INSERT INTO effects VALUES (%s, %s, -1)", (e.stream_id, e.version))
                other.execute(
                    "INSERT INTO consumer_streams (consumer, stream_id, version) VALUES (%s, %s, %s)"
                    " ON CONFLICT (consumer, stream_id) DO UPDATE SET version = EXCLUDED.version",
                    (name, e.stream_id, e.version))
        record_effect(conn, e)

    consumer = consumer_for(database_url, schema, topic, bootstrap_servers, name=name,
                            handler=applied_elsewhere_meanwhile)
    drain(consumer, until_applied=1)
    for stream in (first, second):
        store.append(stream_id=stream, expected_version=1, events=[event(2)], metadata=metadata())
    publish_all(database_url, schema, topic, bootstrap_servers)
    wait_until(lambda: consumer.poll_once() >= 0 and len(effects(database_url, schema)) >= 4, timeout_s=30,
               interval_s=0, message="every version applied once")
    for _ in range(5):
        consumer.poll_once()
    assert len(interfered) == 2, "the new stream's row was made elsewhere, then the known one moved"
    with connect(database_url, schema=schema) as conn:
        rows = conn.execute("SELECT stream_id, version, n FROM effects ORDER BY 1, 2").fetchall()
    versions = [(stream, version) for stream, version, _ in rows]
    assert len(versions) == len(set(versions)) == 4, "each (stream, version) took effect once"
    assert [n for stream, _, n in rows if stream.endswith(first.split("-", 1)[1])] == [-1, -1], \
        "what the other consumer applied was skipped here"
    consumer.close()


def test_an_event_parked_behind_a_version_released_meanwhile_is_read_again_and_applied(
        store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str) -> None:
    """A batch parks an event behind its stream's poisoned version while another consumer of the name releases
    that version: the batch rolls back and is read again, so the event is applied, not parked for good."""
    from servicekit.events import NewEvent

    name = f"parked-{schema}"
    poisoned, other = f"unit-{uuid.uuid4()}", f"unit-{uuid.uuid4()}"
    store.append(stream_id=poisoned, expected_version=0,
                 events=[NewEvent(type="OrganizationUnitEstablished", data={"poison": True})], metadata=metadata())
    publish_all(database_url, schema, topic, bootstrap_servers)
    released: list[bool] = []

    def released_elsewhere_meanwhile(conn: psycopg.Connection, e: ConsumedEvent) -> None:
        if e.stream_id.endswith(other.split("-", 1)[1]) and not released:
            released.append(True)
            with connect(database_url, schema=schema, autocommit=True) as elsewhere:
                elsewhere.execute("UPDATE consumer_streams SET version = 1, poisoned_at_version = NULL"
                                  " WHERE consumer = %s AND stream_id = %s",
                                  (name, f"registry/{poisoned.split('-', 1)[1]}"))
        record_effect(conn, e)

    consumer = consumer_for(database_url, schema, topic, bootstrap_servers, name=name,
                            handler=released_elsewhere_meanwhile)
    wait_until(lambda: consumer.poll_once() >= 0 and _dead_letters(database_url, schema, name) == 1, timeout_s=30,
               interval_s=0, message="the poisoned version dead-lettered")
    store.append(stream_id=poisoned, expected_version=1, events=[event(2)], metadata=metadata())
    store.append(stream_id=other, expected_version=0, events=[event(1)], metadata=metadata())
    publish_all(database_url, schema, topic, bootstrap_servers)
    wait_until(lambda: consumer.poll_once() >= 0 and len(effects(database_url, schema)) >= 2, timeout_s=30,
               interval_s=0, message="both events applied")
    assert released == [True]
    assert sorted(v for s, v in effects(database_url, schema) if s.endswith(poisoned.split("-", 1)[1])) == [2]
    with connect(database_url, schema=schema) as conn:
        assert conn.execute("SELECT count(*) FROM consumer_parked WHERE consumer = %s", (name,)).fetchone() == (0,)
    consumer.close()


def _dead_letters(database_url: str, schema: str, consumer: str) -> int:
    with connect(database_url, schema=schema) as conn:
        row = conn.execute("SELECT count(*) FROM consumer_dead_letters WHERE consumer = %s", (consumer,)).fetchone()
    return int(row[0]) if row else 0


def test_a_crash_between_effect_and_progress_causes_no_second_effect(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published(store, database_url, schema, topic, bootstrap_servers, streams=3, versions=3)
    crashing = consumer_for(database_url, schema, topic, bootstrap_servers, name="crashy")

    class Crash(BaseException):
        pass

    def crash_after_effects(records: list[Any]) -> None:
        raise Crash

    monkeypatch.setattr(crashing, "_store_offsets", crash_after_effects)
    with pytest.raises(Crash):
        wait_until(lambda: crashing.poll_once() > 0, timeout_s=20, interval_s=0)
    assert effects(database_url, schema) == [], "the effects rolled back with the lost progress"
    crashing.lease.release()
    crashing._close_kafka()
    monkeypatch.undo()
    restarted = consumer_for(database_url, schema, topic, bootstrap_servers, name="crashy")
    drain(restarted, until_applied=9)
    assert len(effects(database_url, schema)) == 9
    with connect(database_url, schema=schema, autocommit=True) as conn:
        conn.execute("DELETE FROM consumer_offsets WHERE consumer = 'crashy'")
    restarted.close()
    replaying = consumer_for(database_url, schema, topic, bootstrap_servers, name="crashy")
    for _ in range(20):
        replaying.poll_once()
    assert len(effects(database_url, schema)) == 9, "a lost offset hint replays from the start without effect"
    with connect(database_url, schema=schema) as conn:
        assert {r[0] for r in conn.execute("SELECT applied FROM totals").fetchall()} == {3}
    replaying.close()


def test_a_poison_message_goes_to_the_dead_letter_topic_and_holds_only_its_key(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    poisoned, healthy = f"unit-{uuid.uuid4()}", f"unit-{uuid.uuid4()}"
    store.append(stream_id=poisoned, expected_version=0, events=[event(1)], metadata=metadata())
    store.append(stream_id=healthy, expected_version=0, events=[event(1)], metadata=metadata())
    from servicekit.events import NewEvent

    store.append(stream_id=poisoned, expected_version=1,
                 events=[NewEvent(type="OrganizationUnitEstablished", data={"poison": True})], metadata=metadata())
    store.append(stream_id=poisoned, expected_version=2, events=[event(3)], metadata=metadata())
    store.append(stream_id=healthy, expected_version=1, events=[event(2)], metadata=metadata())
    publish_all(database_url, schema, topic, bootstrap_servers)
    # A record that is not an event at all.
    producer = kafka_setup.new_producer(bootstrap_servers, client_id="poisoner")
    bad_headers = Envelope(id=str(uuid.uuid4()), source="/party/registry", type="not-a-party-type", subject="x",
                           time="2026-01-01T00:00:00Z", stream_version=1, correlation_id="c", causation_id="c",
                           actor="a", command_id=str(uuid.uuid4()), command_event_count=1).to_headers()
    producer.send(topic, key=b"x", value=json.dumps({"n": 1}).encode(), headers=bad_headers).get(timeout=10)
    producer.close()

    consumer = consumer_for(database_url, schema, topic, bootstrap_servers)
    drain(consumer, until_applied=3)
    for _ in range(10):
        consumer.poll_once()
    applied = effects(database_url, schema)
    assert (f"registry/{healthy.split('-', 1)[1]}", 2) in applied, "other keys go on"
    assert [v for s, v in applied if s.endswith(poisoned.split("-", 1)[1])] == [1], "the poisoned key waits"
    dead = read_topic(bootstrap_servers, dead_letter_topic(consumer.settings.name), expect_at_least=2,
                      timeout_s=20)
    assert len(dead) == 2
    with connect(database_url, schema=schema) as conn:
        errors = [r[0] for r in conn.execute("SELECT error FROM consumer_dead_letters ORDER BY id").fetchall()]
        parked = conn.execute("SELECT version FROM consumer_parked").fetchall()
    assert any("cannot be applied" in e for e in errors)
    assert any("not a party event type" in e for e in errors)
    assert parked == [(3,)], "the poisoned key's later event is parked behind it"
    consumer.close()


def test_a_gap_holds_the_key_back_until_the_missing_version_arrives(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    stream = f"unit-{uuid.uuid4()}"
    write(store, [stream], 3)
    records = []
    publish_all(database_url, schema, topic, bootstrap_servers)
    records = read_topic(bootstrap_servers, topic, expect_at_least=3)
    # Replay version 3 ahead of everything on a second topic: it must wait for 1 and 2.
    other = f"{topic}.gap"
    admin = kafka_setup.new_admin(bootstrap_servers, client_id="gap")
    kafka_setup.ensure_topics(admin, {other: 1})
    admin.close()
    producer = kafka_setup.new_producer(bootstrap_servers, client_id="gap")
    ordered = sorted(records, key=lambda r: r.version)
    for r in [ordered[2], ordered[0], ordered[1], ordered[2]]:
        producer.send(other, key=r.key.encode(), value=r.value, headers=r.envelope.to_headers()).get(timeout=10)
    producer.close()
    consumer = consumer_for(database_url, schema, other, bootstrap_servers)
    drain(consumer, until_applied=3)
    assert consumer.held_at_gap == 1
    assert [v for _, v in effects(database_url, schema)] == [1, 2, 3]
    consumer.close()


def test_a_command_counts_as_applied_only_once_every_one_of_its_events_is(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    a, b = f"unit-{uuid.uuid4()}", f"unit-{uuid.uuid4()}"
    write(store, [a, b], 1)
    store.append(stream_id=b, expected_version=1, events=[event(2)], metadata=metadata())
    publish_all(database_url, schema, topic, bootstrap_servers)
    records = {(r.key, r.version): r for r in read_topic(bootstrap_servers, topic, expect_at_least=3)}
    key = {a: a.split("-", 1)[1], b: b.split("-", 1)[1]}
    command, alone = str(uuid.uuid4()), str(uuid.uuid4())
    # One command wrote a's version 1 and b's version 2; b's version 1 was another command's.
    envelopes = {(key[a], 1): (command, 2), (key[b], 2): (command, 2), (key[b], 1): (alone, 1)}
    other = f"{topic}.command"
    admin = kafka_setup.new_admin(bootstrap_servers, client_id="command")
    kafka_setup.ensure_topics(admin, {other: 1})
    admin.close()
    producer = kafka_setup.new_producer(bootstrap_servers, client_id="command")

    def send(*wanted: tuple[str, int]) -> None:
        for k in wanted:
            r = records[k]
            command_id, count = envelopes[k]
            envelope = dataclasses.replace(r.envelope, command_id=command_id, command_event_count=count)
            producer.send(other, key=r.key.encode(), value=r.value, headers=envelope.to_headers()).get(timeout=10)

    def done(command_id: str) -> bool | None:
        with connect(database_url, schema=schema) as conn:
            row = conn.execute("SELECT applied >= expected FROM consumer_commands WHERE command_id = %s",
                               (command_id,)).fetchone()
        return None if row is None else bool(row[0])

    consumer = consumer_for(database_url, schema, other, bootstrap_servers)
    send((key[a], 1), (key[b], 2))
    drain(consumer, until_applied=1)
    wait_until(lambda: consumer.poll_once() >= 0 and consumer.held_at_gap == 1, interval_s=0, message="the gap")
    assert done(command) is False, "one of its two events is applied, the other waits at a gap"
    send((key[b], 1), (key[b], 2))
    drain(consumer, until_applied=3)
    assert (done(command), done(alone)) == (True, True)
    producer.close()
    consumer.close()
