"""The event-store port and its in-memory implementation; the PostgreSQL one lives in servicekit.pgstore."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from servicekit.events import Checkpoint, EventMetadata, NewEvent, StoredEvent


class ConcurrencyError(Exception):
    """Another writer appended to the stream first: the expected version no longer holds."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} is no longer at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


class UniquenessViolation(Exception):
    """A claimed unique value (citizen id, card number, unit code) is held by another owner."""

    def __init__(self, scope: str, value: str, owner: str) -> None:
        super().__init__(f"{scope} {value!r} is already held by {owner}")
        self.scope = scope
        self.value = value
        self.owner = owner


@dataclass(frozen=True)
class IdempotentReply:
    request_fingerprint: str
    response: dict[str, Any]


class StoreTransaction(Protocol):
    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]: ...

    def append(
        self,
        *,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: EventMetadata,
        command_event_count: int,
    ) -> list[StoredEvent]: ...

    def claim_unique(self, *, scope: str, value: str, owner: str) -> None: ...

    def release_unique(self, *, scope: str, value: str, owner: str) -> None: ...

    def find_unique(self, *, scope: str, value: str) -> str | None: ...

    def idempotent_reply(self, key: str) -> IdempotentReply | None: ...

    def remember_reply(self, key: str, reply: IdempotentReply) -> None: ...


class EventStore(Protocol):
    def transaction(self) -> contextlib.AbstractContextManager[StoreTransaction]: ...

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]: ...

    def read_all(self, *, after: Checkpoint = Checkpoint(), limit: int = 1000) -> list[
        tuple[Checkpoint, StoredEvent]]: ...

    def append(
        self,
        *,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: EventMetadata,
    ) -> list[StoredEvent]: ...


@dataclass
class _MemoryState:
    streams: dict[str, list[StoredEvent]] = field(default_factory=dict)
    log: list[StoredEvent] = field(default_factory=list)
    unique: dict[tuple[str, str], str] = field(default_factory=dict)
    replies: dict[str, IdempotentReply] = field(default_factory=dict)


class InMemoryTransaction:
    """Stages writes and applies them at commit under the store's lock, as one atomic change."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self._store = store
        self._staged: dict[str, list[StoredEvent]] = {}
        self._expected: dict[str, int] = {}
        self._unique_claims: dict[tuple[str, str], str] = {}
        self._unique_releases: set[tuple[str, str]] = set()
        self._replies: dict[str, IdempotentReply] = {}

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]:
        with self._store._lock:
            stored = list(self._store._state.streams.get(stream_id, []))
        stored += self._staged.get(stream_id, [])
        return [e for e in stored if e.version > after_version]

    def append(
        self,
        *,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: EventMetadata,
        command_event_count: int,
    ) -> list[StoredEvent]:
        staged = self._staged.setdefault(stream_id, [])
        if staged:
            if staged[-1].version != expected_version:
                raise ConcurrencyError(stream_id, expected_version)
        else:
            self._expected[stream_id] = expected_version
        now = dt.datetime.now(dt.UTC)
        meta = metadata.as_json(command_event_count=command_event_count)
        new = [
            StoredEvent(
                stream_id=stream_id,
                version=expected_version + i,
                event_id=e.event_id,
                type=e.type,
                schema_version=e.schema_version,
                data=e.data,
                metadata=meta,
                position=0,
                recorded_at=now,
            )
            for i, e in enumerate(events, start=1)
        ]
        staged.extend(new)
        return new

    def read_streams(self, stream_ids: Sequence[str], *, after: Mapping[str, int] | None = None
                     ) -> dict[str, list[StoredEvent]]:
        after = after or {}
        return {sid: self.read_stream(sid, after_version=after.get(sid, 0)) for sid in stream_ids}

    def append_many(
        self,
        batches: Sequence[tuple[str, int, Sequence[NewEvent]]],
        *,
        metadata: EventMetadata,
        command_event_count: int,
        verified_streams: frozenset[str] = frozenset(),
    ) -> list[StoredEvent]:
        stored: list[StoredEvent] = []
        for stream_id, expected_version, events in batches:
            stored += self.append(
                stream_id=stream_id,
                expected_version=expected_version,
                events=events,
                metadata=metadata,
                command_event_count=command_event_count,
            )
        return stored

    def claim_unique(self, *, scope: str, value: str, owner: str) -> None:
        holder = self.find_unique(scope=scope, value=value)
        if holder is not None and holder != owner:
            raise UniquenessViolation(scope, value, holder)
        self._unique_releases.discard((scope, value))
        self._unique_claims[(scope, value)] = owner

    def claim_unique_many(self, *, scope: str, claims: Sequence[tuple[str, str]]) -> set[str]:
        claimed = set()
        for value, owner in claims:
            if self.find_unique(scope=scope, value=value) is None:
                self._unique_releases.discard((scope, value))
                self._unique_claims[(scope, value)] = owner
                claimed.add(value)
        return claimed

    def holders(self, *, scope: str, values: Sequence[str]) -> dict[str, str]:
        found = {v: self.find_unique(scope=scope, value=v) for v in values}
        return {v: o for v, o in found.items() if o is not None}

    def release_unique(self, *, scope: str, value: str, owner: str) -> None:
        if self.find_unique(scope=scope, value=value) == owner:
            self._unique_claims.pop((scope, value), None)
            self._unique_releases.add((scope, value))

    def find_unique(self, *, scope: str, value: str) -> str | None:
        if (scope, value) in self._unique_claims:
            return self._unique_claims[(scope, value)]
        if (scope, value) in self._unique_releases:
            return None
        with self._store._lock:
            return self._store._state.unique.get((scope, value))

    def idempotent_reply(self, key: str) -> IdempotentReply | None:
        with self._store._lock:
            return self._replies.get(key) or self._store._state.replies.get(key)

    def remember_reply(self, key: str, reply: IdempotentReply) -> None:
        self._replies[key] = reply

    def serialize(self, name: str, *, exclusive: bool = True) -> None:
        """Nothing to do: commit() applies every transaction under one lock."""

    def commit(self) -> None:
        state = self._store._state
        with self._store._lock:
            for stream_id, expected in self._expected.items():
                current = len(state.streams.get(stream_id, []))
                if current != expected:
                    raise ConcurrencyError(stream_id, expected)
            for key, owner in self._unique_claims.items():
                holder = state.unique.get(key)
                if holder is not None and holder != owner and key not in self._unique_releases:
                    raise UniquenessViolation(key[0], key[1], holder)
            for reply_key in self._replies:
                if reply_key in state.replies:
                    raise ConcurrencyError(f"idempotency-{reply_key}", 0)
            for stream_id, events in self._staged.items():
                target = state.streams.setdefault(stream_id, [])
                for event in events:
                    positioned = StoredEvent(**{**event.__dict__, "position": len(state.log) + 1})
                    target.append(positioned)
                    state.log.append(positioned)
            for released in self._unique_releases:
                state.unique.pop(released, None)
            state.unique.update(self._unique_claims)
            state.replies.update(self._replies)


class InMemoryEventStore:
    """The same contract as the PostgreSQL store, for unit tests of handlers; the shared suite keeps
    the two from drifting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _MemoryState()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[InMemoryTransaction]:
        tx = InMemoryTransaction(self)
        yield tx
        tx.commit()

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]:
        with self._lock:
            return [e for e in self._state.streams.get(stream_id, []) if e.version > after_version]

    def read_all(
        self, *, after: Checkpoint = Checkpoint(), limit: int = 1000
    ) -> list[tuple[Checkpoint, StoredEvent]]:
        with self._lock:
            chosen = self._state.log[after.position : after.position + limit]
        return [(Checkpoint(e.position, e.position), e) for e in chosen]

    def append(
        self,
        *,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: EventMetadata,
    ) -> list[StoredEvent]:
        with self.transaction() as tx:
            staged = tx.append(
                stream_id=stream_id,
                expected_version=expected_version,
                events=events,
                metadata=metadata,
                command_event_count=len(events),
            )
        return self.read_stream(stream_id, after_version=expected_version)[: len(staged)]
