"""The organization unit aggregate: decide() refuses what the rules forbid, evolve() folds its history."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from contracts import registry_v1 as contract

from registry.domain.commands import EstablishUnit
from registry.domain.errors import Conflict, DomainError, NotFound
from registry.domain.policy import ALLOWED_PARENTS, MAX_UNIT_CODE_LENGTH, ROOT


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


INITIAL = Unit()


def establish(command: EstablishUnit, *, current: Unit, parent: Unit | None,
              today: dt.date) -> list[contract.OrganizationUnitEstablished]:
    if current.exists:
        raise Conflict(f"unit {command.unit_id} already exists", code="unit-already-exists")
    code = command.code.strip()
    if not code or len(code) > MAX_UNIT_CODE_LENGTH:
        raise DomainError(f"a unit code has 1 to {MAX_UNIT_CODE_LENGTH} characters", code="unit-code-invalid",
                          field="code")
    if not command.name.strip():
        raise DomainError("a unit needs a name", code="unit-name-missing", field="name")
    if command.kind not in ALLOWED_PARENTS:
        raise DomainError(f"unknown unit kind {command.kind!r}", code="unit-kind-unknown", field="kind")
    if command.established_on > today:
        raise DomainError("a unit cannot be established in the future", code="date-in-future",
                          field="established_on")
    allowed = ALLOWED_PARENTS[command.kind]
    if command.parent_id is None:
        if ROOT not in allowed:
            raise DomainError(f"a {command.kind} needs a parent unit", code="unit-parent-required",
                              field="parent_id")
    else:
        if parent is None or not parent.exists:
            raise NotFound(f"parent unit {command.parent_id} does not exist", code="parent-not-found",
                           field="parent_id")
        if parent.status != "active":
            raise Conflict("the parent unit is not active", code="parent-not-active", field="parent_id")
        if parent.kind not in allowed:
            raise DomainError(f"a {command.kind} cannot sit under a {parent.kind}", code="unit-kind-not-allowed-here",
                              field="kind")
        if parent.established_on and command.established_on < parent.established_on:
            raise DomainError("a unit cannot be established before its parent", code="before-parent-established",
                              field="established_on")
    return [contract.OrganizationUnitEstablished(
        unit_id=command.unit_id, code=code, name=command.name.strip(), kind=command.kind,  # type: ignore[arg-type]
        parent_id=command.parent_id, established_on=command.established_on, decision_ref=command.decision_ref,
    )]


def evolve(state: Unit, event: Any) -> Unit:
    match event:
        case contract.OrganizationUnitEstablished():
            return replace(state, exists=True, unit_id=event.unit_id, code=event.code, name=event.name,
                           kind=event.kind, parent_id=event.parent_id, status="active",
                           established_on=event.established_on)
        case _:
            return state
