"""A members page is the same whichever way the gateway reads it: the total from the per-unit counts or by
counting, the page in name order from the index or sorted after filtering, the subtree from the ancestry or by
walking down the hierarchy."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from gateway.projections import PROJECTIONS
from gateway.projections.base import dispatcher
from gateway.read_models import MEMBERS_PLANNER, ReadModels, Scope, vietnam_today
from servicekit.database import CONSUMER_SCHEMA_DDL, connect, migrate
from servicekit.events import Checkpoint
from tests.integration.test_gateway_properties import build_history, consumed
from tests.support.registry import registry_for

HISTORY = [
    *(("enrol", cell, dt.date(2016 + n % 5, 3, 1), dt.date(1950 + n, 5, 5)) for n, cell in
      enumerate([0, 1, 2, 3, 4, 5] * 4)),
    ("leave", 2, "struck_off", dt.date(2019, 4, 1)),
    ("leave", 7, "resigned", dt.date(2020, 4, 1)),
    ("die", 11, dt.date(2021, 5, 1)),
    ("move", 4, 5, dt.date(2022, 1, 10)),
    ("merge", 1, 0, dt.date(2023, 7, 1)),
    *(("exempt", who, dt.date(2024, 2, 1)) for who in (3, 9, 14, 20)),
    *(("screen", who, dt.date(2024, 3, 1)) for who in (5, 9, 16)),
    *(("host", who, cell, dt.date(2024, 4, 1)) for who, cell in ((4, 2), (10, 3), (17, 0), (21, 4))),
]

# What each flag adds to EXPECTED; a hosted member is found where it is hosted (today only: on a past day the
# gateway finds members where they counted then).
FLAG_CONDITIONS = {"exempted": "exempted", "on_screening_list": "on_screening_list",
                   "temporarily_away": "host_unit_id IS NOT NULL", "hosted": "host_unit_id IS NOT NULL"}

# Every member of a subtree today with a status, in page order, counted from the rows themselves.
EXPECTED = """
WITH RECURSIVE tree(unit_id) AS (
    SELECT unit_id FROM unit_versions WHERE unit_id = %(root)s AND valid_from <= %(day)s AND %(day)s < valid_to
    UNION SELECT v.unit_id FROM unit_versions v JOIN tree t ON v.parent_id = t.unit_id
     WHERE v.valid_from <= %(day)s AND %(day)s < v.valid_to)
SELECT member_id FROM members WHERE unit_id IN (SELECT unit_id FROM tree) AND status = ANY(%(statuses)s)
   AND search_name LIKE %(search)s
 ORDER BY search_name, member_id
"""

# The same on a past day: where each member counted then, with the status then.
EXPECTED_AS_OF = EXPECTED.replace(
    "SELECT member_id FROM members WHERE unit_id IN (SELECT unit_id FROM tree) AND status = ANY(%(statuses)s)",
    "SELECT m.member_id FROM member_intervals i JOIN members m ON m.member_id = i.member_id"
    " WHERE i.valid_from <= %(day)s AND %(day)s < i.valid_to AND i.unit_id IN (SELECT unit_id FROM tree)"
    " AND i.status = ANY(%(statuses)s)")
assert EXPECTED_AS_OF != EXPECTED


@pytest.fixture
def projected(database_url: str, tmp_path: Path) -> Any:
    suffix = uuid.uuid4().hex[:10]
    reg = registry_for(database_url, f"r_{suffix}", f"t.{suffix}", tmp_path)
    schema = f"g_{suffix}"
    try:
        units = build_history(reg, list(HISTORY))
        migrate(database_url, schema=schema, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in PROJECTIONS)])
        apply = dispatcher(PROJECTIONS)
        with connect(database_url, schema=schema) as conn:
            for _, event in reg.registry.store.read_all(after=Checkpoint(), limit=100_000):
                apply(conn, consumed(event))
            conn.commit()
        yield schema, units
    finally:
        reg.close()


def test_pages_and_totals_agree_with_a_count_of_the_rows(database_url: str, projected: Any) -> None:
    schema, units = projected
    asyncio.run(_check(database_url, schema, units))


async def _check(database_url: str, schema: str, units: dict[str, str]) -> None:
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False,
                               kwargs={"options": f"-c search_path={schema},public", "autocommit": True})
    await pool.open()
    try:
        models = ReadModels(pool)
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT DISTINCT status FROM members ORDER BY 1")
            present = [r[0] for r in await cur.fetchall()]
        assert {"official", "left", "deceased"} <= set(present), present
        checked = 0
        flagged = dict.fromkeys(FLAG_CONDITIONS, 0)
        cases = [(statuses, search, day, None)
                 for statuses in (["official"], ["probationary"], ["official", "probationary"], ["left", "deceased"])
                 for search, day in ((None, None), ("vu van", None), ("vu van", dt.date(2020, 6, 1)),
                                     ("khong ai", None))
                 # A past day counts the members who were active then.
                 if day is None or statuses != ["left", "deceased"]]
        # A flag is the member's today, on any day asked for.
        cases += [(["official", "probationary"], search, day, flag) for flag in FLAG_CONDITIONS
                  for search, day in ((None, None), ("vu van", None), (None, dt.date(2024, 6, 1)))
                  if not (flag == "hosted" and day)]
        for name, unit in units.items():
            for statuses, search, day, flag in cases:
                expected_query = EXPECTED if day is None else EXPECTED_AS_OF
                if flag:
                    expected_query = expected_query.replace(" ORDER BY", f" AND {FLAG_CONDITIONS[flag]} ORDER BY")
                if flag == "hosted":
                    expected_query = expected_query.replace("WHERE unit_id IN", "WHERE host_unit_id IN")
                async with pool.connection() as conn:
                    cur = await conn.execute(expected_query,
                                             {"root": unit, "day": day or vietnam_today(), "statuses": statuses,
                                              "search": f"%{search or ''}%"})
                    expected = [str(r[0]) for r in await cur.fetchall()]
                for dense in (True, False):
                    models._dense = lambda _matches, _members, answer=dense: answer  # type: ignore[assignment]
                    seen, total = await _walk(models, uuid.UUID(unit), statuses, search, day,
                                              [flag] if flag else [])
                    assert total == len(expected), (name, statuses, search, day, flag, dense)
                    assert seen == expected, (name, statuses, search, day, flag, dense)
                checked += bool(expected)
                if flag:
                    flagged[flag] += bool(expected)
        assert checked >= 10, "the history gives most subtrees members to page through"
        assert all(flagged.values()), ("the history gives some subtree members with each flag", flagged)
    finally:
        await pool.close()


async def _walk(models: ReadModels, unit: uuid.UUID, statuses: list[str], search: str | None,
                day: dt.date | None = None, flags: list[str] | None = None) -> tuple[list[str], int]:
    seen: list[str] = []
    after = None
    while True:
        page = await models.member_page(scope=Scope(None), unit_id=unit, include_descendants=True,
                                        statuses=statuses, flags=flags or [], search=search, day=day, order="NAME",
                                        first=2, after=after)
        seen += [str(r["member_id"]) for r in page.rows]
        if not page.has_next:
            return seen, page.total
        after = page.end_cursor


def test_a_searched_page_is_planned_for_its_own_subtree_and_search(database_url: str, projected: Any) -> None:
    """PostgreSQL plans a statement prepared five times once for any parameters; for a subtree and a search that
    plan guesses a few units and a few names, and at the city root it probed the name index once per unit."""
    schema, units = projected
    asyncio.run(_check_plans(database_url, schema, uuid.UUID(units["city"])))


async def _check_plans(database_url: str, schema: str, root: uuid.UUID) -> None:
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False,
                               kwargs={"options": f"-c search_path={schema},public", "autocommit": True})
    await pool.open()
    try:
        models = ReadModels(pool)
        for _ in range(8):
            page = await models.member_page(scope=Scope(None), unit_id=root, include_descendants=True,
                                            statuses=["official"], flags=[], search="vu van", day=None,
                                            order="NAME", first=2, after=None)
            assert page.total > 0
            units = await models.unit_page(scope=Scope(None), day=vietnam_today(), parent_id=root, kind=None,
                                           search="don vi", first=2, after=None)
            assert units.total > 0
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [r[0] for r in await cur.fetchall()]
        assert prepared, "the pool's one connection prepares the statements used five times"
        assert not [s for s in prepared if "search_name LIKE" in s], prepared
        # A members page is planned with random reads priced as from memory, and the price does not outlive it on the
        # pooled connection.
        async with pool.connection() as conn:
            default = (await (await conn.execute("SHOW random_page_cost")).fetchone() or [None])[0]
        assert default != "1.1"
        cost = await models.fetch("SELECT current_setting('random_page_cost') AS cost", planner=MEMBERS_PLANNER)
        assert cost == [{"cost": "1.1"}]
        async with pool.connection() as conn:
            assert (await (await conn.execute("SHOW random_page_cost")).fetchone() or [None])[0] == default
        # Nor when the statement fails: the connection goes back to the pool out of any transaction.
        with pytest.raises(psycopg.errors.DivisionByZero):
            await models.fetch("SELECT 1 / %(zero)s AS n", {"zero": 0}, planner=MEMBERS_PLANNER)
        async with pool.connection() as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert (await (await conn.execute("SHOW random_page_cost")).fetchone() or [None])[0] == default
    finally:
        await pool.close()
