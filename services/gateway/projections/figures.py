"""The statistics forms pre-aggregated per subtree, kept incrementally by the units and members projections.

Every figure the forms ask of a subtree on a day is a running sum: `statistics_deltas` holds, for each
committee (AGGREGATED_KINDS) taken as a subtree's root, how each (dimension, value) changes on each day, and the
same changes summed by month and by year, so a sum up to any day reads a few thousand rows whatever the
history's length.

What a subtree counts follows from three derived tables:
- `unit_ancestry`: each unit's ancestors (and itself) with the period it lay under each, the hierarchy's history
  folded so a query never walks the tree;
- `member_intervals`: where each member counted, with which status (members.py);
- `member_transitions`: the days a member's interval ended or began, classified by the member's fact that day.

The figures are a sum over atoms, each a function of rows of those tables:
- an interval in a unit and an ancestry row of that unit: the interval's membership (by every dimension, and
  by year of birth, from which the forms' age bands follow for any year) inside the period the unit lay under
  the ancestor, and, when the unit moved under
  or out of the ancestor while the interval ran, a reorganization increase or decrease;
- a unit version and an ancestry row: an organization of that kind;
- a transition: an increase for every ancestor of the new unit that was not an ancestor of the old one the day
  before, and the converse decrease.
A change collects the atoms it touches before (sign −1) and after (+1) and adds the difference, so the table is
always what a recount of the current rows would give: gateway.statistics keeps that recount, and a property test
holds the two equal on generated histories.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from gateway.projections.base import create_work_tables, empty_work_tables, session_holds

FOREVER = "DATE '9999-12-31'"

DDL = """
-- [lo, hi): the unit lay under ancestor_id (a unit is its own ancestor from its establishment); only the
-- ancestors whose figures are kept (AGGREGATED_KINDS).
CREATE TABLE IF NOT EXISTS unit_ancestry (
    unit_id uuid NOT NULL,
    ancestor_id uuid NOT NULL,
    lo date NOT NULL,
    hi date NOT NULL,
    PRIMARY KEY (unit_id, ancestor_id, lo)
);
CREATE INDEX IF NOT EXISTS unit_ancestry_below ON unit_ancestry (ancestor_id, lo, hi, unit_id);

CREATE TABLE IF NOT EXISTS member_transitions (
    member_id uuid NOT NULL,
    day date NOT NULL,
    from_unit uuid,
    to_unit uuid,
    entry text,
    exit text,
    PRIMARY KEY (member_id, day)
);
CREATE INDEX IF NOT EXISTS member_transitions_from ON member_transitions (from_unit) WHERE from_unit IS NOT NULL;
CREATE INDEX IF NOT EXISTS member_transitions_to ON member_transitions (to_unit) WHERE to_unit IS NOT NULL;

-- The text keys compare bytewise (COLLATE "C"): the upserts of every change compare them, and a locale's
-- comparison costs several times more for the same order of these ASCII codes.
-- grain 'd': the change on period_start; 'm' and 'y': the changes of the month or year starting there; 'b':
-- every change before period_start, which is the boundary (gateway.running_sums).
CREATE TABLE IF NOT EXISTS statistics_deltas (
    root_id uuid NOT NULL,
    grain "char" NOT NULL,
    period_start date NOT NULL,
    dimension text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    delta integer NOT NULL,
    PRIMARY KEY (root_id, grain, period_start, dimension, value)
) WITH (fillfactor = 70);
-- A recount makes a new table that takes this one's place (figures._make_the_next_sums and
-- _swap_in_the_next_sums): an index or a storage parameter added here is made there too.

-- A new table starts with its boundary before every change (no 'b' rows needed); the projections move it to
-- the current year's 1 January, so that the days a report asks about read few rows.
CREATE TABLE IF NOT EXISTS statistics_boundary (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    boundary date NOT NULL
);
INSERT INTO statistics_boundary (boundary) VALUES (DATE '1900-01-01') ON CONFLICT DO NOTHING;

-- A row while the running sums are being caught up with (SUMS_DEFERRED): statistics are refused until a recount
-- has made them whole again (gateway.projections.CatchingUp).
CREATE TABLE IF NOT EXISTS statistics_pending (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    since timestamptz NOT NULL DEFAULT now()
);
"""

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS figures_intervals (
    sign integer, unit_id uuid, valid_from date, valid_to date, status text, gender text, birth_date date,
    ethnicity text, religion text, education text, occupation text, era text);
CREATE TEMP TABLE IF NOT EXISTS figures_transitions (
    sign integer, day date, from_unit uuid, to_unit uuid, entry text, exit text);
CREATE TEMP TABLE IF NOT EXISTS figures_versions (
    sign integer, unit_id uuid, valid_from date, valid_to date, kind text);
CREATE TEMP TABLE IF NOT EXISTS figures_changes (
    root_id uuid, day date, dimension text COLLATE "C", value text COLLATE "C", delta integer);
CREATE TEMP TABLE IF NOT EXISTS figures_ancestry (
    unit_id uuid, ancestor_id uuid, lo date, hi date);
"""


# Committees keep pre-aggregated figures; a grassroots cell, a sub-committee or a cell is small enough to count
# from its members when asked, and keeping theirs would multiply the rows by the depth of the tree.
AGGREGATED_KINDS = ("city_committee", "district_committee", "commune_committee", "sector_committee",
                    "grassroots_committee")


_MEMBER_ROW = """
SELECT %(sign)s, i.unit_id, i.valid_from, i.valid_to, i.status, m.gender, m.birth_date,
       CASE WHEN coalesce(m.ethnicity, 'Kinh') = 'Kinh' THEN 'kinh' ELSE 'minority' END,
       CASE WHEN m.religion IS NULL OR m.religion IN ('', 'Không') THEN 'none' ELSE 'religious' END,
       coalesce(m.education, 'unknown'), coalesce(m.occupation, 'unknown'),
       CASE WHEN m.admitted_on < DATE '1945-08-19' THEN 'before_1945'
            WHEN m.admitted_on < DATE '1954-07-21' THEN '1945_1954'
            WHEN m.admitted_on < DATE '1975-04-30' THEN '1954_1975' ELSE 'after_1975' END
  FROM member_intervals i JOIN members m ON m.member_id = i.member_id
"""

_EXPAND = f"""
INSERT INTO figures_changes (root_id, day, dimension, value, delta)
WITH iv AS (
    SELECT unit_id, valid_from, valid_to, status, gender, birth_date, ethnicity, religion, education, occupation,
           era, sum(sign)::int AS n
      FROM figures_intervals GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 HAVING sum(sign) <> 0
),
tr AS (
    SELECT day, from_unit, to_unit, entry, exit, sum(sign)::int AS n
      FROM figures_transitions GROUP BY 1, 2, 3, 4, 5 HAVING sum(sign) <> 0
),
unit_changes AS (
    SELECT unit_id, day, dimension, value, sum(delta)::int AS delta FROM (
        SELECT iv.unit_id, e.day, d.dimension, d.value, e.sign * iv.n AS delta
          FROM iv
          CROSS JOIN LATERAL (VALUES (iv.valid_from, 1), (iv.valid_to, -1)) AS e(day, sign)
          CROSS JOIN LATERAL (VALUES ('total', 'all'), ('status', iv.status), ('gender', iv.gender),
               ('birth_year', date_part('year', iv.birth_date)::text), ('ethnicity', iv.ethnicity),
               ('religion', iv.religion), ('education', iv.education), ('occupation', iv.occupation),
               ('admission_era', iv.era)) AS d(dimension, value)
         WHERE e.day < {FOREVER}
        UNION ALL
        SELECT v.unit_id, e.day, 'unit_kind', v.kind, e.sign * v.sign
          FROM figures_versions v CROSS JOIN LATERAL (VALUES (v.valid_from, 1), (v.valid_to, -1)) AS e(day, sign)
         WHERE e.day < {FOREVER}
    ) x GROUP BY 1, 2, 3, 4 HAVING sum(delta) <> 0
),
-- The ancestry of the units concerned, read once by its key (joined whole, it was hashed again for every branch),
-- a probe of the index per unit (see _ANCESTRY on OFFSET 0).
a AS MATERIALIZED (
    SELECT x.* FROM (SELECT unit_id FROM iv UNION SELECT from_unit FROM tr UNION SELECT to_unit FROM tr
                     UNION SELECT unit_id FROM figures_versions) AS concerned
     CROSS JOIN LATERAL (SELECT * FROM unit_ancestry x WHERE x.unit_id = concerned.unit_id OFFSET 0) AS x
)
-- A move inside a subtree takes from and gives to its root on the same day: summed here, most changes cancel.
SELECT root_id, day, dimension, value, sum(delta) FROM (
SELECT a.ancestor_id AS root_id, greatest(c.day, a.lo) AS day, c.dimension, c.value, c.delta
  FROM unit_changes c JOIN a ON a.unit_id = c.unit_id AND c.day < a.hi
UNION ALL
SELECT a.ancestor_id, a.hi, c.dimension, c.value, -c.delta
  FROM unit_changes c JOIN a ON a.unit_id = c.unit_id AND c.day < a.hi AND a.hi < {FOREVER}
UNION ALL
SELECT a.ancestor_id, a.lo, 'increase', 'reorganized_in', iv.n
  FROM iv JOIN a ON a.unit_id = iv.unit_id AND iv.valid_from < a.lo AND a.lo < iv.valid_to
UNION ALL
SELECT a.ancestor_id, a.hi, 'decrease', 'reorganized_out', iv.n
  FROM iv JOIN a ON a.unit_id = iv.unit_id AND iv.valid_from < a.hi AND a.hi < iv.valid_to
UNION ALL
SELECT a.ancestor_id, t.day, 'increase', t.entry, t.n
  FROM tr t JOIN a ON a.unit_id = t.to_unit AND a.lo <= t.day AND t.day < a.hi
 WHERE NOT EXISTS (SELECT 1 FROM a AS b WHERE b.unit_id = t.from_unit AND b.ancestor_id = a.ancestor_id
                      AND b.lo < t.day AND t.day <= b.hi)
UNION ALL
SELECT a.ancestor_id, t.day, 'decrease', t.exit, t.n
  FROM tr t JOIN a ON a.unit_id = t.from_unit AND a.lo < t.day AND t.day <= a.hi
 WHERE NOT EXISTS (SELECT 1 FROM a AS b WHERE b.unit_id = t.to_unit AND b.ancestor_id = a.ancestor_id
                      AND b.lo <= t.day AND t.day < b.hi)
) AS changes GROUP BY 1, 2, 3, 4 HAVING sum(delta) <> 0
"""

_SUMS_INTO = """
INSERT INTO {table} (root_id, grain, period_start, dimension, value, delta)
WITH daily AS (
    SELECT root_id, day, dimension, value, sum(delta)::int AS delta FROM {changes}
     GROUP BY 1, 2, 3, 4 HAVING sum(delta) <> 0
)
-- The days are the daily sums as they are; only the months, years and boundary are summed again.
SELECT root_id, 'd'::"char", day, dimension, value, delta FROM daily
UNION ALL
SELECT root_id, g.grain, CASE g.grain WHEN 'y' THEN day - date_part('doy', day)::int + 1
                                      WHEN 'm' THEN day - date_part('day', day)::int + 1
                                      ELSE b.boundary END,
       dimension, value, sum(delta)
  FROM daily CROSS JOIN {boundary} b
  CROSS JOIN (VALUES ('y'::"char"), ('m'::"char"), ('b'::"char")) AS g(grain)
 WHERE g.grain <> 'b' OR day < b.boundary
 GROUP BY 1, 2, 3, 4, 5 HAVING sum(delta) <> 0
"""
_SUMS = _SUMS_INTO.format(table="statistics_deltas", changes="figures_changes", boundary="statistics_boundary")
# Written in key order, a recount's sums lay a root's rows of one grain side by side, so a form's range reads a few
# pages rather than a page a row (the city's four days at `hanoi`, read in one process: ~3,400 pages and 9.5 ms as
# the sums came out of their aggregation, 2.7 ms in key order).
_IN_KEY_ORDER = " ORDER BY 1, 2, 3, 4, 5\n"
_MERGE = _SUMS + _IN_KEY_ORDER + """ON CONFLICT (root_id, grain, period_start, dimension, value)
DO UPDATE SET delta = statistics_deltas.delta + EXCLUDED.delta
"""

# Each unit's ancestors with the periods, from the versions (fragments cut by every version of every ancestor,
# then joined again where they touch, so a period's start or end is a real move).
# OFFSET 0 keeps each step a probe of an index. A projector's statements are prepared after five uses, and the
# generic plan, expecting large steps, hashed every unit version at each one: 1.3 ms a live batch at 7,000 units,
# growing with the register (measured in the running system, bench/RESULTS.md).
_ANCESTRY = """
INSERT INTO figures_ancestry (unit_id, ancestor_id, lo, hi)
WITH RECURSIVE up(unit_id, ancestor_id, lo, hi, depth) AS (
    SELECT unit_id, unit_id, valid_from, valid_to, 0 FROM unit_versions WHERE unit_id = ANY(%(units)b::text[]::uuid[])
    UNION ALL
    SELECT up.unit_id, v.parent_id, greatest(up.lo, v.valid_from), least(up.hi, v.valid_to), up.depth + 1
      FROM up CROSS JOIN LATERAL (
           SELECT parent_id, valid_from, valid_to FROM unit_versions
            WHERE unit_id = up.ancestor_id AND valid_from < up.hi AND up.lo < valid_to AND parent_id IS NOT NULL
           OFFSET 0) AS v
     WHERE up.depth < 64
),
marked AS (
    SELECT unit_id, ancestor_id, lo, hi,
           CASE WHEN lo = lag(hi) OVER (PARTITION BY unit_id, ancestor_id ORDER BY lo) THEN 0 ELSE 1 END AS starts
      FROM up
),
grouped AS (
    SELECT unit_id, ancestor_id, lo, hi,
           sum(starts) OVER (PARTITION BY unit_id, ancestor_id ORDER BY lo) AS run
      FROM marked
)
SELECT unit_id, ancestor_id, min(lo), max(hi) FROM grouped
 WHERE EXISTS (SELECT FROM unit_versions k WHERE k.unit_id = grouped.ancestor_id AND k.kind = ANY(%(kinds)s)
                OFFSET 0)
 GROUP BY unit_id, ancestor_id, run
"""


# A rebuild applies the whole history with the ancestry, the running sums and the per-unit counts left alone, then
# counts them once (gateway.projections.count_deferred): kept through every batch, they took half of a rebuild's
# time, and more as the sums grew.
DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("figures_deferred", default=False)
# The live projector far behind (gateway.projections.CatchingUp) leaves only the running sums alone: the ancestry
# also serves the member lists, and stays current.
SUMS_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("figures_sums_deferred", default=False)
# The recount's tables of its own: the sums it makes to take the running sums' place, and the changes that its
# connections side by side expand, in parts by root (see `_count_side_by_side`).
_NEXT = "statistics_deltas_next"
_SHARES = 2
_CHANGES = "statistics_recount"
_RECOUNTED_TABLES = frozenset({"unit_ancestry", "statistics_deltas", "statistics_boundary", "statistics_pending",
                               _NEXT, _CHANGES})


def recounted(table: str) -> bool:
    """Whether `recount` writes the table: analysed on its connection (gateway.projections.count_deferred) and by no
    other. Another connection's ANALYZE of the changes' parts holds their lock until its transaction ends, which
    in a rebuild is after the count: the count would wait for it for ever."""
    return table in _RECOUNTED_TABLES or table.startswith(f"{_CHANGES}_")


# Members counted per statement by `recount`: their changes are expanded, summed and merged in memory.
RECOUNT_MEMBERS = 20_000
# Members whose changes one part of a side-by-side count sums at a time. Summed at once, the whole country's changes
# spilled their sorts to temporary files faster than this machine's disk could hold them (bench/RESULTS.md).
RECOUNT_PART_MEMBERS = 200_000

# A reorganization's changes are hundreds of thousands of rows: summed in memory, not in spilled batches.
_WORK_MEM = "64MB"


def prepare_session(conn: psycopg.Connection) -> None:
    """The work tables and memory of a projector's connection, made once outside any transaction."""
    create_work_tables(conn, "figures", _STAGING)
    conn.execute(f"SET work_mem = '{_WORK_MEM}'")


def _stage(conn: psycopg.Connection) -> None:
    if not session_holds(conn, "figures"):
        create_work_tables(conn, "figures", _STAGING)
        conn.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")


def collect_members(conn: psycopg.Connection, member_ids: list[str], sign: int) -> int:
    """The atoms of these members' intervals and transitions, as the tables hold them now; returns how many."""
    params = {"sign": sign, "ids": member_ids}
    with conn.pipeline():
        intervals = conn.execute("INSERT INTO figures_intervals " + _MEMBER_ROW
                                 + " WHERE i.member_id = ANY(%(ids)b::text[]::uuid[])", params)
        transitions = conn.execute(
            "INSERT INTO figures_transitions SELECT %(sign)s, day, from_unit, to_unit, entry, exit"
            " FROM member_transitions WHERE member_id = ANY(%(ids)b::text[]::uuid[])", params)
    return intervals.rowcount + transitions.rowcount


def collect_units(conn: psycopg.Connection, unit_ids: list[str], sign: int, *, versions_of: list[str]) -> int:
    """The atoms of the members' intervals in these units, the transitions from or to them, and the active
    versions of the units in `versions_of`; returns how many."""
    params = {"sign": sign, "ids": unit_ids, "versions_of": versions_of}
    # Three statements in one round trip: none needs another's answer.
    with conn.pipeline():
        intervals = conn.execute("INSERT INTO figures_intervals " + _MEMBER_ROW
                                 + " WHERE i.unit_id = ANY(%(ids)b::text[]::uuid[])", params)
        transitions = conn.execute(
            "INSERT INTO figures_transitions SELECT %(sign)s, day, from_unit, to_unit, entry, exit"
            " FROM member_transitions WHERE from_unit = ANY(%(ids)b::text[]::uuid[])"
            " UNION ALL SELECT %(sign)s, day, from_unit, to_unit, entry, exit FROM member_transitions"
            " WHERE to_unit = ANY(%(ids)b::text[]::uuid[])"
            " AND (from_unit IS NULL OR NOT from_unit = ANY(%(ids)b::text[]::uuid[]))",
            params)
        versions = _insert_versions(conn, versions_of, sign)
    return intervals.rowcount + transitions.rowcount + (versions.rowcount if versions is not None else 0)


def collect_versions(conn: psycopg.Connection, unit_ids: list[str], sign: int) -> int:
    inserted = _insert_versions(conn, unit_ids, sign)
    return inserted.rowcount if inserted is not None else 0


def _insert_versions(conn: psycopg.Connection, unit_ids: list[str], sign: int) -> psycopg.Cursor[Any] | None:
    if not unit_ids:
        return None
    return conn.execute("INSERT INTO figures_versions SELECT %s, unit_id, valid_from, valid_to, kind FROM unit_versions"
                        " WHERE unit_id = ANY(%b::text[]::uuid[]) AND status = 'active'", (sign, unit_ids))


def expand(conn: psycopg.Connection, collected: int, *, into: str = _EXPAND) -> int:
    """The `collected` atoms, through the ancestry as it stands, into changes per subtree root (`figures_changes`,
    or what the statement `into` names); returns how many changes. Nothing collected (a new unit without members
    yet) costs no statement."""
    if collected == 0:
        return 0
    _analyze_if_many(conn, collected, "figures_intervals, figures_transitions")
    changes = conn.execute(into).rowcount
    empty_work_tables(conn, "figures_intervals", "figures_transitions", "figures_versions")
    return changes


# A recount sums every change of the register in one statement: in memory rather than in spilled sorts
# (measured at `small`: 3.9 s with 64 MB, 3.3 s with 256 MB).
_RECOUNT_WORK_MEM = "256MB"


def settle(conn: psycopg.Connection, changes: int) -> None:
    """Adds the expanded `changes` to the running sums."""
    if changes == 0:
        return
    _keep_boundary_current(conn)
    _analyze_if_many(conn, changes, "figures_changes")
    conn.execute(_MERGE)
    empty_work_tables(conn, "figures_changes")


def _replace_the_sums(conn: psycopg.Connection) -> None:
    """The running sums, every one counted from the expanded changes, into a table of their own that takes the
    place of the old one. Its key's index is made once the rows are in, which costs less than keeping it row by
    row (at `small`: 2.5 s against 3.3 s for the statement and its index); deleting the old rows and inserting
    the new ones beside them, under the same keys, took 5.6 s. Readers of the old table wait only for the swap's
    last statements: the API's statistics are refused meanwhile anyway (`statistics_pending`)."""
    conn.execute(f"SET LOCAL work_mem = '{_RECOUNT_WORK_MEM}'")
    # Every row is counted afresh, around the current year's 1 January: no 'b' row to carry over.
    conn.execute(f"UPDATE statistics_boundary SET boundary = {_CURRENT_YEAR}")
    _make_the_next_sums(conn)
    conn.execute(_SUMS_INTO.format(table=_NEXT, changes="figures_changes", boundary="statistics_boundary")
                 + _IN_KEY_ORDER)
    _swap_in_the_next_sums(conn)
    empty_work_tables(conn, "figures_changes")


def _make_the_next_sums(conn: psycopg.Connection) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {_NEXT}")
    conn.execute(f"CREATE TABLE {_NEXT} (LIKE statistics_deltas INCLUDING DEFAULTS) WITH (fillfactor = 70)")


def _swap_in_the_next_sums(conn: psycopg.Connection) -> None:
    conn.execute(f"SET LOCAL maintenance_work_mem = '{_RECOUNT_WORK_MEM}'")
    conn.execute(f"ALTER TABLE {_NEXT} ADD CONSTRAINT {_NEXT}_pkey"
                 " PRIMARY KEY (root_id, grain, period_start, dimension, value)")
    conn.execute("DROP TABLE statistics_deltas")
    conn.execute(f"ALTER TABLE {_NEXT} RENAME TO statistics_deltas")
    conn.execute(f"ALTER INDEX {_NEXT}_pkey RENAME TO statistics_deltas_pkey")


Connect = Callable[[], psycopg.Connection]
"""Opens a connection to the projections' schema, outside any transaction."""

_EXPAND_INTO_CHANGES = _EXPAND.replace("INSERT INTO figures_changes", f"INSERT INTO {_CHANGES}", 1)
# A part's sums; the boundary is the one the recount chose, passed in, since its own transaction sets it.
_SUMS_OF_A_PART = (_SUMS_INTO.format(table=_NEXT, boundary="(SELECT %(boundary)s::date AS boundary)", changes="{part}")
                   + _IN_KEY_ORDER)


def _parts(members: int, members_per_part: int) -> int:
    """How many parts the changes of `members` members are summed in: a multiple of the connections side by side."""
    return _SHARES * max(1, -(-members // (_SHARES * members_per_part)))


def _count_side_by_side(conn: psycopg.Connection, beside: Connect, units: list[str], members: list[str],
                        members_at_once: int, members_per_part: int) -> None:
    """The running sums counted on two connections from `beside`: each expands half the members into the changes,
    a table in parts by a hash of the root; then each sums every other part into the new sums, emptying the part
    as it goes, and `conn` keys the new sums and swaps them in. A root's changes are all in one part, so the parts'
    sums are the sums. The temporary files of a part's sorts, and the disk the changes hold, stay a part's worth
    (at `national`, ~28 million events, one statement per half spilled 8.5 GB and growing). They read what is
    committed: `conn` must have written nothing that the count reads."""
    boundary = conn.execute(f"SELECT {_CURRENT_YEAR}").fetchone()[0]  # type: ignore[index]
    parts = [f"{_CHANGES}_{part}" for part in range(_parts(len(members), members_per_part))]
    with beside() as setup:
        setup.execute(f"DROP TABLE IF EXISTS {_CHANGES}")
        setup.execute(f"CREATE TABLE {_CHANGES} (root_id uuid, day date, dimension text COLLATE \"C\","
                      " value text COLLATE \"C\", delta integer) PARTITION BY HASH (root_id)")
        for remainder, part in enumerate(parts):
            setup.execute(f"CREATE UNLOGGED TABLE {part} PARTITION OF {_CHANGES}"
                          f" FOR VALUES WITH (MODULUS {len(parts)}, REMAINDER {remainder})")
        _make_the_next_sums(setup)
        setup.commit()

    def expand_a_share(share: int) -> None:
        with beside() as helper:
            prepare_session(helper)
            if share == 0 and units:
                expand(helper, collect_versions(helper, units, 1), into=_EXPAND_INTO_CHANGES)
            mine = members[share::_SHARES]
            for start in range(0, len(mine), members_at_once):
                expand(helper, collect_members(helper, mine[start:start + members_at_once], 1),
                       into=_EXPAND_INTO_CHANGES)

    def sum_a_share(share: int) -> None:
        with beside() as helper:
            for part in parts[share::_SHARES]:
                helper.execute(f"ANALYZE {part}")
                helper.execute(f"SET LOCAL work_mem = '{_RECOUNT_WORK_MEM}'")
                helper.execute(_SUMS_OF_A_PART.format(part=part), {"boundary": boundary})
                helper.execute(f"TRUNCATE {part}")
                helper.commit()

    try:
        with ThreadPoolExecutor(max_workers=_SHARES, thread_name_prefix="recount") as pool:
            list(pool.map(expand_a_share, range(_SHARES)))
            list(pool.map(sum_a_share, range(_SHARES)))
    finally:
        # Dropped whatever becomes of `conn`'s transaction: at `hanoi` they hold millions of rows.
        with beside() as cleanup:
            cleanup.execute(f"DROP TABLE IF EXISTS {_CHANGES}")
    conn.execute("UPDATE statistics_boundary SET boundary = %s", (boundary,))
    _swap_in_the_next_sums(conn)


ANALYZE_FROM_ROWS = 100


def _analyze_if_many(conn: psycopg.Connection, rows: int, tables: str) -> None:
    """Without statistics the planner takes a temporary table for a few hundred rows and loops over it. Below
    ANALYZE_FROM_ROWS (a command's few rows) any plan is quick: a command's batch saves two statements."""
    if rows >= ANALYZE_FROM_ROWS:
        conn.execute(f"ANALYZE {tables}")


_CURRENT_YEAR = "date_trunc('year', now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date"


def _keep_boundary_current(conn: psycopg.Connection) -> None:
    row = conn.execute(f"SELECT boundary, {_CURRENT_YEAR} FROM statistics_boundary").fetchone()
    if row is not None and row[0] != row[1]:
        move_boundary(conn, row[1])


def move_boundary(conn: psycopg.Connection, boundary: dt.date) -> None:
    """Carries the 'b' rows to another 1 January, adding (or taking away) the years between."""
    if (boundary.month, boundary.day) != (1, 1):
        raise ValueError(f"the boundary must be a 1 January, not {boundary}")
    conn.execute("""
        WITH old AS (SELECT boundary FROM statistics_boundary FOR UPDATE),
        moved AS (
            DELETE FROM statistics_deltas s USING old
             WHERE s.grain = 'b' AND s.period_start = old.boundary
            RETURNING s.root_id, s.dimension, s.value, s.delta)
        INSERT INTO statistics_deltas (root_id, grain, period_start, dimension, value, delta)
        SELECT root_id, 'b', %(new)s, dimension, value, sum(delta) FROM (
            SELECT root_id, dimension, value, delta FROM moved
            UNION ALL
            SELECT s.root_id, s.dimension, s.value,
                   CASE WHEN %(new)s > old.boundary THEN s.delta ELSE -s.delta END
              FROM statistics_deltas s, old
             WHERE s.grain = 'y' AND s.period_start >= least(old.boundary, %(new)s)
               AND s.period_start < greatest(old.boundary, %(new)s)
        ) x GROUP BY root_id, dimension, value HAVING sum(delta) <> 0""", {"new": boundary})
    conn.execute("UPDATE statistics_boundary SET boundary = %s", (boundary,))


def member_change(conn: psycopg.Connection, member_ids: list[str]) -> MemberChange:
    return MemberChange(conn, member_ids)


class MemberChange:
    """`with member_change(conn, ids):` around rewriting those members' rows, intervals and transitions."""

    def __init__(self, conn: psycopg.Connection, member_ids: list[str]) -> None:
        self.conn, self.member_ids = conn, member_ids
        self.collected = 0

    def __enter__(self) -> None:
        if self.member_ids and not (DEFERRED.get() or SUMS_DEFERRED.get()):
            _stage(self.conn)
            self.collected = collect_members(self.conn, self.member_ids, -1)

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None and self.member_ids and not (DEFERRED.get() or SUMS_DEFERRED.get()):
            self.collected += collect_members(self.conn, self.member_ids, 1)
            settle(self.conn, expand(self.conn, self.collected))


def units_changed(conn: psycopg.Connection, unit_ids: list[str], rewrite_versions: Callable[[], None]) -> None:
    """Rewrites these units' versions (by calling `rewrite_versions()`), then their ancestry and that of every unit
    ever under them, carrying the figures over to the new hierarchy."""
    if DEFERRED.get():
        rewrite_versions()
        return
    sums = not SUMS_DEFERRED.get()
    _stage(conn)
    collected = collect_versions(conn, unit_ids, -1) if sums else 0
    rewrite_versions()
    below = with_descendants(conn, unit_ids)
    conn.execute(_ANCESTRY, {"units": below, "kinds": list(AGGREGATED_KINDS)})
    moved = [r[0] for r in conn.execute(
        "SELECT DISTINCT unit_id::text FROM ("
        " (SELECT unit_id, ancestor_id, lo, hi FROM figures_ancestry"
        "  EXCEPT SELECT unit_id, ancestor_id, lo, hi FROM unit_ancestry"
        "  WHERE unit_id = ANY(%(below)b::text[]::uuid[]))"
        " UNION ALL"
        " (SELECT unit_id, ancestor_id, lo, hi FROM unit_ancestry WHERE unit_id = ANY(%(below)b::text[]::uuid[])"
        "  EXCEPT SELECT unit_id, ancestor_id, lo, hi FROM figures_ancestry)) AS changed",
        {"below": below}).fetchall()]
    touched = sorted(set(moved) | set(unit_ids))
    others = sorted(set(moved) - set(unit_ids))
    changes = expand(conn, collected + collect_units(conn, touched, -1, versions_of=others)) if sums else 0
    if moved:
        with conn.pipeline():
            conn.execute("DELETE FROM unit_ancestry WHERE unit_id = ANY(%b::text[]::uuid[])", (moved,))
            conn.execute("INSERT INTO unit_ancestry SELECT * FROM figures_ancestry"
                         " WHERE unit_id = ANY(%b::text[]::uuid[])", (moved,))
    empty_work_tables(conn, "figures_ancestry")
    if sums:
        changes += expand(conn, collect_units(conn, touched, 1, versions_of=touched))
        settle(conn, changes)


def with_descendants(conn: psycopg.Connection, unit_ids: list[str]) -> list[str]:
    """The units and every unit ever under them, a level of the tree at a time: each level one statement that
    probes the children index for the whole level. As one recursive query, the join was planned as a scan of
    every unit version for each batch (2 ms at `small` for units established with no children, growing with
    the register), and a probe per unit as a scan per unit once a parent had tens of thousands of children."""
    found = list(dict.fromkeys(unit_ids))
    seen = set(found)
    level = found
    while level:
        rows = conn.execute("SELECT DISTINCT unit_id::text FROM unit_versions"
                            " WHERE parent_id = ANY(%b::text[]::uuid[])", (level,)).fetchall()
        level = [r[0] for r in rows if r[0] not in seen]
        seen.update(level)
        found += level
    return found


def recount(conn: psycopg.Connection, *, members_at_once: int = RECOUNT_MEMBERS, beside: Connect | None = None,
            members_per_part: int = RECOUNT_PART_MEMBERS) -> None:
    """The ancestry and the running sums counted afresh from the current rows, as a rebuild does once it has
    applied the history with DEFERRED set: the tables the incremental upkeep leaves, in a few statements. The
    schema is the rebuild's own until the swap (see `settle`). With `beside` (see `recount_sums`), the ancestry
    is committed before the sums are counted: the connections beside read it."""
    _stage(conn)
    conn.execute("DELETE FROM unit_ancestry")
    units = [r[0] for r in conn.execute("SELECT DISTINCT unit_id::text FROM unit_versions").fetchall()]
    if units:
        conn.execute(_ANCESTRY, {"units": units, "kinds": list(AGGREGATED_KINDS)})
        conn.execute("INSERT INTO unit_ancestry SELECT * FROM figures_ancestry")
        conn.execute("ANALYZE unit_ancestry")
        empty_work_tables(conn, "figures_ancestry")
    if beside is not None:
        conn.commit()
    recount_sums(conn, members_at_once=members_at_once, units=units, beside=beside, members_per_part=members_per_part)


def recount_sums(conn: psycopg.Connection, *, members_at_once: int = RECOUNT_MEMBERS,
                 units: list[str] | None = None, beside: Connect | None = None,
                 members_per_part: int = RECOUNT_PART_MEMBERS) -> None:
    """The running sums counted afresh from the current rows through the current ancestry (after SUMS_DEFERRED or
    DEFERRED), and the statistics no longer pending. `units`: every unit with versions, when the caller has them.

    `beside`: where every row the count reads is committed, connections to count it side by side, on both cores
    (`_count_side_by_side`); `conn` then only swaps the new sums in. At `hanoi` one connection took ~60 s: the
    expansion of the atoms ~24 s and the sums' statement ~20 s, each on one core while the other stood idle."""
    _stage(conn)
    if units is None:
        units = [r[0] for r in conn.execute("SELECT DISTINCT unit_id::text FROM unit_versions").fetchall()]
    members = [r[0] for r in conn.execute("SELECT member_id::text FROM members ORDER BY member_id").fetchall()]
    if beside is not None:
        _count_side_by_side(conn, beside, units, members, members_at_once, members_per_part)
    else:
        changes = expand(conn, collect_versions(conn, units, 1)) if units else 0
        for start in range(0, len(members), members_at_once):
            changes += expand(conn, collect_members(conn, members[start:start + members_at_once], 1))
        _analyze_if_many(conn, changes, "figures_changes")
        _replace_the_sums(conn)
    conn.execute("DELETE FROM statistics_pending")


def mark_sums_pending(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO statistics_pending DEFAULT VALUES ON CONFLICT DO NOTHING")


def members_estimate(conn: psycopg.Connection) -> int:
    """The planner's estimate of the member rows (what a recount reads), without counting them."""
    row = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'members'::regclass").fetchone()
    return max(0, row[0]) if row else 0


def sums_pending(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT EXISTS (SELECT FROM statistics_pending)").fetchone() == (True,)
