"""Command handling over the in-memory store: one transaction, idempotency keys, bounded retries."""

from __future__ import annotations

import uuid

import pytest

from contracts.consistency import ConsistencyToken
from servicekit.commands import CommandBus, CommandContext, IdempotencyKeyReused, Outcome, UnitOfWork
from servicekit.events import NewEvent
from servicekit.store import ConcurrencyError, InMemoryEventStore


def append_one(stream: str) -> object:
    def handle(uow: UnitOfWork) -> Outcome:
        version = len(uow.tx.read_stream(stream))
        uow.record(stream, [NewEvent(type="Happened", data={})], expected_version=version)
        return Outcome(stream.split("-", 1)[1], stream)

    return handle


def test_a_command_appends_and_answers_version_and_token() -> None:
    store = InMemoryEventStore()
    context = CommandContext(actor="clerk")
    result = CommandBus(store).execute(context, append_one("unit-a"))  # type: ignore[arg-type]
    assert (result.aggregate_id, result.version, result.event_count) == ("a", 1, 1)
    assert ConsistencyToken.decode(result.consistency_token) == ConsistencyToken(context.command_id, 1)
    assert store.read_stream("unit-a")[0].metadata["actor"] == "clerk"


def test_a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing() -> None:
    store = InMemoryEventStore()
    bus = CommandBus(store)
    first = bus.execute(CommandContext(actor="c", idempotency_key="k1"), append_one("unit-a"),  # type: ignore[arg-type]
                        request={"x": 1})
    again = bus.execute(CommandContext(actor="c", idempotency_key="k1"), append_one("unit-a"),  # type: ignore[arg-type]
                        request={"x": 1})
    assert again.replayed and again.consistency_token == first.consistency_token and again.version == 1
    assert len(store.read_stream("unit-a")) == 1
    with pytest.raises(IdempotencyKeyReused):
        bus.execute(CommandContext(actor="c", idempotency_key="k1"), append_one("unit-a"),  # type: ignore[arg-type]
                    request={"x": 2})


def test_a_version_conflict_is_retried_a_bounded_number_of_times() -> None:
    store = InMemoryEventStore()
    attempts = [0]

    def always_conflicting(uow: UnitOfWork) -> Outcome:
        attempts[0] += 1
        raise ConcurrencyError("unit-a", 0)

    with pytest.raises(ConcurrencyError):
        CommandBus(store, max_attempts=3).execute(CommandContext(actor="c"), always_conflicting)
    assert attempts[0] == 3


def test_a_conflict_that_clears_succeeds_on_retry() -> None:
    store = InMemoryEventStore()
    calls = [0]

    def racing(uow: UnitOfWork) -> Outcome:
        calls[0] += 1
        if calls[0] == 1:
            store.append(stream_id="unit-b", expected_version=0, events=[NewEvent(type="X", data={})],
                         metadata=CommandContext(actor="other").metadata())
        version = len(uow.tx.read_stream("unit-b")) if calls[0] > 1 else 0
        uow.record("unit-b", [NewEvent(type="Y", data={})], expected_version=version)
        return Outcome("b", "unit-b")

    result = CommandBus(store).execute(CommandContext(actor="c"), racing)
    assert calls[0] == 2 and result.version == 2
    assert [e.type for e in store.read_stream("unit-b")] == ["X", "Y"]


def test_a_failing_handler_writes_nothing() -> None:
    store = InMemoryEventStore()

    def half_done(uow: UnitOfWork) -> Outcome:
        uow.record("unit-c", [NewEvent(type="X", data={})], expected_version=0)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        CommandBus(store).execute(CommandContext(actor="c"), half_done)
    assert store.read_stream("unit-c") == []


def test_consistency_tokens_round_trip_and_reject_garbage() -> None:
    token = ConsistencyToken(uuid.uuid4(), 10_000)
    assert ConsistencyToken.decode(token.encode()) == token
    for garbage in ("", "ct1.!!!", "abc", "ct1." + "x" * 10):
        with pytest.raises(ValueError):
            ConsistencyToken.decode(garbage)


def test_what_runs_after_a_command_shares_its_transaction() -> None:
    store = InMemoryEventStore()
    seen: list[int] = []
    result = CommandBus(store).execute(CommandContext(actor="c"), append_one("unit-d"),  # type: ignore[arg-type]
                                       then=lambda tx, done: seen.append(done.event_count))
    assert seen == [1] and result.version == 1

    def refuse(tx: object, done: object) -> None:
        raise ValueError("the step could not be marked")

    with pytest.raises(ValueError):
        CommandBus(store).execute(CommandContext(actor="c"), append_one("unit-e"), then=refuse)  # type: ignore[arg-type]
    assert store.read_stream("unit-e") == [], "the command goes with what failed after it"
