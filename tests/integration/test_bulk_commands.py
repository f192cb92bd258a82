"""The registry's bulk commands (the demo and migration path): the same rules as one command at a time, one
transaction for the batch, and a refusal that names the item at fault and writes nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.domain import members
from registry.domain.commands import EnrolMember, EstablishUnit
from registry.domain.errors import Conflict, DomainError
from tests.support.registry import RegistryUnderTest, registry_for

TODAY = dt.date(2026, 11, 23)


@pytest.fixture
def reg(database_url: str, schema: str, topic: str, tmp_path: Path) -> Iterator[RegistryUnderTest]:
    under_test = registry_for(database_url, schema, topic, tmp_path)
    yield under_test
    under_test.close()


def enrolment(unit_id: str, citizen_id: str, **changes: Any) -> EnrolMember:
    return dataclasses.replace(EnrolMember(
        member_id=str(uuid.uuid4()), full_name="Trần Thị Lan", gender="female", birth_date=dt.date(1975, 3, 1),
        citizen_id=citizen_id, unit_id=unit_id, status="official", admitted_on=dt.date(2000, 3, 1),
        source="existing"), **changes)


def test_a_provincial_register_numbers_its_cards_after_its_own_code(database_url: str, schema: str, topic: str,
                                                                   tmp_path: Path) -> None:
    province = registry_for(database_url, schema, topic, tmp_path, card_code="04")
    try:
        cell = province.unit("grassroots_cell", province.unit("city_committee"))
        holders = [province.member(cell) for _ in range(2)]
        province.run(province.commands.exchange_cards("c1", holders, reason="exchange_2025",
                                                      issued_on=dt.date(2025, 9, 2)))
        assert all(str(province.member_state(m).card_number).startswith("04") for m in holders)
        with pytest.raises(DomainError) as refused:
            province.run(province.commands.enrol_members("e1", [enrolment(cell, f"{uuid.uuid4().int % 10**12:012d}",
                                                                          card_number="01999999")]))
        assert refused.value.code == "card-number-invalid"
    finally:
        province.close()
    with pytest.raises(ValueError, match="two digits"):
        registry_for(database_url, schema, topic, tmp_path, card_code="4")


def test_units_of_one_level_are_established_together_and_a_taken_code_stops_the_batch(
        reg: RegistryUnderTest) -> None:
    root = reg.unit("city_committee")
    taken = f"T{uuid.uuid4().hex[:8]}"
    reg.unit("grassroots_cell", root, code=taken)
    batch = [EstablishUnit(str(uuid.uuid4()), f"N{uuid.uuid4().hex[:8]}", "Chi bộ mới", "grassroots_cell", root,
                           dt.date(2001, 1, 1)),
             EstablishUnit(str(uuid.uuid4()), taken, "Chi bộ trùng mã", "grassroots_cell", root, dt.date(2001, 1, 1))]
    with pytest.raises(Conflict, match=rf"unit 1 \({taken}\)") as refused:
        reg.run(reg.commands.establish_units("b1", batch))
    assert refused.value.code == "unit-code-taken"
    assert reg.events(f"unit-{batch[0].unit_id}") == [], "nothing of a refused batch is written"
    result = reg.run(reg.commands.establish_units("b2", batch[:1]))
    assert result.event_count == 1


def test_enrolment_in_bulk_skips_citizens_already_registered_and_names_a_refused_member(
        reg: RegistryUnderTest) -> None:
    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    first = enrolment(cell, f"{uuid.uuid4().int % 10**12:012d}")
    assert reg.run(reg.commands.enrol_members("e1", [first])).event_count == 1
    again = enrolment(cell, first.citizen_id)
    young = enrolment(cell, f"{uuid.uuid4().int % 10**12:012d}", birth_date=dt.date(1990, 1, 1),
                      admitted_on=dt.date(2005, 1, 1))
    with pytest.raises(DomainError, match=rf"member 0 \({young.citizen_id}\)") as refused:
        reg.run(reg.commands.enrol_members("e2", [again, young]))
    assert refused.value.code == "admitted-under-age"
    result = reg.run(reg.commands.enrol_members("e3", [again]))
    assert (result.event_count, result.details["skipped"]) == (0, 1), "a re-run writes nothing twice"


def test_facts_in_bulk_fold_in_order_and_a_refusal_writes_nothing(reg: RegistryUnderTest) -> None:
    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    member_id = reg.member(cell, admitted_on=dt.date(2000, 5, 19))
    rate = (member_id, lambda m, _: members.rate(m, year=2024, level="khong_hoan_thanh", today=TODAY))
    rate_again = (member_id, lambda m, _: members.rate(m, year=2025, level="khong_hoan_thanh", today=TODAY))
    die = (member_id, lambda m, _: members.die(m, died_on=dt.date(2026, 2, 1), today=TODAY))
    exempt = (member_id, lambda m, _: members.exempt(m, effective_on=dt.date(2026, 3, 1), reason="sức khỏe yếu",
                                                     decision_ref=None, today=TODAY))
    with pytest.raises(Conflict, match=rf"fact 3 \(member {member_id}\)") as refused:
        reg.run(reg.commands.record_member_facts("f1", [rate, rate_again, die, exempt]))
    assert refused.value.code == "member-not-active", "the exemption is decided against the state after the death"
    assert len(reg.events(f"member-{member_id}")) == 1, "only the enrolment: the refused batch wrote nothing"
    reg.run(reg.commands.record_member_facts("f2", [rate, rate_again, die]))
    state = reg.member_state(member_id)
    assert state.on_screening_list, "two failed years in one batch list the member, as one by one"
    assert state.status == "deceased"


def test_the_state_facts_in_bulk_leave_in_the_cache_is_the_one_folded_from_the_stored_events(
        reg: RegistryUnderTest) -> None:
    from registry.application.handlers import MEMBER

    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    member_id = reg.member(cell, admitted_on=dt.date(2000, 5, 19))
    facts = [
        (member_id, lambda m, _: members.rate(m, year=2024, level="khong_hoan_thanh", today=TODAY)),
        (member_id, lambda m, _: members.rate(m, year=2025, level="khong_hoan_thanh", today=TODAY)),
        (member_id, lambda m, _: members.exempt(m, effective_on=dt.date(2026, 3, 1), reason="sức khỏe yếu",
                                                decision_ref=None, today=TODAY)),
    ]
    reg.run(reg.commands.record_member_facts("f1", facts))
    states = reg.registry.bus.states
    assert states is not None
    stream = f"member-{member_id}"
    version, cached = states.get(MEMBER, [stream])[stream]
    assert version == len(reg.events(stream)) > 3
    assert cached == reg.member_state(member_id)
    assert cached.on_screening_list and cached.exempted


def test_cards_are_exchanged_in_bulk_with_fresh_numbers(reg: RegistryUnderTest) -> None:
    cell = reg.unit("grassroots_cell", reg.unit("city_committee"))
    holders = [reg.member(cell) for _ in range(3)]
    reg.run(reg.commands.exchange_cards("c1", holders, reason="exchange_2025", issued_on=dt.date(2025, 9, 2)))
    numbers = {reg.member_state(m).card_number for m in holders}
    assert len(numbers) == 3 and all(n and n.startswith("01") for n in numbers)
    with pytest.raises(Conflict, match="fact 0") as refused:
        reg.run(reg.commands.exchange_cards("c2", holders[:1], reason="exchange_2025",
                                            issued_on=dt.date(2025, 9, 3)))
    assert refused.value.code == "card-already-exchanged"
