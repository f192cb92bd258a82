"""Command handling: load -> fold -> decide -> append + outbox, in one transaction, retried on conflict."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from contracts.consistency import ConsistencyToken
from servicekit.events import EventMetadata, NewEvent, StoredEvent
from servicekit.store import ConcurrencyError, IdempotentReply

S = TypeVar("S")


class CommandTransaction(Protocol):
    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]: ...

    def read_streams(self, stream_ids: Sequence[str]) -> dict[str, list[StoredEvent]]: ...

    def append_many(
        self,
        batches: Sequence[tuple[str, int, Sequence[NewEvent]]],
        *,
        metadata: EventMetadata,
        command_event_count: int,
        verified_streams: frozenset[str] = frozenset(),
    ) -> list[StoredEvent]: ...

    def claim_unique(self, *, scope: str, value: str, owner: str) -> None: ...

    def release_unique(self, *, scope: str, value: str, owner: str) -> None: ...

    def claim_unique_many(self, *, scope: str, claims: Sequence[tuple[str, str]]) -> set[str]: ...

    def holders(self, *, scope: str, values: Sequence[str]) -> dict[str, str]: ...

    def find_unique(self, *, scope: str, value: str) -> str | None: ...

    def idempotent_reply(self, key: str) -> IdempotentReply | None: ...

    def remember_reply(self, key: str, reply: IdempotentReply) -> None: ...

    def serialize(self, name: str, *, exclusive: bool = True) -> None: ...


class TransactionalStore(Protocol):
    def transaction(self) -> Any: ...


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used for a different request."""


@dataclass(frozen=True)
class CommandContext:
    """Who sent a command and how it relates to others; becomes every event's metadata."""

    actor: str
    command_id: uuid.UUID = field(default_factory=uuid.uuid4)
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    legal_basis: str | None = None

    def metadata(self) -> EventMetadata:
        return EventMetadata(
            actor=self.actor,
            command_id=self.command_id,
            correlation_id=self.correlation_id or self.command_id,
            causation_id=self.causation_id or self.command_id,
            traceparent=self.traceparent,
            tracestate=self.tracestate,
            legal_basis=self.legal_basis,
        )


@dataclass(frozen=True)
class Aggregate(Generic[S]):
    """How one kind of aggregate folds: its stream category, initial state and evolve function."""

    category: str
    initial: S
    evolve: Callable[[S, StoredEvent], S]


@dataclass(frozen=True)
class Loaded(Generic[S]):
    stream_id: str
    state: S
    version: int


@dataclass(frozen=True)
class CommandResult:
    aggregate_id: str
    version: int
    consistency_token: str
    event_count: int
    details: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.aggregate_id,
            "version": self.version,
            "consistency_token": self.consistency_token,
            "event_count": self.event_count,
            **self.details,
        }


class UnitOfWork:
    """What a handler sees: loaded aggregates and the events it decided, written together at the end."""

    def __init__(self, tx: CommandTransaction) -> None:
        self.tx = tx
        self._pending: dict[str, tuple[int, list[NewEvent]]] = {}
        self._order: list[str] = []
        self._versions: dict[str, int] = {}

    def load(self, aggregate: Aggregate[S], aggregate_id: str) -> Loaded[S]:
        return self.load_many(aggregate, [aggregate_id])[0]

    def load_many(self, aggregate: Aggregate[S], aggregate_ids: Sequence[str]) -> list[Loaded[S]]:
        """Fold several aggregates of one kind, read in one round trip."""
        streams = [f"{aggregate.category}-{aggregate_id}" for aggregate_id in aggregate_ids]
        histories = self.tx.read_streams(streams)
        loaded: list[Loaded[S]] = []
        for stream in streams:
            state = aggregate.initial
            version = 0
            for event in histories.get(stream, []):
                state = aggregate.evolve(state, event)
                version = event.version
            self._versions[stream] = version
            loaded.append(Loaded(stream, state, version))
        return loaded

    def record(self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int) -> int:
        """Queue events for a stream; returns the version the stream will have."""
        if stream_id in self._versions and stream_id not in self._pending \
                and self._versions[stream_id] != expected_version:
            raise ConcurrencyError(stream_id, expected_version)
        if stream_id in self._pending:
            base, queued = self._pending[stream_id]
            queued.extend(events)
            return base + len(queued)
        self._pending[stream_id] = (expected_version, list(events))
        self._order.append(stream_id)
        return expected_version + len(events)

    def version_before(self, stream_id: str) -> int:
        """The version the stream had when this unit of work loaded it."""
        return self._versions.get(stream_id, 0)

    def version_after(self, stream_id: str) -> int:
        if stream_id in self._pending:
            base, queued = self._pending[stream_id]
            return base + len(queued)
        return self._versions.get(stream_id, 0)

    @property
    def event_count(self) -> int:
        return sum(len(q) for _, q in self._pending.values())

    def flush(self, metadata: EventMetadata) -> list[StoredEvent]:
        batches = [(s, self._pending[s][0], self._pending[s][1]) for s in self._order if self._pending[s][1]]
        return self.tx.append_many(batches, metadata=metadata, command_event_count=self.event_count,
                                   verified_streams=frozenset(self._versions))


@dataclass(frozen=True)
class Outcome:
    """What a handler answers: the aggregate the client addressed, and anything else worth returning."""

    aggregate_id: str
    stream_id: str
    details: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[UnitOfWork], Outcome]


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class CommandBus:
    """Runs handlers against a store: one transaction per attempt, bounded retries on version conflicts."""

    def __init__(self, store: TransactionalStore, *, max_attempts: int = 5,
                 inline: Callable[[Any, list[StoredEvent]], None] | None = None) -> None:
        self._store = store
        self._max_attempts = max_attempts
        self._inline = inline
        """Applied to the appended events inside the same transaction (read views the decisions rely on)."""

    def execute(self, context: CommandContext, handler: Handler, *, request: Any = None) -> CommandResult:
        request_fingerprint = fingerprint(request)
        for attempt in range(1, self._max_attempts + 1):
            try:
                return self._attempt(context, handler, request_fingerprint)
            except ConcurrencyError:
                if attempt == self._max_attempts:
                    raise
                time.sleep(0.002 * attempt)
        raise AssertionError("unreachable")

    def _attempt(self, context: CommandContext, handler: Handler, request_fingerprint: str) -> CommandResult:
        with self._store.transaction() as tx:
            return self.run_in(tx, context, handler, request_fingerprint=request_fingerprint)

    def run_in(self, tx: CommandTransaction, context: CommandContext, handler: Handler, *,
               request_fingerprint: str = "") -> CommandResult:
        """Run a handler inside a transaction the caller owns (a consumer applying a foreign event)."""
        if context.idempotency_key:
            earlier = tx.idempotent_reply(context.idempotency_key)
            if earlier is not None:
                if earlier.request_fingerprint != request_fingerprint:
                    raise IdempotencyKeyReused(context.idempotency_key)
                response = dict(earlier.response)
                return CommandResult(
                    aggregate_id=response.pop("id"),
                    version=response.pop("version"),
                    consistency_token=response.pop("consistency_token"),
                    event_count=response.pop("event_count"),
                    details=response,
                    replayed=True,
                )
        uow = UnitOfWork(tx)
        outcome = handler(uow)
        stored = uow.flush(context.metadata())
        if self._inline is not None and stored:
            self._inline(tx, stored)
        result = CommandResult(
            aggregate_id=outcome.aggregate_id,
            version=uow.version_after(outcome.stream_id),
            consistency_token=ConsistencyToken(context.command_id, uow.event_count).encode(),
            event_count=uow.event_count,
            details=outcome.details,
        )
        if context.idempotency_key:
            tx.remember_reply(
                context.idempotency_key, IdempotentReply(request_fingerprint, result.as_json())
            )
        return result
