"""Foreign facts turned into the registry's own member events: admissions and transfers topics.

Each reaction runs inside the consumer's transaction, so the member events and the consumer's progress
commit together: a redelivered fact changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from contracts import admissions_v1, transfers_v1
from registry.application.handlers import Handler, RegistryCommands
from registry.domain import members
from registry.domain.commands import EnrolMember

Reaction = Callable[[RegistryCommands, Any], Handler]


def member_admitted(commands: RegistryCommands, fact: admissions_v1.MemberAdmitted) -> Handler:
    profile = {k: v for k, v in fact.profile.__dict__.items() if v is not None}
    return commands.enrol_member(EnrolMember(
        member_id=fact.member_id, full_name=fact.full_name, gender=fact.gender, birth_date=fact.birth_date,
        citizen_id=fact.citizen_id, unit_id=fact.unit_id, status="probationary", admitted_on=fact.decision_date,
        source="admission", effective_on=fact.ceremony_date, member_since=fact.ceremony_date, profile=profile,
        probation_ends_on=fact.probation_ends_on, admission_id=fact.application_id))


def recognized(commands: RegistryCommands, fact: admissions_v1.MemberRecognizedAsOfficial) -> Handler:
    return commands.recognize(fact.member_id, official_on=fact.official_on, decision_ref=fact.decision_ref)


def not_recognized(commands: RegistryCommands, fact: admissions_v1.ProbationaryMemberNotRecognized) -> Handler:
    return commands.member_command(fact.member_id, lambda member, _: members.leave(
        member, reason="struck_off", decided_on=fact.decided_on, decision_ref=fact.decision_ref,
        basis="không được công nhận đảng viên chính thức", note=fact.reason, excluded=(), today=commands.clock()))


def transferred(commands: RegistryCommands, fact: transfers_v1.MembershipTransferred) -> Handler:
    if fact.kind == "official":
        return commands.transfer_member(fact.member_id, to_unit_id=fact.to_unit_id, effective_on=fact.received_on,
                                        transfer_id=fact.transfer_id)
    return commands.host_member(fact.member_id, host_unit_id=fact.to_unit_id, effective_on=fact.received_on,
                                until=fact.until, transfer_id=fact.transfer_id)


def temporary_ended(commands: RegistryCommands, fact: transfers_v1.TemporaryTransferEnded) -> Handler:
    return commands.host_member(fact.member_id, host_unit_id=None, effective_on=fact.ended_on, until=None,
                                transfer_id=fact.transfer_id)


def incoming(commands: RegistryCommands, fact: transfers_v1.IncomingTransferRegistered) -> Handler:
    profile = {k: v for k, v in fact.profile.__dict__.items() if v is not None}
    return commands.enrol_member(EnrolMember(
        member_id=fact.member_id, full_name=fact.full_name, gender=fact.gender, birth_date=fact.birth_date,
        citizen_id=fact.citizen_id, unit_id=fact.unit_id, status=fact.status, admitted_on=fact.admitted_on,
        source="incoming_transfer", effective_on=fact.received_on, member_since=fact.received_on,
        official_on=fact.official_on, card_number=fact.card_number, profile=profile,
        interruptions=tuple((i.start, i.end, i.reason) for i in fact.interruptions), transfer_id=fact.transfer_id))


def transferred_out(commands: RegistryCommands, fact: transfers_v1.MemberTransferredToAnotherProvince) -> Handler:
    return commands.member_command(fact.member_id, lambda member, _: members.transfer_out(
        member, effective_on=fact.effective_on, transfer_id=fact.transfer_id, destination=fact.destination))


FACT_DATES = ("decision_date", "received_on", "decided_on", "ended_on", "effective_on", "official_on")
"""The fields a foreign fact dates its decision by, in the order they are looked for: an incoming transfer is dated
by its receipt, not by the member's recognition years before."""


def taking_effect(fact: Any, otherwise: dt.date) -> dt.date:
    """The date a foreign fact's decision takes effect (its legal basis is the one in force then)."""
    return next((value for name in FACT_DATES if isinstance(value := getattr(fact, name, None), dt.date)), otherwise)


REACTIONS: dict[tuple[str, str], Reaction] = {
    ("admissions", "MemberAdmitted"): member_admitted,
    ("admissions", "MemberRecognizedAsOfficial"): recognized,
    ("admissions", "ProbationaryMemberNotRecognized"): not_recognized,
    ("transfers", "MembershipTransferred"): transferred,
    ("transfers", "TemporaryTransferEnded"): temporary_ended,
    ("transfers", "IncomingTransferRegistered"): incoming,
    ("transfers", "MemberTransferredToAnotherProvince"): transferred_out,
}

CATALOGUES = {"admissions": admissions_v1.CATALOGUE, "transfers": transfers_v1.CATALOGUE}


def command_id_for(event_id: str) -> uuid.UUID:
    """The registry command a foreign event causes has an id derived from it, so it is the same on replay."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"party-reaction:{event_id}")
