"""The central statistics forms computed from the registry's facts for any subtree and date.

Biểu 1 counts gross flows: every time a member's membership entered or left the subtree during the period
(by the hierarchy valid on each day), classified by the fact of that day — an admission, a re-admission, an
arrival from another province, an exit, a move by transfer or reorganization, or (with no member fact) a unit
re-attached across the subtree's border. It reconciles by construction: opening + increases − decreases =
closing. Moves between units inside the subtree are neither.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gateway.projections.figures import AGGREGATED_KINDS
from gateway.running_sums import running_sum


def tree(name: str, day: str) -> str:
    return (f"{name}(unit_id) AS (SELECT unit_id FROM unit_versions WHERE unit_id = %(root)s"
            f" AND valid_from <= %({day})s AND %({day})s < valid_to"
            f" UNION SELECT v.unit_id FROM unit_versions v JOIN {name} t ON v.parent_id = t.unit_id"
            f" WHERE v.valid_from <= %({day})s AND %({day})s < v.valid_to)")


def members_at(name: str, tree_name: str, day: str) -> str:
    return (f"{name} AS (SELECT i.member_id, i.status FROM member_intervals i WHERE i.valid_from <= %({day})s"
            f" AND %({day})s < i.valid_to AND i.unit_id IN (SELECT unit_id FROM {tree_name}))")


# Periods during which each unit lay inside the subtree (the hierarchy changes over time), and the pieces of
# membership intervals that fall inside them.
PIECES = """
WITH RECURSIVE sub(unit_id, lo, hi) AS (
    SELECT unit_id, valid_from, valid_to FROM unit_versions WHERE unit_id = %(root)s
    UNION ALL
    SELECT v.unit_id, greatest(v.valid_from, s.lo), least(v.valid_to, s.hi)
      FROM unit_versions v JOIN sub s ON v.parent_id = s.unit_id
     WHERE v.valid_from < s.hi AND s.lo < v.valid_to
),
pieces AS (
    SELECT i.member_id, greatest(i.valid_from, s.lo) AS lo, least(i.valid_to, s.hi) AS hi
      FROM member_intervals i JOIN sub s ON i.unit_id = s.unit_id
     WHERE i.valid_from < s.hi AND s.lo < i.valid_to AND i.valid_from <= %(closing)s AND %(opening)s < i.valid_to
)
"""

ENTRY = """
CASE
  WHEN f.event_type = 'MemberReadmitted' THEN 'readmitted'
  WHEN f.event_type = 'MemberEnrolled' AND f.data->>'source' = 'admission' THEN 'admitted'
  WHEN f.event_type = 'MemberEnrolled' AND f.data->>'source' = 'incoming_transfer' THEN 'transferred_in_other_province'
  WHEN f.event_type = 'MemberEnrolled' THEN 'enrolled_existing'
  WHEN f.event_type = 'MemberUnitChanged' THEN 'moved_in'
  ELSE 'reorganized_in'
END"""

EXIT = """
CASE
  WHEN f.event_type = 'MemberLeftParty' THEN f.data->>'reason'
  WHEN f.event_type = 'MemberDied' THEN 'deceased'
  WHEN f.event_type = 'MemberTransferredOut' THEN 'transferred_out_other_province'
  WHEN f.event_type = 'MemberUnitChanged' THEN 'moved_out'
  ELSE 'reorganized_out'
END"""

# Gross flows: every piece that begins inside the period without continuing another is an entry, every piece
# that ends inside it without being continued is an exit; so opening + entries - exits = closing exactly.
BIEU_1 = PIECES + f"""
SELECT 'opening' AS direction, 'total' AS category, count(DISTINCT member_id) AS n FROM pieces
 WHERE lo <= %(opening)s AND %(opening)s < hi
UNION ALL SELECT 'closing', 'total', count(DISTINCT member_id) FROM pieces WHERE lo <= %(closing)s AND %(closing)s < hi
UNION ALL SELECT 'increase', coalesce(x.category, 'reorganized_in'), count(*) FROM pieces p LEFT JOIN LATERAL (
    SELECT {ENTRY} AS category FROM member_facts f WHERE f.member_id = p.member_id AND f.effective_on = p.lo
     AND f.event_type IN ('MemberEnrolled', 'MemberReadmitted', 'MemberUnitChanged')
     ORDER BY f.seq DESC LIMIT 1) x ON true
 WHERE p.lo > %(opening)s AND p.lo <= %(closing)s
   AND NOT EXISTS (SELECT 1 FROM pieces q WHERE q.member_id = p.member_id AND q.hi = p.lo)
 GROUP BY 2
UNION ALL SELECT 'decrease', coalesce(x.category, 'reorganized_out'), count(*) FROM pieces p LEFT JOIN LATERAL (
    SELECT {EXIT} AS category FROM member_facts f WHERE f.member_id = p.member_id AND f.effective_on = p.hi
     AND f.event_type IN ('MemberLeftParty', 'MemberDied', 'MemberTransferredOut', 'MemberUnitChanged')
     ORDER BY f.seq DESC LIMIT 1) x ON true
 WHERE p.hi > %(opening)s AND p.hi <= %(closing)s
   AND NOT EXISTS (SELECT 1 FROM pieces q WHERE q.member_id = p.member_id AND q.lo = p.hi)
 GROUP BY 2
"""

# The forms count age by year of birth (the report's year minus the year of birth).
AGE_BAND = """
CASE
  WHEN age <= 30 THEN '18-30' WHEN age <= 35 THEN '31-35' WHEN age <= 40 THEN '36-40'
  WHEN age <= 45 THEN '41-45' WHEN age <= 50 THEN '46-50' WHEN age <= 55 THEN '51-55'
  WHEN age <= 60 THEN '56-60' ELSE 'over_60'
END"""

def age_band(age: int) -> str:
    """AGE_BAND in Python, for ages counted from the pre-aggregated years of birth."""
    for top, band in ((30, "18-30"), (35, "31-35"), (40, "36-40"), (45, "41-45"), (50, "46-50"), (55, "51-55"),
                      (60, "56-60")):
        if age <= top:
            return band
    return "over_60"


ERA = """
CASE
  WHEN m.admitted_on < DATE '1945-08-19' THEN 'before_1945' WHEN m.admitted_on < DATE '1954-07-21' THEN '1945_1954'
  WHEN m.admitted_on < DATE '1975-04-30' THEN '1954_1975' ELSE 'after_1975'
END"""

COMPOSITION = f"""
SELECT d.dimension, d.value, count(*) AS n FROM people p JOIN members m ON m.member_id = p.member_id
CROSS JOIN LATERAL (SELECT (date_part('year', %(age_on)s::date) - date_part('year', m.birth_date))::int AS age) a
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


async def rows_of(pool: AsyncConnectionPool, query: str, params: dict[str, Any] | list[Any]
                  ) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


class StatisticsRecount:
    """The forms counted from the detail rows (linear in the subtree's members): the definition the
    pre-aggregated figures are held to."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool


    async def bieu1(self, root: uuid.UUID, period: Period) -> dict[tuple[str, str], int]:
        rows = await rows_of(self.pool, BIEU_1, {"root": root, "opening": period.opening, "closing": period.end})
        return {(r["direction"], r["category"]): int(r["n"]) for r in rows}

    async def bieu2(self, root: uuid.UUID, period: Period) -> dict[tuple[str, str], int]:
        rows = await rows_of(self.pool, BIEU_2, {"root": root, "opening": period.opening, "closing": period.end,
                                         "age_on": period.end})
        return {(r["dimension"], r["value"]): int(r["n"]) for r in rows}

    async def bieu3(self, root: uuid.UUID, day: dt.date) -> dict[tuple[str, str], int]:
        rows = await rows_of(self.pool, BIEU_3, {"root": root, "closing": day, "age_on": day})
        return {(r["dimension"], r["value"]): int(r["n"]) for r in rows}

    async def bieu5(self, root: uuid.UUID, day: dt.date) -> dict[str, int]:
        rows = await rows_of(self.pool, BIEU_5, {"root": root, "closing": day})
        return {r["kind"]: int(r["n"]) for r in rows}


COMPOSITION_DIMENSIONS = ("total", "status", "gender", "age_band", "ethnicity", "religion", "education",
                          "occupation", "admission_era")

# Each range of each day's running sums (gateway.running_sums) is one probe of the key's index, driven by a list
# of the ranges; the boundary the ranges were computed with is read in the same snapshot. As a union of one range
# scan per range, PostgreSQL ran the scans in two parallel workers, whose start cost more than the reads (the city's
# four days at `hanoi`: 9.5-15 ms, up to 58 ms beside the form's other statements, each starting its own workers;
# 1.4 ms as a loop over the ranges). A list of values cannot be split among workers, so the loop stays in one
# process; OFFSET 0 keeps each range a probe of the index (joined, a root's every row was read and hashed: 28 ms for
# the city at `small`).
_RANGES = """
SELECT false, s.dimension, s.value, {sums}
  FROM (VALUES {ranges}) AS r(ix, sign, grain, lo, hi)
 CROSS JOIN LATERAL (SELECT dimension, value, delta FROM statistics_deltas
                      WHERE root_id = %s AND grain = r.grain AND period_start >= r.lo AND period_start < r.hi
                     OFFSET 0) AS s
 GROUP BY 2, 3
UNION ALL SELECT true, 'boundary', boundary::text{nothing} FROM statistics_boundary"""
_RANGE = '(%s::int, %s::int, %s::"char", %s::date, %s::date)'


def figures_at(root: uuid.UUID, days: list[dt.date], boundary: dt.date) -> tuple[str, list[Any]]:
    """A row per (dimension, value) with its running sum on each day, one column a day (a row per day and pair
    made the API build four times as many rows for the city's forms); and a row with the boundary."""
    ranges, params = [], []
    for ix, day in enumerate(days):
        for part in running_sum(day, boundary):
            ranges.append(_RANGE)
            params += [ix, part.sign, part.grain, part.lo, part.hi]
    sums = ", ".join(f"(sum(r.sign * s.delta) FILTER (WHERE r.ix = {ix}))::int" for ix in range(len(days)))
    return _RANGES.format(ranges=", ".join(ranges), sums=sums, nothing=", NULL::int" * len(days)), [*params, root]


# New members are few: found by their facts in the period, then placed in the subtree by the ancestry.
BIEU_2_FAST = f"""
WITH people AS (
    SELECT DISTINCT i.member_id, i.status FROM member_facts f
      JOIN member_intervals i ON i.member_id = f.member_id AND i.valid_from <= %(closing)s AND %(closing)s < i.valid_to
      JOIN unit_ancestry a ON a.unit_id = i.unit_id AND a.ancestor_id = %(root)s
                          AND a.lo <= %(closing)s AND %(closing)s < a.hi
     WHERE f.effective_on > %(opening)s AND f.effective_on <= %(closing)s
       AND (f.event_type = 'MemberReadmitted' OR (f.event_type = 'MemberEnrolled' AND f.data->>'source' = 'admission'))
)
{COMPOSITION}"""


Figures = dict[tuple[str, str], int]

_boundaries: weakref.WeakKeyDictionary[AsyncConnectionPool, dt.date] = weakref.WeakKeyDictionary()
"""The boundary of the running sums last seen through each pool: a stale one costs one more round trip."""


class StatisticsQueries:
    """The forms from the pre-aggregated running sums (gateway.projections.figures)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def figures(self, root: uuid.UUID, days: list[dt.date]) -> dict[dt.date, Figures]:
        """Every running sum of the subtree on each day: composition, organizations by kind, and the increases
        and decreases since the beginning."""
        wanted = sorted(set(days))
        boundary = _boundaries.get(self.pool, dt.date(1900, 1, 1))
        while True:
            async with self.pool.connection() as conn:
                rows = await (await conn.execute(*figures_at(root, wanted, boundary))).fetchall()
            held = next(dt.date.fromisoformat(value) for is_boundary, _, value, *_ in rows if is_boundary)
            if held == boundary:
                break
            # The projections moved the boundary (once a year): the ranges are computed again around it.
            _boundaries[self.pool] = boundary = held
        by_column: list[Figures] = [{} for _ in wanted]
        for is_boundary, dimension, value, *sums in rows:
            if not is_boundary:
                for figures, n in zip(by_column, sums, strict=True):
                    if n:
                        figures[(dimension, value)] = n
        return {day: by_column[wanted.index(day)] for day in days}

    @staticmethod
    def bieu1_of(opening: Figures, closing: Figures) -> dict[tuple[str, str], int]:
        figures = {("opening", "total"): opening.get(("total", "all"), 0),
                   ("closing", "total"): closing.get(("total", "all"), 0)}
        for direction in ("increase", "decrease"):
            for key in {k for k in opening.keys() | closing.keys() if k[0] == direction}:
                if n := closing.get(key, 0) - opening.get(key, 0):
                    figures[key] = n
        return figures

    @staticmethod
    def bieu3_of(day: dt.date, figures: Figures) -> dict[tuple[str, str], int]:
        found = {k: n for k, n in figures.items() if k[0] in COMPOSITION_DIMENSIONS}
        for (dimension, value), n in figures.items():
            if dimension == "birth_year":
                band = ("age_band", age_band(day.year - int(value)))
                found[band] = found.get(band, 0) + n
        return {k: n for k, n in found.items() if n}

    @staticmethod
    def bieu5_of(day: Figures) -> dict[str, int]:
        return {v: n for (d, v), n in day.items() if d == "unit_kind"}

    async def bieu1(self, root: uuid.UUID, period: Period) -> dict[tuple[str, str], int]:
        at = await self.figures(root, [period.opening, period.end])
        return self.bieu1_of(at[period.opening], at[period.end])

    async def bieu2(self, root: uuid.UUID, period: Period) -> dict[tuple[str, str], int]:
        rows = await rows_of(self.pool, BIEU_2_FAST, {"root": root, "opening": period.opening, "closing": period.end,
                                              "age_on": period.end})
        return {(r["dimension"], r["value"]): int(r["n"]) for r in rows}

    async def bieu3(self, root: uuid.UUID, day: dt.date) -> dict[tuple[str, str], int]:
        return self.bieu3_of(day, (await self.figures(root, [day]))[day])

    async def bieu5(self, root: uuid.UUID, day: dt.date) -> dict[str, int]:
        return self.bieu5_of((await self.figures(root, [day]))[day])


@dataclass(frozen=True)
class Forms:
    """Each form for the period and for the comparison period."""

    bieu1: tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]
    bieu2: tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]
    bieu3: tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]
    bieu5: tuple[dict[str, int], dict[str, int]]


async def forms(pool: AsyncConnectionPool, root: uuid.UUID, period: Period, comparison: Period) -> Forms:
    """A committee's forms from its running sums; a smaller unit's counted from its members."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT kind = ANY(%s) FROM units WHERE id = %s", (list(AGGREGATED_KINDS), root))
        row = await cur.fetchone()
    if row is not None and row[0]:
        fast = StatisticsQueries(pool)
        at, b2_now, b2_before = await asyncio.gather(
            fast.figures(root, [period.opening, period.end, comparison.opening, comparison.end]),
            fast.bieu2(root, period), fast.bieu2(root, comparison))
        return Forms((fast.bieu1_of(at[period.opening], at[period.end]),
                      fast.bieu1_of(at[comparison.opening], at[comparison.end])),
                     (b2_now, b2_before),
                     (fast.bieu3_of(period.end, at[period.end]),
                      fast.bieu3_of(comparison.end, at[comparison.end])),
                     (fast.bieu5_of(at[period.end]), fast.bieu5_of(at[comparison.end])))
    slow = StatisticsRecount(pool)
    (b1_now, b1_before, b2_now, b2_before, b3_now, b3_before), (b5_now, b5_before) = await asyncio.gather(
        asyncio.gather(slow.bieu1(root, period), slow.bieu1(root, comparison),
                       slow.bieu2(root, period), slow.bieu2(root, comparison),
                       slow.bieu3(root, period.end), slow.bieu3(root, comparison.end)),
        asyncio.gather(slow.bieu5(root, period.end), slow.bieu5(root, comparison.end)))
    return Forms((b1_now, b1_before), (b2_now, b2_before), (b3_now, b3_before), (b5_now, b5_before))
