"""Events the admissions service publishes on `party.admissions.v1` that the registry consumes.

Written this round so next round's service emits exactly these (ARCHITECTURE.md §10).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from contracts.codec import Catalogue
from contracts.registry_v1 import MemberProfile


@dataclass(frozen=True)
class MemberAdmitted:
    """The admission ceremony: the applicant becomes a probationary member of `unit_id`."""

    event_type: ClassVar[str] = "MemberAdmitted"
    schema_version: ClassVar[int] = 1
    application_id: str
    member_id: str
    full_name: str
    gender: Literal["male", "female"]
    birth_date: dt.date
    citizen_id: str
    unit_id: str
    decision_date: dt.date
    decision_ref: str
    ceremony_date: dt.date
    probation_ends_on: dt.date
    profile: MemberProfile = field(default_factory=MemberProfile)


@dataclass(frozen=True)
class MemberRecognizedAsOfficial:
    """Recognition takes effect on `official_on`, the day the 12 months of probation ended."""

    event_type: ClassVar[str] = "MemberRecognizedAsOfficial"
    schema_version: ClassVar[int] = 1
    application_id: str
    member_id: str
    official_on: dt.date
    decision_ref: str


@dataclass(frozen=True)
class ProbationaryMemberNotRecognized:
    """The probationary member was not recognized; they are struck off the roll."""

    event_type: ClassVar[str] = "ProbationaryMemberNotRecognized"
    schema_version: ClassVar[int] = 1
    application_id: str
    member_id: str
    decided_on: dt.date
    decision_ref: str
    reason: str


CATALOGUE = Catalogue("admissions", MemberAdmitted, MemberRecognizedAsOfficial, ProbationaryMemberNotRecognized)
