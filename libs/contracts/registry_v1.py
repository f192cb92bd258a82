"""Events the registry publishes on `party.registry.v1` (schema version 1; changes are additive)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from contracts.codec import Catalogue

UnitKind = Literal[
    "city_committee",
    "district_committee",
    "commune_committee",
    "sector_committee",
    "grassroots_committee",
    "grassroots_cell",
    "sub_committee",
    "cell",
]
UNIT_KINDS: tuple[str, ...] = UnitKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class OrganizationUnitEstablished:
    """A unit exists from `established_on` under `parent_id` (null for a root)."""

    event_type: ClassVar[str] = "OrganizationUnitEstablished"
    schema_version: ClassVar[int] = 1
    unit_id: str
    code: str
    name: str
    kind: UnitKind
    parent_id: str | None
    established_on: dt.date
    decision_ref: str | None = None
    split_from: str | None = None


@dataclass(frozen=True)
class OrganizationUnitRenamed:
    """A unit took a new name from `effective_on`."""

    event_type: ClassVar[str] = "OrganizationUnitRenamed"
    schema_version: ClassVar[int] = 1
    unit_id: str
    name: str
    previous_name: str
    effective_on: dt.date
    decision_ref: str | None = None


@dataclass(frozen=True)
class OrganizationUnitReattached:
    """A unit moved under another parent from `effective_on` (re-parenting, or following a merge/split)."""

    event_type: ClassVar[str] = "OrganizationUnitReattached"
    schema_version: ClassVar[int] = 1
    unit_id: str
    parent_id: str
    previous_parent_id: str | None
    effective_on: dt.date
    decision_ref: str | None = None
    reason: str = "reattach"


@dataclass(frozen=True)
class OrganizationUnitsMerged:
    """Units merged into this one (the target); each source gets OrganizationUnitDissolved(reason=merged)."""

    event_type: ClassVar[str] = "OrganizationUnitsMerged"
    schema_version: ClassVar[int] = 1
    target_id: str
    source_ids: tuple[str, ...]
    effective_on: dt.date
    decision_ref: str | None = None


@dataclass(frozen=True)
class OrganizationUnitSplit:
    """A unit split into parts (each established by the same decision); the unit then ends."""

    event_type: ClassVar[str] = "OrganizationUnitSplit"
    schema_version: ClassVar[int] = 1
    unit_id: str
    part_ids: tuple[str, ...]
    effective_on: dt.date
    decision_ref: str | None = None


@dataclass(frozen=True)
class OrganizationUnitDissolved:
    """A unit ended on `effective_on` (reason: dissolved, merged or split), with its successor if any."""

    event_type: ClassVar[str] = "OrganizationUnitDissolved"
    schema_version: ClassVar[int] = 1
    unit_id: str
    successor_id: str | None
    effective_on: dt.date
    reason: str = "dissolved"
    decision_ref: str | None = None


Gender = Literal["male", "female"]
MemberStatus = Literal["probationary", "official"]
EnrolmentSource = Literal["admission", "incoming_transfer", "import", "existing"]


@dataclass(frozen=True)
class PartyAgeInterruption:
    """A period outside the Party that does not count towards party age."""

    start: dt.date
    end: dt.date
    reason: str = ""


@dataclass(frozen=True)
class MemberProfile:
    """Personal and composition data; every field optional."""

    ethnicity: str | None = None
    religion: str | None = None
    hometown: str | None = None
    address: str | None = None
    phone: str | None = None
    education: str | None = None
    qualification: str | None = None
    political_theory: str | None = None
    occupation: str | None = None
    youth_union: bool | None = None


@dataclass(frozen=True)
class MemberEnrolled:
    """A member entered the city's register: from an admission, an incoming transfer or an existing roll."""

    event_type: ClassVar[str] = "MemberEnrolled"
    schema_version: ClassVar[int] = 1
    member_id: str
    full_name: str
    gender: Gender
    birth_date: dt.date
    citizen_id: str
    unit_id: str
    status: MemberStatus
    admitted_on: dt.date
    source: EnrolmentSource
    effective_on: dt.date
    official_on: dt.date | None = None
    member_since: dt.date | None = None
    card_number: str | None = None
    profile: MemberProfile = MemberProfile()
    interruptions: tuple[PartyAgeInterruption, ...] = ()
    probation_ends_on: dt.date | None = None
    admission_id: str | None = None
    transfer_id: str | None = None


@dataclass(frozen=True)
class MemberProfileUpdated:
    """Some profile fields changed (only those named in `changes`)."""

    event_type: ClassVar[str] = "MemberProfileUpdated"
    schema_version: ClassVar[int] = 1
    member_id: str
    changes: dict[str, Any]
    effective_on: dt.date


@dataclass(frozen=True)
class MemberUnitChanged:
    """A member's official cell changed (reason: transfer | reorganization | correction)."""

    event_type: ClassVar[str] = "MemberUnitChanged"
    schema_version: ClassVar[int] = 1
    member_id: str
    from_unit_id: str
    to_unit_id: str
    reason: Literal["transfer", "reorganization", "correction"]
    effective_on: dt.date
    transfer_id: str | None = None
    decision_ref: str | None = None


@dataclass(frozen=True)
class MemberTemporaryHostChanged:
    """A temporary transfer set (or, with host_unit_id null, cleared) the cell hosting the member."""

    event_type: ClassVar[str] = "MemberTemporaryHostChanged"
    schema_version: ClassVar[int] = 1
    member_id: str
    host_unit_id: str | None
    effective_on: dt.date
    until: dt.date | None = None
    transfer_id: str | None = None


@dataclass(frozen=True)
class MemberRecognizedAsOfficial:
    """A probationary member became official, effective on the day the 12 months ended."""

    event_type: ClassVar[str] = "MemberRecognizedAsOfficial"
    schema_version: ClassVar[int] = 1
    member_id: str
    official_on: dt.date
    decision_ref: str | None = None


@dataclass(frozen=True)
class PartyCardIssued:
    """A party card: on recognition, a first card for an official member enrolled without one, a reissue after
    loss, an exchange when damaged or in the 2025 exchange."""

    event_type: ClassVar[str] = "PartyCardIssued"
    schema_version: ClassVar[int] = 1
    member_id: str
    card_number: str
    issued_on: dt.date
    reason: Literal["recognition", "first_issue", "reissue_lost", "exchange_damaged", "exchange_2025", "existing"]
    generation: int = 1
    previous_card_number: str | None = None


@dataclass(frozen=True)
class PartyBadgeAwarded:
    """A party-age badge (30, 40, 45, ... 90 years)."""

    event_type: ClassVar[str] = "PartyBadgeAwarded"
    schema_version: ClassVar[int] = 1
    member_id: str
    years: int
    awarded_on: dt.date
    early: bool = False
    posthumous: bool = False
    decision_ref: str | None = None


RatingLevel = Literal["hoan_thanh_xuat_sac", "hoan_thanh_tot", "hoan_thanh", "khong_hoan_thanh"]


@dataclass(frozen=True)
class AnnualRatingRecorded:
    event_type: ClassVar[str] = "AnnualRatingRecorded"
    schema_version: ClassVar[int] = 1
    member_id: str
    year: int
    level: RatingLevel
    effective_on: dt.date


@dataclass(frozen=True)
class MemberExempted:
    """Exempted from work and activities (miễn công tác và sinh hoạt)."""

    event_type: ClassVar[str] = "MemberExempted"
    schema_version: ClassVar[int] = 1
    member_id: str
    effective_on: dt.date
    reason: str
    decision_ref: str | None = None


@dataclass(frozen=True)
class MemberExemptionEnded:
    event_type: ClassVar[str] = "MemberExemptionEnded"
    schema_version: ClassVar[int] = 1
    member_id: str
    effective_on: dt.date


@dataclass(frozen=True)
class MemberPlacedOnScreeningList:
    event_type: ClassVar[str] = "MemberPlacedOnScreeningList"
    schema_version: ClassVar[int] = 1
    member_id: str
    effective_on: dt.date
    reason: str
    automatic: bool = False


LeaveReason = Literal["struck_off", "expelled", "resigned"]


@dataclass(frozen=True)
class MemberLeftParty:
    """Struck off, expelled or resigned; `excluded_from_readmission` names the categories that bar re-admission."""

    event_type: ClassVar[str] = "MemberLeftParty"
    schema_version: ClassVar[int] = 1
    member_id: str
    reason: LeaveReason
    decided_on: dt.date
    decision_ref: str
    basis: str | None = None
    note: str | None = None
    excluded_from_readmission: tuple[str, ...] = ()


@dataclass(frozen=True)
class MemberDied:
    event_type: ClassVar[str] = "MemberDied"
    schema_version: ClassVar[int] = 1
    member_id: str
    died_on: dt.date


@dataclass(frozen=True)
class MemberTransferredOut:
    """Left the city's organization for another province (from the transfers service)."""

    event_type: ClassVar[str] = "MemberTransferredOut"
    schema_version: ClassVar[int] = 1
    member_id: str
    effective_on: dt.date
    transfer_id: str | None = None
    destination: str | None = None


@dataclass(frozen=True)
class MemberReadmitted:
    """Re-admitted once, at least 36 months after leaving; probationary again."""

    event_type: ClassVar[str] = "MemberReadmitted"
    schema_version: ClassVar[int] = 1
    member_id: str
    readmitted_on: dt.date
    unit_id: str
    decision_ref: str
    probation_ends_on: dt.date


CATALOGUE = Catalogue(
    "registry",
    OrganizationUnitEstablished, OrganizationUnitRenamed, OrganizationUnitReattached, OrganizationUnitsMerged,
    OrganizationUnitSplit, OrganizationUnitDissolved, MemberEnrolled, MemberProfileUpdated, MemberUnitChanged,
    MemberTemporaryHostChanged, MemberRecognizedAsOfficial, PartyCardIssued, PartyBadgeAwarded,
    AnnualRatingRecorded, MemberExempted, MemberExemptionEnded, MemberPlacedOnScreeningList, MemberLeftParty,
    MemberDied, MemberTransferredOut, MemberReadmitted,
)
