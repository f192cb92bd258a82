"""The organization unit aggregate and the reorganizations over several units.

decide functions take the current states (and, where the rule needs it, the unit's sub-units and members
as the handler read them) and return the events of one decision or raise a DomainError with a code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from contracts import registry_v1 as contract
from registry.domain.commands import DissolveUnit, EstablishUnit, MergeUnits, ReattachUnits, RenameUnit, SplitUnit
from registry.domain.errors import Conflict, DomainError, NotFound
from registry.domain.policy import ALLOWED_PARENTS, MAX_UNIT_CODE_LENGTH, MEMBER_HOLDING_KINDS, ROOT


@dataclass(frozen=True)
class Unit:
    exists: bool = False
    unit_id: str = ""
    code: str = ""
    name: str = ""
    kind: str = ""
    parent_id: str | None = None
    status: str = "none"
    established_on: dt.date | None = None
    ended_on: dt.date | None = None

    @property
    def active(self) -> bool:
        return self.exists and self.status == "active"


INITIAL = Unit()


def _require_active(unit: Unit | None, unit_id: str, *, field: str) -> Unit:
    if unit is None or not unit.exists:
        raise NotFound(f"unit {unit_id} does not exist", code="unit-not-found", field=field)
    if not unit.active:
        raise Conflict(f"unit {unit.code} is no longer active", code="unit-not-active", field=field)
    return unit


def _check_date(effective_on: dt.date, today: dt.date, *, field: str = "effective_on") -> None:
    if effective_on > today:
        raise DomainError("a decision cannot take effect in the future", code="date-in-future", field=field)


def _check_not_before(unit: Unit, effective_on: dt.date) -> None:
    if unit.established_on and effective_on < unit.established_on:
        raise DomainError(f"unit {unit.code} did not exist on {effective_on}", code="before-unit-established",
                          field="effective_on")


def check_placement(kind: str, parent: Unit | None, *, field: str = "kind") -> None:
    """The policy table: which kind may sit under which (None: a root)."""
    allowed = ALLOWED_PARENTS.get(kind)
    if allowed is None:
        raise DomainError(f"unknown unit kind {kind!r}", code="unit-kind-unknown", field="kind")
    if parent is None:
        if ROOT not in allowed:
            raise DomainError(f"a {kind} needs a parent unit", code="unit-parent-required", field="parent_id")
    elif parent.kind not in allowed:
        raise DomainError(f"a {kind} cannot sit under a {parent.kind}", code="unit-kind-not-allowed-here", field=field)


def _check_code_and_name(code: str, name: str) -> None:
    if not code.strip() or len(code.strip()) > MAX_UNIT_CODE_LENGTH:
        raise DomainError(f"a unit code has 1 to {MAX_UNIT_CODE_LENGTH} characters", code="unit-code-invalid",
                          field="code")
    if not name.strip():
        raise DomainError("a unit needs a name", code="unit-name-missing", field="name")


def establish(command: EstablishUnit, *, current: Unit, parent: Unit | None,
              today: dt.date) -> list[contract.OrganizationUnitEstablished]:
    if current.exists:
        raise Conflict(f"unit {command.unit_id} already exists", code="unit-already-exists")
    _check_code_and_name(command.code, command.name)
    if command.kind not in ALLOWED_PARENTS:
        raise DomainError(f"unknown unit kind {command.kind!r}", code="unit-kind-unknown", field="kind")
    _check_date(command.established_on, today, field="established_on")
    if command.parent_id is not None:
        if parent is None or not parent.exists:
            raise NotFound(f"parent unit {command.parent_id} does not exist", code="parent-not-found",
                           field="parent_id")
        if parent.status != "active":
            raise Conflict("the parent unit is not active", code="parent-not-active", field="parent_id")
        if parent.established_on and command.established_on < parent.established_on:
            raise DomainError("a unit cannot be established before its parent", code="before-parent-established",
                              field="established_on")
    check_placement(command.kind, parent if command.parent_id else None)
    return [contract.OrganizationUnitEstablished(
        unit_id=command.unit_id, code=command.code.strip(), name=command.name.strip(),
        kind=command.kind,  # type: ignore[arg-type]
        parent_id=command.parent_id, established_on=command.established_on, decision_ref=command.decision_ref,
    )]


def rename(command: RenameUnit, *, unit: Unit, today: dt.date) -> list[contract.OrganizationUnitRenamed]:
    _require_active(unit, command.unit_id, field="unit_id")
    _check_date(command.effective_on, today)
    _check_not_before(unit, command.effective_on)
    if not command.name.strip():
        raise DomainError("a unit needs a name", code="unit-name-missing", field="name")
    if command.name.strip() == unit.name:
        raise Conflict("the unit already has this name", code="unit-name-unchanged", field="name")
    return [contract.OrganizationUnitRenamed(unit_id=unit.unit_id, name=command.name.strip(), previous_name=unit.name,
                                             effective_on=command.effective_on, decision_ref=command.decision_ref)]


def reattach(command: ReattachUnits, *, units: Sequence[Unit], parent: Unit | None,
             parent_ancestor_ids: Sequence[str], today: dt.date) -> list[contract.OrganizationUnitReattached]:
    """Re-parent units in one decision. No unit may become its own ancestor."""
    if not command.unit_ids:
        raise DomainError("name at least one unit to reattach", code="nothing-to-reattach", field="unit_ids")
    if len(set(command.unit_ids)) != len(command.unit_ids):
        raise DomainError("a unit is named twice", code="unit-named-twice", field="unit_ids")
    new_parent = _require_active(parent, command.parent_id, field="parent_id")
    _check_date(command.effective_on, today)
    _check_not_before(new_parent, command.effective_on)
    lineage = {new_parent.unit_id, *parent_ancestor_ids}
    events = []
    for unit_id, unit in zip(command.unit_ids, units, strict=True):
        moving = _require_active(unit, unit_id, field="unit_ids")
        if moving.unit_id in lineage:
            raise DomainError(f"unit {moving.code} cannot move under itself or its own descendant",
                              code="hierarchy-cycle", field="parent_id")
        if moving.parent_id == new_parent.unit_id:
            raise Conflict(f"unit {moving.code} already sits under {new_parent.code}", code="already-attached-here",
                           field="unit_ids")
        _check_not_before(moving, command.effective_on)
        check_placement(moving.kind, new_parent, field="parent_id")
        events.append(contract.OrganizationUnitReattached(
            unit_id=moving.unit_id, parent_id=new_parent.unit_id, previous_parent_id=moving.parent_id,
            effective_on=command.effective_on, decision_ref=command.decision_ref))
    return events


@dataclass(frozen=True)
class Reorganization:
    """The unit-level events of one decision, and where each moved member goes."""

    unit_events: list[tuple[str, Any]]
    member_moves: dict[str, str]


def merge(command: MergeUnits, *, sources: Sequence[Unit], target: Unit | None,
          target_ancestor_ids: Sequence[str], children: dict[str, list[Unit]],
          members: dict[str, list[str]], today: dt.date) -> Reorganization:
    """N units into one: their sub-units and members follow the target; each source ends."""
    _check_date(command.effective_on, today)
    if len(command.source_ids) < 1:
        raise DomainError("name the units to merge", code="nothing-to-merge", field="source_ids")
    if len(set(command.source_ids)) != len(command.source_ids):
        raise DomainError("a unit is named twice", code="unit-named-twice", field="source_ids")
    events: list[tuple[str, Any]] = []
    if command.new_target is not None:
        assert command.new_target_id is not None
        spec = command.new_target
        _check_code_and_name(spec.code, spec.name)
        check_placement(spec.kind, target)
        if target is not None:
            _require_active(target, spec.parent_id or "", field="target.parent_id")
            if target.established_on and command.effective_on < target.established_on:
                raise DomainError("the new unit cannot be established before its parent",
                                  code="before-parent-established", field="effective_on")
        target_unit = Unit(exists=True, unit_id=command.new_target_id, code=spec.code.strip(), name=spec.name.strip(),
                           kind=spec.kind, parent_id=spec.parent_id, status="active",
                           established_on=command.effective_on)
        events.append((target_unit.unit_id, contract.OrganizationUnitEstablished(
            unit_id=target_unit.unit_id, code=target_unit.code, name=target_unit.name,
            kind=spec.kind,  # type: ignore[arg-type]
            parent_id=spec.parent_id, established_on=command.effective_on, decision_ref=command.decision_ref)))
        lineage = set(target_ancestor_ids) | ({spec.parent_id} if spec.parent_id else set())
    else:
        target_unit = _require_active(target, command.target_id or "", field="target_id")
        _check_not_before(target_unit, command.effective_on)
        lineage = {target_unit.unit_id, *target_ancestor_ids}
    moves: dict[str, str] = {}
    for source_id, source in zip(command.source_ids, sources, strict=True):
        unit = _require_active(source, source_id, field="source_ids")
        if unit.unit_id == target_unit.unit_id:
            raise DomainError("a unit cannot be merged into itself", code="merge-into-itself", field="target_id")
        if unit.unit_id in lineage:
            raise DomainError(f"the target lies inside {unit.code}", code="hierarchy-cycle", field="target_id")
        _check_not_before(unit, command.effective_on)
        if members.get(unit.unit_id) and target_unit.kind not in MEMBER_HOLDING_KINDS:
            raise DomainError(f"{unit.code} has members and a {target_unit.kind} holds none",
                              code="target-cannot-hold-members", field="target_id")
        for child in children.get(unit.unit_id, []):
            check_placement(child.kind, target_unit, field="target_id")
            events.append((child.unit_id, contract.OrganizationUnitReattached(
                unit_id=child.unit_id, parent_id=target_unit.unit_id, previous_parent_id=unit.unit_id,
                effective_on=command.effective_on, decision_ref=command.decision_ref, reason="merge")))
        for member_id in members.get(unit.unit_id, []):
            moves[member_id] = target_unit.unit_id
        events.append((unit.unit_id, contract.OrganizationUnitDissolved(
            unit_id=unit.unit_id, successor_id=target_unit.unit_id, effective_on=command.effective_on,
            reason="merged", decision_ref=command.decision_ref)))
    events.append((target_unit.unit_id, contract.OrganizationUnitsMerged(
        target_id=target_unit.unit_id, source_ids=tuple(command.source_ids), effective_on=command.effective_on,
        decision_ref=command.decision_ref)))
    return Reorganization(events, moves)


def split(command: SplitUnit, *, unit: Unit, parent: Unit | None, children: Sequence[Unit],
          members: Sequence[str], today: dt.date) -> Reorganization:
    """One unit into parts; every sub-unit and member is assigned to exactly one part, or nothing happens."""
    source = _require_active(unit, command.unit_id, field="unit_id")
    _check_date(command.effective_on, today)
    _check_not_before(source, command.effective_on)
    if len(command.parts) < 2:
        raise DomainError("a split needs at least two parts", code="split-needs-two-parts", field="parts")
    if len({p.unit_id for p in command.parts}) != len(command.parts) or \
            len({p.code.strip() for p in command.parts}) != len(command.parts):
        raise DomainError("every part is a different unit with its own code", code="parts-not-distinct",
                          field="parts")
    child_by_id = {c.unit_id: c for c in children}
    assigned_units: dict[str, int] = {}
    assigned_members: dict[str, int] = {}
    for index, part in enumerate(command.parts):
        _check_code_and_name(part.code, part.name)
        check_placement(part.kind, parent, field=f"parts[{index}].kind")
        for unit_id in part.unit_ids:
            if unit_id not in child_by_id:
                raise DomainError(f"unit {unit_id} is not a sub-unit of {source.code}", code="not-a-sub-unit",
                                  field=f"parts[{index}].unit_ids")
            if unit_id in assigned_units:
                raise DomainError(f"unit {unit_id} is assigned twice", code="assigned-twice",
                                  field=f"parts[{index}].unit_ids")
            assigned_units[unit_id] = index
            check_placement(child_by_id[unit_id].kind, Unit(exists=True, kind=part.kind),
                            field=f"parts[{index}].kind")
        if part.member_ids and part.kind not in MEMBER_HOLDING_KINDS:
            raise DomainError(f"a {part.kind} holds no members", code="target-cannot-hold-members",
                              field=f"parts[{index}].member_ids")
        for member_id in part.member_ids:
            if member_id in assigned_members:
                raise DomainError(f"member {member_id} is assigned twice", code="assigned-twice",
                                  field=f"parts[{index}].member_ids")
            assigned_members[member_id] = index
    unassigned_units = [c.code for c in children if c.unit_id not in assigned_units]
    if unassigned_units:
        raise DomainError(f"sub-units left unassigned: {', '.join(sorted(unassigned_units))}",
                          code="split-leaves-units-unassigned", field="parts")
    member_set = set(members)
    strangers = [m for m in assigned_members if m not in member_set]
    if strangers:
        raise DomainError(f"not members of {source.code}: {', '.join(strangers[:5])}", code="not-a-member-here",
                          field="parts")
    unassigned_members = [m for m in members if m not in assigned_members]
    if unassigned_members:
        raise DomainError(f"{len(unassigned_members)} members left unassigned", code="split-leaves-members-unassigned",
                          field="parts")
    events: list[tuple[str, Any]] = []
    for part in command.parts:
        events.append((part.unit_id, contract.OrganizationUnitEstablished(
            unit_id=part.unit_id, code=part.code.strip(), name=part.name.strip(),
            kind=part.kind,  # type: ignore[arg-type]
            parent_id=source.parent_id, established_on=command.effective_on, decision_ref=command.decision_ref,
            split_from=source.unit_id)))
    for unit_id, index in assigned_units.items():
        events.append((unit_id, contract.OrganizationUnitReattached(
            unit_id=unit_id, parent_id=command.parts[index].unit_id, previous_parent_id=source.unit_id,
            effective_on=command.effective_on, decision_ref=command.decision_ref, reason="split")))
    part_ids = tuple(p.unit_id for p in command.parts)
    events.append((source.unit_id, contract.OrganizationUnitSplit(
        unit_id=source.unit_id, part_ids=part_ids, effective_on=command.effective_on,
        decision_ref=command.decision_ref)))
    events.append((source.unit_id, contract.OrganizationUnitDissolved(
        unit_id=source.unit_id, successor_id=None, effective_on=command.effective_on, reason="split",
        decision_ref=command.decision_ref)))
    moves = {m: command.parts[i].unit_id for m, i in assigned_members.items()}
    return Reorganization(events, moves)


def dissolve(command: DissolveUnit, *, unit: Unit, successor: Unit | None, successor_ancestor_ids: Sequence[str],
             children: Sequence[Unit], members: Sequence[str], today: dt.date) -> Reorganization:
    """End a unit; while sub-units or members remain they need a successor to go to."""
    ending = _require_active(unit, command.unit_id, field="unit_id")
    _check_date(command.effective_on, today)
    _check_not_before(ending, command.effective_on)
    events: list[tuple[str, Any]] = []
    moves: dict[str, str] = {}
    if command.successor_id is None:
        if children or members:
            raise DomainError(f"{ending.code} still has {len(children)} sub-units and {len(members)} members: "
                              "name a successor", code="successor-required", field="successor_id")
    else:
        heir = _require_active(successor, command.successor_id, field="successor_id")
        _check_not_before(heir, command.effective_on)
        if heir.unit_id == ending.unit_id or ending.unit_id in successor_ancestor_ids:
            raise DomainError("the successor cannot be the unit or inside it", code="hierarchy-cycle",
                              field="successor_id")
        if members and heir.kind not in MEMBER_HOLDING_KINDS:
            raise DomainError(f"a {heir.kind} holds no members", code="target-cannot-hold-members",
                              field="successor_id")
        for child in children:
            check_placement(child.kind, heir, field="successor_id")
            events.append((child.unit_id, contract.OrganizationUnitReattached(
                unit_id=child.unit_id, parent_id=heir.unit_id, previous_parent_id=ending.unit_id,
                effective_on=command.effective_on, decision_ref=command.decision_ref, reason="dissolution")))
        moves = dict.fromkeys(members, heir.unit_id)
    events.append((ending.unit_id, contract.OrganizationUnitDissolved(
        unit_id=ending.unit_id, successor_id=command.successor_id, effective_on=command.effective_on,
        reason="dissolved", decision_ref=command.decision_ref)))
    return Reorganization(events, moves)


def evolve(state: Unit, event: Any) -> Unit:
    match event:
        case contract.OrganizationUnitEstablished():
            return replace(state, exists=True, unit_id=event.unit_id, code=event.code, name=event.name,
                           kind=event.kind, parent_id=event.parent_id, status="active",
                           established_on=event.established_on)
        case contract.OrganizationUnitRenamed():
            return replace(state, name=event.name)
        case contract.OrganizationUnitReattached():
            return replace(state, parent_id=event.parent_id)
        case contract.OrganizationUnitDissolved():
            return replace(state, status={"merged": "merged", "split": "split"}.get(event.reason, "dissolved"),
                           ended_on=event.effective_on)
        case _:
            return state


def as_of(history: Sequence[tuple[dt.date, Any]], day: dt.date) -> Unit:
    """The unit as it stood on `day`: its events that took effect by then, in (effective date, recorded) order."""
    state = INITIAL
    for _, (effective_on, event) in sorted(enumerate(history), key=lambda item: (item[1][0], item[0])):
        if effective_on <= day:
            state = evolve(state, event)
    return state


def effective_date(event: Any) -> dt.date:
    for name in ("effective_on", "established_on"):
        value = getattr(event, name, None)
        if isinstance(value, dt.date):
            return value
    raise ValueError(f"{type(event).__name__} has no effective date")
