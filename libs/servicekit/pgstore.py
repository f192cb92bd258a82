"""The PostgreSQL event store: append with expected version, outbox rows in the same transaction."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from servicekit.database import connect, notify_channel
from servicekit.events import Checkpoint, EventMetadata, NewEvent, StoredEvent
from servicekit.store import ConcurrencyError, IdempotentReply, UniquenessViolation

log = logging.getLogger("servicekit.pgstore")

_EVENT_COLUMNS = "stream_id, version, event_id, event_type, schema_version, data, metadata, position, recorded_at"


def commit_order_page(columns: str, *, of_a_share: bool = False) -> str:
    """A page of events in commit order after a (xid, position) checkpoint, below the oldest running transaction
    (parameters: xid, position, limit). One query for every reader of the global log (`read_all`, the replay).
    `of_a_share`: only the streams of one share of them (two more parameters before the limit: how many shares,
    which one), by a hash of the stream's id: every stream whole in one share."""
    share = " AND mod(hashtext(stream_id)::bigint + 2147483648, %s) = %s" if of_a_share else ""
    return (
        f"SELECT {columns} FROM events"
        " WHERE (xid, position) > (%s::text::xid8, %s) AND xid < pg_snapshot_xmin(pg_current_snapshot())"
        f"{share}"
        # The table's columns, qualified: a bare `xid` would name an output column `xid` (a reader's bigint cast),
        # which no index has, and every page would sort the whole store.
        " ORDER BY events.xid, events.position LIMIT %s"
    )


READ_ALL = commit_order_page(f"xid::text::bigint, {_EVENT_COLUMNS}")


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

    def __init__(self, conn: psycopg.Connection, *, topic: str, channel: str | None) -> None:
        """`channel`: NOTIFY it in the append itself; None when the store rings the relay after the commit."""
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

    def read_streams(self, stream_ids: Sequence[str], *, after: Mapping[str, int] | None = None
                     ) -> dict[str, list[StoredEvent]]:
        """Several streams in one round trip (a command loading a unit and its parent), each after its version in
        `after` (0 when absent)."""
        found: dict[str, list[StoredEvent]] = {sid: [] for sid in stream_ids}
        if after:
            # `stream_id = ANY` as well as the join keeps the read on the index whatever the table's statistics say
            # during a bulk load: with the join alone, the demo's reform took 40 s in the running system, not 4.
            rows = self.conn.execute(
                f"SELECT {', '.join('e.' + c.strip() for c in _EVENT_COLUMNS.split(','))}"
                " FROM events e JOIN unnest(%b::text[], %b::int[]) AS x(s, v) ON e.stream_id = x.s"
                " WHERE e.stream_id = ANY(%b::text[]) AND e.version > x.v ORDER BY e.stream_id, e.version",
                (list(stream_ids), [after.get(sid, 0) for sid in stream_ids], list(stream_ids)),
            ).fetchall()
        else:
            rows = self.conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_id = ANY(%b::text[]) ORDER BY stream_id, version",
                (list(stream_ids),),
            ).fetchall()
        for row in rows:
            found[row[0]].append(_row_to_event(row))
        return found

    def append_many(
        self,
        batches: Sequence[tuple[str, int, Sequence[NewEvent]]],
        *,
        metadata: EventMetadata,
        command_event_count: int,
        verified_streams: frozenset[str] = frozenset(),
    ) -> list[StoredEvent]:
        """Append to many streams, with their outbox rows, in one statement.

        A stream at version v > 0 must exist at v: streams this transaction has read (`verified_streams`)
        are known to; the others are checked. A later version written concurrently collides on the
        unique (stream_id, version) index, which aborts the transaction as a ConcurrencyError.
        """
        if not batches:
            return []
        claimed = [(s, v) for s, v, _ in batches if v > 0 and s not in verified_streams]
        if claimed:
            found = self.conn.execute(
                "SELECT count(*) FROM events e JOIN unnest(%b::text[], %b::int[]) AS c(s, v)"
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
        # Positions are handed out in (stream, version) order, so the outbox ids that follow them keep every
        # stream's versions in order. The NOTIFY only wakes the relay (it also polls); PostgreSQL folds
        # repeats within a transaction.
        notify = "" if self._channel is None else ", (SELECT pg_notify(%s, ''))"
        rows = self.conn.execute(
            "WITH inserted AS ("
            " INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata)"
            " SELECT s, v, i, t, sv, d::jsonb, %s FROM unnest(%b::text[], %b::int[], %b::uuid[],"
            " %b::text[], %b::smallint[], %b::text[]) AS x(s, v, i, t, sv, d)"
            " ORDER BY s, v RETURNING position, recorded_at, event_id),"
            " queued AS (INSERT INTO outbox (position, topic) SELECT position, %s FROM inserted ORDER BY position)"
            f" SELECT position, recorded_at, event_id{notify} FROM inserted",
            (meta, streams, versions, ids, types, schema_versions, payloads, self._topic,
             *(() if self._channel is None else (self._channel,))),
        ).fetchall()
        # The data is what we sent: only positions and times come back (decoding it again would cost more).
        placed = {r[2]: (r[0], r[1]) for r in rows}
        meta_json = metadata.as_json(command_event_count=command_event_count)
        stored_unsorted = []
        for stream, expected, new in batches:
            for offset, event in enumerate(new, start=1):
                position, recorded_at = placed[event.event_id]
                stored_unsorted.append(StoredEvent(
                    stream_id=stream, version=expected + offset, event_id=event.event_id, type=event.type,
                    schema_version=event.schema_version, data=event.data, metadata=meta_json, position=position,
                    recorded_at=recorded_at))
        stored = sorted(stored_unsorted, key=lambda e: e.position)
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

    def claim_unique_many(self, *, scope: str, claims: Sequence[tuple[str, str]]) -> set[str]:
        """Claim many (value, owner) pairs at once; returns the values now claimed by these owners. A value
        held by someone else is left alone (the caller decides whether that is a match or a conflict)."""
        if not claims:
            return set()
        rows = self.conn.execute(
            # Binary parameters: text arrays in text format are escaped element by element, slowly.
            "INSERT INTO unique_claims (scope, value, owner) SELECT %s, v, o FROM unnest(%b::text[], %b::text[])"
            " AS x(v, o) ON CONFLICT (scope, value) DO NOTHING RETURNING value",
            (scope, [v for v, _ in claims], [o for _, o in claims]),
        ).fetchall()
        return {r[0] for r in rows}

    def holders(self, *, scope: str, values: Sequence[str]) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT value, owner FROM unique_claims WHERE scope = %s AND value = ANY(%b::text[])", (scope, list(values))
        ).fetchall()
        return {r[0]: r[1] for r in rows}

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
        # A concurrent first use of the key collides here and retries the command, which then finds the reply.
        self.conn.execute(
            "INSERT INTO idempotency_keys (key, fingerprint, response) VALUES (%s, %s, %s)",
            (key, reply.request_fingerprint, Jsonb(reply.response)),
        )

    def serialize(self, name: str, *, exclusive: bool = True) -> None:
        """Hold the named lock until this transaction ends: exclusive holders run one at a time, shared
        holders run together but never beside an exclusive one (a leaf added while a branch moves)."""
        if exclusive:
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
        else:
            self.conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext(%s))", (name,))


class OutboxDoorbell:
    """Wakes the relay after a command's commit, from a connection of its own that does not wait for the disk.

    A NOTIFY inside the command's transaction takes PostgreSQL's notification-queue lock at commit and holds it
    through the commit's WAL flush: every command that appended committed after the one before, each waiting for
    its own flush (seen in the running system: commits queued on that lock behind a 19 ms WalSync), so
    concurrent commands never shared a flush. Rung from here, the lock is held for an asynchronous commit only.
    Rings coalesce: one NOTIFY, sent after the last ring it answers, answers every ring before it. A ring lost
    (a crash, the database away) leaves the relay to its own poll.
    """

    def __init__(self, database_url: str, *, schema: str) -> None:
        self.database_url = database_url
        self.schema = schema
        self.channel = notify_channel(schema)
        self._rung = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.sent = 0

    def ring(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._closed.is_set():
                    self._thread = threading.Thread(target=self._run, name=f"doorbell-{self.schema}", daemon=True)
                    self._thread.start()
        self._rung.set()

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._closed.is_set():
            self._rung.wait()
            if self._closed.is_set():
                break
            self._rung.clear()
            try:
                if conn is None or conn.closed:
                    conn = connect(self.database_url, schema=self.schema, autocommit=True)
                    conn.execute("SET synchronous_commit = off")
                conn.execute(f"NOTIFY {self.channel}")
                self.sent += 1
            except psycopg.Error:
                log.warning("could not wake the relay; it will find the rows by its poll", exc_info=True)
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
                self._closed.wait(0.5)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        self._closed.set()
        self._rung.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class PostgresEventStore:
    def __init__(self, pool: ConnectionPool, *, schema: str, topic: str, doorbell: OutboxDoorbell | None = None
                 ) -> None:
        """`doorbell`: wake the relay after each commit that appended, instead of a NOTIFY inside it."""
        self.pool = pool
        self.schema = schema
        self.topic = topic
        self.doorbell = doorbell

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """One transaction; a unique-index collision (a concurrent writer got there first) ends it as a
        ConcurrencyError, which the command bus retries from a fresh read."""
        channel = None if self.doorbell is not None else notify_channel(self.schema)
        try:
            with self.pool.connection() as conn:
                with conn.transaction():
                    tx = PostgresTransaction(conn, topic=self.topic, channel=channel)
                    yield tx
                if tx.appended and self.doorbell is not None:
                    self.doorbell.ring()
        except psycopg.errors.UniqueViolation as exc:
            raise ConcurrencyError(str(exc.diag.constraint_name or "unique"), -1) from exc

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]:
        with self.pool.connection() as conn:
            tx = PostgresTransaction(conn, topic=self.topic, channel=notify_channel(self.schema))
            return tx.read_stream(stream_id, after_version=after_version)

    def read_all(
        self, *, after: Checkpoint = Checkpoint(), limit: int = 1000
    ) -> list[tuple[Checkpoint, StoredEvent]]:
        """Events of finished transactions only (below the xmin horizon), in (xid, position) order."""
        with self.pool.connection() as conn:
            rows = conn.execute(READ_ALL, (str(after.xid), after.position, limit)).fetchall()
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
