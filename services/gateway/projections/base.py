"""What a read-model module provides: its tables and a handler per event type it cares about."""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from servicekit.consumer import ConsumedEvent

Apply = Callable[[psycopg.Connection, ConsumedEvent], None]
ApplyMany = Callable[[psycopg.Connection, list[ConsumedEvent]], None]


@dataclass(frozen=True)
class Projection:
    name: str
    ddl: str
    handlers: Mapping[tuple[str, str], Apply]
    """(source, event type) -> how to apply it."""
    apply_many: ApplyMany | None = None
    """Applies a batch of its events (in order) in a few statements, to the state `handlers` would leave."""


def dispatcher(projections: tuple[Projection, ...]) -> Callable[[psycopg.Connection, ConsumedEvent], None]:
    table: dict[tuple[str, str], list[Apply]] = {}
    for projection in projections:
        for key, apply in projection.handlers.items():
            table.setdefault(key, []).append(apply)

    def handle(conn: psycopg.Connection, event: ConsumedEvent) -> None:
        for apply in table.get((event.source, event.event_type), ()):
            apply(conn, event)

    return handle


def batch_dispatcher(projections: tuple[Projection, ...]) -> ApplyMany:
    """A poll's events, each projection's share in order. Projections read only their own tables, so
    applying one projection's share before the next's leaves what event-by-event application leaves."""
    one_by_one = dispatcher(projections)

    def handle(conn: psycopg.Connection, events: list[ConsumedEvent]) -> None:
        for projection in projections:
            mine = [e for e in events if (e.source, e.event_type) in projection.handlers]
            if not mine:
                continue
            if projection.apply_many is not None:
                projection.apply_many(conn, mine)
            else:
                for event in mine:
                    one_by_one(conn, event)

    return handle


def copy_rows(conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows in: a batch of thousands costs one statement instead of one round of parameters per row."""
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def upsert_rows(conn: psycopg.Connection, table: str, key: str, columns: Sequence[str],
                rows: Sequence[Sequence[Any]], *, kept: Sequence[str] = ()) -> None:
    """Insert or replace rows by key (except the `kept` columns, set once), through a staging table filled by
    COPY."""
    if not rows:
        return
    stage = create_stage(conn, table)
    copy_rows(conn, stage, columns, rows)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key and c not in kept)
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage}"
                 f" ON CONFLICT ({key}) DO UPDATE SET {updates}")
    empty_work_tables(conn, stage)


def create_stage(conn: psycopg.Connection, table: str) -> str:
    """The temporary staging table of `table`, made unless the session already holds it; returns its name."""
    stage = f"{table}_stage"
    create_work_tables(conn, stage, f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS)")
    return stage


_SESSION_STATE: weakref.WeakKeyDictionary[psycopg.Connection, set[str]] = weakref.WeakKeyDictionary()


def create_work_tables(conn: psycopg.Connection, name: str, ddl: str) -> None:
    """Runs `ddl` (CREATE TEMP TABLE IF NOT EXISTS ...) unless this session holds its tables for good.

    Made outside a transaction (a consumer's `prepare_session`), they last as long as the connection and cost
    no statement again: two to three of the ~40 round trips a command's batch makes. Made inside a batch's
    transaction, they would go with a rollback, so there they are made again each time.
    """
    if name in _SESSION_STATE.get(conn, ()):
        return
    conn.execute(ddl)
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        _SESSION_STATE.setdefault(conn, set()).add(name)


def session_holds(conn: psycopg.Connection, name: str) -> bool:
    return name in _SESSION_STATE.get(conn, ())


TRUNCATE_AFTER_ROWS = 5_000
_DEAD_ROWS: weakref.WeakKeyDictionary[psycopg.Connection, dict[str, int]] = weakref.WeakKeyDictionary()


def empty_work_tables(conn: psycopg.Connection, *tables: str) -> None:
    """Empties temporary work tables for their next use, all in one round trip.

    DELETE, not TRUNCATE: a TRUNCATE gives a table new files, 3-5 ms apiece here, and was a third of the
    projector's time for one command. Nor ON COMMIT DELETE ROWS, which truncates every such table at every
    commit (3 ms a commit). Nothing vacuums temporary tables, and their dead rows are scanned with the live ones,
    so a table is truncated once its deletes have left TRUNCATE_AFTER_ROWS dead rows in it (a few hundred
    commands, or every bulk batch).
    """
    dead = _DEAD_ROWS.setdefault(conn, {})
    cursor = conn.execute("; ".join(f"DELETE FROM {table}" for table in tables))
    deleted = [cursor.rowcount]
    while cursor.nextset():
        deleted.append(cursor.rowcount)
    for table, count in zip(tables, deleted, strict=True):
        dead[table] = dead.get(table, 0) + count
        if dead[table] > TRUNCATE_AFTER_ROWS:
            conn.execute(f"TRUNCATE {table}")
            dead[table] = 0


def record_facts(conn: psycopg.Connection, *, table: str, key: str,
                 facts: list[tuple[ConsumedEvent, dt.date]]) -> None:
    copy_rows(conn, table, (key, "seq", "effective_on", "event_type", "data", "recorded_at", "actor"),
              ((event.aggregate_id, event.version, effective_on, event.event_type,
                event.data_json if event.data_json is not None else Jsonb(event.data),
                dt.datetime.fromisoformat(event.envelope.time), event.envelope.actor) for event, effective_on in facts))
