"""A consumer fed from a service's event store (the broker-loss path): each event once, next to the topic, and no
event of a late-committing transaction skipped."""

from __future__ import annotations

import threading
import uuid

import pytest

from servicekit.database import connect
from servicekit.pgstore import PostgresEventStore
from servicekit.replay import ReplayedRecord, StoreReplay
from tests.integration.test_consumer import consumer_for, drain, effects, publish_all, write
from tests.support.kit import event, metadata


def replay_of(database_url: str, schema: str, topic: str, page_size: int = 7) -> StoreReplay:
    return StoreReplay(database_url, schema=schema, service="registry", topic=topic, page_size=page_size)


def test_a_replay_next_to_the_topic_applies_each_event_once(store: PostgresEventStore, database_url: str,
                                                            schema: str, topic: str, bootstrap_servers: str) -> None:
    streams = [f"unit-{uuid.uuid4()}" for _ in range(4)]
    write(store, streams, 3)
    publish_all(database_url, schema, topic, bootstrap_servers)
    consumer = consumer_for(database_url, schema, topic, bootstrap_servers)
    drain(consumer, until_applied=6)  # part of the topic, as a projector interrupted by the broker's loss

    for version in (4, 5):  # appended while the broker was away: in the store, not on the topic
        for stream in streams[:2]:
            store.append(stream_id=stream, expected_version=version - 1, events=[event(version)],
                         metadata=metadata())
    assert consumer.resume_at_topic_ends()
    replay = replay_of(database_url, schema, topic)
    for page in replay.pages(until=replay.mark()):
        consumer.apply_replayed(page)
    expected = sorted((f"registry/{s.split('-', 1)[1]}", v) for s in streams for v in range(1, 4))
    expected += sorted((f"registry/{s.split('-', 1)[1]}", v) for s in streams[:2] for v in range(4, 6))
    assert effects(database_url, schema) == sorted(expected)
    assert replay.read == 16

    with connect(database_url, schema=schema) as conn:
        hints = conn.execute("SELECT partition, next_offset FROM consumer_offsets WHERE consumer = %s"
                             " ORDER BY partition", (consumer.settings.name,)).fetchall()
    assert [p for p, _ in hints] == [0, 1, 2, 3], "a resume hint for every partition, none for the store's records"
    assert sum(offset for _, offset in hints) == 12, "the hints are the topic's ends before the replay"

    publish_all(database_url, schema, topic, bootstrap_servers)  # the relay catches up: every event again
    drain(consumer, until_applied=consumer.applied_total, timeout_s=5)
    for _ in range(20):
        consumer.poll_once()
    assert effects(database_url, schema) == sorted(expected), "repeats from the topic are dropped by version"
    consumer.close()


def test_a_transaction_that_commits_late_is_replayed_in_commit_order(store: PostgresEventStore, database_url: str,
                                                                     schema: str, topic: str) -> None:
    early, late = f"unit-{uuid.uuid4()}", f"unit-{uuid.uuid4()}"
    appended = threading.Event()
    release = threading.Event()

    def slow_writer() -> None:
        with store.transaction() as tx:
            tx.append(stream_id=early, expected_version=0, events=[event(1)], metadata=metadata(),
                      command_event_count=1)
            appended.set()
            release.wait(10)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert appended.wait(10)
    store.append(stream_id=late, expected_version=0, events=[event(2)], metadata=metadata())
    replay = replay_of(database_url, schema, topic)
    until = replay.mark()
    seen: list[ReplayedRecord] = []
    done = threading.Event()

    def read() -> None:
        for page in replay.pages(until=until, wait_s=0.05, timeout_s=20):
            seen.extend(page)
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert not done.wait(0.5), "the replay must wait for the older transaction, not end without it"
    assert seen == [], "nothing is read past a transaction still running"
    release.set()
    writer.join()
    assert done.wait(10)
    reader.join()
    assert [r.key.decode() for r in seen] == [early.split("-", 1)[1], late.split("-", 1)[1]]
    assert all(r.partition == -1 for r in seen)


def test_a_page_of_the_store_is_read_in_index_order_without_sorting_the_table(store: PostgresEventStore,
                                                                              database_url: str, schema: str) -> None:
    """ORDER BY must name the table's (xid, position), not the output column `xid` (its bigint cast): that sorted
    every event of the store for each page, and a replay of a `national` province crawled at 3 s a page."""
    from servicekit import replay as replay_module
    from servicekit.pgstore import READ_ALL

    write(store, [f"unit-{uuid.uuid4()}"], 2)
    with connect(database_url, schema=schema) as conn:
        conn.execute("SET enable_seqscan = off")  # a tiny table: make the planner show what it would do at scale
        conn.execute("SET enable_sort = off")
        for query in (replay_module._PAGE, READ_ALL):
            plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {query}", ("0", 0, 100)).fetchall())
            assert "Sort" not in plan and "events_by_commit_order" in plan, plan


def test_shares_of_a_replay_hold_every_stream_whole_and_together_every_event(store: PostgresEventStore,
                                                                            database_url: str, schema: str,
                                                                            topic: str) -> None:
    streams = [f"unit-{uuid.uuid4()}" for _ in range(16)]
    write(store, streams, 3)
    whole = replay_of(database_url, schema, topic)
    everything = [(r.offset, r.key) for page in whole.pages(until=whole.mark()) for r in page]
    by_share: list[list[tuple[int, bytes]]] = []
    for index in range(3):
        share = replay_of(database_url, schema, topic)
        by_share.append([(r.offset, r.key) for page in share.pages(until=share.mark(), share=(index, 3)) for r in page])
    assert all(by_share), "each share holds some streams"
    assert sorted(r for records in by_share for r in records) == sorted(everything) and len(everything) == 48
    keys = [{key for _, key in records} for records in by_share]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2]), "a stream is in one share only"
    for records in by_share:
        assert [offset for offset, _ in records] == sorted(offset for offset, _ in records), "in store order"
    with pytest.raises(ValueError):
        next(whole.pages(share=(3, 3)))
