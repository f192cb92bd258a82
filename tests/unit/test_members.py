"""The member aggregate: given a member's state, when a command arrives, then events or a refusal with a code."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from contracts import registry_v1 as contract
from registry.domain import members, units
from registry.domain.commands import EnrolMember
from registry.domain.dates import add_months, add_years
from registry.domain.errors import Conflict, DomainError, NotFound
from registry.domain.policy import OCCUPATIONS

TODAY = dt.date(2026, 11, 23)
DAY = dt.timedelta(days=1)

CELL = units.Unit(exists=True, unit_id="cell-1", code="CB1", name="Chi bộ 1", kind="cell", parent_id="gc-1",
                  status="active", established_on=dt.date(2000, 1, 1))
OTHER_CELL = replace(CELL, unit_id="cell-2", code="CB2", name="Chi bộ 2")

OFFICIAL = members.Member(
    exists=True, member_id="m-1", full_name="Nguyễn Văn An", gender="male", birth_date=dt.date(1980, 5, 10),
    citizen_id="001080012345", unit_id="cell-1", status="official", admitted_on=dt.date(2005, 3, 15),
    official_on=dt.date(2006, 3, 15), card_number="01000123", card_generation=1)
PROBATIONARY = replace(
    OFFICIAL, member_id="m-2", full_name="Trần Thị Bình", gender="female", birth_date=dt.date(2000, 1, 1),
    citizen_id="001300054321", status="probationary", admitted_on=dt.date(2025, 10, 1), official_on=None,
    probation_ends_on=dt.date(2026, 10, 1), card_number=None, card_generation=0)


def enrolment(**changes: Any) -> EnrolMember:
    fields: dict[str, Any] = {
        "member_id": "m-1", "full_name": "  Nguyễn Văn An ", "gender": "male", "birth_date": dt.date(1980, 5, 10),
        "citizen_id": "001080012345", "unit_id": "cell-1", "status": "official",
        "admitted_on": dt.date(2005, 3, 15), "source": "existing",
    }
    return EnrolMember(**{**fields, **changes})


def enrol(command: EnrolMember, unit: units.Unit | None = CELL) -> list[Any]:
    return members.enrol(command, current=members.INITIAL, unit=unit, today=TODAY)


def fold(events: Iterable[Any], state: members.Member = members.INITIAL) -> members.Member:
    for event in events:
        state = members.evolve(state, event)
    return state


def leave(member: members.Member, reason: str = "struck_off", **changes: Any) -> list[Any]:
    arguments: dict[str, Any] = {"decided_on": dt.date(2020, 1, 10), "decision_ref": "QĐ 12-QĐ/ĐU", "basis": None,
                                 "note": None, "excluded": ()}
    return members.leave(member, reason=reason, today=TODAY, **{**arguments, **changes})


def award(member: members.Member, years: int, awarded_on: dt.date, early_reason: str | None = None) -> list[Any]:
    return members.award_badge(member, years=years, awarded_on=awarded_on, early_reason=early_reason,
                               decision_ref="QĐ 5", today=TODAY)


def rate(member: members.Member, year: int, level: str) -> list[Any]:
    return members.rate(member, year=year, level=level, today=TODAY)


def readmit(member: members.Member, on: dt.date = dt.date(2023, 1, 10), unit: units.Unit | None = OTHER_CELL,
            decision_ref: str = "QĐ 99") -> list[Any]:
    return members.readmit(member, readmitted_on=on, unit=unit, decision_ref=decision_ref, today=TODAY)


def admitted_on(day: dt.date, **changes: Any) -> members.Member:
    return replace(OFFICIAL, admitted_on=day, official_on=add_months(day, 12), **changes)


LEFT = fold(leave(OFFICIAL), OFFICIAL)  # struck off on 2020-01-10


# Enrolment ----------------------------------------------------------------------------------------------


def test_an_official_member_is_enrolled_official_twelve_months_after_admission_by_default() -> None:
    [event] = enrol(enrolment())
    assert isinstance(event, contract.MemberEnrolled)
    assert event.full_name == "Nguyễn Văn An"
    assert event.status == "official" and event.official_on == dt.date(2006, 3, 15)
    assert event.probation_ends_on is None
    assert event.member_since == event.effective_on == dt.date(2005, 3, 15)
    assert event.unit_id == "cell-1" and event.card_number is None


def test_an_official_member_keeps_the_given_official_date_and_card() -> None:
    [event] = enrol(enrolment(official_on=dt.date(2006, 9, 1), card_number="01234567"))
    assert event.official_on == dt.date(2006, 9, 1) and event.card_number == "01234567"
    state = fold([event])
    assert state.card_number == "01234567" and state.card_generation == 1


def test_an_official_member_may_be_recognized_on_the_day_of_admission() -> None:
    [event] = enrol(enrolment(official_on=dt.date(2005, 3, 15)))
    assert event.official_on == dt.date(2005, 3, 15)


def test_a_probationary_member_is_enrolled_with_twelve_months_of_probation() -> None:
    [event] = enrol(enrolment(status="probationary", admitted_on=dt.date(2026, 2, 3), source="admission",
                              admission_id="adm-1"))
    assert event.status == "probationary" and event.official_on is None
    assert event.probation_ends_on == dt.date(2027, 2, 3)
    assert event.admission_id == "adm-1" and event.source == "admission"
    state = fold([event])
    assert state.active and state.status == "probationary" and state.card_generation == 0


def test_a_probationary_member_keeps_a_given_probation_end() -> None:
    [event] = enrol(enrolment(status="probationary", admitted_on=dt.date(2026, 2, 3),
                              probation_ends_on=dt.date(2027, 5, 1)))
    assert event.probation_ends_on == dt.date(2027, 5, 1)


def test_a_member_is_admitted_on_the_eighteenth_birthday() -> None:
    [event] = enrol(enrolment(birth_date=dt.date(1987, 3, 15)))
    assert event.admitted_on == add_years(event.birth_date, 18)


def test_a_member_may_be_enrolled_into_a_grassroots_cell() -> None:
    [event] = enrol(enrolment(), unit=replace(CELL, unit_id="gcell-1", kind="grassroots_cell"))
    assert event.unit_id == "gcell-1"


@pytest.mark.parametrize(("changes", "code", "field"), [
    ({"full_name": "   "}, "name-missing", "full_name"),
    ({"gender": "other"}, "gender-invalid", "gender"),
    ({"gender": ""}, "gender-invalid", "gender"),
    ({"citizen_id": "12345678901"}, "citizen-id-invalid", "citizen_id"),
    ({"citizen_id": "0010800123456"}, "citizen-id-invalid", "citizen_id"),
    ({"citizen_id": "00108001234a"}, "citizen-id-invalid", "citizen_id"),
    ({"citizen_id": ""}, "citizen-id-invalid", "citizen_id"),
    ({"birth_date": TODAY + DAY}, "date-in-future", "birth_date"),
    ({"admitted_on": TODAY + DAY}, "date-in-future", "admitted_on"),
    ({"birth_date": dt.date(1987, 3, 16)}, "admitted-under-age", "admitted_on"),
    ({"status": "candidate"}, "status-invalid", "status"),
    ({"status": "left"}, "status-invalid", "status"),
    ({"official_on": dt.date(2005, 3, 14)}, "official-before-admitted", "official_on"),
    ({"official_on": TODAY + DAY}, "date-in-future", "official_on"),
    ({"admitted_on": dt.date(2026, 1, 5)}, "date-in-future", "official_on"),
    ({"status": "probationary", "official_on": dt.date(2006, 3, 15)}, "probationary-with-official-date",
     "official_on"),
    ({"status": "probationary", "card_number": "01234567"}, "card-for-official-only", "card_number"),
    ({"card_number": "02234567"}, "card-number-invalid", "card_number"),
    ({"card_number": "0123456"}, "card-number-invalid", "card_number"),
    ({"card_number": "012345678"}, "card-number-invalid", "card_number"),
    ({"card_number": "01abcdef"}, "card-number-invalid", "card_number"),
    ({"member_since": TODAY + DAY}, "date-in-future", "member_since"),
    ({"member_since": dt.date(2005, 3, 14)}, "member-since-before-admission", "member_since"),
    ({"interruptions": ((dt.date(2010, 1, 1), dt.date(2009, 1, 1), "lost contact"),)}, "interruption-invalid",
     "interruptions[0]"),
    ({"interruptions": ((dt.date(2010, 1, 1), dt.date(2011, 1, 1), ""),
                        (dt.date(2005, 3, 14), dt.date(2006, 1, 1), "before admission"))},
     "interruption-invalid", "interruptions[1]"),
    ({"interruptions": ((dt.date(2026, 1, 1), TODAY + DAY, "into the future"),)}, "interruption-invalid",
     "interruptions[0]"),
    ({"profile": {"occupation": "astronaut"}}, "occupation-unknown", "occupation"),
    ({"profile": {"shoe_size": 42}}, "profile-field-unknown", "shoe_size"),
    ({"profile": {"full_name": "X"}}, "profile-field-unknown", "full_name"),
    ({"profile": {"phone": "call me"}}, "phone-invalid", "phone"),
])
def test_an_enrolment_breaking_a_rule_is_refused_with_its_code(changes: dict[str, Any], code: str,
                                                                field: str) -> None:
    with pytest.raises(DomainError) as refused:
        enrol(enrolment(**changes))
    assert refused.value.code == code
    assert refused.value.field == field


def test_a_member_is_enrolled_only_once() -> None:
    with pytest.raises(Conflict) as refused:
        members.enrol(enrolment(), current=OFFICIAL, unit=CELL, today=TODAY)
    assert refused.value.code == "member-already-enrolled"


@pytest.mark.parametrize("unit", [None, units.INITIAL])
def test_a_member_is_enrolled_into_an_existing_unit(unit: units.Unit | None) -> None:
    with pytest.raises(NotFound) as refused:
        enrol(enrolment(), unit=unit)
    assert refused.value.code == "unit-not-found"


@pytest.mark.parametrize("status", ["dissolved", "merged", "split"])
def test_a_member_is_not_enrolled_into_a_unit_that_ended(status: str) -> None:
    with pytest.raises(Conflict) as refused:
        enrol(enrolment(), unit=replace(CELL, status=status))
    assert refused.value.code == "unit-not-active"


@pytest.mark.parametrize("kind", ["commune_committee", "grassroots_committee", "sub_committee", "city_committee"])
def test_only_cells_hold_members(kind: str) -> None:
    with pytest.raises(DomainError) as refused:
        enrol(enrolment(), unit=replace(CELL, kind=kind))
    assert refused.value.code == "unit-holds-no-members"


def test_a_member_counts_in_the_cell_from_member_since() -> None:
    [event] = enrol(enrolment(member_since=dt.date(2012, 4, 1)))
    assert event.member_since == event.effective_on == dt.date(2012, 4, 1)
    assert event.admitted_on == dt.date(2005, 3, 15)


def test_member_since_is_never_before_the_cell_was_established() -> None:
    young_cell = replace(CELL, established_on=dt.date(2025, 7, 1))
    [default] = enrol(enrolment(), unit=young_cell)
    [given] = enrol(enrolment(member_since=dt.date(2010, 1, 1)), unit=young_cell)
    assert default.member_since == given.member_since == dt.date(2025, 7, 1)
    assert default.effective_on == dt.date(2025, 7, 1)
    assert default.admitted_on == dt.date(2005, 3, 15)


def test_an_explicit_effective_date_is_kept() -> None:
    [event] = enrol(enrolment(effective_on=dt.date(2026, 11, 1), source="incoming_transfer", transfer_id="t-1"))
    assert event.effective_on == dt.date(2026, 11, 1) and event.transfer_id == "t-1"


def test_a_profile_is_validated_and_kept_without_its_empty_fields() -> None:
    [event] = enrol(enrolment(profile={"occupation": "university_student", "youth_union": True,
                                       "phone": "+84 912 345 678", "ethnicity": "Kinh"}))
    assert event.profile == contract.MemberProfile(occupation="university_student", youth_union=True,
                                                   phone="+84 912 345 678", ethnicity="Kinh")
    assert fold([event]).profile == {"occupation": "university_student", "youth_union": True,
                                     "phone": "+84 912 345 678", "ethnicity": "Kinh"}


def test_recorded_interruptions_are_enrolled() -> None:
    gap = (dt.date(2010, 1, 1), dt.date(2012, 1, 1), "lost contact")
    [event] = enrol(enrolment(interruptions=(gap,)))
    assert event.interruptions == (contract.PartyAgeInterruption(*gap),)
    assert fold([event]).interruptions == ((dt.date(2010, 1, 1), dt.date(2012, 1, 1)),)


@pytest.mark.parametrize("occupation", sorted(OCCUPATIONS))
def test_every_bieu_2_occupation_is_accepted(occupation: str) -> None:
    [event] = enrol(enrolment(profile={"occupation": occupation}))
    assert event.profile.occupation == occupation


# Profile ------------------------------------------------------------------------------------------------


def test_a_profile_update_carries_only_the_changes() -> None:
    [event] = members.update_profile(OFFICIAL, {"address": "12 Phố Huế", "occupation": "retired"}, today=TODAY)
    assert isinstance(event, contract.MemberProfileUpdated)
    assert event.changes == {"address": "12 Phố Huế", "occupation": "retired"} and event.effective_on == TODAY
    state = fold([event], replace(OFFICIAL, profile={"ethnicity": "Kinh", "occupation": "state_cadre"}))
    assert state.profile == {"ethnicity": "Kinh", "occupation": "retired", "address": "12 Phố Huế"}
    assert state.full_name == OFFICIAL.full_name


def test_a_profile_update_changes_the_personal_fields() -> None:
    changes = {"full_name": "Nguyễn Văn Ân", "citizen_id": "001080099999", "birth_date": dt.date(1980, 6, 1),
               "gender": "male"}
    [event] = members.update_profile(OFFICIAL, changes, today=TODAY)
    assert event.changes["birth_date"] == "1980-06-01"
    state = fold([event], OFFICIAL)
    assert (state.full_name, state.citizen_id, state.birth_date) == (
        "Nguyễn Văn Ân", "001080099999", dt.date(1980, 6, 1))
    assert state.profile == {}


@pytest.mark.parametrize(("changes", "code"), [
    ({"citizen_id": "0010800"}, "citizen-id-invalid"),
    ({"birth_date": TODAY + DAY}, "date-in-future"),
    ({"birth_date": "1980-06-01"}, "date-invalid"),
    ({"occupation": "astronaut"}, "occupation-unknown"),
    ({"shoe_size": 42}, "profile-field-unknown"),
    ({"full_name": " "}, "name-missing"),
    ({"gender": "x"}, "gender-invalid"),
    ({"phone": "12"}, "phone-invalid"),
    ({}, "nothing-to-change"),
])
def test_a_profile_update_breaking_a_rule_is_refused(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(DomainError) as refused:
        members.update_profile(OFFICIAL, changes, today=TODAY)
    assert refused.value.code == code


def test_the_profile_of_a_member_who_left_is_not_updated() -> None:
    with pytest.raises(Conflict) as refused:
        members.update_profile(LEFT, {"address": "Hà Đông"}, today=TODAY)
    assert refused.value.code == "member-not-active"
    with pytest.raises(NotFound) as unknown:
        members.update_profile(members.INITIAL, {"address": "Hà Đông"}, today=TODAY)
    assert unknown.value.code == "member-not-found"


# Recognition --------------------------------------------------------------------------------------------


def test_recognition_takes_effect_when_probation_ended_and_issues_a_card() -> None:
    recognized, card = members.recognize(PROBATIONARY, official_on=dt.date(2026, 10, 1), decision_ref="QĐ 7",
                                         card_number="01000777", today=TODAY)
    assert recognized == contract.MemberRecognizedAsOfficial(member_id="m-2", official_on=dt.date(2026, 10, 1),
                                                             decision_ref="QĐ 7")
    assert isinstance(card, contract.PartyCardIssued)
    assert (card.reason, card.card_number, card.issued_on, card.generation) == (
        "recognition", "01000777", dt.date(2026, 10, 1), 2025)
    state = fold([recognized, card], PROBATIONARY)
    assert state.status == "official" and state.official_on == dt.date(2026, 10, 1)
    assert state.card_number == "01000777" and state.card_generation == 2025


def test_only_a_probationary_member_is_recognized() -> None:
    with pytest.raises(Conflict) as refused:
        members.recognize(OFFICIAL, official_on=dt.date(2026, 10, 1), decision_ref=None, card_number="01000777",
                          today=TODAY)
    assert refused.value.code == "not-probationary"


def test_recognition_is_not_before_twelve_months_from_admission() -> None:
    member = replace(PROBATIONARY, probation_ends_on=None)
    with pytest.raises(DomainError) as refused:
        members.recognize(member, official_on=dt.date(2026, 9, 30), decision_ref=None, card_number="01000777",
                          today=TODAY)
    assert refused.value.code == "probation-not-over"
    assert members.recognize(member, official_on=dt.date(2026, 10, 1), decision_ref=None, card_number="01000777",
                             today=TODAY)


def test_recognition_waits_for_a_recorded_probation_end() -> None:
    extended = replace(PROBATIONARY, probation_ends_on=dt.date(2026, 11, 1))
    with pytest.raises(DomainError) as refused:
        members.recognize(extended, official_on=dt.date(2026, 10, 1), decision_ref=None, card_number="01000777",
                          today=TODAY)
    assert refused.value.code == "probation-not-over"


def test_recognition_does_not_take_effect_in_the_future() -> None:
    member = replace(PROBATIONARY, admitted_on=dt.date(2025, 12, 1), probation_ends_on=dt.date(2026, 12, 1))
    with pytest.raises(DomainError) as refused:
        members.recognize(member, official_on=dt.date(2026, 12, 1), decision_ref=None, card_number="01000777",
                          today=TODAY)
    assert refused.value.code == "date-in-future"


def test_a_member_who_left_is_not_recognized() -> None:
    with pytest.raises(Conflict) as refused:
        members.recognize(fold(leave(PROBATIONARY, decided_on=dt.date(2026, 5, 1)), PROBATIONARY),
                          official_on=dt.date(2026, 10, 1), decision_ref=None, card_number="01000777", today=TODAY)
    assert refused.value.code == "member-not-active"


# Cards --------------------------------------------------------------------------------------------------


def issue(member: members.Member, reason: str, card_number: str = "01000999",
          issued_on: dt.date = dt.date(2026, 6, 1)) -> list[Any]:
    return members.issue_card(member, reason=reason, card_number=card_number, issued_on=issued_on, today=TODAY)


@pytest.mark.parametrize("reason", ["reissue_lost", "exchange_damaged"])
def test_a_card_is_reissued_in_the_same_generation(reason: str) -> None:
    [event] = issue(OFFICIAL, reason)
    assert event == contract.PartyCardIssued(member_id="m-1", card_number="01000999", issued_on=dt.date(2026, 6, 1),
                                             reason=reason, generation=1,  # type: ignore[arg-type]
                                             previous_card_number="01000123")


def test_an_official_member_without_a_card_gets_a_first_card_of_the_current_model() -> None:
    [event] = issue(replace(OFFICIAL, card_number=None, card_generation=0), "first_issue")
    assert event.generation == 2025 and event.previous_card_number is None
    [early] = issue(replace(OFFICIAL, card_number=None, card_generation=0), "first_issue",
                    issued_on=dt.date(2020, 1, 1))
    assert early.generation == 1


def test_a_first_card_is_not_issued_twice_and_a_missing_card_is_not_reissued() -> None:
    with pytest.raises(Conflict) as twice:
        issue(OFFICIAL, "first_issue")
    assert twice.value.code == "card-already-held"
    with pytest.raises(Conflict) as nothing:
        issue(replace(OFFICIAL, card_number=None, card_generation=0), "reissue_lost")
    assert nothing.value.code == "no-card-held"


def test_the_2025_exchange_sets_the_generation_and_happens_once() -> None:
    [event] = issue(OFFICIAL, "exchange_2025", card_number="01200001", issued_on=dt.date(2025, 9, 2))
    assert event.generation == 2025 and event.reason == "exchange_2025"
    exchanged = fold([event], OFFICIAL)
    assert exchanged.card_number == "01200001" and exchanged.card_generation == 2025
    with pytest.raises(Conflict) as refused:
        issue(exchanged, "exchange_2025", card_number="01200002")
    assert refused.value.code == "card-already-exchanged"
    [lost] = issue(exchanged, "reissue_lost", card_number="01200003")
    assert lost.generation == 2025 and lost.previous_card_number == "01200001"


def test_only_official_members_hold_a_card() -> None:
    with pytest.raises(Conflict) as refused:
        issue(PROBATIONARY, "reissue_lost")
    assert refused.value.code == "card-for-official-only"


@pytest.mark.parametrize(("reason", "card_number", "issued_on", "code"), [
    ("recognition", "01000999", dt.date(2026, 6, 1), "card-reason-invalid"),
    ("stolen", "01000999", dt.date(2026, 6, 1), "card-reason-invalid"),
    ("reissue_lost", "99000999", dt.date(2026, 6, 1), "card-number-invalid"),
    ("reissue_lost", "0100099", dt.date(2026, 6, 1), "card-number-invalid"),
    ("reissue_lost", "01000999", TODAY + DAY, "date-in-future"),
])
def test_a_card_issue_breaking_a_rule_is_refused(reason: str, card_number: str, issued_on: dt.date,
                                                 code: str) -> None:
    with pytest.raises(DomainError) as refused:
        issue(OFFICIAL, reason, card_number, issued_on)
    assert refused.value.code == code


def test_a_provincial_register_takes_its_own_code_s_cards_only() -> None:
    """Each provincial committee's register numbers its cards after its own code (the `national` scale runs 34)."""
    [event] = members.enrol(enrolment(card_number="04123456"), current=members.INITIAL, unit=CELL, today=TODAY,
                            card_code="04")
    assert event.card_number == "04123456"
    with pytest.raises(DomainError) as refused:
        members.enrol(enrolment(card_number="01123456"), current=members.INITIAL, unit=CELL, today=TODAY,
                      card_code="04")
    assert (refused.value.code, refused.value.field) == ("card-number-invalid", "card_number")
    with pytest.raises(DomainError) as refused:
        members.issue_card(OFFICIAL, reason="reissue_lost", card_number="01000999", issued_on=TODAY, today=TODAY,
                           card_code="04")
    assert refused.value.code == "card-number-invalid"


def test_no_card_is_issued_to_a_member_who_left() -> None:
    with pytest.raises(Conflict) as refused:
        issue(LEFT, "reissue_lost")
    assert refused.value.code == "member-not-active"


# Party age ----------------------------------------------------------------------------------------------


def test_party_age_counts_whole_years_from_admission() -> None:
    member = admitted_on(dt.date(1990, 3, 15))
    assert members.party_age_on(member, dt.date(2020, 3, 14)) == 29
    assert members.party_age_on(member, dt.date(2020, 3, 15)) == 30
    assert members.party_age_on(member, dt.date(1990, 3, 14)) == 0
    assert members.party_age_on(members.INITIAL, TODAY) == 0
    assert members.milestone_date(member, 30) == dt.date(2020, 3, 15)


def test_interruptions_are_subtracted_from_party_age() -> None:
    gap = (dt.date(2000, 1, 1), dt.date(2002, 1, 1))  # 731 days outside the Party
    member = admitted_on(dt.date(1990, 3, 15), interruptions=(gap,))
    assert members.party_age_on(member, dt.date(2020, 3, 15)) == 28
    assert members.milestone_date(member, 30) == dt.date(2020, 3, 15) + dt.timedelta(days=731)
    due = members.milestone_date(member, 30)
    assert members.party_age_on(member, due - DAY) == 29
    assert members.party_age_on(member, due) == 30


def test_an_interruption_counts_only_up_to_the_day_asked_about() -> None:
    member = admitted_on(dt.date(1990, 3, 15), interruptions=((dt.date(2000, 1, 1), dt.date(2030, 1, 1)),))
    assert members.party_age_on(member, dt.date(2000, 1, 1)) == 9
    assert members.party_age_on(member, dt.date(2010, 1, 1)) == 9
    later = admitted_on(dt.date(1990, 3, 15), interruptions=((dt.date(2021, 1, 1), dt.date(2022, 1, 1)),))
    assert members.party_age_on(later, dt.date(2020, 3, 15)) == 30
    assert members.milestone_date(later, 30) == dt.date(2020, 3, 15)


def test_several_interruptions_push_a_milestone_back_in_turn() -> None:
    gaps = ((dt.date(2019, 1, 1), dt.date(2020, 1, 1)), (dt.date(2020, 3, 20), dt.date(2020, 4, 20)))
    member = admitted_on(dt.date(1990, 3, 15), interruptions=gaps)
    due = members.milestone_date(member, 30)
    assert due == dt.date(2020, 3, 15) + dt.timedelta(days=365 + 31)
    assert members.party_age_on(member, due - DAY) == 29
    assert members.party_age_on(member, due) == 30


def test_party_age_reaches_a_milestone_on_its_milestone_date_for_a_29_february_admission() -> None:
    member = admitted_on(dt.date(1996, 2, 29))
    due = members.milestone_date(member, 30)
    assert members.party_age_on(member, due) == 30


# Badges -------------------------------------------------------------------------------------------------


def test_a_badge_is_awarded_when_party_age_reaches_the_milestone() -> None:
    member = admitted_on(dt.date(1996, 3, 15))
    [event] = award(member, 30, dt.date(2026, 3, 15))
    assert event == contract.PartyBadgeAwarded(member_id="m-1", years=30, awarded_on=dt.date(2026, 3, 15),
                                               early=False, posthumous=False, decision_ref="QĐ 5")
    assert fold([event], member).badges == (30,)


@pytest.mark.parametrize("years", [10, 29, 35, 95, 100])
def test_badges_are_awarded_only_at_milestones(years: int) -> None:
    with pytest.raises(DomainError) as refused:
        award(admitted_on(dt.date(1930, 1, 1)), years, dt.date(2026, 1, 1))
    assert refused.value.code == "badge-not-a-milestone"


@pytest.mark.parametrize("years", [30, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90])
def test_every_milestone_can_be_awarded_when_due(years: int) -> None:
    member = admitted_on(add_years(dt.date(2026, 1, 1), -years))
    [event] = award(member, years, dt.date(2026, 1, 1))
    assert event.years == years and not event.early


def test_a_badge_is_not_awarded_before_it_is_due_without_a_reason() -> None:
    with pytest.raises(DomainError) as refused:
        award(admitted_on(dt.date(1996, 3, 15)), 30, dt.date(2026, 3, 14))
    assert refused.value.code == "badge-not-yet-due"


@pytest.mark.parametrize(("admitted", "years", "awarded", "accepted"), [
    (dt.date(1982, 6, 1), 45, dt.date(2026, 6, 1), True),  # 12 months early
    (dt.date(1982, 6, 1), 45, dt.date(2026, 5, 31), False),
    (dt.date(1962, 6, 1), 65, dt.date(2026, 6, 1), True),
    (dt.date(1962, 6, 1), 65, dt.date(2026, 5, 31), False),  # 65 years: still only 12 months
    (dt.date(1957, 6, 1), 70, dt.date(2025, 6, 1), True),  # from 70 years: 24 months early
    (dt.date(1957, 6, 1), 70, dt.date(2025, 5, 31), False),
    (dt.date(1947, 6, 1), 80, dt.date(2025, 6, 1), True),
    (dt.date(1947, 6, 1), 80, dt.date(2025, 5, 31), False),
])
def test_an_early_badge_is_allowed_only_within_its_allowance(admitted: dt.date, years: int, awarded: dt.date,
                                                             accepted: bool) -> None:
    member = admitted_on(admitted)
    if accepted:
        [event] = award(member, years, awarded, early_reason="bệnh hiểm nghèo")
        assert event.early and not event.posthumous
    else:
        with pytest.raises(DomainError) as refused:
            award(member, years, awarded, early_reason="bệnh hiểm nghèo")
        assert refused.value.code == "badge-not-yet-due"


def test_an_early_badge_needs_its_reason() -> None:
    with pytest.raises(DomainError) as refused:
        award(admitted_on(dt.date(1982, 6, 1)), 45, dt.date(2026, 11, 1))
    assert refused.value.code == "badge-not-yet-due"


def test_a_blank_early_reason_is_no_reason() -> None:
    with pytest.raises(DomainError) as refused:
        award(admitted_on(dt.date(1982, 6, 1)), 45, dt.date(2026, 11, 1), early_reason="  ")
    assert refused.value.code == "badge-not-yet-due"


def test_interruptions_delay_a_badge() -> None:
    member = admitted_on(dt.date(1995, 3, 15), interruptions=((dt.date(2000, 1, 1), dt.date(2001, 1, 1)),))
    with pytest.raises(DomainError) as refused:
        award(member, 30, dt.date(2025, 3, 15))
    assert refused.value.code == "badge-not-yet-due"
    [event] = award(member, 30, dt.date(2026, 3, 16))
    assert not event.early


def test_a_badge_is_awarded_once() -> None:
    member = admitted_on(dt.date(1996, 3, 15), badges=(30,))
    with pytest.raises(Conflict) as refused:
        award(member, 30, dt.date(2026, 6, 1))
    assert refused.value.code == "badge-already-awarded"


def test_a_badge_is_not_awarded_in_the_future() -> None:
    with pytest.raises(DomainError) as refused:
        award(admitted_on(dt.date(1980, 1, 1)), 40, TODAY + DAY)
    assert refused.value.code == "date-in-future"


def test_a_badge_is_awarded_posthumously_to_a_member_who_died() -> None:
    member = admitted_on(dt.date(1985, 2, 3))
    deceased = fold(members.die(member, died_on=dt.date(2026, 1, 20), today=TODAY), member)
    [event] = award(deceased, 40, dt.date(2026, 2, 3))
    assert event.posthumous and not event.early


def test_a_posthumous_badge_counts_party_age_only_until_death() -> None:
    member = admitted_on(dt.date(1990, 1, 1))
    deceased = fold(members.die(member, died_on=dt.date(2015, 1, 1), today=TODAY), member)  # 25 years
    with pytest.raises(DomainError) as refused:
        award(deceased, 30, dt.date(2021, 1, 1))
    assert refused.value.code == "badge-not-yet-due"


def test_an_exempted_member_remains_eligible_for_badges() -> None:
    [event] = award(admitted_on(dt.date(1996, 3, 15), exempted=True), 30, dt.date(2026, 3, 15))
    assert event.years == 30


def test_no_badge_for_a_member_who_left_or_never_existed() -> None:
    with pytest.raises(Conflict) as left:
        award(replace(LEFT, admitted_on=dt.date(1990, 1, 1)), 30, dt.date(2026, 1, 1))
    assert left.value.code == "member-not-active"
    with pytest.raises(NotFound) as unknown:
        award(members.INITIAL, 30, dt.date(2026, 1, 1))
    assert unknown.value.code == "member-not-found"


# Ratings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["hoan_thanh_xuat_sac", "hoan_thanh_tot", "hoan_thanh", "khong_hoan_thanh"])
def test_a_year_is_rated_at_one_of_four_levels(level: str) -> None:
    [event] = rate(OFFICIAL, 2025, level)
    assert event == contract.AnnualRatingRecorded(member_id="m-1", year=2025, level=level,  # type: ignore[arg-type]
                                                  effective_on=dt.date(2025, 12, 31))
    assert fold([event], OFFICIAL).ratings == ((2025, level),)


def test_the_current_year_is_rated_as_of_today() -> None:
    [event] = rate(OFFICIAL, 2026, "hoan_thanh_tot")
    assert event.effective_on == TODAY


@pytest.mark.parametrize("level", ["xuat_sac", "", "HOAN_THANH", "good"])
def test_an_unknown_rating_level_is_refused(level: str) -> None:
    with pytest.raises(DomainError) as refused:
        rate(OFFICIAL, 2025, level)
    assert refused.value.code == "rating-level-invalid"


def test_an_exempted_member_is_not_rated() -> None:
    with pytest.raises(Conflict) as refused:
        rate(replace(OFFICIAL, exempted=True), 2025, "hoan_thanh")
    assert refused.value.code == "member-exempted"


@pytest.mark.parametrize("year", [2027, 2004, 1999])
def test_a_rated_year_lies_between_admission_and_now(year: int) -> None:
    with pytest.raises(DomainError) as refused:
        rate(OFFICIAL, year, "hoan_thanh")
    assert refused.value.code == "rating-year-invalid"
    assert rate(OFFICIAL, 2005, "hoan_thanh")


def test_a_year_is_rated_once() -> None:
    with pytest.raises(Conflict) as refused:
        rate(replace(OFFICIAL, ratings=((2025, "hoan_thanh"),)), 2025, "hoan_thanh_tot")
    assert refused.value.code == "rating-already-recorded"


def test_two_consecutive_failed_years_list_the_member_for_screening() -> None:
    member = replace(OFFICIAL, ratings=((2024, "khong_hoan_thanh"),))
    rated, listed = rate(member, 2025, "khong_hoan_thanh")
    assert isinstance(rated, contract.AnnualRatingRecorded)
    assert isinstance(listed, contract.MemberPlacedOnScreeningList)
    assert listed.automatic and listed.effective_on == dt.date(2025, 12, 31) and listed.member_id == "m-1"
    state = fold([rated, listed], member)
    assert state.on_screening_list and state.ratings == ((2024, "khong_hoan_thanh"), (2025, "khong_hoan_thanh"))


@pytest.mark.parametrize("ratings", [
    (),
    ((2024, "hoan_thanh"),),
    ((2023, "khong_hoan_thanh"), (2024, "hoan_thanh")),
])
def test_one_failed_year_does_not_list_the_member(ratings: tuple[tuple[int, str], ...]) -> None:
    events = rate(replace(OFFICIAL, ratings=ratings), 2025, "khong_hoan_thanh")
    assert [type(e) for e in events] == [contract.AnnualRatingRecorded]


def test_a_good_year_after_a_failed_one_does_not_list_the_member() -> None:
    events = rate(replace(OFFICIAL, ratings=((2024, "khong_hoan_thanh"),)), 2025, "hoan_thanh")
    assert len(events) == 1


def test_a_member_already_on_the_screening_list_is_not_listed_again() -> None:
    member = replace(OFFICIAL, ratings=((2024, "khong_hoan_thanh"),), on_screening_list=True)
    assert len(rate(member, 2025, "khong_hoan_thanh")) == 1


def test_two_consecutive_failed_years_recorded_out_of_order_still_list_the_member() -> None:
    member = replace(OFFICIAL, ratings=((2025, "khong_hoan_thanh"),))
    events = rate(member, 2024, "khong_hoan_thanh")
    assert any(isinstance(e, contract.MemberPlacedOnScreeningList) for e in events)


def test_a_member_who_left_is_not_rated() -> None:
    with pytest.raises(Conflict) as refused:
        rate(LEFT, 2019, "hoan_thanh")
    assert refused.value.code == "member-not-active"


# Exemption and screening --------------------------------------------------------------------------------


def test_a_member_is_exempted_and_the_exemption_ends() -> None:
    [exempted] = members.exempt(OFFICIAL, effective_on=dt.date(2026, 3, 1), reason="tuổi cao, sức yếu",
                                decision_ref="NQ 3", today=TODAY)
    assert exempted == contract.MemberExempted(member_id="m-1", effective_on=dt.date(2026, 3, 1),
                                               reason="tuổi cao, sức yếu", decision_ref="NQ 3")
    state = fold([exempted], OFFICIAL)
    assert state.exempted
    [ended] = members.end_exemption(state, effective_on=dt.date(2026, 9, 1), today=TODAY)
    assert ended == contract.MemberExemptionEnded(member_id="m-1", effective_on=dt.date(2026, 9, 1))
    assert not fold([ended], state).exempted


def test_an_exemption_is_not_applied_twice_nor_without_its_reason() -> None:
    with pytest.raises(Conflict) as twice:
        members.exempt(replace(OFFICIAL, exempted=True), effective_on=dt.date(2026, 3, 1), reason="sức yếu",
                       decision_ref=None, today=TODAY)
    assert twice.value.code == "already-exempted"
    with pytest.raises(DomainError) as blank:
        members.exempt(OFFICIAL, effective_on=dt.date(2026, 3, 1), reason="  ", decision_ref=None, today=TODAY)
    assert blank.value.code == "reason-missing"
    with pytest.raises(DomainError) as future:
        members.exempt(OFFICIAL, effective_on=TODAY + DAY, reason="sức yếu", decision_ref=None, today=TODAY)
    assert future.value.code == "date-in-future"


def test_only_an_exempted_member_has_an_exemption_to_end() -> None:
    with pytest.raises(Conflict) as refused:
        members.end_exemption(OFFICIAL, effective_on=dt.date(2026, 3, 1), today=TODAY)
    assert refused.value.code == "not-exempted"
    with pytest.raises(DomainError) as future:
        members.end_exemption(replace(OFFICIAL, exempted=True), effective_on=TODAY + DAY, today=TODAY)
    assert future.value.code == "date-in-future"


def test_a_member_is_placed_on_the_screening_list_by_decision() -> None:
    [event] = members.place_on_screening_list(OFFICIAL, effective_on=dt.date(2026, 5, 1), reason="vi phạm",
                                              today=TODAY)
    assert event == contract.MemberPlacedOnScreeningList(member_id="m-1", effective_on=dt.date(2026, 5, 1),
                                                         reason="vi phạm", automatic=False)
    assert fold([event], OFFICIAL).on_screening_list


def test_a_screening_listing_is_not_applied_twice_nor_without_its_reason() -> None:
    with pytest.raises(Conflict) as twice:
        members.place_on_screening_list(replace(OFFICIAL, on_screening_list=True), effective_on=dt.date(2026, 5, 1),
                                        reason="vi phạm", today=TODAY)
    assert twice.value.code == "already-on-screening-list"
    with pytest.raises(DomainError) as blank:
        members.place_on_screening_list(OFFICIAL, effective_on=dt.date(2026, 5, 1), reason="", today=TODAY)
    assert blank.value.code == "reason-missing"
    with pytest.raises(DomainError) as future:
        members.place_on_screening_list(OFFICIAL, effective_on=TODAY + DAY, reason="vi phạm", today=TODAY)
    assert future.value.code == "date-in-future"


# Leaving ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["struck_off", "expelled", "resigned"])
def test_an_official_member_leaves_the_party(reason: str) -> None:
    [event] = leave(OFFICIAL, reason, basis="Điều lệ Đảng, Điều 8", note="n",
                    excluded=("serious_disunity", "abandoned_activities"))
    assert event == contract.MemberLeftParty(
        member_id="m-1", reason=reason, decided_on=dt.date(2020, 1, 10),  # type: ignore[arg-type]
        decision_ref="QĐ 12-QĐ/ĐU", basis="Điều lệ Đảng, Điều 8", note="n",
        excluded_from_readmission=("abandoned_activities", "serious_disunity"))
    state = fold([event], OFFICIAL)
    assert state.status == "left" and not state.active
    assert state.left_on == dt.date(2020, 1, 10) and state.leave_reason == reason


def test_a_probationary_member_cannot_be_expelled() -> None:
    with pytest.raises(DomainError) as refused:
        leave(PROBATIONARY, "expelled", decided_on=dt.date(2026, 5, 1))
    assert refused.value.code == "probationary-cannot-be-expelled"


@pytest.mark.parametrize("reason", ["struck_off", "resigned"])
def test_a_probationary_member_may_be_struck_off_or_resign(reason: str) -> None:
    [event] = leave(PROBATIONARY, reason, decided_on=dt.date(2026, 5, 1))
    assert event.reason == reason


@pytest.mark.parametrize(("changes", "code"), [
    ({"reason": "retired"}, "leave-reason-invalid"),
    ({"reason": "deceased"}, "leave-reason-invalid"),
    ({"decision_ref": "  "}, "decision-missing"),
    ({"excluded": ("corruption_conviction", "bad_luck")}, "exclusion-unknown"),
    ({"decided_on": TODAY + DAY}, "date-in-future"),
])
def test_leaving_breaking_a_rule_is_refused(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(DomainError) as refused:
        leave(OFFICIAL, **changes)
    assert refused.value.code == code


def test_a_member_who_is_no_longer_in_the_party_cannot_leave() -> None:
    deceased = replace(OFFICIAL, status="deceased")
    transferred = replace(OFFICIAL, status="transferred_out")
    for member in (LEFT, deceased, transferred):
        with pytest.raises(Conflict) as refused:
            leave(member)
        assert refused.value.code == "member-not-active"
    with pytest.raises(NotFound):
        leave(members.INITIAL)


def test_leaving_ends_the_exemption_and_the_temporary_host() -> None:
    member = replace(OFFICIAL, exempted=True, host_unit_id="cell-9")
    state = fold(leave(member), member)
    assert not state.exempted and state.host_unit_id is None


# Death and transfer out ---------------------------------------------------------------------------------


def test_an_active_member_dies() -> None:
    member = replace(OFFICIAL, host_unit_id="cell-9")
    [event] = members.die(member, died_on=dt.date(2026, 8, 2), today=TODAY)
    assert event == contract.MemberDied(member_id="m-1", died_on=dt.date(2026, 8, 2))
    state = fold([event], member)
    assert state.status == "deceased" and state.died_on == dt.date(2026, 8, 2) and state.host_unit_id is None


def test_a_death_is_recorded_only_for_an_active_member_on_a_possible_date() -> None:
    for gone in (LEFT, replace(OFFICIAL, status="deceased"), replace(OFFICIAL, status="transferred_out")):
        with pytest.raises(Conflict) as refused:
            members.die(gone, died_on=dt.date(2026, 8, 2), today=TODAY)
        assert refused.value.code == "member-not-active"
    with pytest.raises(DomainError) as future:
        members.die(OFFICIAL, died_on=TODAY + DAY, today=TODAY)
    assert future.value.code == "date-in-future"
    with pytest.raises(DomainError) as early:
        members.die(OFFICIAL, died_on=dt.date(2005, 3, 14), today=TODAY)
    assert early.value.code == "died-before-admitted"


def test_an_active_member_transfers_out_of_the_city() -> None:
    [event] = members.transfer_out(OFFICIAL, effective_on=dt.date(2026, 4, 1), transfer_id="t-7",
                                   destination="Đảng bộ tỉnh Bắc Ninh")
    assert event == contract.MemberTransferredOut(member_id="m-1", effective_on=dt.date(2026, 4, 1),
                                                  transfer_id="t-7", destination="Đảng bộ tỉnh Bắc Ninh")
    state = fold([event], OFFICIAL)
    assert state.status == "transferred_out" and state.left_on == dt.date(2026, 4, 1) and not state.active


def test_only_an_active_member_transfers_out() -> None:
    for gone in (LEFT, replace(OFFICIAL, status="deceased"), replace(OFFICIAL, status="transferred_out")):
        with pytest.raises(Conflict) as refused:
            members.transfer_out(gone, effective_on=dt.date(2026, 4, 1), transfer_id=None, destination=None)
        assert refused.value.code == "member-not-active"


# Re-admission -------------------------------------------------------------------------------------------


def test_a_member_who_left_is_readmitted_on_probation_after_36_months() -> None:
    [event] = readmit(LEFT)
    assert event == contract.MemberReadmitted(member_id="m-1", readmitted_on=dt.date(2023, 1, 10), unit_id="cell-2",
                                              decision_ref="QĐ 99", probation_ends_on=dt.date(2024, 1, 10))
    state = fold([event], replace(LEFT, on_screening_list=True))
    assert state.status == "probationary" and state.active and state.readmitted
    assert state.unit_id == "cell-2" and state.official_on is None and not state.on_screening_list
    assert state.probation_ends_on == dt.date(2024, 1, 10)
    assert state.interruptions == ((dt.date(2020, 1, 10), dt.date(2023, 1, 10)),)


def test_the_time_outside_the_party_does_not_count_towards_party_age() -> None:
    state = fold(readmit(LEFT), LEFT)
    gap = dt.date(2023, 1, 10) - dt.date(2020, 1, 10)
    assert members.party_age_on(OFFICIAL, TODAY) == 21
    assert members.party_age_on(state, TODAY) == 18
    assert members.milestone_date(state, 30) == dt.date(2035, 3, 15) + gap


def test_a_readmitted_member_is_recognized_only_after_the_new_probation() -> None:
    state = fold(readmit(LEFT), LEFT)
    with pytest.raises(DomainError) as refused:
        members.recognize(state, official_on=dt.date(2024, 1, 9), decision_ref=None, card_number="01000888",
                          today=TODAY)
    assert refused.value.code == "probation-not-over"
    recognized, _card = members.recognize(state, official_on=dt.date(2024, 1, 10), decision_ref=None,
                                          card_number="01000888", today=TODAY)
    assert recognized.official_on == dt.date(2024, 1, 10)


def test_readmission_comes_36_months_after_leaving_at_the_earliest() -> None:
    with pytest.raises(DomainError) as refused:
        readmit(LEFT, on=dt.date(2023, 1, 9))
    assert refused.value.code == "readmission-too-early"


def test_readmission_happens_only_once() -> None:
    again = fold(leave(fold(readmit(LEFT), LEFT), decided_on=dt.date(2024, 6, 1)),
                 fold(readmit(LEFT), LEFT))
    assert again.status == "left" and again.readmitted
    with pytest.raises(Conflict) as refused:
        readmit(again, on=dt.date(2026, 11, 1))
    assert refused.value.code == "already-readmitted"


@pytest.mark.parametrize("member", [OFFICIAL, PROBATIONARY, replace(OFFICIAL, status="deceased"),
                                    replace(OFFICIAL, status="transferred_out", left_on=dt.date(2020, 1, 10))])
def test_only_a_member_who_left_is_readmitted(member: members.Member) -> None:
    with pytest.raises(Conflict) as refused:
        readmit(member)
    assert refused.value.code == "not-left"
    with pytest.raises(NotFound):
        readmit(members.INITIAL)


def test_the_excluded_categories_are_never_readmitted() -> None:
    excluded = fold(leave(OFFICIAL, "expelled", excluded=("corruption_conviction",)), OFFICIAL)
    with pytest.raises(DomainError) as refused:
        readmit(excluded)
    assert refused.value.code == "readmission-excluded"


def test_a_member_who_resigned_is_not_readmitted() -> None:
    resigned = fold(leave(OFFICIAL, "resigned"), OFFICIAL)
    with pytest.raises(DomainError) as refused:
        readmit(resigned)
    assert refused.value.code == "readmission-excluded"


@pytest.mark.parametrize(("unit", "code"), [
    (None, "unit-not-found"), (units.INITIAL, "unit-not-found"),
    (replace(OTHER_CELL, status="dissolved"), "unit-not-active"),
    (replace(OTHER_CELL, kind="commune_committee"), "unit-holds-no-members"),
    (replace(OTHER_CELL, kind="grassroots_committee"), "unit-holds-no-members")])
def test_readmission_is_into_an_active_cell(unit: units.Unit | None, code: str) -> None:
    with pytest.raises(DomainError) as refused:
        readmit(LEFT, unit=unit)
    assert (refused.value.code, refused.value.field) == (code, "unit_id")


def test_readmission_needs_its_decision_and_a_past_date() -> None:
    with pytest.raises(DomainError) as blank:
        readmit(LEFT, decision_ref=" ")
    assert blank.value.code == "decision-missing"
    with pytest.raises(DomainError) as future:
        readmit(LEFT, on=TODAY + DAY)
    assert future.value.code == "date-in-future"


# Moves and temporary hosts ------------------------------------------------------------------------------


def test_a_member_moves_to_another_cell() -> None:
    [event] = members.move(OFFICIAL, to_unit_id="cell-2", reason="reorganization", effective_on=dt.date(2025, 7, 1),
                           decision_ref="QĐ 1")
    assert event == contract.MemberUnitChanged(member_id="m-1", from_unit_id="cell-1", to_unit_id="cell-2",
                                               reason="reorganization", effective_on=dt.date(2025, 7, 1),
                                               transfer_id=None, decision_ref="QĐ 1")
    assert fold([event], OFFICIAL).unit_id == "cell-2"


def test_a_move_to_the_same_cell_changes_nothing() -> None:
    assert members.move(OFFICIAL, to_unit_id="cell-1", reason="transfer", effective_on=dt.date(2025, 7, 1)) == []


def test_a_member_who_left_does_not_move() -> None:
    with pytest.raises(Conflict) as refused:
        members.move(LEFT, to_unit_id="cell-2", reason="transfer", effective_on=dt.date(2025, 7, 1))
    assert refused.value.code == "member-not-active"


def test_a_temporary_host_is_set_and_cleared() -> None:
    [hosted] = members.host_temporarily(OFFICIAL, host_unit_id="cell-3", effective_on=dt.date(2026, 2, 1),
                                        until=dt.date(2026, 8, 1), transfer_id="t-2")
    assert hosted == contract.MemberTemporaryHostChanged(member_id="m-1", host_unit_id="cell-3",
                                                         effective_on=dt.date(2026, 2, 1), until=dt.date(2026, 8, 1),
                                                         transfer_id="t-2")
    state = fold([hosted], OFFICIAL)
    assert state.host_unit_id == "cell-3" and state.unit_id == "cell-1"
    assert members.host_temporarily(state, host_unit_id="cell-3", effective_on=dt.date(2026, 3, 1), until=None,
                                    transfer_id=None) == []
    [cleared] = members.host_temporarily(state, host_unit_id=None, effective_on=dt.date(2026, 8, 1), until=None,
                                         transfer_id="t-2")
    assert cleared.host_unit_id is None
    assert fold([cleared], state).host_unit_id is None


def test_clearing_a_host_that_is_not_there_changes_nothing() -> None:
    assert members.host_temporarily(OFFICIAL, host_unit_id=None, effective_on=dt.date(2026, 8, 1), until=None,
                                    transfer_id=None) == []


def test_a_temporary_host_is_another_cell_than_the_official_one() -> None:
    with pytest.raises(DomainError) as refused:
        members.host_temporarily(OFFICIAL, host_unit_id="cell-1", effective_on=dt.date(2026, 2, 1), until=None,
                                 transfer_id=None)
    assert refused.value.code == "host-is-official-cell"


def test_a_member_who_left_is_not_hosted() -> None:
    with pytest.raises(Conflict) as refused:
        members.host_temporarily(LEFT, host_unit_id="cell-3", effective_on=dt.date(2026, 2, 1), until=None,
                                 transfer_id=None)
    assert refused.value.code == "member-not-active"


# A whole history ----------------------------------------------------------------------------------------


def test_a_members_history_folds_into_the_current_state() -> None:
    cell = replace(CELL, established_on=dt.date(1990, 1, 1))
    state = fold(enrol(enrolment(status="probationary", admitted_on=dt.date(1994, 5, 19),
                                 birth_date=dt.date(1970, 2, 1), profile={"occupation": "enterprise_worker"}),
                       unit=cell))
    assert state.status == "probationary" and state.probation_ends_on == dt.date(1995, 5, 19)
    history: list[Any] = []

    def apply(events: list[Any]) -> None:
        nonlocal state
        history.extend(events)
        state = fold(events, state)

    apply(members.recognize(state, official_on=dt.date(1995, 5, 19), decision_ref="QĐ 1", card_number="01000001",
                            today=TODAY))
    apply(members.update_profile(state, {"address": "Ba Đình", "occupation": "retired"}, today=TODAY))
    apply(award(state, 30, dt.date(2024, 5, 19)))
    apply(members.issue_card(state, reason="exchange_2025", card_number="01200001", issued_on=dt.date(2025, 9, 1),
                             today=TODAY))
    apply(rate(state, 2023, "hoan_thanh_tot"))
    apply(rate(state, 2024, "khong_hoan_thanh"))
    apply(rate(state, 2025, "khong_hoan_thanh"))
    apply(members.move(state, to_unit_id="cell-2", reason="transfer", effective_on=dt.date(2026, 1, 5)))
    apply(members.host_temporarily(state, host_unit_id="cell-3", effective_on=dt.date(2026, 2, 1),
                                   until=dt.date(2026, 8, 1), transfer_id=None))
    apply(members.exempt(state, effective_on=dt.date(2026, 3, 1), reason="tuổi cao", decision_ref=None,
                         today=TODAY))

    assert len(history) == 12
    assert state.status == "official" and state.official_on == dt.date(1995, 5, 19)
    assert state.unit_id == "cell-2" and state.host_unit_id == "cell-3"
    assert state.card_number == "01200001" and state.card_generation == 2025
    assert state.badges == (30,)
    assert state.ratings == ((2023, "hoan_thanh_tot"), (2024, "khong_hoan_thanh"), (2025, "khong_hoan_thanh"))
    assert state.on_screening_list and state.exempted
    assert state.profile == {"occupation": "retired", "address": "Ba Đình"}
    assert members.party_age_on(state, TODAY) == 32
    assert fold(history, fold(enrol(enrolment(status="probationary", admitted_on=dt.date(1994, 5, 19),
                                              birth_date=dt.date(1970, 2, 1),
                                              profile={"occupation": "enterprise_worker"}), unit=cell))) == state

    apply(members.die(state, died_on=dt.date(2026, 10, 10), today=TODAY))
    assert state.status == "deceased" and state.host_unit_id is None and not state.active
    assert state.died_on == dt.date(2026, 10, 10)


def test_an_unknown_event_leaves_the_member_as_it_was() -> None:
    assert members.evolve(OFFICIAL, contract.OrganizationUnitRenamed(
        unit_id="cell-1", name="x", previous_name="y", effective_on=TODAY)) == OFFICIAL


def test_the_fold_changes_a_member_as_replace_would_and_refuses_an_unknown_field() -> None:
    changed = members.evolve(OFFICIAL, contract.MemberExempted(member_id="m-1", effective_on=TODAY, reason="sick",
                                                               decision_ref="QĐ 1"))
    assert changed == replace(OFFICIAL, exempted=True) and type(changed) is members.Member
    assert OFFICIAL.exempted is False, "the state it came from is left as it was"
    with pytest.raises(TypeError, match="no field colour"):
        members._changed(OFFICIAL, colour="red")
