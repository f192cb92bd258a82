"""Valid-time history, derived from all facts ordered by (effective date, recorded order) — never by patching
the current interval — so a backdated decision lands where it belongs (ARCHITECTURE.md §9.7).

Pure functions: facts in, intervals out; the projection modules store what they return.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

FOREVER = dt.date(9999, 12, 31)


@dataclass(frozen=True)
class Fact:
    effective_on: dt.date
    seq: int
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class UnitVersion:
    valid_from: dt.date
    valid_to: dt.date
    code: str
    name: str
    kind: str
    parent_id: str | None
    status: str


@dataclass(frozen=True)
class MemberInterval:
    unit_id: str
    status: str
    valid_from: dt.date
    valid_to: dt.date


def _ordered(facts: Sequence[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: (f.effective_on, f.seq))


def unit_versions(facts: Sequence[Fact]) -> list[UnitVersion]:
    versions: list[UnitVersion] = []
    current: UnitVersion | None = None
    for fact in _ordered(facts):
        d = fact.data
        changed: UnitVersion | None
        match fact.type:
            case "OrganizationUnitEstablished":
                changed = UnitVersion(fact.effective_on, FOREVER, d["code"], d["name"], d["kind"], d["parent_id"],
                                      "active")
            case "OrganizationUnitRenamed" if current is not None:
                changed = replace(current, name=d["name"])
            case "OrganizationUnitReattached" if current is not None:
                changed = replace(current, parent_id=d["parent_id"])
            case "OrganizationUnitDissolved" if current is not None:
                changed = replace(current, status={"merged": "merged", "split": "split"}.get(d["reason"],
                                                                                              "dissolved"))
            case _:
                changed = None
        if changed is None:
            continue
        if current is not None:
            if current.valid_from == fact.effective_on:
                versions.pop()
            else:
                versions[-1] = replace(current, valid_to=fact.effective_on)
        current = replace(changed, valid_from=fact.effective_on, valid_to=FOREVER)
        versions.append(current)
    return versions


EXITS = {"MemberLeftParty": None, "MemberDied": "deceased", "MemberTransferredOut": "transferred_out"}


def member_intervals(facts: Sequence[Fact]) -> list[MemberInterval]:
    """Where the member counted, with which status, from when to when ([from, to))."""
    intervals: list[MemberInterval] = []
    current: MemberInterval | None = None

    def close(day: dt.date) -> None:
        nonlocal current
        if current is None:
            return
        intervals.pop()
        if day > current.valid_from:
            intervals.append(replace(current, valid_to=day))
        current = None

    def open_(unit_id: str, status: str, day: dt.date) -> None:
        nonlocal current
        current = MemberInterval(unit_id, status, day, FOREVER)
        intervals.append(current)

    for fact in _ordered(facts):
        d = fact.data
        match fact.type:
            case "MemberEnrolled":
                close(fact.effective_on)
                open_(d["unit_id"], d["status"], fact.effective_on)
            case "MemberUnitChanged" if current is not None:
                status = current.status
                close(fact.effective_on)
                open_(d["to_unit_id"], status, fact.effective_on)
            case "MemberRecognizedAsOfficial" if current is not None:
                unit = current.unit_id
                close(fact.effective_on)
                open_(unit, "official", fact.effective_on)
            case "MemberReadmitted":
                close(fact.effective_on)
                open_(d["unit_id"], "probationary", fact.effective_on)
            case t if t in EXITS:
                close(fact.effective_on)
    return intervals


def effective_on(event_type: str, data: dict[str, Any], recorded: dt.date) -> dt.date:
    """The date a registry fact took effect."""
    for key in ("effective_on", "established_on", "official_on", "decided_on", "died_on", "readmitted_on",
                "awarded_on", "issued_on"):
        value = data.get(key)
        if value:
            return dt.date.fromisoformat(value)
    return recorded
