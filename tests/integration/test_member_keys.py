"""A register's keys and places, against its real store: a citizen id and a card number are held by one member at a
time, card numbers are allocated within the register's six digits, and members move into and are hosted by active
cells only. Each refusal writes nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from registry.application.handlers import HIERARCHY_LOCK
from registry.domain.commands import DissolveUnit, EnrolMember
from registry.domain.errors import Conflict, DomainError
from tests.support.registry import RegistryUnderTest, registry_for


@pytest.fixture
def reg(database_url: str, schema: str, topic: str, tmp_path: Path) -> Iterator[RegistryUnderTest]:
    under_test = registry_for(database_url, schema, topic, tmp_path)
    yield under_test
    under_test.close()


def citizen_id() -> str:
    return f"{uuid.uuid4().int % 10**12:012d}"


def card_number() -> str:
    return f"01{uuid.uuid4().int % 10**6:06d}"


def enrolment(unit_id: str, **changes: Any) -> EnrolMember:
    return dataclasses.replace(EnrolMember(
        member_id=str(uuid.uuid4()), full_name="Lê Thị Hoa", gender="female", birth_date=dt.date(1978, 4, 2),
        citizen_id=citizen_id(), unit_id=unit_id, status="official", admitted_on=dt.date(2004, 6, 1),
        source="existing"), **changes)


def refused_with(code: str, field: str | None, run: Any) -> None:
    with pytest.raises(DomainError) as refused:
        run()
    assert (refused.value.code, refused.value.field) == (code, field)


def test_a_citizen_id_is_held_by_one_member(reg: RegistryUnderTest) -> None:
    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    held = citizen_id()
    reg.member(cell, citizen_id=held)
    second = enrolment(cell, citizen_id=held)
    with pytest.raises(Conflict) as refused:
        reg.run(reg.commands.enrol_member(second))
    assert (refused.value.code, refused.value.field) == ("citizen-id-taken", "citizen_id")
    assert reg.events(f"member-{second.member_id}") == []

    other = reg.member(cell)
    own = reg.member_state(other).citizen_id
    with pytest.raises(Conflict) as refused:
        reg.run(reg.commands.update_profile(other, {"citizen_id": held}))
    assert refused.value.code == "citizen-id-taken"
    assert reg.member_state(other).citizen_id == own


def test_a_card_number_is_held_by_one_member_and_never_given_twice(reg: RegistryUnderTest) -> None:
    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    held = card_number()
    reg.member(cell, card_number=held)

    one = enrolment(cell, card_number=held)
    with pytest.raises(Conflict) as refused:
        reg.run(reg.commands.enrol_member(one))
    assert (refused.value.code, refused.value.field) == ("card-number-taken", "card_number")
    assert reg.events(f"member-{one.member_id}") == []

    many = [enrolment(cell, card_number=card_number()), enrolment(cell, card_number=held)]
    with pytest.raises(Conflict) as refused:
        reg.run(reg.commands.enrol_members("b1", many))
    assert refused.value.code == "card-number-taken"
    assert reg.events(f"member-{many[0].member_id}") == [], "nothing of a refused batch is written"

    carded = reg.member(cell, card_number=card_number())
    own = reg.member_state(carded).card_number
    with pytest.raises(Conflict) as refused:
        reg.run(reg.commands.issue_card(carded, reason="reissue_lost", card_number=held,
                                        issued_on=dt.date(2024, 5, 1)))
    assert refused.value.code == "card-number-taken"
    assert reg.member_state(carded).card_number == own


def test_card_numbers_are_refused_cleanly_once_the_six_digits_are_used_up(
        reg: RegistryUnderTest, database_url: str, schema: str) -> None:
    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    last, probationary = (reg.member(cell, status="probationary", admitted_on=dt.date(2010, 5, 19))
                          for _ in range(2))
    official = reg.member(cell)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT setval(%s::regclass, 999998)", (sql.Identifier(schema, "card_numbers").as_string(conn),))

    refused_with("card-range-exhausted", None, lambda: reg.run(reg.commands.exchange_cards(
        "x1", [official, last], reason="exchange_2025", issued_on=dt.date(2025, 9, 2))))
    assert reg.member_state(official).card_number is None, "two numbers wanted, one left: none is drawn"
    reg.run(reg.commands.recognize(last, official_on=dt.date(2011, 5, 19), decision_ref="QĐ 1"))
    assert reg.member_state(last).card_number == "01999999", "the last number is still given"
    refused_with("card-range-exhausted", None, lambda: reg.run(reg.commands.recognize(
        probationary, official_on=dt.date(2011, 5, 19), decision_ref="QĐ 1")))
    assert reg.member_state(probationary).status == "probationary"


def test_a_member_moves_into_and_is_hosted_by_an_active_cell_only(reg: RegistryUnderTest) -> None:
    city = reg.unit("city_committee")
    ward = reg.unit("commune_committee", city)
    home, other, empty = (reg.unit("grassroots_cell", city) for _ in range(3))
    reg.run(reg.commands.dissolve_unit(DissolveUnit(unit_id=empty, successor_id=None,
                                                    effective_on=dt.date(2020, 1, 1), decision_ref="QĐ 2")))
    member = reg.member(home)
    on = dt.date(2024, 3, 1)

    # The codes an enrolment answers for the same cells.
    for place, code in ((ward, "unit-holds-no-members"), (empty, "unit-not-active"),
                        (str(uuid.uuid4()), "unit-not-found")):
        refused_with(code, "to_unit_id", lambda place=place: reg.run(
            reg.commands.transfer_member(member, to_unit_id=place, effective_on=on, transfer_id=None)))
        refused_with(code, "to_unit_id", lambda place=place: reg.run(
            reg.commands.host_member(member, host_unit_id=place, effective_on=on, until=None, transfer_id=None)))
    state = reg.member_state(member)
    assert (state.unit_id, state.host_unit_id) == (home, None)

    reg.run(reg.commands.host_member(member, host_unit_id=other, effective_on=on, until=None, transfer_id="t-1"))
    assert reg.member_state(member).host_unit_id == other
    reg.run(reg.commands.host_member(member, host_unit_id=None, effective_on=dt.date(2024, 9, 1), until=None,
                                     transfer_id="t-1"))
    assert reg.member_state(member).host_unit_id is None


def test_a_member_is_placed_only_while_no_restructuring_of_the_hierarchy_runs(reg: RegistryUnderTest,
                                                                             database_url: str) -> None:
    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    placed = threading.Event()

    def enrol() -> None:
        reg.member(cell)
        placed.set()

    with psycopg.connect(database_url) as restructuring:
        # What a merge, split or dissolution holds until it commits: a member placed beside it could be stranded.
        restructuring.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (HIERARCHY_LOCK,))
        enrolling = threading.Thread(target=enrol)
        enrolling.start()
        assert not placed.wait(0.5), "the enrolment waits for the restructuring"
    assert placed.wait(10), "and goes ahead once it has committed"
    enrolling.join()


def test_two_enrolments_racing_for_one_citizen_id_leave_one_member(reg: RegistryUnderTest) -> None:
    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    for _ in range(5):
        held = citizen_id()
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def enrol(held: str = held, start: threading.Barrier = start, outcomes: list[str] = outcomes) -> None:
            start.wait()
            try:
                reg.run(reg.commands.enrol_member(enrolment(cell, citizen_id=held)))
                outcomes.append("enrolled")
            except Conflict as refused:
                outcomes.append(refused.code)

        racers = [threading.Thread(target=enrol) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        assert sorted(outcomes) == ["citizen-id-taken", "enrolled"]
        with reg.registry.pool.connection() as conn:
            holders = conn.execute("SELECT count(*) FROM member_view WHERE citizen_id = %s", (held,)).fetchone()
        assert holders == (1,)
