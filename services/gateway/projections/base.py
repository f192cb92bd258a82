"""What a read-model module provides: its tables and a handler per event type it cares about."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from servicekit.consumer import ConsumedEvent

Apply = Callable[[psycopg.Connection, ConsumedEvent], None]


@dataclass(frozen=True)
class Projection:
    name: str
    ddl: str
    handlers: Mapping[tuple[str, str], Apply]
    """(source, event type) -> how to apply it."""


def dispatcher(projections: tuple[Projection, ...]) -> Callable[[psycopg.Connection, ConsumedEvent], None]:
    table: dict[tuple[str, str], list[Apply]] = {}
    for projection in projections:
        for key, apply in projection.handlers.items():
            table.setdefault(key, []).append(apply)

    def handle(conn: psycopg.Connection, event: ConsumedEvent) -> None:
        for apply in table.get((event.source, event.event_type), ()):
            apply(conn, event)

    return handle


def record_fact(conn: psycopg.Connection, *, table: str, key: str, event: ConsumedEvent,
                effective_on: dt.date) -> None:
    """Keep the fact itself: versions and intervals are derived from all of an aggregate's facts."""
    conn.execute(
        f"INSERT INTO {table} ({key}, seq, effective_on, event_type, data, recorded_at, actor)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (event.aggregate_id, event.version, effective_on, event.event_type, Jsonb(event.data),
         dt.datetime.fromisoformat(event.envelope.time), event.envelope.actor))
