"""Command handling: load -> fold -> decide -> append + outbox, in one transaction, retried on conflict."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from contracts.consistency import ConsistencyToken
from servicekit.events import EventMetadata, NewEvent, StoredEvent
from servicekit.store import ConcurrencyError, IdempotentReply

S = TypeVar("S")


class CommandTransaction(Protocol):
    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]: ...

    def read_streams(self, stream_ids: Sequence[str], *, after: Mapping[str, int] | None = None
                     ) -> dict[str, list[StoredEvent]]: ...

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


class StateCache:
    """Folded aggregate states at the version they were read at, so that a command need not read them again.

    Committed events never change, so a state read in a committed transaction stays true at its version; a command
    bus keeps only those (UnitOfWork.read). The least recently used are dropped beyond `max_streams`. States are
    immutable values (frozen dataclasses), shared by every command that reads them.

    A cached state may be behind its stream (another process appended), so a unit of work that takes one checks
    it before its command can stand (UnitOfWork.flush)."""

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        # Keyed by the Aggregate's identity (its initial state need not be hashable); each entry holds the
        # Aggregate, so no other object can take that identity while the entry lasts.
        self._states: OrderedDict[tuple[int, str], tuple[Aggregate[Any], int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, aggregate: Aggregate[S], streams: Sequence[str]) -> dict[str, tuple[int, S]]:
        found: dict[str, tuple[int, S]] = {}
        with self._lock:
            for stream in streams:
                entry = self._states.get((id(aggregate), stream))
                if entry is not None:
                    self._states.move_to_end((id(aggregate), stream))
                    found[stream] = (entry[1], entry[2])
        return found

    def forget(self, aggregate: Aggregate[Any], streams: Iterable[str]) -> None:
        with self._lock:
            for stream in streams:
                self._states.pop((id(aggregate), stream), None)

    def keep(self, states: Iterable[tuple[Aggregate[Any], str, int, Any]]) -> None:
        with self._lock:
            for aggregate, stream, version, state in states:
                key = (id(aggregate), stream)
                known = self._states.get(key)
                if known is None or known[1] < version:
                    self._states[key] = (aggregate, version, state)
                self._states.move_to_end(key)
            while len(self._states) > self.max_streams:
                self._states.popitem(last=False)


_UNKNOWN: Any = object()
READ_ALONG_AT_MOST = 8
"""Cached streams a load reads after their versions with the streams it must read anyway (see load_many)."""


class UnitOfWork:
    """What a handler sees: loaded aggregates and the events it decided, written together at the end."""

    def __init__(self, tx: CommandTransaction, states: StateCache | None = None,
                 read: list[tuple[Aggregate[Any], str, int, Any]] | None = None) -> None:
        self.tx = tx
        self._states = states
        self._pending: dict[str, tuple[int, list[NewEvent]]] = {}
        self._order: list[str] = []
        self._versions: dict[str, int] = {}
        self._unread: dict[str, tuple[Aggregate[Any], int]] = {}
        """Streams taken from the cache without a read, at their cached version: each is checked before the
        command stands (see flush)."""
        self._folded: dict[str, Any] = {}
        self.read = read if read is not None else []
        """Every state this unit of work folded, at its version (for the StateCache once the transaction has
        committed)."""

    def load(self, aggregate: Aggregate[S], aggregate_id: str) -> Loaded[S]:
        return self.load_many(aggregate, [aggregate_id])[0]

    def load_many(self, aggregate: Aggregate[S], aggregate_ids: Sequence[str]) -> list[Loaded[S]]:
        """Fold several aggregates of one kind, in one round trip at most.

        A cached state is taken as it is, unread: a stream the command appends to is checked by the append itself
        (its next version collides on the unique (stream, version) index if anyone wrote after the cached one),
        and the others are read once, when the command ends (`flush`, or a refusal). A bulk command over a
        thousand members then reads nothing back. When the load reads anyway (a stream not cached) and holds only
        a few cached ones (a command's unit and its parent), those are read in the same round trip, after their
        cached versions, which spares the round trip at the end. Many would cost more than that round trip: read
        so, a `hanoi` load's bulk commands cost the server 48 s, against 17 s reading only the uncached streams."""
        streams = [f"{aggregate.category}-{aggregate_id}" for aggregate_id in aggregate_ids]
        cached = self._states.get(aggregate, streams) if self._states is not None else {}
        unread = [stream for stream in streams if stream not in cached]
        histories: dict[str, list[StoredEvent]] = {}
        if unread and cached and len(cached) <= READ_ALONG_AT_MOST:
            after = {stream: version for stream, (version, _) in cached.items()}
            histories = self.tx.read_streams(streams, after=after)
        else:
            if unread:
                histories = self.tx.read_streams(unread)
            for stream, (version, _) in cached.items():
                self._unread.setdefault(stream, (aggregate, version))
        loaded: list[Loaded[S]] = []
        for stream in streams:
            version, state = cached.get(stream, (0, aggregate.initial))
            for event in histories.get(stream, []):
                state = aggregate.evolve(state, event)
                version = event.version
            self._versions[stream] = version
            self.read.append((aggregate, stream, version, state))
            loaded.append(Loaded(stream, state, version))
        return loaded

    def record(self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int,
               state_after: Any = _UNKNOWN) -> int:
        """Queue events for a stream; returns the version the stream will have. `state_after`: the loaded state
        with everything recorded for the stream in this unit of work folded in, when the handler has it; it is
        then cached as it is rather than folded again from the stored events."""
        if stream_id in self._versions and stream_id not in self._pending \
                and self._versions[stream_id] != expected_version:
            raise ConcurrencyError(stream_id, expected_version)
        if state_after is _UNKNOWN:
            self._folded.pop(stream_id, None)
        else:
            self._folded[stream_id] = state_after
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
        """Append what the handler recorded, once the cached states it decided on are known to be current."""
        batches = [(s, self._pending[s][0], self._pending[s][1]) for s in self._order if self._pending[s][1]]
        appended = {stream for stream, _, _ in batches}
        # The append checks a cached state only when it appends right after that state's version; a stream also
        # read afresh in this unit of work, and appended after that, is read after its cached version here.
        self.check_unread(except_streams={stream for stream, base, _ in batches
                                          if stream in self._unread and self._unread[stream][1] == base})
        try:
            stored = self.tx.append_many(batches, metadata=metadata, command_event_count=self.event_count,
                                         verified_streams=frozenset(self._versions))
        except Exception:
            # A collision on a stream taken from the cache means the cached state was behind: the retry reads it.
            self.forget_unread(appended)
            raise
        if self._states is not None and stored:
            self._fold_appended(stored)
        return stored

    def check_unread(self, *, except_streams: Iterable[str] = ()) -> None:
        """Read the streams taken from the cache (but those in `except_streams`) after their cached versions, in
        one round trip: anything there means the command decided on a state that was behind, so it is refused as
        a ConcurrencyError (the bus retries it, reading those streams)."""
        skipped = set(except_streams)
        after = {stream: version for stream, (_, version) in self._unread.items() if stream not in skipped}
        if not after:
            return
        newer = self.tx.read_streams(list(after), after=after)
        behind = [stream for stream, events in newer.items() if events]
        if behind:
            self.forget_unread(behind)
            raise ConcurrencyError(behind[0], after[behind[0]])
        for stream in after:
            del self._unread[stream]

    def forget_unread(self, streams: Iterable[str] | None = None) -> None:
        """Drop these cached states (all taken unread, when None), so that the next attempt reads them."""
        if self._states is None:
            return
        by_aggregate: dict[int, tuple[Aggregate[Any], list[str]]] = {}
        for stream in self._unread if streams is None else streams:
            if stream in self._unread:
                aggregate = self._unread[stream][0]
                by_aggregate.setdefault(id(aggregate), (aggregate, []))[1].append(stream)
        for aggregate, names in by_aggregate.values():
            self._states.forget(aggregate, names)

    def _fold_appended(self, stored: list[StoredEvent]) -> None:
        """The states this command leaves, folded from the events it appended: once it commits, the next command
        on these aggregates reads nothing (a bulk load's yearly facts read no history back)."""
        appended: dict[str, list[StoredEvent]] = {}
        for event in stored:
            appended.setdefault(event.stream_id, []).append(event)
        latest = {stream: (aggregate, version, state) for aggregate, stream, version, state in self.read}
        for stream, events in appended.items():
            if stream not in latest:
                continue
            aggregate, version, state = latest[stream]
            events.sort(key=lambda e: e.version)
            if events[0].version != version + 1:
                continue
            if stream in self._folded:
                state = self._folded[stream]
            else:
                for event in events:
                    state = aggregate.evolve(state, event)
            self.read.append((aggregate, stream, events[-1].version, state))


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
                 inline: Callable[[Any, list[StoredEvent]], None] | None = None,
                 states: StateCache | None = None) -> None:
        self._store = store
        self._max_attempts = max_attempts
        self._inline = inline
        """Applied to the appended events inside the same transaction (read views the decisions rely on)."""
        self.states = states

    def execute(self, context: CommandContext, handler: Handler, *, request: Any = None,
                then: Callable[[Any, CommandResult], None] | None = None) -> CommandResult:
        """`then(tx, result)` runs in the command's transaction after it (a loader marking its step done)."""
        request_fingerprint = fingerprint(request)
        for attempt in range(1, self._max_attempts + 1):
            try:
                return self._attempt(context, handler, request_fingerprint, then)
            except ConcurrencyError:
                if attempt == self._max_attempts:
                    raise
                time.sleep(0.002 * attempt)
        raise AssertionError("unreachable")

    def _attempt(self, context: CommandContext, handler: Handler, request_fingerprint: str,
                 then: Callable[[Any, CommandResult], None] | None) -> CommandResult:
        read: list[tuple[Aggregate[Any], str, int, Any]] = []
        try:
            with self._store.transaction() as tx:
                result = self.run_in(tx, context, handler, request_fingerprint=request_fingerprint, read=read)
                if then is not None:
                    then(tx, result)
        except ConcurrencyError:
            # Some state this attempt decided on was behind (a store may only find out at the commit): the
            # next attempt reads every one of them.
            if self.states is not None:
                for aggregate, stream, _, _ in read:
                    self.states.forget(aggregate, [stream])
            raise
        if self.states is not None:
            self.states.keep(read)
        return result

    def run_in(self, tx: CommandTransaction, context: CommandContext, handler: Handler, *,
               request_fingerprint: str = "", read: list[tuple[Aggregate[Any], str, int, Any]] | None = None
               ) -> CommandResult:
        """Run a handler inside a transaction the caller owns (a consumer applying a foreign event). `read`
        receives the states the handler folded; only the transaction's owner knows whether they were committed."""
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
        uow = UnitOfWork(tx, self.states, read)
        try:
            outcome = handler(uow)
        except ConcurrencyError:
            uow.forget_unread()
            raise
        except Exception as refusal:
            # A refusal decided on a cached state stands only if that state was current.
            try:
                uow.check_unread()
            except ConcurrencyError:
                raise
            except Exception:
                raise refusal from None
            raise
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
