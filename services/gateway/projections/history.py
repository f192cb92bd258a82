"""Valid-time history, derived from all facts ordered by (effective date, recorded order) — never by patching
the current interval — so a backdated decision lands where it belongs (ARCHITECTURE.md §9.7).

Pure functions: facts in, intervals out; the projection modules store what they return.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

FOREVER = dt.date(9999, 12, 31)
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


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


@functools.lru_cache(maxsize=256)
def recorded_day(time: str) -> dt.date:
    """The Asia/Ho_Chi_Minh day of an event's recording time (an ISO timestamp, as the envelope carries it): the
    date of a fact that names none (§9.7: dates are Vietnamese days, whatever the zone the time was written in).
    Kept for the last few times: a command's events share its transaction's time, thousands of them in a bulk
    command."""
    return dt.datetime.fromisoformat(time).astimezone(VIETNAM).date()


def effective_on(event_type: str, data: dict[str, Any], recorded: dt.date) -> dt.date:
    """The date a registry fact took effect."""
    for key in ("effective_on", "established_on", "official_on", "decided_on", "died_on", "readmitted_on",
                "awarded_on", "issued_on"):
        value = data.get(key)
        if value:
            return dt.date.fromisoformat(value)
    return recorded


@dataclass(frozen=True)
class MemberTransition:
    """A day on which a member's membership interval ends or begins: from where to where, and why (the category
    of the member's own fact that day; without one, the move is the organization's)."""

    day: dt.date
    from_unit: str | None
    to_unit: str | None
    entry: str | None
    exit: str | None


ENTRY_FACTS = ("MemberEnrolled", "MemberReadmitted", "MemberUnitChanged")
EXIT_FACTS = ("MemberLeftParty", "MemberDied", "MemberTransferredOut", "MemberUnitChanged")


def entry_category(fact: Fact | None) -> str:
    """Biểu 1's increase rows."""
    if fact is None:
        return "reorganized_in"
    if fact.type == "MemberReadmitted":
        return "readmitted"
    if fact.type == "MemberEnrolled":
        return {"admission": "admitted", "incoming_transfer": "transferred_in_other_province"}.get(
            fact.data.get("source") or "", "enrolled_existing")
    return "moved_in"


def exit_category(fact: Fact | None) -> str:
    """Biểu 1's decrease rows."""
    if fact is None:
        return "reorganized_out"
    match fact.type:
        case "MemberLeftParty":
            return str(fact.data["reason"])
        case "MemberDied":
            return "deceased"
        case "MemberTransferredOut":
            return "transferred_out_other_province"
    return "moved_out"


def member_transitions(intervals: Sequence[MemberInterval], facts: Sequence[Fact]) -> list[MemberTransition]:
    ends = {i.valid_to: i for i in intervals if i.valid_to != FOREVER}
    starts = {i.valid_from: i for i in intervals}
    last_entry: dict[dt.date, Fact] = {}
    last_exit: dict[dt.date, Fact] = {}
    for fact in sorted(facts, key=lambda f: f.seq):
        if fact.type in ENTRY_FACTS:
            last_entry[fact.effective_on] = fact
        if fact.type in EXIT_FACTS:
            last_exit[fact.effective_on] = fact
    transitions = []
    for day in sorted(starts.keys() | ends.keys()):
        before, after = ends.get(day), starts.get(day)
        transitions.append(MemberTransition(
            day, before.unit_id if before else None, after.unit_id if after else None,
            entry_category(last_entry.get(day)) if after else None,
            exit_category(last_exit.get(day)) if before else None))
    return transitions
