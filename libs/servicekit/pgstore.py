"""The PostgreSQL event store: append with expected version, outbox rows in the same transaction."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from servicekit.database import notify_channel
from servicekit.events import Checkpoint, EventMetadata, NewEvent, StoredEvent
from servicekit.store import ConcurrencyError, IdempotentReply, UniquenessViolation

_EVENT_COLUMNS = "stream_id, version, event_id, event_type, schema_version, data, metadata, position, recorded_at"


def _row_to_event(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(
        stream_id=row[0],
        version=row[1],
        event_id=row[2],
        type=row[3],
        schema_version=row[4],
        data=row[5],
        metadata=row[6],
        position=row[7],
        recorded_at=row[8],
    )


class PostgresTransaction:
    """One database transaction of a command: every append and claim commits together or not at all."""

    def __init__(self, conn: psycopg.Connection, *, topic: str, channel: str) -> None:
        self.conn = conn
        self._topic = topic
        self._channel = channel
        self.appended = 0

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]:
        rows = self.conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_id = %s AND version > %s ORDER BY version",
            (stream_id, after_version),
        ).fetchall()
        return [_row_to_event(r) for r in rows]

    def append(
        self,
        *,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: EventMetadata,
        command_event_count: int,
    ) -> list[StoredEvent]:
        return self.append_many(
            [(stream_id, expected_version, events)],
            metadata=metadata,
            command_event_count=command_event_count,
        )

    def append_many(
        self,
        batches: Sequence[tuple[str, int, Sequence[NewEvent]]],
        *,
        metadata: EventMetadata,
        command_event_count: int,
    ) -> list[StoredEvent]:
        """Append to many streams with one round trip: a reorganization moving 10,000 members."""
        if not batches:
            return []
        claimed = [(s, v) for s, v, _ in batches if v > 0]
        if claimed:
            found = self.conn.execute(
                "SELECT count(*) FROM events e JOIN unnest(%s::text[], %s::int[]) AS c(s, v)"
                " ON e.stream_id = c.s AND e.version = c.v",
                ([s for s, _ in claimed], [v for _, v in claimed]),
            ).fetchone()
            if found is None or found[0] != len(claimed):
                raise ConcurrencyError(claimed[0][0], claimed[0][1])
        meta = Jsonb(metadata.as_json(command_event_count=command_event_count))
        streams: list[str] = []
        versions: list[int] = []
        ids: list[Any] = []
        types: list[str] = []
        schema_versions: list[int] = []
        payloads: list[str] = []
        for stream, expected, new in batches:
            for offset, event in enumerate(new, start=1):
                streams.append(stream)
                versions.append(expected + offset)
                ids.append(event.event_id)
                types.append(event.type)
                schema_versions.append(event.schema_version)
                payloads.append(json.dumps(event.data, ensure_ascii=False))
        try:
            with self.conn.transaction():
                rows = self.conn.execute(
                    "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata)"
                    " SELECT s, v, i, t, sv, d::jsonb, %s FROM unnest(%s::text[], %s::int[], %s::uuid[],"
                    " %s::text[], %s::smallint[], %s::text[]) AS x(s, v, i, t, sv, d)"
                    f" ORDER BY s, v RETURNING {_EVENT_COLUMNS}",
                    (meta, streams, versions, ids, types, schema_versions, payloads),
                ).fetchall()
        except psycopg.errors.UniqueViolation as exc:
            raise ConcurrencyError(batches[0][0], batches[0][1]) from exc
        stored = sorted((_row_to_event(r) for r in rows), key=lambda e: e.position)
        self.conn.execute(
            "INSERT INTO outbox (position, topic) SELECT p, %s FROM unnest(%s::bigint[]) AS p ORDER BY p",
            (self._topic, [e.position for e in stored]),
        )
        self.appended += len(stored)
        return stored

    def claim_unique(self, *, scope: str, value: str, owner: str) -> None:
        row = self.conn.execute(
            "INSERT INTO unique_claims (scope, value, owner) VALUES (%s, %s, %s)"
            " ON CONFLICT (scope, value) DO UPDATE SET owner = EXCLUDED.owner"
            " WHERE unique_claims.owner = EXCLUDED.owner RETURNING owner",
            (scope, value, owner),
        ).fetchone()
        if row is None:
            holder = self.find_unique(scope=scope, value=value)
            raise UniquenessViolation(scope, value, holder or "another owner")

    def release_unique(self, *, scope: str, value: str, owner: str) -> None:
        self.conn.execute(
            "DELETE FROM unique_claims WHERE scope = %s AND value = %s AND owner = %s", (scope, value, owner)
        )

    def find_unique(self, *, scope: str, value: str) -> str | None:
        row = self.conn.execute(
            "SELECT owner FROM unique_claims WHERE scope = %s AND value = %s", (scope, value)
        ).fetchone()
        return None if row is None else str(row[0])

    def idempotent_reply(self, key: str) -> IdempotentReply | None:
        row = self.conn.execute(
            "SELECT fingerprint, response FROM idempotency_keys WHERE key = %s", (key,)
        ).fetchone()
        return None if row is None else IdempotentReply(row[0], row[1])

    def remember_reply(self, key: str, reply: IdempotentReply) -> None:
        try:
            with self.conn.transaction():
                self.conn.execute(
                    "INSERT INTO idempotency_keys (key, fingerprint, response) VALUES (%s, %s, %s)",
                    (key, reply.request_fingerprint, Jsonb(reply.response)),
                )
        except psycopg.errors.UniqueViolation as exc:
            raise ConcurrencyError(f"idempotency-{key}", 0) from exc

    def serialize(self, name: str) -> None:
        """Make commands of one kind (hierarchy changes) run one at a time, until this transaction ends."""
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))

    def wake_relay(self) -> None:
        # One NOTIFY per transaction (PostgreSQL folds duplicates); it is only a wake-up call, the relay
        # also polls, so a lost notification costs latency, never an event.
        if self.appended:
            self.conn.execute("SELECT pg_notify(%s, '')", (self._channel,))


class PostgresEventStore:
    def __init__(self, pool: ConnectionPool, *, schema: str, topic: str) -> None:
        self.pool = pool
        self.schema = schema
        self.topic = topic

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        with self.pool.connection() as conn, conn.transaction():
            tx = PostgresTransaction(conn, topic=self.topic, channel=notify_channel(self.schema))
            yield tx
            tx.wake_relay()

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]:
        with self.pool.connection() as conn:
            tx = PostgresTransaction(conn, topic=self.topic, channel=notify_channel(self.schema))
            return tx.read_stream(stream_id, after_version=after_version)

    def read_all(
        self, *, after: Checkpoint = Checkpoint(), limit: int = 1000
    ) -> list[tuple[Checkpoint, StoredEvent]]:
        """Events of finished transactions only (below the xmin horizon), in (xid, position) order."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT xid::text::bigint, {_EVENT_COLUMNS} FROM events"
                " WHERE (xid, position) > (%s::text::xid8, %s)"
                " AND xid < pg_snapshot_xmin(pg_current_snapshot())"
                " ORDER BY xid, position LIMIT %s",
                (str(after.xid), after.position, limit),
            ).fetchall()
        return [(Checkpoint(r[0], r[8]), _row_to_event(r[1:])) for r in rows]

    def append(
        self,
        *,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: EventMetadata,
    ) -> list[StoredEvent]:
        with self.transaction() as tx:
            return tx.append(
                stream_id=stream_id,
                expected_version=expected_version,
                events=events,
                metadata=metadata,
                command_event_count=len(events),
            )
