"""Queries over the projections: trees as of a date, member pages, scoped to the caller's subtree in SQL."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncClientCursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gateway.projections.figures import AGGREGATED_KINDS
from gateway.projections.text import fold

# The planner's estimate of the members: free to read, and enough to choose how to read a page.
_MEMBERS_ESTIMATE = "(SELECT reltuples::bigint FROM pg_class WHERE oid = 'members'::regclass) AS members"


_SORT_COLUMNS = {"NAME": "m.search_name", "ADMITTED_ON": "m.admitted_on::text", "BIRTH_DATE": "m.birth_date::text"}

# A members' page finds its rows through a subtree's units (members_in_unit, member_intervals_in_unit) or through
# the whole table or the names' trigram index, and PostgreSQL weighs them by what a random read costs. Its
# default (4, a spinning disk's) priced the unit-by-unit reads above reading the whole register. At `national`,
# 10 provinces: a search for "nguyen van" at a small province's root read all 1.6 million members' matches
# (300-360 ms, where its own units took 60-120 ms); a ward's members on a past day took 220 ms (18 ms priced at
# 1.1), and its exempted members at a province's root 496 ms (141). In a register grown to 5.5 million members,
# the search at Hanoi's root took 929 ms, and 260 priced at 1.1. The register is read from the buffer pool or a
# solid-state disk, where a random read costs about a sequential one: 1.1 is the value commonly set for such
# disks.
MEMBERS_PLANNER = {"random_page_cost": "1.1"}


def tree_cte(name: str = "tree", roots: str = "roots") -> str:
    """`name(unit_id)`: the units under the roots, by the hierarchy valid on %(day)s."""
    return (f"{name}(unit_id) AS ("
            f" SELECT unit_id FROM unit_versions WHERE unit_id = ANY(%({roots})s)"
            " AND valid_from <= %(day)s AND %(day)s < valid_to"
            f" UNION SELECT v.unit_id FROM unit_versions v JOIN {name} t ON v.parent_id = t.unit_id"
            " WHERE v.valid_from <= %(day)s AND %(day)s < v.valid_to)")


TREE_AT = "WITH RECURSIVE " + tree_cte() + " "

MEMBER_COLUMNS = ("m.member_id, m.full_name, m.gender, m.birth_date, m.citizen_id, m.unit_id, m.host_unit_id, "
                  "m.status, m.source, m.exempted, m.on_screening_list, m.admitted_on, m.official_on, "
                  "m.probation_ends_on, m.card_number, m.card_generation, m.badges, m.ratings, m.interruption_days, "
                  "m.ethnicity, m.religion, m.education, m.occupation, m.phone, m.address, m.left_on, m.leave_reason, "
                  "m.version")



def vietnam_today() -> dt.date:
    """Dates mean Asia/Ho_Chi_Minh days (ARCHITECTURE.md §9.7), whatever the server's zone."""
    return dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()

@dataclass(frozen=True)
class UnitRow:
    id: uuid.UUID
    code: str
    name: str
    kind: str
    parent_id: uuid.UUID | None
    status: str
    established_on: dt.date


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int
    has_next: bool
    has_previous: bool
    start_cursor: str | None
    end_cursor: str | None


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode("\x1f".join(str(p) for p in parts).encode()).decode()


def decode_cursor(cursor: str) -> list[str]:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode().split("\x1f")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor from this API") from exc


class Scope:
    """The caller's reach: None for city-wide, else the units of their subtree (resolved per date)."""

    def __init__(self, unit_code: str | None) -> None:
        self.unit_code = unit_code


_UNIT_COLUMNS = "id, code, name, kind, parent_id, status, established_on"
CELL_COLUMNS = ", ".join(f"cu.{c} AS cell_{c}" for c in _UNIT_COLUMNS.split(", "))
"""A member's unit read in the member's own statement (`LEFT JOIN units cu`): a page of members would otherwise
wait for a second statement, and GraphQL for one awaited resolver per member."""


def take_cell(row: dict[str, Any]) -> dict[str, Any]:
    """Moves the CELL_COLUMNS of a member's row into `row["cell"]` (a UnitRow, or None)."""
    unit = {c: row.pop(f"cell_{c}") for c in _UNIT_COLUMNS.split(", ")}
    row["cell"] = UnitRow(**unit) if unit["id"] is not None else None
    return row


class ReadModels:
    # How long an answer of statistics_pending is reused. The projector defers the running sums only when it is far
    # behind (thousands of events), so a second's delay in noticing adds nothing a reader could tell from that lag,
    # and a statistics request saves a statement.
    PENDING_TTL_S = 1.0

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.statements = 0
        self._pending: tuple[float, dt.datetime | None] = (float("-inf"), None)

    async def fetch(self, query: str, params: Any = None, *, prepare: bool | None = None,
                    planner: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """`prepare=False` plans the statement for its parameters every time (psycopg prepares a statement
        after five uses, and PostgreSQL may then settle on one generic plan for every parameter). `planner` sets
        planner settings (constants of this module) for this statement alone; such a statement is never prepared."""
        self.statements += 1
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            if not planner:
                await cur.execute(query, params, prepare=prepare)
                return await cur.fetchall()
            # Sent as one simple query, its parameters bound here: PostgreSQL runs the statements of one query as
            # one transaction, so the settings hold for this statement alone, in one round trip (a transaction of
            # its own took three more, 0.33 ms).
            settings = "".join(f"SET LOCAL {name} = {value}; " for name, value in planner.items())
            async with AsyncClientCursor(conn, row_factory=dict_row) as client:
                await client.execute(settings + query, params)
                while client.description is None and client.nextset():
                    pass
                return await client.fetchall()

    # Scope -----------------------------------------------------------------------------------------------

    async def scope_roots(self, scope: Scope) -> list[uuid.UUID] | None:
        """The caller's root units (None: everything)."""
        if scope.unit_code is None:
            return None
        rows = await self.fetch("SELECT id FROM units WHERE code = %s AND status = 'active'", (scope.unit_code,))
        return [r["id"] for r in rows]

    async def units_in_scope(self, scope: Scope, day: dt.date) -> set[uuid.UUID] | None:
        roots = await self.scope_roots(scope)
        if roots is None:
            return None
        rows = await self.fetch(TREE_AT + "SELECT unit_id FROM tree", {"roots": roots, "day": day})
        return {r["unit_id"] for r in rows}

    # Units -----------------------------------------------------------------------------------------------

    async def units_by_ids(self, ids: list[uuid.UUID]) -> list[UnitRow | None]:
        rows = await self.fetch(f"SELECT {_UNIT_COLUMNS} FROM units WHERE id = ANY(%s)", (ids,))
        found = {r["id"]: UnitRow(**r) for r in rows}
        return [found.get(i) for i in ids]

    async def unit_by_code(self, code: str) -> UnitRow | None:
        rows = await self.fetch(
            f"SELECT {_UNIT_COLUMNS} FROM units WHERE code = %s ORDER BY status = 'active' DESC LIMIT 1", (code,))
        return UnitRow(**rows[0]) if rows else None

    async def unit_as_of(self, unit_id: uuid.UUID, day: dt.date) -> UnitRow | None:
        rows = await self.fetch(
            "SELECT v.unit_id AS id, v.code, v.name, v.kind, v.parent_id, v.status, u.established_on"
            " FROM unit_versions v JOIN units u ON u.id = v.unit_id"
            " WHERE v.unit_id = %s AND v.valid_from <= %s AND %s < v.valid_to", (unit_id, day, day))
        return UnitRow(**rows[0]) if rows else None

    async def ancestors(self, unit_id: uuid.UUID, day: dt.date) -> list[UnitRow]:
        rows = await self.fetch(
            "WITH RECURSIVE up(unit_id, depth) AS ("
            " SELECT parent_id, 1 FROM unit_versions WHERE unit_id = %(u)s AND valid_from <= %(d)s AND %(d)s < valid_to"
            " UNION ALL SELECT v.parent_id, up.depth + 1 FROM unit_versions v JOIN up ON v.unit_id = up.unit_id"
            " WHERE v.valid_from <= %(d)s AND %(d)s < v.valid_to AND up.depth < 32)"
            " SELECT v.unit_id AS id, v.code, v.name, v.kind, v.parent_id, v.status, u.established_on, up.depth"
            " FROM up JOIN unit_versions v ON v.unit_id = up.unit_id AND v.valid_from <= %(d)s AND %(d)s < v.valid_to"
            " JOIN units u ON u.id = v.unit_id ORDER BY up.depth", {"u": unit_id, "d": day})
        return [UnitRow(**{k: v for k, v in r.items() if k != "depth"}) for r in rows]

    async def unit_page(self, *, scope: Scope, day: dt.date, parent_id: uuid.UUID | None, kind: str | None,
                        search: str | None, first: int, after: str | None) -> Page:
        roots = await self.scope_roots(scope)
        conditions = ["v.valid_from <= %(day)s", "%(day)s < v.valid_to", "v.status = 'active'"]
        params: dict[str, Any] = {"day": day, "roots": roots}
        prefix = ""
        if roots is not None:
            prefix = TREE_AT
            conditions.append("v.unit_id IN (SELECT unit_id FROM tree)")
        if parent_id is not None:
            conditions.append("v.parent_id = %(parent)s")
            params["parent"] = parent_id
        if kind is not None:
            conditions.append("v.kind = %(kind)s")
            params["kind"] = kind
        if search:
            conditions.append("u.search_name LIKE %(search)s")
            params["search"] = f"%{fold(search)}%"
        where = " AND ".join(conditions)
        base = f"FROM unit_versions v JOIN units u ON u.id = v.unit_id WHERE {where}"
        # A scope's subtree or a search: planned for its values, as a members page is (member_page).
        prepare = False if roots is not None or search else None
        total = (await self.fetch(prefix + f"SELECT count(*) AS n {base}", params, prepare=prepare))[0]["n"]
        if after:
            code, unit_id = decode_cursor(after)
            base += " AND (v.code, v.unit_id) > (%(after_code)s, %(after_id)s::uuid)"
            params.update(after_code=code, after_id=unit_id)
        params["limit"] = first + 1
        rows = await self.fetch(
            prefix + "SELECT v.unit_id AS id, v.code, v.name, v.kind, v.parent_id, v.status, u.established_on "
            f"{base} ORDER BY v.code, v.unit_id LIMIT %(limit)s", params, prepare=prepare)
        units = [UnitRow(**r) for r in rows[:first]]
        return Page(units, total, len(rows) > first, after is not None,
                    encode_cursor(units[0].code, units[0].id) if units else None,
                    encode_cursor(units[-1].code, units[-1].id) if units else None)

    async def unit_history(self, unit_id: uuid.UUID) -> list[dict[str, Any]]:
        return await self.fetch(
            "SELECT seq, effective_on, event_type, data, recorded_at, actor FROM unit_facts WHERE unit_id = %s"
            " ORDER BY seq", (unit_id,))

    # Members ---------------------------------------------------------------------------------------------

    async def members_with_units(self, ids: list[uuid.UUID]
                                 ) -> tuple[list[dict[str, Any] | None], dict[uuid.UUID, UnitRow]]:
        """Members by id and, in the same statement, the units they belong to (a member is nearly always asked
        for with its cell: one round trip instead of two)."""
        rows = await self.fetch(f"SELECT {MEMBER_COLUMNS}, {CELL_COLUMNS} FROM members m"
                                " LEFT JOIN units cu ON cu.id = m.unit_id WHERE m.member_id = ANY(%s)", (ids,))
        units: dict[uuid.UUID, UnitRow] = {}
        found: dict[uuid.UUID, dict[str, Any]] = {}
        for row in rows:
            cell = take_cell(row)["cell"]
            if cell is not None:
                units[cell.id] = cell
            found[row["member_id"]] = row
        return [found.get(i) for i in ids], units

    async def member_page(self, *, scope: Scope, unit_id: uuid.UUID | None, include_descendants: bool,
                          statuses: list[str] | None, flags: list[str], search: str | None, day: dt.date | None,
                          order: str, first: int, after: str | None) -> Page:
        today = vietnam_today()
        as_of = day is not None and day != today
        effective_day = day or today
        roots: list[uuid.UUID] | None = [unit_id] if unit_id is not None else None
        scope_roots = await self.scope_roots(scope)
        params: dict[str, Any] = {"day": effective_day}
        ctes = []
        conditions = []
        if roots is not None:
            params["roots"] = roots
            if include_descendants:
                ctes.append(await self._subtree_cte(roots))
                unit_filter = "unit_id IN (SELECT unit_id FROM tree)"
            else:
                unit_filter = "unit_id = ANY(%(roots)s)"
        else:
            unit_filter = None
        if scope_roots is not None:
            params["scope_roots"] = scope_roots
            ctes.append(tree_cte("scope_tree", "scope_roots"))
        left = [s for s in (statuses or []) if s not in ("official", "probationary")]
        active = [s for s in (statuses or ["official", "probationary"]) if s in ("official", "probationary")]
        if as_of:
            source = "member_intervals i JOIN members m ON m.member_id = i.member_id"
            conditions += ["i.valid_from <= %(day)s", "%(day)s < i.valid_to", "i.status = ANY(%(statuses)s)"]
            column = "i.unit_id"
            params["statuses"] = active or ["none"]
        else:
            source = "members m"
            conditions.append("m.status = ANY(%(statuses)s)")
            column = "m.unit_id"
            params["statuses"] = (active + left) or ["none"]
        # Hosted members are found where they are hosted; everyone else where their official cell is.
        place = "m.host_unit_id" if "hosted" in flags and not as_of else column
        if unit_filter:
            conditions.append(f"{place} " + unit_filter.removeprefix("unit_id "))
        if scope_roots is not None:
            conditions.append(f"({column} IN (SELECT unit_id FROM scope_tree)"
                              f" OR {place} IN (SELECT unit_id FROM scope_tree))")
        for flag in flags:
            conditions.append({"exempted": "m.exempted", "on_screening_list": "m.on_screening_list",
                               "temporarily_away": "m.host_unit_id IS NOT NULL",
                               "hosted": "m.host_unit_id IS NOT NULL"}[flag])
        if search:
            conditions.append("m.search_name LIKE %(search)s")
            params["search"] = f"%{fold(search)}%"
        where = " AND ".join(conditions) or "true"
        with_clause = ("WITH RECURSIVE " + ", ".join(ctes) + " ") if ctes else ""
        if search:
            return await self._search_page(with_clause, ctes, source, where, column, order, params, first, after)
        if unit_filter and scope_roots is None and not (flags or as_of or left):
            # Only a subtree and current statuses: the projection's per-unit counts hold the answer, which a count
            # of the members of a whole city (half a million rows) would take a second to find again.
            # Planned for its subtree each time: one generic plan for a city and a cell made the city's first page
            # 13.3 ms instead of 8.1 at `small` (the count alone 8.9 ms instead of 3.4 run directly).
            counted = (await self.fetch(
                f"{with_clause}SELECT coalesce(sum(count), 0)::int AS n, {_MEMBERS_ESTIMATE} FROM unit_member_counts"
                f" WHERE {unit_filter} AND dimension = 'status' AND value = ANY(%(statuses)s)", params,
                prepare=False, planner=MEMBERS_PLANNER))[0]
        else:
            # Planned for its values every time, as the page below: the generic plan PostgreSQL settles on after
            # five uses guesses a few units under any root and a few names matching any search, and probed the
            # name index once per unit of the subtree (a search at the city root of `small` with 13,409 units:
            # 12 s instead of ~10 ms).
            # On a past day with no flag, the intervals alone hold the answer: joined to each member, Hanoi's
            # 217,214 members on 2020-06-01 took 526 ms to count at `national`, 10 provinces.
            counted_in = "member_intervals i" if as_of and not flags else source
            counted = (await self.fetch(
                f"{with_clause}SELECT count(*) AS n, {_MEMBERS_ESTIMATE} FROM {counted_in} WHERE {where}", params,
                prepare=False, planner=MEMBERS_PLANNER))[0]
        total = counted["n"]
        sort_column = _SORT_COLUMNS[order]
        page_where = where
        if after:
            key, member_id = decode_cursor(after)
            page_where += f" AND ({sort_column}, m.member_id) > (%(after_key)s, %(after_id)s::uuid)"
            params.update(after_key=key, after_id=member_id)
        params["limit"] = first + 1
        select = (f"SELECT {MEMBER_COLUMNS}, {column} AS as_of_unit_id, {sort_column} AS sort_key"
                  f" FROM {source} WHERE {page_where}")
        if order == "NAME" and self._dense(total, counted["members"]):
            # Matches are common in name order: reading the name index until the page is full beats sorting them.
            # On a past day too, each member's interval probed in turn: Hanoi's 217,214 members on 2020-06-01 at
            # `national`, 10 provinces, took 645 ms sorted, 129 ms read in name order.
            query = f"{with_clause}{select} ORDER BY {sort_column}, m.member_id LIMIT %(limit)s"
        else:
            # Few matches: found first, then sorted (read in name order, they would be scattered across it). Only
            # their keys are kept until the page is chosen: the members' whole rows spilled to disk (Hanoi on a
            # past day at `national`, 10 provinces: 66 MB).
            with_clause = with_clause or "WITH "
            query = (f"{with_clause}{', ' if ctes else ''}matching AS MATERIALIZED ("
                     f"SELECT m.member_id, {column} AS as_of_unit_id, {sort_column} AS sort_key"
                     f" FROM {source} WHERE {page_where})"
                     f" SELECT {MEMBER_COLUMNS}, k.as_of_unit_id, k.sort_key FROM (SELECT * FROM matching"
                     " ORDER BY sort_key, member_id LIMIT %(limit)s) k JOIN members m ON m.member_id = k.member_id")
        rows = [take_cell(r) for r in await self.fetch(
            f"SELECT p.*, {CELL_COLUMNS} FROM ({query}) p LEFT JOIN units cu ON cu.id = p.as_of_unit_id"
            " ORDER BY p.sort_key, p.member_id", params, prepare=False, planner=MEMBERS_PLANNER)]
        page = rows[:first]
        return Page(page, total, len(rows) > first, after is not None,
                    encode_cursor(page[0]["sort_key"], page[0]["member_id"]) if page else None,
                    encode_cursor(page[-1]["sort_key"], page[-1]["member_id"]) if page else None)

    async def _search_page(self, with_clause: str, ctes: list[str], source: str, where: str, column: str, order: str,
                           params: dict[str, Any], first: int, after: str | None) -> Page:
        """A page of the members whose names match a search, and how many match, in one statement over the matches
        found once. In name order the matches of a family name are not spread but gathered where that name sorts:
        read in name order, the page went through every member whose name sorts before it, across the whole
        register (a search for "nguyen van" at the city root: ~570 ms at `hanoi`, growing with the country at
        `national`). Counted and paged from the same matches, the members are read once, not once for each."""
        cursor = ""
        if after:
            key, member_id = decode_cursor(after)
            cursor = " WHERE (sort_key, member_id) > (%(after_key)s, %(after_id)s::uuid)"
            params.update(after_key=key, after_id=member_id)
        params["limit"] = first + 1
        query = (f"{with_clause or 'WITH '}{', ' if ctes else ''}matching AS MATERIALIZED ("
                 f"SELECT m.member_id, {column} AS as_of_unit_id, {_SORT_COLUMNS[order]} AS sort_key"
                 f" FROM {source} WHERE {where})"
                 " SELECT t.matches, p.* FROM (SELECT count(*) AS matches FROM matching) t"
                 f" LEFT JOIN LATERAL (SELECT * FROM matching{cursor} ORDER BY sort_key, member_id LIMIT %(limit)s) p"
                 " ON true")
        # Planned for its values every time (see the count in member_page).
        rows = await self.fetch(
            f"SELECT q.matches, {MEMBER_COLUMNS}, q.as_of_unit_id, q.sort_key, {CELL_COLUMNS} FROM ({query}) q"
            " LEFT JOIN members m ON m.member_id = q.member_id LEFT JOIN units cu ON cu.id = q.as_of_unit_id"
            " ORDER BY q.sort_key, q.member_id", params, prepare=False, planner=MEMBERS_PLANNER)
        total = rows[0]["matches"] if rows else 0
        for row in rows:
            del row["matches"]
        # No match, or none after the cursor: one row of the count alone.
        found = [take_cell(r) for r in rows if r["member_id"] is not None]
        page = found[:first]
        return Page(page, total, len(found) > first, after is not None,
                    encode_cursor(page[0]["sort_key"], page[0]["member_id"]) if page else None,
                    encode_cursor(page[-1]["sort_key"], page[-1]["member_id"]) if page else None)

    @staticmethod
    def _dense(matches: int, members: int) -> bool:
        """Whether at least one member in fifty matches."""
        return matches * 50 >= max(members, 1)

    async def _subtree_cte(self, roots: list[uuid.UUID]) -> str:
        """`tree(unit_id)` on %(day)s: a committee's units are listed in the ancestry the statistics keep; any
        other unit's are found by walking down the hierarchy."""
        committees = await self.fetch("SELECT count(*) AS n FROM units WHERE id = ANY(%s) AND kind = ANY(%s)",
                                      (roots, list(AGGREGATED_KINDS)))
        if committees[0]["n"] == len(roots):
            return ("tree(unit_id) AS (SELECT unit_id FROM unit_ancestry WHERE ancestor_id = ANY(%(roots)s)"
                    " AND lo <= %(day)s AND %(day)s < hi)")
        return tree_cte()

    async def statistics_pending(self) -> dt.datetime | None:
        """Since when the statistics' running sums wait for a recount (gateway.projections.CatchingUp), if they do;
        read at most once every PENDING_TTL_S."""
        checked_at, since = self._pending
        if time.monotonic() - checked_at < self.PENDING_TTL_S:
            return since
        rows = await self.fetch("SELECT since FROM statistics_pending")
        since = rows[0]["since"] if rows else None
        self._pending = (time.monotonic(), since)
        return since

    async def member_history(self, member_id: uuid.UUID) -> list[dict[str, Any]]:
        return await self.fetch(
            "SELECT seq, effective_on, event_type, data, recorded_at, actor FROM member_facts WHERE member_id = %s"
            " ORDER BY seq", (member_id,))

    async def member_in_scope(self, scope: Scope, unit_id: uuid.UUID) -> bool:
        allowed = await self.units_in_scope(scope, vietnam_today())
        return allowed is None or unit_id in allowed

    async def command_applied(self, *, consumer: str, command_id: uuid.UUID, event_count: int) -> bool:
        if event_count == 0:
            return True
        rows = await self.fetch(
            "SELECT applied >= expected AS done FROM consumer_commands WHERE consumer = %s AND command_id = %s",
            (consumer, command_id))
        return bool(rows and rows[0]["done"])
