"""One event-store suite, run against the in-memory and the PostgreSQL store so the fake cannot drift; with it, the
command bus's cache of folded states over each."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from servicekit.commands import (
    READ_ALONG_AT_MOST,
    Aggregate,
    CommandBus,
    CommandContext,
    Handler,
    Outcome,
    StateCache,
    UnitOfWork,
)
from servicekit.events import Checkpoint
from servicekit.store import ConcurrencyError, EventStore, InMemoryEventStore, UniquenessViolation
from tests.support.kit import event, metadata, pg_store


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest, schema: str, topic: str) -> Iterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    database_url = request.getfixturevalue("database_url")
    pg, pool = pg_store(database_url, schema, topic, max_size=12)
    yield pg
    pool.close()


def new_stream() -> str:
    return f"unit-{uuid.uuid4()}"


def test_a_new_stream_starts_at_version_one(store: EventStore) -> None:
    stream = new_stream()
    stored = store.append(stream_id=stream, expected_version=0, events=[event(1), event(2)], metadata=metadata())
    assert [e.version for e in stored] == [1, 2]
    assert [e.data["n"] for e in store.read_stream(stream)] == [1, 2]


def test_append_with_a_stale_expected_version_is_refused(store: EventStore) -> None:
    stream = new_stream()
    store.append(stream_id=stream, expected_version=0, events=[event(1)], metadata=metadata())
    with pytest.raises(ConcurrencyError):
        store.append(stream_id=stream, expected_version=0, events=[event(2)], metadata=metadata())
    assert len(store.read_stream(stream)) == 1


def test_append_beyond_the_stream_end_is_refused(store: EventStore) -> None:
    stream = new_stream()
    store.append(stream_id=stream, expected_version=0, events=[event(1)], metadata=metadata())
    with pytest.raises(ConcurrencyError):
        store.append(stream_id=stream, expected_version=5, events=[event(2)], metadata=metadata())
    assert [e.version for e in store.read_stream(stream)] == [1]


def test_read_stream_after_a_version(store: EventStore) -> None:
    stream = new_stream()
    store.append(stream_id=stream, expected_version=0, events=[event(i) for i in range(5)], metadata=metadata())
    assert [e.version for e in store.read_stream(stream, after_version=3)] == [4, 5]


def test_read_streams_each_after_its_own_version(store: EventStore) -> None:
    first, second, third = new_stream(), new_stream(), new_stream()
    for stream in (first, second):
        store.append(stream_id=stream, expected_version=0, events=[event(i) for i in range(4)], metadata=metadata())
    with store.transaction() as tx:
        read = tx.read_streams([first, second, third], after={first: 2})
    assert {s: [e.version for e in events] for s, events in read.items()} == {
        first: [3, 4], second: [1, 2, 3, 4], third: []}


def numbers(uow: UnitOfWork, stream: str, *, append: int | None = None) -> tuple[int, ...]:
    """Folds the stream's numbers, then appends one more (unless None)."""
    aggregate_id = stream.split("-", 1)[1]
    loaded = uow.load(NUMBERS, aggregate_id)
    if append is not None:
        uow.record(stream, [event(append)], expected_version=loaded.version)
    return loaded.state


NUMBERS: Aggregate[tuple[int, ...]] = Aggregate(category="unit", initial=(),
                                                 evolve=lambda state, e: (*state, e.data["n"]))


def test_a_cached_state_that_is_behind_its_stream_is_read_again_before_the_command_stands(store: EventStore
                                                                                          ) -> None:
    failing = [False]

    def inline(tx: object, stored: object) -> None:
        if failing[0]:
            raise ValueError("refused after the append")

    bus = CommandBus(store, states=StateCache(max_streams=10), inline=inline)
    stream = new_stream()
    seen: list[tuple[int, ...]] = []

    def command(append: int | None) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            seen.append(numbers(uow, stream, append=append))
            return Outcome(stream, stream)
        return handle

    bus.execute(CommandContext(actor="c"), command(1))
    bus.execute(CommandContext(actor="c"), command(2))
    # Another process appends behind this bus's back: the cached state is at version 2, the stream at 3. The
    # command decides on the cached state, is refused when it ends (it appended nothing, so the stream is read
    # after the cached version), and runs again on the state read from the store.
    store.append(stream_id=stream, expected_version=2, events=[event(3)], metadata=metadata())
    bus.execute(CommandContext(actor="c"), command(None))
    assert seen == [(), (1,), (1, 2), (1, 2, 3)]

    # Appended and folded, then rolled back: the fold with 4 must not be kept.
    failing[0] = True
    with pytest.raises(ValueError):
        bus.execute(CommandContext(actor="c"), command(4))
    failing[0] = False
    bus.execute(CommandContext(actor="c"), command(None))
    assert seen[-1] == (1, 2, 3), "a state folded in a transaction that rolled back is not kept"
    assert bus.states is not None and len(bus.states) == 1


def test_a_stale_cached_state_cannot_append_over_a_newer_version(store: EventStore) -> None:
    bus = CommandBus(store, states=StateCache(max_streams=10), max_attempts=1)
    stream = new_stream()

    def append(n: int) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            loaded = uow.load(NUMBERS, stream.split("-", 1)[1])
            # Decides on the version it loaded; a writer slips in between the read and the append.
            if n == 2:
                store.append(stream_id=stream, expected_version=1, events=[event(99)], metadata=metadata())
            uow.record(stream, [event(n)], expected_version=loaded.version)
            return Outcome(stream, stream)
        return handle

    bus.execute(CommandContext(actor="c"), append(1))
    with pytest.raises(ConcurrencyError):
        bus.execute(CommandContext(actor="c"), append(2))
    assert [e.data["n"] for e in store.read_stream(stream)] == [1, 99]


class _CountingReads:
    """The store, with every `read_streams` of a command's transaction written down."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.reads: list[list[str]] = []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[object]:
        with self.store.transaction() as tx:
            yield _CountingTransaction(tx, self.reads)


class _CountingTransaction:
    def __init__(self, tx: Any, reads: list[list[str]]) -> None:
        self._tx = tx
        self._reads = reads

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def read_streams(self, stream_ids: Any, *, after: Any = None) -> Any:
        self._reads.append(list(stream_ids))
        return self._tx.read_streams(stream_ids, after=after)


def test_a_command_appending_to_a_cached_state_reads_nothing_and_a_stale_one_collides_and_is_retried(
        store: EventStore) -> None:
    counting = _CountingReads(store)
    bus = CommandBus(counting, states=StateCache(max_streams=10))
    stream = new_stream()
    seen: list[tuple[int, ...]] = []

    def append(n: int) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            seen.append(numbers(uow, stream, append=n))
            return Outcome(stream, stream)
        return handle

    bus.execute(CommandContext(actor="c"), append(1))
    reads_before = len(counting.reads)
    bus.execute(CommandContext(actor="c"), append(2))
    assert len(counting.reads) == reads_before, "the cached state was taken as it is; the append checks it"
    store.append(stream_id=stream, expected_version=2, events=[event(99)], metadata=metadata())
    result = bus.execute(CommandContext(actor="c"), append(3))
    assert seen == [(), (1,), (1, 2), (1, 2, 99)], "the stale attempt collided; the retry read the stream"
    assert result.version == 4
    assert [e.data["n"] for e in store.read_stream(stream)] == [1, 2, 99, 3]


def test_a_load_that_must_read_takes_its_cached_streams_along_in_the_same_round_trip(store: EventStore) -> None:
    counting = _CountingReads(store)
    bus = CommandBus(counting, states=StateCache(max_streams=10))
    cached, fresh = new_stream(), new_stream()
    bus.execute(CommandContext(actor="c"), lambda uow: (numbers(uow, cached, append=1), Outcome(cached, cached))[1])
    store.append(stream_id=cached, expected_version=1, events=[event(2)], metadata=metadata())
    seen: list[list[tuple[int, ...]]] = []

    def both(uow: UnitOfWork) -> Outcome:
        loaded = uow.load_many(NUMBERS, [cached.split("-", 1)[1], fresh.split("-", 1)[1]])
        seen.append([entry.state for entry in loaded])
        uow.record(fresh, [event(5)], expected_version=loaded[1].version)
        return Outcome(fresh, fresh)

    reads_before = len(counting.reads)
    bus.execute(CommandContext(actor="c"), both)
    assert seen == [[(1, 2), ()]], "the cached stream was read on from its version with the new one, at once"
    assert counting.reads[reads_before:] == [[cached, fresh]], "one read, and no check of the cached one after"


def test_a_load_of_many_cached_streams_reads_only_the_others_and_checks_the_cached_ones_it_did_not_write(
        store: EventStore) -> None:
    counting = _CountingReads(store)
    bus = CommandBus(counting, states=StateCache(max_streams=100))
    cached = [new_stream() for _ in range(READ_ALONG_AT_MOST + 1)]
    fresh = new_stream()
    for stream in cached:
        bus.execute(CommandContext(actor="c"), lambda uow, s=stream: (numbers(uow, s, append=1), Outcome(s, s))[1])

    def many(uow: UnitOfWork) -> Outcome:
        loaded = uow.load_many(NUMBERS, [s.split("-", 1)[1] for s in [*cached, fresh]])
        uow.record(fresh, [event(5)], expected_version=loaded[-1].version)
        uow.record(cached[0], [event(6)], expected_version=loaded[0].version)
        return Outcome(fresh, fresh)

    reads_before = len(counting.reads)
    bus.execute(CommandContext(actor="c"), many)
    assert counting.reads[reads_before:] == [[fresh], cached[1:]], \
        "the uncached stream read at the load; the cached ones it did not append to checked once, at the end"


def test_a_stale_cached_state_taken_after_the_stream_was_read_afresh_is_caught_though_the_append_goes_through(
        store: EventStore) -> None:
    bus = CommandBus(store, states=StateCache(max_streams=10))
    stream, fresh = new_stream(), new_stream()
    bus.execute(CommandContext(actor="c"), lambda uow: (numbers(uow, stream, append=1), Outcome(stream, stream))[1])
    store.append(stream_id=stream, expected_version=1, events=[event(99)], metadata=metadata())
    reloaded: list[tuple[int, ...]] = []

    def record_then_reload(uow: UnitOfWork) -> Outcome:
        # Read afresh (taken along with a stream not cached), appended after the version read, then loaded
        # again: the second load is a cache hit, one version behind.
        loaded = uow.load_many(NUMBERS, [stream.split("-", 1)[1], fresh.split("-", 1)[1]])
        uow.record(stream, [event(3)], expected_version=loaded[0].version)
        reloaded.append(uow.load(NUMBERS, stream.split("-", 1)[1]).state)
        return Outcome(stream, stream)

    bus.execute(CommandContext(actor="c"), record_then_reload)
    assert reloaded[-1] == (1, 99), "the command stood only once what it decided on was current"
    assert [e.data["n"] for e in store.read_stream(stream)] == [1, 99, 3]


def test_a_refusal_decided_on_a_stale_cached_state_is_decided_again_on_the_current_one(store: EventStore) -> None:
    bus = CommandBus(store, states=StateCache(max_streams=10))
    stream = new_stream()
    attempts = [0]

    def needing(n: int) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            attempts[0] += 1
            if n not in numbers(uow, stream):
                raise ValueError(f"refused: no {n} yet")
            return Outcome(stream, stream)
        return handle

    bus.execute(CommandContext(actor="c"), lambda uow: (numbers(uow, stream, append=1), Outcome(stream, stream))[1])
    with pytest.raises(ValueError, match="no 7"):
        bus.execute(CommandContext(actor="c"), needing(7))
    assert attempts == [1], "a refusal on a current cached state stands at once"
    store.append(stream_id=stream, expected_version=1, events=[event(7)], metadata=metadata())
    attempts[0] = 0
    bus.execute(CommandContext(actor="c"), needing(7))
    assert attempts == [2], "refused on the cached state, then decided on the one read from the store"


def test_the_state_cache_keeps_the_most_recently_used_states() -> None:
    cache = StateCache(max_streams=2)
    cache.keep([(NUMBERS, "unit-a", 1, (1,)), (NUMBERS, "unit-b", 1, (2,))])
    assert cache.get(NUMBERS, ["unit-a"]) == {"unit-a": (1, (1,))}
    cache.keep([(NUMBERS, "unit-c", 1, (3,))])
    assert set(cache.get(NUMBERS, ["unit-a", "unit-b", "unit-c"])) == {"unit-a", "unit-c"}
    cache.keep([(NUMBERS, "unit-a", 0, ())])
    assert cache.get(NUMBERS, ["unit-a"]) == {"unit-a": (1, (1,))}, "an older version never replaces a newer one"


def test_metadata_is_stored_with_every_event(store: EventStore) -> None:
    stream = new_stream()
    meta = metadata(actor="clerk-7")
    store.append(stream_id=stream, expected_version=0, events=[event(1), event(2)], metadata=meta)
    for stored in store.read_stream(stream):
        assert stored.metadata["actor"] == "clerk-7"
        assert stored.metadata["command_id"] == str(meta.command_id)
        assert stored.metadata["command_event_count"] == 2


def test_the_global_log_holds_every_event_once_in_order(store: EventStore) -> None:
    streams = [new_stream() for _ in range(3)]
    for round_ in range(3):
        for stream in streams:
            store.append(stream_id=stream, expected_version=round_, events=[event(round_)], metadata=metadata())
    seen: list[tuple[str, int]] = []
    checkpoint = Checkpoint()
    while True:
        page = store.read_all(after=checkpoint, limit=4)
        if not page:
            break
        seen += [(e.stream_id, e.version) for _, e in page]
        checkpoint = page[-1][0]
    ours = [s for s in seen if s[0] in streams]
    assert len(ours) == 9 and len(set(ours)) == 9
    for stream in streams:
        assert [v for s, v in ours if s == stream] == [1, 2, 3]


def test_a_transaction_appends_to_several_streams_atomically(store: EventStore) -> None:
    first, second = new_stream(), new_stream()
    store.append(stream_id=second, expected_version=0, events=[event(0)], metadata=metadata())
    with pytest.raises(ConcurrencyError), store.transaction() as tx:
        tx.append(stream_id=first, expected_version=0, events=[event(1)], metadata=metadata(),
                  command_event_count=2)
        tx.append(stream_id=second, expected_version=0, events=[event(2)], metadata=metadata(),
                  command_event_count=2)
    assert store.read_stream(first) == []
    assert len(store.read_stream(second)) == 1


def test_a_unique_value_has_one_owner(store: EventStore) -> None:
    value = uuid.uuid4().hex
    with store.transaction() as tx:
        tx.claim_unique(scope="citizen-id", value=value, owner="member-a")
    with pytest.raises(UniquenessViolation), store.transaction() as tx:
        tx.claim_unique(scope="citizen-id", value=value, owner="member-b")
    with store.transaction() as tx:
        assert tx.find_unique(scope="citizen-id", value=value) == "member-a"
        tx.release_unique(scope="citizen-id", value=value, owner="member-a")
    with store.transaction() as tx:
        tx.claim_unique(scope="citizen-id", value=value, owner="member-b")
    with store.transaction() as tx:
        assert tx.find_unique(scope="citizen-id", value=value) == "member-b"


def test_eight_concurrent_writers_racing_on_one_stream_get_one_winner_per_version(store: EventStore) -> None:
    stream = new_stream()
    rounds = 10
    wins: list[tuple[int, int]] = []
    losses = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def writer(writer_id: int) -> None:
        for expected in range(rounds):
            barrier.wait()
            try:
                store.append(stream_id=stream, expected_version=expected, events=[event(writer_id)],
                             metadata=metadata())
                with lock:
                    wins.append((expected + 1, writer_id))
            except ConcurrencyError:
                with lock:
                    losses[0] += 1
            barrier.wait()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = [v for v, _ in wins]
    assert sorted(versions) == list(range(1, rounds + 1)), "exactly one append wins each version"
    assert losses[0] == rounds * 7
    stored = store.read_stream(stream)
    assert [e.version for e in stored] == list(range(1, rounds + 1))
    winners = dict(wins)
    assert [e.data["n"] for e in stored] == [winners[v] for v in range(1, rounds + 1)]
