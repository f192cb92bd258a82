"""Generated registry histories with reorganizations, projected: Biểu 1 reconciles for every unit and period,
the incrementally kept counts and the pre-aggregated forms equal a recount from the detail rows, and applying
the events in batches (as the projector does), or in batches with the figures counted once at the end (as a
rebuild does), leaves exactly what applying them one by one leaves."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from contracts.envelope import Envelope
from gateway.projections import PROJECTIONS, CatchingUp, count_deferred, figures
from gateway.projections import members as member_projection
from gateway.projections.base import batch_dispatcher, dispatcher
from gateway.projections.figures import AGGREGATED_KINDS, move_boundary
from gateway.projections.members import recount_unit_counts
from gateway.reconcile import differences
from gateway.statistics import Period, StatisticsQueries, StatisticsRecount
from registry.domain import members as member_rules
from registry.domain.commands import DissolveUnit, EnrolMember, MergeUnits, ReattachUnits
from registry.domain.errors import DomainError
from registry.domain.policy import FAILED_RATING, RATING_LEVELS
from servicekit.consumer import ConsumedEvent
from servicekit.database import CONSUMER_SCHEMA_DDL, connect, migrate
from servicekit.events import Checkpoint, StoredEvent
from tests.support.registry import RegistryUnderTest, registry_for

DAYS = st.dates(min_value=dt.date(2016, 1, 1), max_value=dt.date(2026, 10, 1))
# Members of every age band, some passing into the next one during the history (birthdays move the figures).
BIRTHS = st.dates(min_value=dt.date(1940, 1, 1), max_value=dt.date(1976, 12, 31))
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("enrol"), st.integers(0, 5), DAYS, BIRTHS),
    st.tuples(st.just("move"), st.integers(0, 40), st.integers(0, 5), DAYS),
    st.tuples(st.just("leave"), st.integers(0, 40), st.sampled_from(["struck_off", "resigned", "expelled"]), DAYS),
    st.tuples(st.just("die"), st.integers(0, 40), DAYS),
    st.tuples(st.just("merge"), st.integers(0, 5), st.integers(0, 5), DAYS),
    st.tuples(st.just("reattach"), st.integers(0, 5), st.integers(0, 2), DAYS),
    st.tuples(st.just("dissolve_ward"), st.integers(0, 2), st.integers(0, 2), DAYS),
    # A member's record alone (projections.members.RECORD_ONLY_EVENTS): ratings of two years in a row (two failed
    # ones list the member for screening), the 30-year badge, the 2025 card.
    st.tuples(st.just("rate"), st.integers(0, 40), st.integers(2016, 2025), st.sampled_from(RATING_LEVELS)),
    st.tuples(st.just("badge"), st.integers(0, 40), st.dates(min_value=dt.date(2025, 1, 1),
                                                             max_value=dt.date(2026, 10, 1))),
    st.tuples(st.just("card"), st.integers(0, 40), st.dates(min_value=dt.date(2025, 7, 1),
                                                            max_value=dt.date(2026, 10, 1))),
), min_size=5, max_size=40)


def consumed(event: StoredEvent) -> ConsumedEvent:
    aggregate = event.stream_id.split("-", 1)[1]
    envelope = Envelope(id=str(event.event_id), source="/party/registry",
                        type=f"vn.party.registry.{event.type}.v1", subject=aggregate,
                        time=event.recorded_at.isoformat(), stream_version=event.version, correlation_id="c",
                        causation_id="c", actor="test", command_id=str(uuid.uuid4()), command_event_count=1)
    return ConsumedEvent(topic="t", partition=0, offset=event.position, envelope=envelope, source="registry",
                         event_type=event.type, schema_version=1, data=event.data)


def build_history(reg: RegistryUnderTest, operations: list[Any]) -> dict[str, str]:
    city = reg.unit("city_committee", on=dt.date(1930, 2, 3))
    wards = [reg.unit("commune_committee", city, on=dt.date(2000, 1, 1)) for _ in range(3)]
    cells = [reg.unit("grassroots_cell", wards[i % 3], on=dt.date(2000, 1, 1)) for i in range(6)]
    people: list[str] = []
    commands = reg.commands

    def attempt(handler: Any) -> None:
        with contextlib.suppress(DomainError):
            reg.run(handler)

    for op in [("enrol", 0, dt.date(2015, 6, 1), dt.date(1970, 1, 1)),
               ("enrol", 3, dt.date(2015, 6, 1), dt.date(1975, 7, 1)),
               ("enrol", 5, dt.date(2015, 6, 1), dt.date(1960, 2, 29)), *operations]:
        match op:
            case ("enrol", cell, day, born):
                member_id = str(uuid.uuid4())
                attempt(commands.enrol_member(EnrolMember(
                    member_id=member_id, full_name="Vũ Văn Hải", gender="male", birth_date=born,
                    citizen_id=f"{uuid.uuid4().int % 10**12:012d}", unit_id=cells[cell], status="official",
                    admitted_on=dt.date(1995, 1, 1), source="existing", member_since=day)))
                people.append(member_id)
            case ("move", who, cell, day) if people:
                attempt(commands.transfer_member(people[who % len(people)], to_unit_id=cells[cell], effective_on=day,
                                                 transfer_id=None))
            case ("leave", who, reason, day) if people:
                attempt(commands.member_command(people[who % len(people)], lambda m, _, r=reason, d=day:
                                                member_rules.leave(m, reason=r, decided_on=d, decision_ref="QĐ",
                                                                   basis=None, note=None, excluded=(),
                                                                   today=dt.date(2026, 11, 23))))
            case ("die", who, day) if people:
                attempt(commands.member_command(people[who % len(people)], lambda m, _, d=day: member_rules.die(
                    m, died_on=d, today=dt.date(2026, 11, 23))))
            case ("merge", a, b, day):
                attempt(commands.merge_units(MergeUnits(source_ids=(cells[a],), target_id=cells[b], new_target=None,
                                                        new_target_id=None, effective_on=day, decision_ref="QĐ")))
            case ("reattach", cell, ward, day):
                attempt(commands.reattach_units(ReattachUnits(unit_ids=(cells[cell],), parent_id=wards[ward],
                                                              effective_on=day, decision_ref="QĐ")))
            case ("rate", who, year, level) if people:
                for rated in (year, year + 1):
                    attempt(commands.member_command(people[who % len(people)], lambda m, _, y=rated, lv=level:
                                                    member_rules.rate(m, year=y, level=lv,
                                                                      today=dt.date(2026, 11, 23))))
            case ("exempt", who, day) if people:
                attempt(commands.member_command(people[who % len(people)], lambda m, _, d=day: member_rules.exempt(
                    m, effective_on=d, reason="sức khỏe", decision_ref="QĐ", today=dt.date(2026, 11, 23))))
            case ("screen", who, day) if people:
                attempt(commands.member_command(people[who % len(people)], lambda m, _, d=day:
                                                member_rules.place_on_screening_list(
                                                    m, effective_on=d, reason="xếp loại",
                                                    today=dt.date(2026, 11, 23))))
            case ("host", who, cell, day) if people:
                attempt(commands.member_command(people[who % len(people)], lambda m, _, c=cells[cell], d=day:
                                                member_rules.host_temporarily(m, host_unit_id=c, effective_on=d,
                                                                              until=None, transfer_id=None)))
            case ("badge", who, day) if people:
                attempt(commands.member_command(people[who % len(people)], lambda m, _, d=day: member_rules.award_badge(
                    m, years=30, awarded_on=d, early_reason=None, decision_ref="QĐ", today=dt.date(2026, 11, 23))))
            case ("card", who, day) if people:
                attempt(commands.exchange_cards(f"c{uuid.uuid4().hex[:6]}", [people[who % len(people)]],
                                                reason="exchange_2025", issued_on=day))
            case ("dissolve_ward", ward, successor, day):
                attempt(commands.dissolve_unit(DissolveUnit(unit_id=wards[ward], successor_id=wards[successor],
                                                            effective_on=day, decision_ref="QĐ")))
    return {"city": city, **{f"ward{i}": w for i, w in enumerate(wards)}, **{f"cell{i}": c for i, c in
                                                                            enumerate(cells)}}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(operations=OPERATIONS, period_ends=st.lists(DAYS, min_size=2, max_size=3),
       batch_sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8), boundary_year=st.integers(2015, 2027))
def test_bieu_1_reconciles_for_every_unit_and_period(database_url: str, tmp_path: Path, operations: list[Any],
                                                     period_ends: list[dt.date], batch_sizes: list[int],
                                                     boundary_year: int) -> None:
    suffix = uuid.uuid4().hex[:10]
    reg = registry_for(database_url, f"r_{suffix}", f"t.{suffix}", tmp_path)
    gateway_schema = f"g_{suffix}"
    try:
        units = build_history(reg, operations)
        migrate(database_url, schema=gateway_schema, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in PROJECTIONS)])
        apply = dispatcher(PROJECTIONS)
        stored = [e for _, e in reg.registry.store.read_all(after=Checkpoint(), limit=100_000)]
        assert sum(1 for e in stored if e.type == "MemberEnrolled") >= 3, "the history is not vacuous"
        with connect(database_url, schema=gateway_schema) as conn:
            for event in stored:
                apply(conn, consumed(event))
            conn.commit()
            conn.autocommit = True
            assert differences(conn) == [], "incremental counts equal a recount"
            _check_member_records(conn, stored)
        apply_many = batch_dispatcher(PROJECTIONS)
        for mode, prefix in (("batched", "b"), ("rebuilt", "r"), ("rebuilt, counted side by side", "s"),
                             ("caught up", "c"), ("caught up, counted in the pause", "p"),
                             ("caught up, then idle", "i")):
            batched_schema = f"{prefix}_{suffix}"
            migrate(database_url, schema=batched_schema, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in PROJECTIONS)])

            def beside(schema: str = batched_schema) -> Any:
                return connect(database_url, schema=schema)

            with connect(database_url, schema=batched_schema) as conn:
                if mode.startswith("caught up"):
                    _catch_up(conn, stored, batch_sizes, last_batch_far_behind=mode.endswith("idle"),
                              beside=None if mode == "caught up" else beside)
                else:
                    start, turn = 0, 0
                    token = figures.DEFERRED.set(mode.startswith("rebuilt"))
                    try:
                        while start < len(stored):
                            size = batch_sizes[turn % len(batch_sizes)]
                            apply_many(conn, [consumed(e) for e in stored[start:start + size]])
                            start, turn = start + size, turn + 1
                    finally:
                        figures.DEFERRED.reset(token)
                if mode.startswith("rebuilt"):
                    assert conn.execute("SELECT (SELECT count(*) FROM statistics_deltas) + (SELECT count(*) FROM"
                                        " unit_member_counts)").fetchone() == (0,), \
                        "a rebuild leaves the running sums and the per-unit counts alone until it counts them"
                    figures.recount(conn, members_at_once=3, beside=beside if mode.endswith("side") else None)
                    recount_unit_counts(conn)
                conn.commit()
                for table, (where, order) in PROJECTED_TABLES.items():
                    one_by_one = conn.execute(
                        f"SELECT * FROM {gateway_schema}.{table} WHERE {where} ORDER BY {order}").fetchall()
                    batched = conn.execute(
                        f"SELECT * FROM {batched_schema}.{table} WHERE {where} ORDER BY {order}").fetchall()
                    assert batched == one_by_one, f"{table} differs when the events are {mode}"
        # Periods ending on the days the hierarchy changed, and the day before, catch every reorganization.
        reorganized = sorted({day for op in operations if op[0] in ("merge", "reattach", "dissolve_ward")
                              for day in (op[-1], op[-1] - dt.timedelta(days=1))})
        asyncio.run(_check_reconciliation(database_url, gateway_schema, list(units.values()),
                                          period_ends + reorganized))
        # The running sums read around their boundary (the current year's 1 January, which the projections keep):
        # moved to any other year, they still give the recount's figures.
        with connect(database_url, schema=gateway_schema) as conn:
            current = conn.execute("SELECT boundary = date_trunc('year', now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date"
                                   " FROM statistics_boundary").fetchone()
            assert current == (True,), "the projections keep the boundary at the current year's 1 January"
            move_boundary(conn, dt.date(boundary_year, 1, 1))
            conn.commit()
        asyncio.run(_check_reconciliation(database_url, gateway_schema, list(units.values()),
                                          period_ends + reorganized))
    finally:
        reg.close()


RECORD = ("status", "unit_id", "ratings", "badges", "card_number", "card_generation", "on_screening_list", "exempted",
          "version")


def _check_member_records(conn: Any, stored: list[StoredEvent]) -> None:
    """Every member's row as `members.apply` folds it from the member's events, whichever way they were applied
    (the record-only events are applied in place, not through it)."""
    expected: dict[str, dict[str, Any]] = {}
    for event in stored:
        if event.stream_id.startswith("member-"):
            member_id = event.stream_id.split("-", 1)[1]
            expected[member_id] = member_projection.apply(expected.get(member_id), event.type, event.data,
                                                          event.version)
    columns = ", ".join(c + "::text" if c == "unit_id" else c for c in RECORD)
    found = {str(r[0]): r[1:] for r in conn.execute(f"SELECT member_id, {columns} FROM members").fetchall()}
    assert set(found) == set(expected)
    for member_id, row in expected.items():
        assert found[member_id] == tuple(str(row[c]) if c == "unit_id" else row[c] for c in RECORD), member_id
        if row["on_screening_list"]:
            assert list(row["ratings"].values()).count(FAILED_RATING) >= 2


def _catch_up(conn: Any, stored: list[StoredEvent], batch_sizes: list[int], *, last_batch_far_behind: bool,
              beside: figures.Connect | None = None) -> None:
    """The live projector far behind, one transaction per batch: the first half of the batches come while it is
    far behind (the running sums wait), the rest once it has caught up (the first of them counts them, or with
    `beside` the second, or, if there is none, the two connections once the consumer says it has caught up between
    polls). The first deferred batch and the counting batch each roll back once and are applied again, as the
    consumer would. `last_batch_far_behind`: every batch comes far behind, and the sums are counted when the
    consumer, caught up, says so between polls."""
    batches: list[list[StoredEvent]] = []
    start, turn = 0, 0
    while start < len(stored):
        size = batch_sizes[turn % len(batch_sizes)]
        batches.append(stored[start:start + size])
        start, turn = start + size, turn + 1
    if len(batches) == 1:
        batches = [batches[0][:len(batches[0]) // 2], batches[0][len(batches[0]) // 2:]]
    far = len(batches) if last_batch_far_behind else max(1, len(batches) // 2)
    position = [0]
    handler = CatchingUp(batch_dispatcher(PROJECTIONS), behind=lambda: 10**6 if position[0] < far else 0,
                         beside=beside)
    retried = set()
    for index, batch in enumerate(batches):
        position[0] = index
        handler(conn, [consumed(e) for e in batch])
        counting = far + 1 if beside is not None else far
        if index in (0, counting) and index not in retried:
            retried.add(index)
            conn.rollback()
            handler(conn, [consumed(e) for e in batch])
        if index == 0:
            assert figures.sums_pending(conn), "the running sums wait while the projector is far behind"
        conn.commit()
    if last_batch_far_behind:
        assert figures.sums_pending(conn), "no batch came once the projector had caught up"
        handler.when_caught_up(conn)
        handler.when_caught_up(conn)
    elif beside is not None:
        handler.when_caught_up(conn)  # the pause after the last batch
    assert not figures.sums_pending(conn), "caught up, the projector has counted them"
    never_analysed = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.reltuples < 0").fetchall()
    assert never_analysed == [], "caught up after a bulk write, the tables' statistics are taken at once"


# A count that went up and down again stays as a zero row one by one, and never appears in a batch.
PROJECTED_TABLES = {
    "unit_facts": ("true", "unit_id, seq"), "unit_versions": ("true", "unit_id, valid_from"), "units": ("true", "id"),
    "member_facts": ("true", "member_id, seq"), "members": ("true", "member_id"),
    "member_intervals": ("true", "member_id, valid_from"),
    "unit_member_counts": ("count <> 0", "unit_id, dimension, value"),
    "unit_ancestry": ("true", "unit_id, ancestor_id, lo"), "member_transitions": ("true", "member_id, day"),
    "statistics_deltas": ("delta <> 0", "root_id, grain, period_start, dimension, value"),
}


def nonzero(figures: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {k: n for k, n in figures.items() if n}


async def _check_reconciliation(database_url: str, schema: str, unit_ids: list[str], ends: list[dt.date]) -> None:
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False,
                               kwargs={"options": f"-c search_path={schema},public", "autocommit": True})
    await pool.open()
    try:
        queries, recount = StatisticsQueries(pool), StatisticsRecount(pool)
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT id::text FROM units WHERE kind = ANY(%s)", (list(AGGREGATED_KINDS),))
            aggregated = {r[0] for r in await cur.fetchall()}
        assert len(aggregated) == 4, "the city and its three wards keep pre-aggregated figures"
        for end in ends:
            period = Period(dt.date(end.year, 1, 1), end)
            for unit in unit_ids:
                root = uuid.UUID(unit)
                figures = await recount.bieu1(root, period)
                if unit in aggregated:
                    assert nonzero(await queries.bieu1(root, period)) == nonzero(figures), (unit, period)
                    for day in (period.opening, end):
                        assert await queries.bieu3(root, day) == await recount.bieu3(root, day), (unit, day)
                        assert await queries.bieu5(root, day) == await recount.bieu5(root, day), (unit, day)
                    assert await queries.bieu2(root, period) == await recount.bieu2(root, period), (unit, period)
                opening = figures.get(("opening", "total"), 0)
                closing = figures.get(("closing", "total"), 0)
                increases = sum(n for (d, _), n in figures.items() if d == "increase")
                decreases = sum(n for (d, _), n in figures.items() if d == "decrease")
                assert opening + increases - decreases == closing, (unit, period, figures)
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM member_intervals WHERE valid_from <= %s AND %s < valid_to"
                        " GROUP BY member_id HAVING count(*) > 1", (end, end))
                    assert await cur.fetchall() == [], "a member counts in one place at a time"
    finally:
        await pool.close()


def _assert_one_connection_counts_the_same(conn: Any, how: str) -> None:
    """The running sums as they stand are what one connection counts afresh (then rolled back)."""
    counted = conn.execute("SELECT * FROM statistics_deltas ORDER BY 1, 2, 3, 4, 5").fetchall()
    assert counted, "the history has figures"
    figures.recount_sums(conn)
    alone = conn.execute("SELECT * FROM statistics_deltas ORDER BY 1, 2, 3, 4, 5").fetchall()
    assert counted == alone, f"{how}, the count is what one connection alone counts"
    conn.rollback()


def test_a_count_side_by_side_that_fails_leaves_the_sums_pending_and_takes_its_tables_away(
        database_url: str, tmp_path: Path) -> None:
    """The live projector counts the sums on connections of its own once it has caught up between polls. One of them
    failing fails the count as a whole: the statistics stay refused, the old sums stay, nothing is left behind; the
    next attempt counts what one connection alone would have."""
    suffix = uuid.uuid4().hex[:10]
    reg = registry_for(database_url, f"r_{suffix}", f"t.{suffix}", tmp_path)
    schema = f"f_{suffix}"
    try:
        build_history(reg, [("move", 0, 2, dt.date(2018, 1, 1)), ("enrol", 1, dt.date(2019, 3, 1), dt.date(1965, 5, 5)),
                            ("reattach", 2, 1, dt.date(2020, 7, 1)), ("die", 1, dt.date(2021, 2, 3))])
        migrate(database_url, schema=schema, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in PROJECTIONS)])
        stored = [e for _, e in reg.registry.store.read_all(after=Checkpoint(), limit=100_000)]
        opened: list[int] = []
        fail_at = [3]  # the second of the two connections that expand the members

        def failing_beside() -> Any:
            opened.append(1)
            if len(opened) == fail_at[0]:
                raise OSError("connection refused")
            return connect(database_url, schema=schema)

        with connect(database_url, schema=schema) as conn:
            far_behind = CatchingUp(batch_dispatcher(PROJECTIONS), behind=lambda: 10**6, beside=failing_beside)
            far_behind(conn, [consumed(e) for e in stored])
            conn.commit()
            with pytest.raises(OSError):
                far_behind.when_caught_up(conn)
            conn.rollback()
            assert figures.sums_pending(conn), "the statistics are still refused"
            assert conn.execute("SELECT count(*) FROM statistics_deltas").fetchone() == (0,), "the old sums stay"
            left = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE"
                                " 'statistics_recount%%'", (schema,)).fetchall()
            assert left == [], "the tables the connections beside filled are gone"

            fail_at[0] = 0
            far_behind.when_caught_up(conn)
            conn.commit()
            assert not figures.sums_pending(conn)
            _assert_one_connection_counts_the_same(conn, "side by side")
    finally:
        reg.close()


def test_a_count_side_by_side_in_many_parts_is_the_count_of_one_connection_and_leaves_no_part_behind(
        database_url: str, tmp_path: Path) -> None:
    """Summed a part of the roots at a time (one per member here, so that some parts are empty and every root is in
    a part with others or alone), the running sums are those one connection counts at once."""
    suffix = uuid.uuid4().hex[:10]
    reg = registry_for(database_url, f"r_{suffix}", f"t.{suffix}", tmp_path)
    schema = f"p_{suffix}"
    try:
        build_history(reg, [("enrol", 1, dt.date(2019, 3, 1), dt.date(1965, 5, 5)), ("move", 0, 2, dt.date(2018, 1, 1)),
                            ("reattach", 2, 1, dt.date(2020, 7, 1)), ("enrol", 4, dt.date(2021, 3, 1),
                                                                      dt.date(1955, 5, 5)),
                            ("merge", 3, 4, dt.date(2022, 5, 1)), ("die", 1, dt.date(2023, 2, 3))])
        migrate(database_url, schema=schema, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in PROJECTIONS)])
        stored = [e for _, e in reg.registry.store.read_all(after=Checkpoint(), limit=100_000)]
        parts_seen: list[int] = []

        def beside() -> Any:
            beside_conn = connect(database_url, schema=schema)
            parts_seen.append(beside_conn.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass('statistics_recount')"
            ).fetchone()[0])  # type: ignore[index]
            return beside_conn

        with connect(database_url, schema=schema) as conn:
            dispatch = batch_dispatcher(PROJECTIONS)
            dispatch(conn, [consumed(e) for e in stored])
            conn.commit()
            members = conn.execute("SELECT count(*) FROM members").fetchone()[0]  # type: ignore[index]
            assert members > 4, "enough members for several parts"
            figures.recount_sums(conn, beside=beside, members_per_part=1)
            conn.commit()
            assert max(parts_seen) >= members, "the changes were summed in as many parts as members, or one more"
            _assert_one_connection_counts_the_same(conn, "in parts")
            left = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE"
                                " 'statistics_recount%%'", (schema,)).fetchall()
            assert left == [], "no part is left behind"
    finally:
        reg.close()


def test_a_rebuild_s_count_is_not_held_up_by_the_analysis_beside_it(database_url: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild counts the per-unit counts and analyses the other tables on a connection beside the running sums'
    count, which commits after it. Were the count's parts among the tables it analyses, their locks would be held
    until then, and the count would wait on them for ever (at `national`, where the per-unit counts take longer than
    the expansion, it did). Here the analysis starts once the parts exist, and a lock that waits fails the test."""
    suffix = uuid.uuid4().hex[:10]
    reg = registry_for(database_url, f"r_{suffix}", f"t.{suffix}", tmp_path)
    schema = f"a_{suffix}"
    try:
        build_history(reg, [("enrol", 1, dt.date(2019, 3, 1), dt.date(1965, 5, 5)), ("move", 0, 2, dt.date(2018, 1, 1)),
                            ("reattach", 2, 1, dt.date(2020, 7, 1))])
        migrate(database_url, schema=schema, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in PROJECTIONS)])
        stored = [e for _, e in reg.registry.store.read_all(after=Checkpoint(), limit=100_000)]
        count_units = member_projection.recount_unit_counts

        def count_units_once_the_parts_exist(conn: Any) -> None:
            count_units(conn)
            with connect(database_url, schema=schema) as probe:
                for _ in range(600):
                    if probe.execute("SELECT count(*) FROM pg_inherits"
                                     " WHERE inhparent = to_regclass('statistics_recount')").fetchone() != (0,):
                        return
                    probe.rollback()
                    time.sleep(0.05)
            raise AssertionError("the count made no parts")

        monkeypatch.setattr(member_projection, "recount_unit_counts", count_units_once_the_parts_exist)
        collect = figures.collect_members

        def collect_slowly(*args: Any, **kwargs: Any) -> int:
            # The parts stay while the analysis beside lists its tables, as at `national`; this small count would
            # otherwise be over and its parts gone before that.
            time.sleep(1)
            return collect(*args, **kwargs)

        monkeypatch.setattr(figures, "collect_members", collect_slowly)

        def beside() -> Any:
            beside_conn = connect(database_url, schema=schema)
            beside_conn.execute("SET lock_timeout = '10s'")
            beside_conn.commit()
            return beside_conn

        with connect(database_url, schema=schema) as sums, connect(database_url, schema=schema) as counts:
            token = figures.DEFERRED.set(True)
            try:
                batch_dispatcher(PROJECTIONS)(sums, [consumed(e) for e in stored])
            finally:
                figures.DEFERRED.reset(token)
            sums.commit()
            count_deferred(sums, counts, beside=beside)
            sums.commit()
            counts.commit()
            assert not figures.sums_pending(sums)
            assert sums.execute("SELECT count(*) FROM statistics_deltas").fetchone() != (0,), "the sums are counted"
    finally:
        reg.close()


def test_near_the_end_a_batch_leaves_the_count_to_the_pause_and_the_next_batch_makes_it_if_records_keep_coming(
        database_url: str, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:10]
    reg = registry_for(database_url, f"r_{suffix}", f"t.{suffix}", tmp_path)
    try:
        build_history(reg, [("enrol", 2, dt.date(2019, 3, 1), dt.date(1965, 5, 5)), ("move", 0, 4, dt.date(2020, 1, 2)),
                            ("enrol", 4, dt.date(2021, 3, 1), dt.date(1955, 5, 5))])
        stored = [e for _, e in reg.registry.store.read_all(after=Checkpoint(), limit=100_000)]
        thirds = [stored[:len(stored) // 3], stored[len(stored) // 3:2 * len(stored) // 3],
                  stored[2 * len(stored) // 3:]]
        for records_keep_coming in (False, True):
            _count_near_the_end(database_url, f"{'k' if records_keep_coming else 'p'}_{suffix}",
                                [[consumed(e) for e in third] for third in thirds], records_keep_coming)
    finally:
        reg.close()


def _count_near_the_end(database_url: str, schema: str, batches: list[list[ConsumedEvent]],
                        records_keep_coming: bool) -> None:
    migrate(database_url, schema=schema, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in PROJECTIONS)])
    opened: list[str] = []

    def beside() -> Any:
        opened.append(schema)
        return connect(database_url, schema=schema)

    behind = [10**6]
    handler = CatchingUp(batch_dispatcher(PROJECTIONS), behind=lambda: behind[0], beside=beside)
    with connect(database_url, schema=schema) as conn:
        handler(conn, batches[0])
        conn.commit()
        behind[0] = 0
        handler(conn, batches[1])
        conn.commit()
        assert figures.sums_pending(conn), "the first batch near the end leaves the count to the pause"
        if records_keep_coming:
            handler(conn, batches[2])
            conn.commit()
            assert not figures.sums_pending(conn), "records kept coming: the next batch counted them"
            assert opened == [], "in its own transaction, on its own connection"
        else:
            handler.when_caught_up(conn)
            conn.commit()
            assert not figures.sums_pending(conn), "counted in the pause"
            assert len(opened) > 2, "on connections of their own"
            handler(conn, batches[2])
            conn.commit()
        counted = conn.execute("SELECT * FROM statistics_deltas ORDER BY 1, 2, 3, 4, 5").fetchall()
        assert counted, "the history has figures"
        figures.recount_sums(conn)
        assert counted == conn.execute("SELECT * FROM statistics_deltas ORDER BY 1, 2, 3, 4, 5").fetchall()
        conn.rollback()
