"""The outbox relay never loses a committed event, never publishes a rolled-back one, keeps per-key order."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from servicekit.database import connect, notify_channel
from servicekit.pgstore import OutboxDoorbell, PostgresEventStore
from servicekit.relay import OutboxRelay, RelaySettings
from tests.support.kit import apply_like_a_consumer, event, metadata, pg_store, read_topic, wait_until

ROOT = Path(__file__).resolve().parents[2]


def relay_settings(database_url: str, schema: str, topic: str, bootstrap: str, **overrides: object) -> RelaySettings:
    values: dict[str, object] = {"database_url": database_url, "schema": schema, "service": "registry",
                                 "topic": topic, "partitions": 4, "bootstrap_servers": bootstrap,
                                 "lease_ttl_s": 2.0, "idle_poll_s": 0.05}
    values.update(overrides)
    return RelaySettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def store(database_url: str, schema: str, topic: str) -> Iterator[PostgresEventStore]:
    pg, pool = pg_store(database_url, schema, topic, max_size=40)
    yield pg
    pool.close()


def outbox_size(store: PostgresEventStore) -> int:
    with store.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    return int(row[0]) if row else 0


class RelayThread:
    def __init__(self, settings: RelaySettings) -> None:
        self.stop = threading.Event()
        self.relay = OutboxRelay(settings)
        self.thread = threading.Thread(target=self.relay.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> OutboxRelay:
        self.thread.start()
        return self.relay

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=20)


def test_two_hundred_concurrent_transactions_reach_kafka_exactly_once_in_per_key_order(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(38)]
    versions_per_key = 5
    committed: set[tuple[str, int]] = set()
    rolled_back_ids: set[str] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []
    late_started = threading.Event()
    others_done = threading.Event()
    late_key = str(uuid.uuid4())

    class Rollback(Exception):
        pass

    def write_key(key: str, rng: random.Random) -> None:
        for version in range(1, versions_per_key + 1):
            with store.transaction() as tx:
                tx.append(stream_id=f"unit-{key}", expected_version=version - 1, events=[event(version)],
                          metadata=metadata(), command_event_count=1)
                time.sleep(rng.uniform(0, 0.01))
            with lock:
                committed.add((key, version))
            if rng.random() < 0.3:
                doomed = event(-1)
                try:
                    with store.transaction() as tx:
                        tx.append(stream_id=f"unit-{uuid.uuid4()}", expected_version=0, events=[doomed],
                                  metadata=metadata(), command_event_count=1)
                        raise Rollback
                except Rollback:
                    with lock:
                        rolled_back_ids.add(str(doomed.event_id))

    def late_committer() -> None:
        # Takes its outbox sequence value first and commits after everybody else.
        with store.transaction() as tx:
            tx.append(stream_id=f"unit-{late_key}", expected_version=0, events=[event(1), event(2)],
                      metadata=metadata(), command_event_count=2)
            late_started.set()
            others_done.wait(timeout=60)
            time.sleep(0.3)
        with lock:
            committed.update({(late_key, 1), (late_key, 2)})

    def guarded(fn: object, *args: object) -> None:
        try:
            fn(*args)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    with RelayThread(relay_settings(database_url, schema, topic, bootstrap_servers, batch_size=50)) as relay:
        late = threading.Thread(target=guarded, args=(late_committer,))
        late.start()
        assert late_started.wait(10)
        workers = [threading.Thread(target=guarded, args=(write_key, keys[i], random.Random(i)))
                   for i in range(len(keys))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        others_done.set()
        late.join()
        assert not errors, errors
        assert len(committed) == 38 * 5 + 2 >= 192
        wait_until(lambda: outbox_size(store) == 0, timeout_s=60, message="outbox drained")
        assert relay.published_total == len(committed)

    records = read_topic(bootstrap_servers, topic, expect_at_least=len(committed))
    published = Counter((r.key, r.version) for r in records)
    assert set(published) == committed, "every committed event is published, nothing else"
    assert all(count == 1 for count in published.values()), "without crashes, each event exactly once"
    assert not rolled_back_ids & {r.event_id for r in records}, "no rolled-back event is published"
    by_key: dict[str, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(r.version)
    assert all(versions == sorted(versions) for versions in by_key.values()), "per-key order"
    assert late_key in by_key


def test_woken_only_by_notifications_the_relay_still_publishes_every_commit_promptly(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    """After a short batch the relay waits for the next NOTIFY instead of reading the outbox again: commits
    made while it publishes must still wake it. A 60 s poll leaves only the notifications to do so."""
    publish_promptly_when_woken_only_by_notifications(store, database_url, schema, topic, bootstrap_servers)


def test_woken_by_a_doorbell_after_each_commit_the_relay_still_publishes_every_commit_promptly(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    """The same, with the NOTIFY sent after each commit from the doorbell's connection (coalesced), not inside
    the command's transaction."""
    doorbell = OutboxDoorbell(database_url, schema=schema)
    rung = PostgresEventStore(store.pool, schema=schema, topic=topic, doorbell=doorbell)
    try:
        publish_promptly_when_woken_only_by_notifications(rung, database_url, schema, topic, bootstrap_servers)
    finally:
        doorbell.close()
    assert 1 <= doorbell.sent <= 40


def test_a_doorbell_rings_from_its_own_connection_after_a_commit_and_never_for_a_rollback(
    store: PostgresEventStore, database_url: str, schema: str, topic: str
) -> None:
    doorbell = OutboxDoorbell(database_url, schema=schema)
    rung = PostgresEventStore(store.pool, schema=schema, topic=topic, doorbell=doorbell)
    with connect(database_url, schema=schema, autocommit=True) as listener:
        listener.execute(f"LISTEN {notify_channel(schema)}")
        with pytest.raises(RuntimeError), rung.transaction() as tx:
            tx.append(stream_id=f"unit-{uuid.uuid4()}", expected_version=0, events=[event(1)], metadata=metadata(),
                      command_event_count=1)
            raise RuntimeError("the command fails after its append")
        assert list(listener.notifies(timeout=0.5)) == [], "a rolled-back append wakes nobody"
        with rung.transaction() as tx:
            tx.append(stream_id=f"unit-{uuid.uuid4()}", expected_version=0, events=[event(1)], metadata=metadata(),
                      command_event_count=1)
            committing_backend = tx.conn.info.backend_pid
        woken = list(listener.notifies(timeout=5, stop_after=1))
    doorbell.close()
    assert [n.channel for n in woken] == [notify_channel(schema)]
    assert woken[0].pid != committing_backend, "sent after the commit, from the doorbell's connection"


def publish_promptly_when_woken_only_by_notifications(store: PostgresEventStore, database_url: str, schema: str,
                                                      topic: str, bootstrap_servers: str) -> None:
    settings = relay_settings(database_url, schema, topic, bootstrap_servers, idle_poll_s=60.0)
    keys = [str(uuid.uuid4()) for _ in range(4)]

    def write_key(key: str, rng: random.Random) -> None:
        for version in range(1, 11):
            with store.transaction() as tx:
                tx.append(stream_id=f"unit-{key}", expected_version=version - 1, events=[event(version)],
                          metadata=metadata(), command_event_count=1)
            time.sleep(rng.uniform(0, 0.02))

    running = RelayThread(settings)
    with running as relay:
        wait_until(lambda: relay.lease.held, timeout_s=10, message="the lease")
        writers = [threading.Thread(target=write_key, args=(key, random.Random(i))) for i, key in enumerate(keys)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        wait_until(lambda: relay.published_total == 40, timeout_s=10, message="every commit published")
        running.stop.set()
        with store.pool.connection() as conn:  # wakes it to see the stop
            conn.execute(f"NOTIFY {notify_channel(schema)}")
    assert outbox_size(store) == 0
    assert Counter(r.key for r in read_topic(bootstrap_servers, topic, expect_at_least=40)) == dict.fromkeys(keys, 10)


def test_relay_killed_mid_batch_and_restarted_loses_nothing(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(50)]
    versions = 80
    for version in range(1, versions + 1):
        with store.transaction() as tx:
            for key in keys:
                tx.append(stream_id=f"unit-{key}", expected_version=version - 1, events=[event(version)],
                          metadata=metadata(), command_event_count=len(keys))
    total = len(keys) * versions
    argv = [sys.executable, "-m", "tests.support.relay_process", database_url, schema, topic, bootstrap_servers,
            "100"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(argv, cwd=ROOT, env=env)
    try:
        wait_until(lambda: outbox_size(store) < total - 100, timeout_s=120, interval_s=0.002,
                   message="the first relay to publish a batch")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    left_after_kill = outbox_size(store)
    assert 0 < left_after_kill < total, "killed while work remained"
    second = subprocess.Popen(argv, cwd=ROOT, env=env)
    try:
        wait_until(lambda: outbox_size(store) == 0, timeout_s=90, message="the restarted relay to drain the outbox")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    records = read_topic(bootstrap_servers, topic, expect_at_least=total)
    assert {(r.key, r.version) for r in records} == {(k, v) for k in keys for v in range(1, versions + 1)}
    assert apply_like_a_consumer(records) == dict.fromkeys(keys, versions)


def test_a_stalled_relay_cannot_mark_rows_after_a_takeover(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    stream = f"unit-{uuid.uuid4()}"
    store.append(stream_id=stream, expected_version=0, events=[event(1)], metadata=metadata())
    settings = relay_settings(database_url, schema, topic, bootstrap_servers, lease_ttl_s=0.5)
    stalled = OutboxRelay(settings)
    assert stalled.lease.acquire()
    time.sleep(0.7)
    successor = OutboxRelay(settings)
    assert successor.lease.acquire(), "an expired lease can be taken over"
    assert successor.lease.epoch == (stalled.lease.epoch or 0) + 1
    assert stalled.publish_batch() == 0, "the fenced relay's marks do not count"
    assert outbox_size(store) == 1
    assert successor.publish_batch() == 1
    assert outbox_size(store) == 0
    stalled.close()
    successor.close()


def test_a_second_relay_waits_while_the_lease_is_held(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str
) -> None:
    settings = relay_settings(database_url, schema, topic, bootstrap_servers, lease_ttl_s=5)
    holder, contender = OutboxRelay(settings), OutboxRelay(settings)
    assert holder.lease.acquire()
    assert not contender.lease.acquire()
    holder.close()
    assert contender.lease.acquire(), "a released lease is free at once"
    contender.close()


class DroppedSend:
    """A send whose acknowledgement never came: kafka-python drops in-flight batches when it bumps its epoch."""

    is_done = True

    def succeeded(self) -> bool:
        return False


def test_a_failed_send_is_resent_with_every_later_row_of_its_key_and_nothing_is_lost(
    store: PostgresEventStore, database_url: str, schema: str, topic: str, bootstrap_servers: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(5)]
    for version in range(1, 5):
        for key in keys:
            store.append(stream_id=f"unit-{key}", expected_version=version - 1, events=[event(version)],
                         metadata=metadata())
    relay = OutboxRelay(relay_settings(database_url, schema, topic, bootstrap_servers))
    assert relay.lease.acquire()
    dropped = {(f"unit-{keys[0]}", 2), (f"unit-{keys[3]}", 3)}
    refused = {(f"unit-{keys[1]}", 1)}
    send = relay._send
    producers: list[object] = []

    def failing_send(producer: Any, row: tuple[Any, ...], traceparent: str | None, tracestate: str | None) -> Any:
        if producer not in producers:
            producers.append(producer)
        if (row[1], row[2]) in refused:
            refused.discard((row[1], row[2]))
            raise KafkaTimeoutError("buffer full")
        if (row[1], row[2]) in dropped:
            dropped.discard((row[1], row[2]))
            return DroppedSend()
        return send(producer, row, traceparent, tracestate)

    monkeypatch.setattr(relay, "_send", failing_send)
    try:
        for _ in range(20):
            if outbox_size(store) == 0:
                break
            relay.publish_batch()
    finally:
        relay.close()
    assert outbox_size(store) == 0 and not dropped and not refused
    assert len(producers) >= 2, "the producer was replaced after the failure"
    records = read_topic(bootstrap_servers, topic, expect_at_least=20)
    # Versions 3 and 4 of the first key went out before its version 2 was known lost; they were sent again after it.
    assert apply_like_a_consumer(records) == dict.fromkeys(keys, 4)
    assert {(r.key, r.version) for r in records} == {(key, v) for key in keys for v in range(1, 5)}
