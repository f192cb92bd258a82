"""Commands the registry accepts, as plain data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EstablishUnit:
    unit_id: str
    code: str
    name: str
    kind: str
    parent_id: str | None
    established_on: dt.date
    decision_ref: str | None = None


@dataclass(frozen=True)
class RenameUnit:
    unit_id: str
    name: str
    effective_on: dt.date
    decision_ref: str | None


@dataclass(frozen=True)
class ReattachUnits:
    unit_ids: tuple[str, ...]
    parent_id: str
    effective_on: dt.date
    decision_ref: str | None


@dataclass(frozen=True)
class NewUnitSpec:
    code: str
    name: str
    kind: str
    parent_id: str | None


@dataclass(frozen=True)
class MergeUnits:
    source_ids: tuple[str, ...]
    target_id: str | None
    new_target: NewUnitSpec | None
    new_target_id: str | None
    effective_on: dt.date
    decision_ref: str | None


@dataclass(frozen=True)
class SplitPart:
    unit_id: str
    code: str
    name: str
    kind: str
    unit_ids: tuple[str, ...] = ()
    member_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitUnit:
    unit_id: str
    parts: tuple[SplitPart, ...]
    effective_on: dt.date
    decision_ref: str | None


@dataclass(frozen=True)
class DissolveUnit:
    unit_id: str
    successor_id: str | None
    effective_on: dt.date
    decision_ref: str | None


@dataclass(frozen=True)
class EnrolMember:
    member_id: str
    full_name: str
    gender: str
    birth_date: dt.date
    citizen_id: str
    unit_id: str
    status: str
    admitted_on: dt.date
    source: str
    effective_on: dt.date | None = None
    official_on: dt.date | None = None
    member_since: dt.date | None = None
    card_number: str | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    interruptions: tuple[tuple[dt.date, dt.date, str], ...] = ()
    probation_ends_on: dt.date | None = None
    admission_id: str | None = None
    transfer_id: str | None = None
