"""Reorganizations: rename, reattach, merge, split, dissolve; the hierarchy as of a date; the placement table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from contracts import registry_v1 as contract
from registry.domain import units
from registry.domain.commands import (
    DissolveUnit,
    MergeUnits,
    NewUnitSpec,
    ReattachUnits,
    RenameUnit,
    SplitPart,
    SplitUnit,
)
from registry.domain.errors import Conflict, DomainError, NotFound
from registry.domain.policy import ALLOWED_PARENTS

TODAY = dt.date(2026, 11, 23)
DAY = dt.timedelta(days=1)
EFFECTIVE = dt.date(2025, 7, 1)


def unit(unit_id: str, kind: str, parent_id: str | None = None, *, on: dt.date = dt.date(2000, 1, 1),
         status: str = "active", name: str | None = None) -> units.Unit:
    return units.Unit(exists=True, unit_id=unit_id, code=unit_id.upper(), name=name or f"Đảng bộ {unit_id}",
                      kind=kind, parent_id=parent_id, status=status, established_on=on)


# city
# ├── commune-1
# │   ├── gc-1 (grassroots committee)
# │   │   ├── sub-1 ── cell-a, cell-b
# │   │   └── sub-2
# │   ├── gc-2 ── cell-c
# │   └── gcell-1 (grassroots cell)
# └── commune-2
CITY = unit("city", "city_committee")
COMMUNE = unit("commune-1", "commune_committee", "city")
COMMUNE_2 = unit("commune-2", "commune_committee", "city")
GC = unit("gc-1", "grassroots_committee", "commune-1")
GC_2 = unit("gc-2", "grassroots_committee", "commune-1")
SUB = unit("sub-1", "sub_committee", "gc-1")
SUB_2 = unit("sub-2", "sub_committee", "gc-1")
CELL_A = unit("cell-a", "cell", "sub-1")
CELL_B = unit("cell-b", "cell", "sub-1")
CELL_C = unit("cell-c", "cell", "gc-2")
GCELL = unit("gcell-1", "grassroots_cell", "commune-1")


# Rename -------------------------------------------------------------------------------------------------


def rename(target: units.Unit, name: str = "Chi bộ Khu phố 3", on: dt.date = EFFECTIVE) -> list[Any]:
    return units.rename(RenameUnit(unit_id=target.unit_id, name=name, effective_on=on, decision_ref="QĐ 1"),
                        unit=target, today=TODAY)


def test_a_unit_is_renamed() -> None:
    [event] = rename(CELL_A, "  Chi bộ Khu phố 3 ")
    assert event == contract.OrganizationUnitRenamed(unit_id="cell-a", name="Chi bộ Khu phố 3",
                                                     previous_name="Đảng bộ cell-a", effective_on=EFFECTIVE,
                                                     decision_ref="QĐ 1")
    assert units.evolve(CELL_A, event).name == "Chi bộ Khu phố 3"


def test_a_rename_may_be_backdated_to_the_day_of_establishment() -> None:
    assert rename(CELL_A, on=dt.date(2000, 1, 1))


@pytest.mark.parametrize("status", ["dissolved", "merged", "split"])
def test_a_unit_that_ended_is_not_renamed(status: str) -> None:
    with pytest.raises(Conflict) as refused:
        rename(unit("cell-x", "cell", "sub-1", status=status))
    assert refused.value.code == "unit-not-active"


def test_a_unit_that_does_not_exist_is_not_renamed() -> None:
    with pytest.raises(NotFound) as refused:
        units.rename(RenameUnit(unit_id="nope", name="X", effective_on=EFFECTIVE, decision_ref=None),
                     unit=units.INITIAL, today=TODAY)
    assert refused.value.code == "unit-not-found"


def test_a_rename_needs_a_new_name() -> None:
    with pytest.raises(Conflict) as same:
        rename(CELL_A, " Đảng bộ cell-a ")
    assert same.value.code == "unit-name-unchanged"
    with pytest.raises(DomainError) as blank:
        rename(CELL_A, "   ")
    assert blank.value.code == "unit-name-missing"


def test_a_rename_takes_effect_neither_in_the_future_nor_before_the_unit_existed() -> None:
    with pytest.raises(DomainError) as future:
        rename(CELL_A, on=TODAY + DAY)
    assert future.value.code == "date-in-future"
    with pytest.raises(DomainError) as early:
        rename(CELL_A, on=dt.date(1999, 12, 31))
    assert early.value.code == "before-unit-established"


# Reattach -----------------------------------------------------------------------------------------------


def reattach(moving: Sequence[units.Unit], parent: units.Unit | None, ancestors: Sequence[str] = (),
             on: dt.date = EFFECTIVE, unit_ids: Sequence[str] | None = None) -> list[Any]:
    ids = tuple(unit_ids if unit_ids is not None else [u.unit_id for u in moving])
    command = ReattachUnits(unit_ids=ids, parent_id=parent.unit_id if parent else "gone", effective_on=on,
                            decision_ref="QĐ 2")
    return units.reattach(command, units=moving, parent=parent, parent_ancestor_ids=ancestors, today=TODAY)


def test_units_are_reattached_under_a_new_parent_in_one_decision() -> None:
    events = reattach([CELL_A, CELL_B], SUB_2, ["gc-1", "commune-1", "city"])
    assert events == [
        contract.OrganizationUnitReattached(unit_id=u, parent_id="sub-2", previous_parent_id="sub-1",
                                            effective_on=EFFECTIVE, decision_ref="QĐ 2", reason="reattach")
        for u in ("cell-a", "cell-b")]
    assert units.evolve(CELL_A, events[0]).parent_id == "sub-2"


def test_a_grassroots_committee_moves_to_another_commune() -> None:
    [event] = reattach([GC], COMMUNE_2, ["city"])
    assert (event.unit_id, event.parent_id, event.previous_parent_id) == ("gc-1", "commune-2", "commune-1")


def test_a_unit_cannot_move_under_its_own_descendant() -> None:
    with pytest.raises(DomainError) as refused:
        reattach([GC], SUB, ["gc-1", "commune-1", "city"])
    assert refused.value.code == "hierarchy-cycle"


def test_a_unit_cannot_move_under_itself() -> None:
    with pytest.raises(DomainError) as refused:
        reattach([GC], GC, ["commune-1", "city"])
    assert refused.value.code == "hierarchy-cycle"


def test_a_unit_moves_only_under_a_kind_the_policy_allows() -> None:
    with pytest.raises(DomainError) as refused:
        reattach([CELL_A], COMMUNE_2, ["city"])
    assert refused.value.code == "unit-kind-not-allowed-here"
    assert refused.value.field == "parent_id"


def test_a_unit_already_under_the_parent_is_not_reattached() -> None:
    with pytest.raises(Conflict) as refused:
        reattach([CELL_A], SUB, ["gc-1", "commune-1", "city"])
    assert refused.value.code == "already-attached-here"


def test_a_unit_named_twice_is_refused() -> None:
    with pytest.raises(DomainError) as refused:
        reattach([CELL_A, CELL_A], SUB_2, ["gc-1"])
    assert refused.value.code == "unit-named-twice"


def test_a_reattachment_names_at_least_one_unit() -> None:
    with pytest.raises(DomainError) as refused:
        reattach([], SUB_2, ["gc-1"])
    assert refused.value.code == "nothing-to-reattach"


def test_the_new_parent_must_exist_and_be_active() -> None:
    with pytest.raises(NotFound) as missing:
        reattach([CELL_A], None)
    assert missing.value.code == "unit-not-found" and missing.value.field == "parent_id"
    with pytest.raises(Conflict) as ended:
        reattach([CELL_A], unit("sub-9", "sub_committee", "gc-1", status="dissolved"), ["gc-1"])
    assert ended.value.code == "unit-not-active" and ended.value.field == "parent_id"


def test_a_unit_that_ended_is_not_reattached() -> None:
    with pytest.raises(Conflict) as refused:
        reattach([unit("cell-x", "cell", "sub-1", status="merged")], SUB_2, ["gc-1"])
    assert refused.value.code == "unit-not-active" and refused.value.field == "unit_ids"


def test_a_reattachment_takes_effect_neither_in_the_future_nor_before_either_unit_existed() -> None:
    with pytest.raises(DomainError) as future:
        reattach([CELL_A], SUB_2, ["gc-1"], on=TODAY + DAY)
    assert future.value.code == "date-in-future"
    young_parent = unit("sub-3", "sub_committee", "gc-1", on=dt.date(2025, 8, 1))
    with pytest.raises(DomainError) as before_parent:
        reattach([CELL_A], young_parent, ["gc-1"])
    assert before_parent.value.code == "before-unit-established"
    young_cell = unit("cell-y", "cell", "sub-1", on=dt.date(2025, 8, 1))
    with pytest.raises(DomainError) as before_unit:
        reattach([young_cell], SUB_2, ["gc-1"])
    assert before_unit.value.code == "before-unit-established"


def test_one_bad_unit_refuses_the_whole_reattachment() -> None:
    with pytest.raises(DomainError) as refused:
        reattach([CELL_A, CELL_C, GC_2], SUB_2, ["gc-1"])
    assert refused.value.code == "unit-kind-not-allowed-here"


# Merge --------------------------------------------------------------------------------------------------


def merge(sources: Sequence[units.Unit], target: units.Unit | None, ancestors: Sequence[str] = (), *,
          new_target: NewUnitSpec | None = None, children: dict[str, list[units.Unit]] | None = None,
          members: dict[str, list[str]] | None = None, on: dt.date = EFFECTIVE,
          source_ids: Sequence[str] | None = None) -> units.Reorganization:
    command = MergeUnits(
        source_ids=tuple(source_ids if source_ids is not None else [s.unit_id for s in sources]),
        target_id=None if new_target or target is None else target.unit_id, new_target=new_target,
        new_target_id="new-1" if new_target else None, effective_on=on, decision_ref="QĐ 3")
    return units.merge(command, sources=sources, target=target, target_ancestor_ids=ancestors,
                       children=children or {}, members=members or {}, today=TODAY)


def test_cells_merge_into_a_cell_and_their_members_follow() -> None:
    result = merge([CELL_A, CELL_B], CELL_C, ["gc-2", "commune-1", "city"],
                   members={"cell-a": ["m-1", "m-2"], "cell-b": ["m-3"]})
    assert result.member_moves == {"m-1": "cell-c", "m-2": "cell-c", "m-3": "cell-c"}
    assert result.unit_events == [
        ("cell-a", contract.OrganizationUnitDissolved(unit_id="cell-a", successor_id="cell-c", effective_on=EFFECTIVE,
                                                      reason="merged", decision_ref="QĐ 3")),
        ("cell-b", contract.OrganizationUnitDissolved(unit_id="cell-b", successor_id="cell-c", effective_on=EFFECTIVE,
                                                      reason="merged", decision_ref="QĐ 3")),
        ("cell-c", contract.OrganizationUnitsMerged(target_id="cell-c", source_ids=("cell-a", "cell-b"),
                                                    effective_on=EFFECTIVE, decision_ref="QĐ 3")),
    ]
    merged = units.evolve(CELL_A, result.unit_events[0][1])
    assert merged.status == "merged" and merged.ended_on == EFFECTIVE and not merged.active


def test_the_sub_units_of_merged_units_are_reattached_to_the_target() -> None:
    result = merge([GC], GC_2, ["commune-1", "city"], children={"gc-1": [SUB, SUB_2]})
    reattached = [event for _, event in result.unit_events if isinstance(event, contract.OrganizationUnitReattached)]
    assert reattached == [
        contract.OrganizationUnitReattached(unit_id=u, parent_id="gc-2", previous_parent_id="gc-1",
                                            effective_on=EFFECTIVE, decision_ref="QĐ 3", reason="merge")
        for u in ("sub-1", "sub-2")]
    assert [stream for stream, _ in result.unit_events] == ["sub-1", "sub-2", "gc-1", "gc-2"]
    assert result.member_moves == {}


def test_units_merge_into_a_newly_established_target() -> None:
    spec = NewUnitSpec(code=" CB-MOI ", name=" Chi bộ mới ", kind="cell", parent_id="sub-2")
    result = merge([CELL_A, CELL_B], SUB_2, ["gc-1", "commune-1", "city"], new_target=spec,
                   members={"cell-a": ["m-1"], "cell-b": ["m-2"]})
    stream, established = result.unit_events[0]
    assert stream == "new-1"
    assert established == contract.OrganizationUnitEstablished(
        unit_id="new-1", code="CB-MOI", name="Chi bộ mới", kind="cell", parent_id="sub-2", established_on=EFFECTIVE,
        decision_ref="QĐ 3")
    dissolved = [e for _, e in result.unit_events if isinstance(e, contract.OrganizationUnitDissolved)]
    assert [(e.unit_id, e.successor_id, e.reason) for e in dissolved] == [
        ("cell-a", "new-1", "merged"), ("cell-b", "new-1", "merged")]
    assert result.unit_events[-1][1] == contract.OrganizationUnitsMerged(
        target_id="new-1", source_ids=("cell-a", "cell-b"), effective_on=EFFECTIVE, decision_ref="QĐ 3")
    assert result.member_moves == {"m-1": "new-1", "m-2": "new-1"}


def test_a_new_target_is_not_established_before_its_parent() -> None:
    young_parent = unit("sub-3", "sub_committee", "gc-1", on=dt.date(2025, 8, 1))
    spec = NewUnitSpec(code="CB", name="Chi bộ", kind="cell", parent_id="sub-3")
    with pytest.raises(DomainError) as refused:
        merge([CELL_A, CELL_B], young_parent, ["gc-1", "commune-1", "city"], new_target=spec)
    assert refused.value.code in {"before-parent-established", "before-unit-established"}


def test_a_new_target_sits_where_the_policy_allows() -> None:
    spec = NewUnitSpec(code="CB", name="Chi bộ", kind="cell", parent_id="commune-2")
    with pytest.raises(DomainError) as refused:
        merge([CELL_A, CELL_B], COMMUNE_2, ["city"], new_target=spec)
    assert refused.value.code == "unit-kind-not-allowed-here"


def test_a_new_target_is_not_placed_inside_a_source() -> None:
    spec = NewUnitSpec(code="CB", name="Chi bộ", kind="sub_committee", parent_id="gc-1")
    with pytest.raises(DomainError) as refused:
        merge([GC, GC_2], GC, ["commune-1", "city"], new_target=spec)
    assert refused.value.code == "hierarchy-cycle"


def test_a_new_targets_parent_must_be_active() -> None:
    spec = NewUnitSpec(code="CB", name="Chi bộ", kind="cell", parent_id="sub-9")
    with pytest.raises(Conflict) as refused:
        merge([CELL_A, CELL_B], unit("sub-9", "sub_committee", "gc-1", status="dissolved"), ["gc-1"],
              new_target=spec)
    assert refused.value.code == "unit-not-active"


def test_a_new_target_needs_a_code_and_a_name() -> None:
    with pytest.raises(DomainError) as refused:
        merge([CELL_A, CELL_B], SUB_2, ["gc-1"], new_target=NewUnitSpec(code="", name="X", kind="cell",
                                                                         parent_id="sub-2"))
    assert refused.value.code == "unit-code-invalid"


def test_a_unit_cannot_be_merged_into_itself() -> None:
    with pytest.raises(DomainError) as refused:
        merge([CELL_A, CELL_B], CELL_A, ["sub-1", "gc-1"])
    assert refused.value.code == "merge-into-itself"


def test_a_unit_cannot_be_merged_into_a_unit_inside_it() -> None:
    with pytest.raises(DomainError) as refused:
        merge([GC], SUB, ["gc-1", "commune-1", "city"])
    assert refused.value.code == "hierarchy-cycle"


def test_members_are_not_merged_into_a_unit_that_holds_none() -> None:
    with pytest.raises(DomainError) as refused:
        merge([CELL_A], SUB_2, ["gc-1", "commune-1", "city"], members={"cell-a": ["m-1"]})
    assert refused.value.code == "target-cannot-hold-members"


def test_a_unit_without_members_may_merge_into_one_that_holds_none() -> None:
    result = merge([SUB], SUB_2, ["gc-1", "commune-1", "city"], children={"sub-1": [CELL_A]})
    assert result.unit_events[0][1].parent_id == "sub-2"


def test_sub_units_must_fit_under_the_target() -> None:
    with pytest.raises(DomainError) as refused:
        merge([GC_2], GCELL, ["commune-1", "city"], children={"gc-2": [CELL_C]})
    assert refused.value.code == "unit-kind-not-allowed-here"


def test_a_merge_names_its_sources_once_each() -> None:
    with pytest.raises(DomainError) as empty:
        merge([], CELL_C, ["gc-2"])
    assert empty.value.code == "nothing-to-merge"
    with pytest.raises(DomainError) as twice:
        merge([CELL_A, CELL_A], CELL_C, ["gc-2"])
    assert twice.value.code == "unit-named-twice"


def test_merged_units_and_target_must_be_active() -> None:
    with pytest.raises(Conflict) as source:
        merge([CELL_A, unit("cell-x", "cell", "sub-1", status="dissolved")], CELL_C, ["gc-2"])
    assert source.value.code == "unit-not-active" and source.value.field == "source_ids"
    with pytest.raises(Conflict) as target:
        merge([CELL_A], unit("cell-x", "cell", "sub-1", status="split"), ["sub-1"])
    assert target.value.code == "unit-not-active" and target.value.field == "target_id"
    with pytest.raises(NotFound) as missing:
        merge([CELL_A], None)
    assert missing.value.code == "unit-not-found"


def test_a_merge_takes_effect_neither_in_the_future_nor_before_the_units_existed() -> None:
    with pytest.raises(DomainError) as future:
        merge([CELL_A], CELL_C, ["gc-2"], on=TODAY + DAY)
    assert future.value.code == "date-in-future"
    with pytest.raises(DomainError) as target:
        merge([CELL_A], unit("cell-y", "cell", "gc-2", on=dt.date(2025, 8, 1)), ["gc-2"])
    assert target.value.code == "before-unit-established"
    with pytest.raises(DomainError) as source:
        merge([unit("cell-y", "cell", "sub-1", on=dt.date(2025, 8, 1))], CELL_C, ["gc-2"])
    assert source.value.code == "before-unit-established"


# Split --------------------------------------------------------------------------------------------------


def part(unit_id: str, kind: str = "cell", unit_ids: tuple[str, ...] = (),
         member_ids: tuple[str, ...] = ()) -> SplitPart:
    return SplitPart(unit_id=unit_id, code=unit_id.upper(), name=f"Chi bộ {unit_id}", kind=kind, unit_ids=unit_ids,
                     member_ids=member_ids)


def split(source: units.Unit, parent: units.Unit | None, parts: Sequence[SplitPart],
          children: Sequence[units.Unit] = (), members: Sequence[str] = (),
          on: dt.date = EFFECTIVE) -> units.Reorganization:
    command = SplitUnit(unit_id=source.unit_id, parts=tuple(parts), effective_on=on, decision_ref="QĐ 4")
    return units.split(command, unit=source, parent=parent, children=children, members=members, today=TODAY)


def test_a_cell_splits_in_two_and_each_member_goes_to_one_part() -> None:
    result = split(CELL_A, SUB, [part("p-1", member_ids=("m-1", "m-2")), part("p-2", member_ids=("m-3",))],
                   members=["m-1", "m-2", "m-3"])
    assert result.unit_events == [
        ("p-1", contract.OrganizationUnitEstablished(unit_id="p-1", code="P-1", name="Chi bộ p-1", kind="cell",
                                                     parent_id="sub-1", established_on=EFFECTIVE, decision_ref="QĐ 4",
                                                     split_from="cell-a")),
        ("p-2", contract.OrganizationUnitEstablished(unit_id="p-2", code="P-2", name="Chi bộ p-2", kind="cell",
                                                     parent_id="sub-1", established_on=EFFECTIVE, decision_ref="QĐ 4",
                                                     split_from="cell-a")),
        ("cell-a", contract.OrganizationUnitSplit(unit_id="cell-a", part_ids=("p-1", "p-2"), effective_on=EFFECTIVE,
                                                  decision_ref="QĐ 4")),
        ("cell-a", contract.OrganizationUnitDissolved(unit_id="cell-a", successor_id=None, effective_on=EFFECTIVE,
                                                      reason="split", decision_ref="QĐ 4")),
    ]
    assert result.member_moves == {"m-1": "p-1", "m-2": "p-1", "m-3": "p-2"}
    assert units.evolve(CELL_A, result.unit_events[-1][1]).status == "split"


def test_the_sub_units_of_a_split_unit_are_reattached_to_their_parts() -> None:
    result = split(GC, COMMUNE, [part("p-1", "grassroots_committee", unit_ids=("sub-1",)),
                                 part("p-2", "grassroots_committee", unit_ids=("sub-2",))],
                   children=[SUB, SUB_2])
    reattached = [event for _, event in result.unit_events if isinstance(event, contract.OrganizationUnitReattached)]
    assert reattached == [
        contract.OrganizationUnitReattached(unit_id="sub-1", parent_id="p-1", previous_parent_id="gc-1",
                                            effective_on=EFFECTIVE, decision_ref="QĐ 4", reason="split"),
        contract.OrganizationUnitReattached(unit_id="sub-2", parent_id="p-2", previous_parent_id="gc-1",
                                            effective_on=EFFECTIVE, decision_ref="QĐ 4", reason="split"),
    ]
    established = [e for _, e in result.unit_events if isinstance(e, contract.OrganizationUnitEstablished)]
    assert {(e.unit_id, e.parent_id, e.split_from) for e in established} == {
        ("p-1", "commune-1", "gc-1"), ("p-2", "commune-1", "gc-1")}


@pytest.mark.parametrize("second", [
    part("p-1", member_ids=("m-2",)),
    replace(part("p-2", member_ids=("m-2",)), code=" P-1 "),
], ids=["same unit", "same code"])
def test_two_parts_of_a_split_are_two_different_units(second: SplitPart) -> None:
    with pytest.raises(DomainError) as refused:
        split(CELL_A, SUB, [part("p-1", member_ids=("m-1",)), second], members=["m-1", "m-2"])
    assert (refused.value.code, refused.value.field) == ("parts-not-distinct", "parts")


def test_a_split_needs_at_least_two_parts() -> None:
    with pytest.raises(DomainError) as refused:
        split(CELL_A, SUB, [part("p-1", member_ids=("m-1",))], members=["m-1"])
    assert refused.value.code == "split-needs-two-parts"


def test_a_split_leaves_no_sub_unit_unassigned() -> None:
    with pytest.raises(DomainError) as refused:
        split(GC, COMMUNE, [part("p-1", "grassroots_committee", unit_ids=("sub-1",)),
                            part("p-2", "grassroots_committee")], children=[SUB, SUB_2])
    assert refused.value.code == "split-leaves-units-unassigned"


def test_a_split_leaves_no_member_unassigned() -> None:
    with pytest.raises(DomainError) as refused:
        split(CELL_A, SUB, [part("p-1", member_ids=("m-1",)), part("p-2")], members=["m-1", "m-2"])
    assert refused.value.code == "split-leaves-members-unassigned"


def test_a_member_is_assigned_to_one_part_only() -> None:
    with pytest.raises(DomainError) as refused:
        split(CELL_A, SUB, [part("p-1", member_ids=("m-1",)), part("p-2", member_ids=("m-1",))], members=["m-1"])
    assert refused.value.code == "assigned-twice" and refused.value.field == "parts[1].member_ids"


def test_a_sub_unit_is_assigned_to_one_part_only() -> None:
    with pytest.raises(DomainError) as refused:
        split(GC, COMMUNE, [part("p-1", "grassroots_committee", unit_ids=("sub-1", "sub-2")),
                            part("p-2", "grassroots_committee", unit_ids=("sub-2",))], children=[SUB, SUB_2])
    assert refused.value.code == "assigned-twice" and refused.value.field == "parts[1].unit_ids"


def test_only_members_of_the_unit_are_assigned() -> None:
    with pytest.raises(DomainError) as refused:
        split(CELL_A, SUB, [part("p-1", member_ids=("m-1",)), part("p-2", member_ids=("m-9",))], members=["m-1"])
    assert refused.value.code == "not-a-member-here"


def test_only_sub_units_of_the_unit_are_assigned() -> None:
    with pytest.raises(DomainError) as refused:
        split(GC, COMMUNE, [part("p-1", "grassroots_committee", unit_ids=("sub-1", "cell-c")),
                            part("p-2", "grassroots_committee", unit_ids=("sub-2",))], children=[SUB, SUB_2])
    assert refused.value.code == "not-a-sub-unit"


def test_members_go_only_to_parts_that_hold_members() -> None:
    with pytest.raises(DomainError) as refused:
        split(GCELL, COMMUNE, [part("p-1", "grassroots_committee", member_ids=("m-1",)),
                               part("p-2", "grassroots_cell", member_ids=("m-2",))], members=["m-1", "m-2"])
    assert refused.value.code == "target-cannot-hold-members" and refused.value.field == "parts[0].member_ids"


def test_parts_sit_where_the_policy_allows() -> None:
    with pytest.raises(DomainError) as refused:
        split(CELL_A, SUB, [part("p-1"), part("p-2", "grassroots_cell")])
    assert refused.value.code == "unit-kind-not-allowed-here" and refused.value.field == "parts[1].kind"


def test_sub_units_fit_under_their_part() -> None:
    with pytest.raises(DomainError) as refused:
        split(GC, COMMUNE, [part("p-1", "grassroots_cell", unit_ids=("sub-1",)),
                            part("p-2", "grassroots_committee", unit_ids=("sub-2",))], children=[SUB, SUB_2])
    assert refused.value.code == "unit-kind-not-allowed-here" and refused.value.field == "parts[0].kind"


def test_a_split_unit_must_be_active_and_the_date_possible() -> None:
    parts = [part("p-1"), part("p-2")]
    with pytest.raises(Conflict) as ended:
        split(unit("cell-x", "cell", "sub-1", status="dissolved"), SUB, parts)
    assert ended.value.code == "unit-not-active"
    with pytest.raises(DomainError) as future:
        split(CELL_A, SUB, parts, on=TODAY + DAY)
    assert future.value.code == "date-in-future"
    with pytest.raises(DomainError) as early:
        split(CELL_A, SUB, parts, on=dt.date(1999, 1, 1))
    assert early.value.code == "before-unit-established"


# Dissolve -----------------------------------------------------------------------------------------------


def dissolve(ending: units.Unit, successor: units.Unit | None = None, ancestors: Sequence[str] = (),
             children: Sequence[units.Unit] = (), members: Sequence[str] = (),
             on: dt.date = EFFECTIVE) -> units.Reorganization:
    command = DissolveUnit(unit_id=ending.unit_id, successor_id=successor.unit_id if successor else None,
                           effective_on=on, decision_ref="QĐ 5")
    return units.dissolve(command, unit=ending, successor=successor, successor_ancestor_ids=ancestors,
                          children=children, members=members, today=TODAY)


def test_an_empty_unit_is_dissolved_without_a_successor() -> None:
    result = dissolve(SUB_2)
    assert result.unit_events == [("sub-2", contract.OrganizationUnitDissolved(
        unit_id="sub-2", successor_id=None, effective_on=EFFECTIVE, reason="dissolved", decision_ref="QĐ 5"))]
    assert result.member_moves == {}
    ended = units.evolve(SUB_2, result.unit_events[0][1])
    assert ended.status == "dissolved" and ended.ended_on == EFFECTIVE


def test_a_unit_with_members_needs_a_successor() -> None:
    with pytest.raises(DomainError) as refused:
        dissolve(CELL_A, members=["m-1"])
    assert refused.value.code == "successor-required"


def test_a_unit_with_sub_units_needs_a_successor() -> None:
    with pytest.raises(DomainError) as refused:
        dissolve(SUB, children=[CELL_A])
    assert refused.value.code == "successor-required"


def test_the_sub_units_and_members_of_a_dissolved_unit_go_to_its_successor() -> None:
    result = dissolve(SUB, SUB_2, ["gc-1", "commune-1", "city"], children=[CELL_A, CELL_B])
    assert [e for _, e in result.unit_events][:2] == [
        contract.OrganizationUnitReattached(unit_id=u, parent_id="sub-2", previous_parent_id="sub-1",
                                            effective_on=EFFECTIVE, decision_ref="QĐ 5", reason="dissolution")
        for u in ("cell-a", "cell-b")]
    assert result.unit_events[-1] == ("sub-1", contract.OrganizationUnitDissolved(
        unit_id="sub-1", successor_id="sub-2", effective_on=EFFECTIVE, reason="dissolved", decision_ref="QĐ 5"))
    moved = dissolve(CELL_A, CELL_C, ["gc-2", "commune-1", "city"], members=["m-1", "m-2"])
    assert moved.member_moves == {"m-1": "cell-c", "m-2": "cell-c"}


def test_a_sub_committee_may_be_dissolved_into_its_own_parent() -> None:
    result = dissolve(SUB, GC, ["commune-1", "city"], children=[CELL_A])
    assert result.unit_events[0][1].parent_id == "gc-1"
    assert result.unit_events[-1][1].successor_id == "gc-1"


def test_the_successor_exists_on_the_day_of_the_dissolution() -> None:
    young = unit("cell-y", "cell", "gc-2", on=dt.date(2025, 8, 1))
    with pytest.raises(DomainError) as refused:
        dissolve(CELL_A, young, ["gc-2", "commune-1", "city"], members=["m-1"])
    assert refused.value.code == "before-unit-established"


def test_the_successor_is_neither_the_unit_nor_inside_it() -> None:
    with pytest.raises(DomainError) as inside:
        dissolve(GC, SUB, ["gc-1", "commune-1", "city"], children=[SUB, SUB_2])
    assert inside.value.code == "hierarchy-cycle"
    with pytest.raises(DomainError) as itself:
        dissolve(CELL_A, CELL_A, ["sub-1"], members=["m-1"])
    assert itself.value.code == "hierarchy-cycle"


def test_members_need_a_successor_that_holds_members() -> None:
    with pytest.raises(DomainError) as refused:
        dissolve(CELL_A, SUB_2, ["gc-1"], members=["m-1"])
    assert refused.value.code == "target-cannot-hold-members"


def test_sub_units_must_fit_under_the_successor() -> None:
    with pytest.raises(DomainError) as refused:
        dissolve(SUB, GCELL, ["commune-1", "city"], children=[CELL_A])
    assert refused.value.code == "unit-kind-not-allowed-here"


def test_the_successor_must_be_active() -> None:
    with pytest.raises(Conflict) as refused:
        dissolve(CELL_A, unit("cell-x", "cell", "sub-1", status="merged"), ["sub-1"], members=["m-1"])
    assert refused.value.code == "unit-not-active" and refused.value.field == "successor_id"


def test_a_dissolution_needs_an_active_unit_and_a_possible_date() -> None:
    with pytest.raises(Conflict) as ended:
        dissolve(unit("cell-x", "cell", "sub-1", status="dissolved"))
    assert ended.value.code == "unit-not-active"
    with pytest.raises(DomainError) as future:
        dissolve(SUB_2, on=TODAY + DAY)
    assert future.value.code == "date-in-future"
    with pytest.raises(DomainError) as early:
        dissolve(SUB_2, on=dt.date(1999, 1, 1))
    assert early.value.code == "before-unit-established"


# As of a date -------------------------------------------------------------------------------------------


ESTABLISHED = contract.OrganizationUnitEstablished(unit_id="cell-a", code="CELL-A", name="Chi bộ 1", kind="cell",
                                                   parent_id="sub-1", established_on=dt.date(2010, 1, 1))


def renamed(name: str, previous: str, on: dt.date) -> contract.OrganizationUnitRenamed:
    return contract.OrganizationUnitRenamed(unit_id="cell-a", name=name, previous_name=previous, effective_on=on)


def test_a_unit_does_not_exist_before_its_establishment() -> None:
    history = [(dt.date(2010, 1, 1), ESTABLISHED)]
    assert units.as_of(history, dt.date(2009, 12, 31)) == units.INITIAL
    state = units.as_of(history, dt.date(2010, 1, 1))
    assert state.active and state.name == "Chi bộ 1" and state.parent_id == "sub-1"


def test_a_backdated_rename_shows_from_its_effective_date() -> None:
    history = [(dt.date(2010, 1, 1), ESTABLISHED), (dt.date(2020, 6, 1), renamed("Chi bộ 2", "Chi bộ 1",
                                                                                  dt.date(2020, 6, 1)))]
    assert units.as_of(history, dt.date(2020, 5, 31)).name == "Chi bộ 1"
    assert units.as_of(history, dt.date(2020, 6, 1)).name == "Chi bộ 2"


def test_a_backdated_reattachment_shows_from_its_effective_date() -> None:
    moved = contract.OrganizationUnitReattached(unit_id="cell-a", parent_id="sub-2", previous_parent_id="sub-1",
                                                effective_on=dt.date(2025, 7, 1))
    history = [(dt.date(2010, 1, 1), ESTABLISHED), (dt.date(2025, 7, 1), moved)]
    assert units.as_of(history, dt.date(2025, 6, 30)).parent_id == "sub-1"
    assert units.as_of(history, dt.date(2025, 7, 1)).parent_id == "sub-2"
    assert units.as_of(history, TODAY).parent_id == "sub-2"


def test_events_apply_in_effective_date_order_whatever_order_they_were_recorded_in() -> None:
    history = [
        (dt.date(2010, 1, 1), ESTABLISHED),
        (dt.date(2022, 1, 1), renamed("Chi bộ 3", "Chi bộ 2", dt.date(2022, 1, 1))),
        (dt.date(2021, 1, 1), renamed("Chi bộ 2", "Chi bộ 1", dt.date(2021, 1, 1))),  # recorded later, backdated
    ]
    assert units.as_of(history, dt.date(2020, 12, 31)).name == "Chi bộ 1"
    assert units.as_of(history, dt.date(2021, 6, 1)).name == "Chi bộ 2"
    assert units.as_of(history, dt.date(2023, 1, 1)).name == "Chi bộ 3"


def test_events_of_the_same_day_apply_in_recorded_order() -> None:
    day = dt.date(2021, 1, 1)
    history = [(dt.date(2010, 1, 1), ESTABLISHED), (day, renamed("B", "Chi bộ 1", day)), (day, renamed("C", "B", day))]
    assert units.as_of(history, day).name == "C"
    reversed_history = [history[0], history[2], history[1]]
    assert units.as_of(reversed_history, day).name == "B"


def test_a_unit_is_active_until_it_ends() -> None:
    ended = contract.OrganizationUnitDissolved(unit_id="cell-a", successor_id="cell-c", effective_on=EFFECTIVE,
                                               reason="merged")
    history = [(dt.date(2010, 1, 1), ESTABLISHED), (EFFECTIVE, ended)]
    assert units.as_of(history, EFFECTIVE - DAY).status == "active"
    after = units.as_of(history, EFFECTIVE)
    assert after.status == "merged" and after.ended_on == EFFECTIVE and not after.active


def test_the_effective_date_of_an_event_is_its_establishment_or_effective_date() -> None:
    assert units.effective_date(ESTABLISHED) == dt.date(2010, 1, 1)
    assert units.effective_date(renamed("B", "A", EFFECTIVE)) == EFFECTIVE
    with pytest.raises(ValueError):
        units.effective_date(contract.MemberDied(member_id="m-1", died_on=EFFECTIVE))


# Placement ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "parent_kind"), [
    (kind, parent) for kind, parents in ALLOWED_PARENTS.items() for parent in sorted(p for p in parents if p)])
def test_each_kind_may_sit_under_the_parents_the_policy_lists(kind: str, parent_kind: str) -> None:
    units.check_placement(kind, unit("p", parent_kind))


def test_only_a_city_committee_is_a_root() -> None:
    units.check_placement("city_committee", None)
    for kind in set(ALLOWED_PARENTS) - {"city_committee"}:
        with pytest.raises(DomainError) as refused:
            units.check_placement(kind, None)
        assert refused.value.code == "unit-parent-required" and refused.value.field == "parent_id"


@pytest.mark.parametrize(("kind", "parent_kind"), [
    ("cell", "commune_committee"),
    ("cell", "cell"),
    ("cell", "grassroots_cell"),
    ("sub_committee", "commune_committee"),
    ("district_committee", "district_committee"),
    ("commune_committee", "commune_committee"),
    ("city_committee", "city_committee"),
    ("grassroots_cell", "grassroots_committee"),
])
def test_a_kind_not_listed_for_the_parent_is_refused_with_the_field_asked_for(kind: str, parent_kind: str) -> None:
    with pytest.raises(DomainError) as refused:
        units.check_placement(kind, unit("p", parent_kind), field="parts[1].kind")
    assert refused.value.code == "unit-kind-not-allowed-here" and refused.value.field == "parts[1].kind"


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(DomainError) as refused:
        units.check_placement("ward_committee", unit("p", "city_committee"))
    assert refused.value.code == "unit-kind-unknown"
