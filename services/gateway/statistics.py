"""The central statistics forms computed from the registry's facts for any subtree and date.

Biểu 1 compares who counted in the subtree at the opening and at the closing of the period (by the hierarchy
valid on each day), so it reconciles by construction: opening + increases − decreases = closing. Moves between
units inside the subtree change neither set; a member who moved in or out of the subtree (a transfer or a
reorganization) is counted as such, apart from admissions and exits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


def tree(name: str, day: str) -> str:
    return (f"{name}(unit_id) AS (SELECT unit_id FROM unit_versions WHERE unit_id = %(root)s"
            f" AND valid_from <= %({day})s AND %({day})s < valid_to"
            f" UNION SELECT v.unit_id FROM unit_versions v JOIN {name} t ON v.parent_id = t.unit_id"
            f" WHERE v.valid_from <= %({day})s AND %({day})s < v.valid_to)")


def members_at(name: str, tree_name: str, day: str) -> str:
    return (f"{name} AS (SELECT i.member_id, i.status FROM member_intervals i WHERE i.valid_from <= %({day})s"
            f" AND %({day})s < i.valid_to AND i.unit_id IN (SELECT unit_id FROM {tree_name}))")


INCREASE = """
CASE
  WHEN f.event_type = 'MemberReadmitted' THEN 'readmitted'
  WHEN f.event_type = 'MemberEnrolled' AND f.data->>'source' = 'admission' THEN 'admitted'
  WHEN f.event_type = 'MemberEnrolled' AND f.data->>'source' = 'incoming_transfer' THEN 'transferred_in_other_province'
  WHEN f.event_type = 'MemberEnrolled' THEN 'enrolled_existing'
  ELSE 'moved_in'
END"""

DECREASE = """
CASE
  WHEN f.event_type = 'MemberLeftParty' THEN f.data->>'reason'
  WHEN f.event_type = 'MemberDied' THEN 'deceased'
  WHEN f.event_type = 'MemberTransferredOut' THEN 'transferred_out_other_province'
  ELSE 'moved_out'
END"""

BIEU_1 = f"""
WITH RECURSIVE {tree('t_open', 'opening')}, {tree('t_close', 'closing')},
{members_at('o', 't_open', 'opening')}, {members_at('c', 't_close', 'closing')},
inc AS (SELECT member_id FROM c EXCEPT SELECT member_id FROM o),
dec AS (SELECT member_id FROM o EXCEPT SELECT member_id FROM c)
SELECT 'opening' AS direction, 'total' AS category, count(*) AS n FROM o
UNION ALL SELECT 'closing', 'total', count(*) FROM c
UNION ALL SELECT 'increase', coalesce(x.category, 'moved_in'), count(*) FROM inc LEFT JOIN LATERAL (
    SELECT {INCREASE} AS category FROM member_facts f WHERE f.member_id = inc.member_id
     AND f.effective_on > %(opening)s AND f.effective_on <= %(closing)s
     AND f.event_type IN ('MemberEnrolled', 'MemberReadmitted')
     ORDER BY f.effective_on DESC, f.seq DESC LIMIT 1) x ON true GROUP BY 2
UNION ALL SELECT 'decrease', coalesce(x.category, 'moved_out'), count(*) FROM dec LEFT JOIN LATERAL (
    SELECT {DECREASE} AS category FROM member_facts f WHERE f.member_id = dec.member_id
     AND f.effective_on > %(opening)s AND f.effective_on <= %(closing)s
     AND f.event_type IN ('MemberLeftParty', 'MemberDied', 'MemberTransferredOut')
     ORDER BY f.effective_on DESC, f.seq DESC LIMIT 1) x ON true GROUP BY 2
"""

AGE_BAND = """
CASE
  WHEN age <= 30 THEN '18-30' WHEN age <= 35 THEN '31-35' WHEN age <= 40 THEN '36-40'
  WHEN age <= 45 THEN '41-45' WHEN age <= 50 THEN '46-50' WHEN age <= 55 THEN '51-55'
  WHEN age <= 60 THEN '56-60' ELSE 'over_60'
END"""

ERA = """
CASE
  WHEN m.admitted_on < DATE '1945-08-19' THEN 'before_1945' WHEN m.admitted_on < DATE '1954-07-21' THEN '1945_1954'
  WHEN m.admitted_on < DATE '1975-04-30' THEN '1954_1975' ELSE 'after_1975'
END"""

COMPOSITION = f"""
SELECT d.dimension, d.value, count(*) AS n FROM people p JOIN members m ON m.member_id = p.member_id
CROSS JOIN LATERAL (SELECT date_part('year', age(%(age_on)s, m.birth_date))::int AS age) a
CROSS JOIN LATERAL (VALUES
    ('total', 'all'), ('status', p.status), ('gender', m.gender),
    ('age_band', {AGE_BAND}),
    ('ethnicity', CASE WHEN coalesce(m.ethnicity, 'Kinh') = 'Kinh' THEN 'kinh' ELSE 'minority' END),
    ('religion', CASE WHEN m.religion IS NULL OR m.religion IN ('', 'Không') THEN 'none' ELSE 'religious' END),
    ('education', coalesce(m.education, 'unknown')), ('occupation', coalesce(m.occupation, 'unknown')),
    ('admission_era', {ERA})
) AS d(dimension, value)
GROUP BY 1, 2
"""

BIEU_3 = f"""WITH RECURSIVE {tree('t_close', 'closing')}, {members_at('people', 't_close', 'closing')}
{COMPOSITION}"""

BIEU_2 = f"""
WITH RECURSIVE {tree('t_close', 'closing')}, {members_at('c', 't_close', 'closing')},
people AS (SELECT c.member_id, c.status FROM c WHERE EXISTS (
    SELECT 1 FROM member_facts f WHERE f.member_id = c.member_id AND f.effective_on > %(opening)s
     AND f.effective_on <= %(closing)s AND (f.event_type = 'MemberReadmitted'
      OR (f.event_type = 'MemberEnrolled' AND f.data->>'source' = 'admission'))))
{COMPOSITION}"""

BIEU_5 = f"""
WITH RECURSIVE {tree('t_close', 'closing')}
SELECT v.kind, count(*) AS n FROM unit_versions v WHERE v.unit_id IN (SELECT unit_id FROM t_close)
 AND v.valid_from <= %(closing)s AND %(closing)s < v.valid_to AND v.status = 'active' GROUP BY 1
"""


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date

    @property
    def opening(self) -> dt.date:
        """The day before the period: its membership is the opening balance."""
        return self.start - dt.timedelta(days=1)


def year_to_date(as_of: dt.date) -> Period:
    return Period(dt.date(as_of.year, 1, 1), as_of)


def year_earlier(period: Period) -> Period:
    def back(day: dt.date) -> dt.date:
        try:
            return day.replace(year=day.year - 1)
        except ValueError:
            return day.replace(year=day.year - 1, day=28)

    return Period(back(period.start), back(period.end))


class StatisticsQueries:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def _rows(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def bieu1(self, root: uuid.UUID, period: Period) -> dict[tuple[str, str], int]:
        rows = await self._rows(BIEU_1, {"root": root, "opening": period.opening, "closing": period.end})
        return {(r["direction"], r["category"]): int(r["n"]) for r in rows}

    async def bieu2(self, root: uuid.UUID, period: Period) -> dict[tuple[str, str], int]:
        rows = await self._rows(BIEU_2, {"root": root, "opening": period.opening, "closing": period.end,
                                         "age_on": period.end})
        return {(r["dimension"], r["value"]): int(r["n"]) for r in rows}

    async def bieu3(self, root: uuid.UUID, day: dt.date) -> dict[tuple[str, str], int]:
        rows = await self._rows(BIEU_3, {"root": root, "closing": day, "age_on": day})
        return {(r["dimension"], r["value"]): int(r["n"]) for r in rows}

    async def bieu5(self, root: uuid.UUID, day: dt.date) -> dict[str, int]:
        rows = await self._rows(BIEU_5, {"root": root, "closing": day})
        return {r["kind"]: int(r["n"]) for r in rows}
