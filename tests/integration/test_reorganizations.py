"""Merges, splits, re-parenting and dissolution against PostgreSQL: members follow in the same decision."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.domain.commands import DissolveUnit, MergeUnits, NewUnitSpec, ReattachUnits, SplitPart, SplitUnit
from registry.domain.errors import Conflict, DomainError
from tests.support.registry import RegistryUnderTest, registry_for

REFORM = dt.date(2025, 7, 1)


@pytest.fixture
def reg(database_url: str, schema: str, topic: str, tmp_path: Path) -> Iterator[RegistryUnderTest]:
    under_test = registry_for(database_url, schema, topic, tmp_path)
    yield under_test
    under_test.close()


def test_a_merge_moves_the_members_and_sub_units_of_every_source(reg: RegistryUnderTest) -> None:
    city = reg.unit("city_committee")
    district = reg.unit("district_committee", city)
    ward_a, ward_b = reg.unit("commune_committee", district), reg.unit("commune_committee", district)
    grassroots = reg.unit("grassroots_committee", ward_a)
    cell_a = reg.unit("cell", grassroots)
    cell_b = reg.unit("grassroots_cell", ward_b)
    target = reg.unit("grassroots_cell", ward_b)
    members_a = [reg.member(cell_a) for _ in range(3)]
    members_b = [reg.member(cell_b) for _ in range(4)]

    result = reg.run(reg.commands.merge_units(MergeUnits(
        source_ids=(cell_a, cell_b), target_id=target, new_target=None, new_target_id=None, effective_on=REFORM,
        decision_ref="QĐ 1")))
    assert result.details["members_moved"] == 7
    for member_id in members_a + members_b:
        state = reg.member_state(member_id)
        assert state.unit_id == target
        change = reg.events(f"member-{member_id}")[-1]
        assert change.type == "MemberUnitChanged" and change.data["reason"] == "reorganization"
        assert change.metadata["command_id"] == reg.events(f"unit-{target}")[-1].metadata["command_id"]
    assert reg.events(f"unit-{cell_a}")[-1].data["reason"] == "merged"

    # Merge two wards into a new one: their grassroots organizations follow.
    new_ward = reg.run(reg.commands.merge_units(MergeUnits(
        source_ids=(ward_a, ward_b), target_id=None,
        new_target=NewUnitSpec(
            code=f"W{uuid.uuid4().hex[:8]}", name="Phường mới", kind="commune_committee", parent_id=city),
        new_target_id=str(uuid.uuid4()), effective_on=REFORM, decision_ref="NQ 1656"))).aggregate_id
    children = reg.events(f"unit-{grassroots}")[-1]
    assert children.type == "OrganizationUnitReattached" and children.data["parent_id"] == new_ward
    assert reg.events(f"unit-{target}")[-1].data["parent_id"] == new_ward


def test_a_split_assigns_every_member_and_refuses_to_leave_anyone_behind(reg: RegistryUnderTest) -> None:
    city = reg.unit("city_committee")
    ward = reg.unit("commune_committee", city)
    cell = reg.unit("grassroots_cell", ward)
    people = [reg.member(cell) for _ in range(5)]
    half = SplitPart(unit_id=str(uuid.uuid4()), code=f"P{uuid.uuid4().hex[:8]}", name="Chi bộ 1",
                     kind="grassroots_cell", member_ids=tuple(people[:2]))
    with pytest.raises(DomainError) as refused:
        reg.run(reg.commands.split_unit(SplitUnit(unit_id=cell, parts=(half, SplitPart(
            unit_id=str(uuid.uuid4()), code=f"P{uuid.uuid4().hex[:8]}", name="Chi bộ 2", kind="grassroots_cell",
            member_ids=tuple(people[2:4]))), effective_on=REFORM, decision_ref="QĐ 2")))
    assert refused.value.code == "split-leaves-members-unassigned"
    assert all(reg.member_state(m).unit_id == cell for m in people), "nothing of a refused split is written"

    other = SplitPart(unit_id=str(uuid.uuid4()), code=f"P{uuid.uuid4().hex[:8]}", name="Chi bộ 2",
                      kind="grassroots_cell", member_ids=tuple(people[2:]))
    reg.run(reg.commands.split_unit(SplitUnit(unit_id=cell, parts=(half, other), effective_on=REFORM,
                                              decision_ref="QĐ 2")))
    assert [reg.member_state(m).unit_id for m in people] == [half.unit_id] * 2 + [other.unit_id] * 3
    assert reg.events(f"unit-{half.unit_id}")[0].data["split_from"] == cell
    assert reg.events(f"unit-{cell}")[-1].data["reason"] == "split"


def test_dissolving_a_unit_with_members_needs_a_successor(reg: RegistryUnderTest) -> None:
    city = reg.unit("city_committee")
    ward = reg.unit("commune_committee", city)
    cell, heir = reg.unit("grassroots_cell", ward), reg.unit("grassroots_cell", ward)
    member = reg.member(cell)
    with pytest.raises(DomainError) as refused:
        reg.run(reg.commands.dissolve_unit(DissolveUnit(unit_id=cell, successor_id=None, effective_on=REFORM,
                                                        decision_ref="QĐ 3")))
    assert refused.value.code == "successor-required"
    reg.run(reg.commands.dissolve_unit(DissolveUnit(unit_id=cell, successor_id=heir, effective_on=REFORM,
                                                    decision_ref="QĐ 3")))
    assert reg.member_state(member).unit_id == heir


def test_reattaching_under_a_descendant_is_refused_as_a_cycle(reg: RegistryUnderTest) -> None:
    city = reg.unit("city_committee")
    district = reg.unit("district_committee", city)
    ward = reg.unit("commune_committee", district)
    grassroots = reg.unit("grassroots_committee", ward)
    sub = reg.unit("sub_committee", grassroots)
    with pytest.raises(DomainError) as refused:
        reg.run(reg.commands.reattach_units(ReattachUnits(unit_ids=(grassroots,), parent_id=sub,
                                                          effective_on=REFORM, decision_ref="x")))
    assert refused.value.code in {"hierarchy-cycle", "unit-kind-not-allowed-here"}
    other_ward = reg.unit("commune_committee", city)
    reg.run(reg.commands.reattach_units(ReattachUnits(unit_ids=(grassroots,), parent_id=other_ward,
                                                      effective_on=REFORM, decision_ref="x")))
    with pytest.raises(DomainError) as cycle:
        reg.run(reg.commands.reattach_units(ReattachUnits(unit_ids=(other_ward,), parent_id=ward,
                                                          effective_on=REFORM, decision_ref="x")))
    assert cycle.value.code == "unit-kind-not-allowed-here"


def test_a_reorganization_of_many_units_and_members_is_one_decision(reg: RegistryUnderTest) -> None:
    city = reg.unit("city_committee")
    old_ward, new_ward = reg.unit("commune_committee", city), reg.unit("commune_committee", city)
    grassroots = [reg.unit("grassroots_cell", old_ward) for _ in range(20)]
    for cell in grassroots:
        for _ in range(5):
            reg.member(cell)
    result = reg.run(reg.commands.reattach_units(ReattachUnits(
        unit_ids=tuple(grassroots), parent_id=new_ward, effective_on=REFORM, decision_ref="QĐ 99")))
    assert result.details["moved"] == 20
    result = reg.run(reg.commands.merge_units(MergeUnits(
        source_ids=tuple(grassroots[1:]), target_id=grassroots[0], new_target=None, new_target_id=None,
        effective_on=REFORM, decision_ref="QĐ 100")))
    assert result.details["members_moved"] == 95
    assert result.event_count == 95 + 19 + 1


def test_a_code_in_use_is_refused_to_a_merge_s_new_unit_and_a_split_s_part_and_freed_when_its_unit_ends(
        reg: RegistryUnderTest) -> None:
    city = reg.unit("city_committee")
    ward = reg.unit("commune_committee", city)
    taken = f"T{uuid.uuid4().hex[:8]}"
    holder = reg.unit("grassroots_cell", ward, code=taken)
    cell_a, cell_b = reg.unit("grassroots_cell", ward), reg.unit("grassroots_cell", ward)
    people = [reg.member(cell_a), reg.member(cell_b)]
    new_id = str(uuid.uuid4())
    with pytest.raises(Conflict) as refused:
        reg.run(reg.commands.merge_units(MergeUnits(
            source_ids=(cell_a, cell_b), target_id=None,
            new_target=NewUnitSpec(code=taken, name="Chi bộ ghép", kind="grassroots_cell", parent_id=ward),
            new_target_id=new_id, effective_on=REFORM, decision_ref="QĐ 5")))
    assert refused.value.code == "unit-code-taken"
    assert reg.events(f"unit-{new_id}") == [] and reg.member_state(people[0]).unit_id == cell_a

    parts = (SplitPart(unit_id=str(uuid.uuid4()), code=taken, name="Chi bộ 1", kind="grassroots_cell",
                       member_ids=(people[0],)),
             SplitPart(unit_id=str(uuid.uuid4()), code=f"P{uuid.uuid4().hex[:8]}", name="Chi bộ 2",
                       kind="grassroots_cell"))
    with pytest.raises(Conflict) as refused:
        reg.run(reg.commands.split_unit(SplitUnit(unit_id=cell_a, parts=parts, effective_on=REFORM,
                                                  decision_ref="QĐ 6")))
    assert refused.value.code == "unit-code-taken"
    assert reg.events(f"unit-{parts[0].unit_id}") == [] and reg.member_state(people[0]).unit_id == cell_a

    reg.run(reg.commands.dissolve_unit(DissolveUnit(unit_id=holder, successor_id=None, effective_on=REFORM,
                                                    decision_ref="QĐ 7")))
    reused = reg.unit("grassroots_cell", ward, code=taken, on=REFORM)
    assert reg.events(f"unit-{reused}")[0].data["code"] == taken, "the code of a dissolved unit is free again"
