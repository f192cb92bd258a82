"""Queries over the projections, batched for DataLoaders."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True)
class UnitRow:
    id: uuid.UUID
    code: str
    name: str
    kind: str
    parent_id: uuid.UUID | None
    status: str
    established_on: dt.date


_UNIT_COLUMNS = "id, code, name, kind, parent_id, status, established_on"


class ReadModels:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def units_by_ids(self, ids: list[uuid.UUID]) -> list[UnitRow | None]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_UNIT_COLUMNS} FROM units WHERE id = ANY(%s)", (ids,))
            found = {row[0]: UnitRow(*row) for row in await cur.fetchall()}
        return [found.get(i) for i in ids]

    async def unit_by_code(self, code: str) -> UnitRow | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_UNIT_COLUMNS} FROM units WHERE code = %s ORDER BY status = 'active' DESC LIMIT 1",
                (code,),
            )
            row = await cur.fetchone()
        return UnitRow(*row) if row else None

    async def command_applied(self, *, consumer: str, command_id: uuid.UUID, event_count: int) -> bool:
        if event_count == 0:
            return True
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT applied >= expected FROM consumer_commands WHERE consumer = %s AND command_id = %s",
                (consumer, command_id),
            )
            row = await cur.fetchone()
        return bool(row and row[0])
