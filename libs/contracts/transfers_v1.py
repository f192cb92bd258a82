"""Events the transfers service publishes on `party.transfers.v1` that the registry consumes.

Written this round so next round's service emits exactly these (ARCHITECTURE.md §10).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from contracts.codec import Catalogue
from contracts.registry_v1 import MemberProfile, PartyAgeInterruption


@dataclass(frozen=True)
class MembershipTransferred:
    """The destination cell received the member: official (the official cell changes) or temporary (a host
    cell until `until`, the official cell unchanged)."""

    event_type: ClassVar[str] = "MembershipTransferred"
    schema_version: ClassVar[int] = 1
    transfer_id: str
    member_id: str
    kind: Literal["official", "temporary"]
    from_unit_id: str
    to_unit_id: str
    received_on: dt.date
    until: dt.date | None = None


@dataclass(frozen=True)
class TemporaryTransferEnded:
    event_type: ClassVar[str] = "TemporaryTransferEnded"
    schema_version: ClassVar[int] = 1
    transfer_id: str
    member_id: str
    ended_on: dt.date


@dataclass(frozen=True)
class IncomingTransferRegistered:
    """A member arriving from another province, enrolled from their letter and dossier."""

    event_type: ClassVar[str] = "IncomingTransferRegistered"
    schema_version: ClassVar[int] = 1
    transfer_id: str
    member_id: str
    full_name: str
    gender: Literal["male", "female"]
    birth_date: dt.date
    citizen_id: str
    unit_id: str
    status: Literal["probationary", "official"]
    admitted_on: dt.date
    received_on: dt.date
    origin: str
    official_on: dt.date | None = None
    card_number: str | None = None
    profile: MemberProfile = field(default_factory=MemberProfile)
    interruptions: tuple[PartyAgeInterruption, ...] = ()


@dataclass(frozen=True)
class MemberTransferredToAnotherProvince:
    """The member left the city's organization for another province (outgoing official transfer)."""

    event_type: ClassVar[str] = "MemberTransferredToAnotherProvince"
    schema_version: ClassVar[int] = 1
    transfer_id: str
    member_id: str
    destination: str
    effective_on: dt.date


CATALOGUE = Catalogue(
    "transfers", MembershipTransferred, TemporaryTransferEnded, IncomingTransferRegistered,
    MemberTransferredToAnotherProvince,
)
