"""What a read-model module provides: its tables and a handler per event type it cares about."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg

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
