"""What a read-model module provides: its tables and a handler per event type it cares about."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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


def record_facts(conn: psycopg.Connection, *, table: str, key: str,
                 facts: list[tuple[ConsumedEvent, dt.date]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table} ({key}, seq, effective_on, event_type, data, recorded_at, actor)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(event.aggregate_id, event.version, effective_on, event.event_type, Jsonb(event.data),
              dt.datetime.fromisoformat(event.envelope.time), event.envelope.actor) for event, effective_on in facts])
