"""Projection logic without a database: facts in, versions, intervals and rows out."""

from __future__ import annotations

import datetime as dt

from gateway.projections import members
from gateway.projections.history import (
    FOREVER,
    Fact,
    MemberInterval,
    MemberTransition,
    effective_on,
    member_intervals,
    member_transitions,
    recorded_day,
    unit_versions,
)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def established(seq: int, on: str, parent: str | None = "p1", name: str = "Chi bộ 1") -> Fact:
    return Fact(day(on), seq, "OrganizationUnitEstablished",
                {"code": "CB1", "name": name, "kind": "cell", "parent_id": parent})


def test_a_backdated_reattachment_lands_before_a_later_rename() -> None:
    facts = [
        established(1, "2000-01-01"),
        Fact(day("2025-09-01"), 2, "OrganizationUnitRenamed", {"name": "Chi bộ mới"}),
        Fact(day("2025-07-01"), 3, "OrganizationUnitReattached", {"parent_id": "p2"}),
    ]
    versions = unit_versions(facts)
    assert [(v.valid_from, v.valid_to, v.name, v.parent_id) for v in versions] == [
        (day("2000-01-01"), day("2025-07-01"), "Chi bộ 1", "p1"),
        (day("2025-07-01"), day("2025-09-01"), "Chi bộ 1", "p2"),
        (day("2025-09-01"), FOREVER, "Chi bộ mới", "p2"),
    ]


def test_two_changes_on_one_day_leave_one_version() -> None:
    facts = [established(1, "2000-01-01"),
             Fact(day("2025-07-01"), 2, "OrganizationUnitReattached", {"parent_id": "p2"}),
             Fact(day("2025-07-01"), 3, "OrganizationUnitDissolved", {"reason": "merged"})]
    versions = unit_versions(facts)
    assert [(v.valid_from, v.parent_id, v.status) for v in versions] == [
        (day("2000-01-01"), "p1", "active"), (day("2025-07-01"), "p2", "merged")]


def enrolled(on: str, unit: str = "c1", status: str = "probationary") -> Fact:
    return Fact(day(on), 1, "MemberEnrolled", {"unit_id": unit, "status": status})


def test_a_merge_recorded_after_a_later_transfer_does_not_undo_it() -> None:
    facts = [
        enrolled("2024-01-01", status="official"),
        Fact(day("2025-08-01"), 2, "MemberUnitChanged", {"to_unit_id": "c3"}),
        Fact(day("2025-07-01"), 3, "MemberUnitChanged", {"to_unit_id": "c2"}),
    ]
    assert member_intervals(facts) == [
        MemberInterval("c1", "official", day("2024-01-01"), day("2025-07-01")),
        MemberInterval("c2", "official", day("2025-07-01"), day("2025-08-01")),
        MemberInterval("c3", "official", day("2025-08-01"), FOREVER),
    ]


def test_recognition_exit_and_readmission_shape_the_intervals() -> None:
    facts = [
        enrolled("2015-05-19"),
        Fact(day("2016-05-19"), 2, "MemberRecognizedAsOfficial", {}),
        Fact(day("2018-03-01"), 3, "MemberLeftParty", {"reason": "struck_off"}),
        Fact(day("2022-01-01"), 4, "MemberReadmitted", {"unit_id": "c2"}),
        Fact(day("2024-02-02"), 5, "MemberDied", {}),
    ]
    assert member_intervals(facts) == [
        MemberInterval("c1", "probationary", day("2015-05-19"), day("2016-05-19")),
        MemberInterval("c1", "official", day("2016-05-19"), day("2018-03-01")),
        MemberInterval("c2", "probationary", day("2022-01-01"), day("2024-02-02")),
    ]



def test_each_start_and_end_of_an_interval_is_a_transition_classified_by_the_fact_of_its_day() -> None:
    facts = [
        Fact(day("2015-05-19"), 1, "MemberEnrolled", {"unit_id": "c1", "status": "probationary",
                                                      "source": "admission"}),
        Fact(day("2016-05-19"), 2, "MemberRecognizedAsOfficial", {}),
        Fact(day("2017-01-01"), 3, "MemberUnitChanged", {"to_unit_id": "c2"}),
        Fact(day("2018-03-01"), 4, "MemberLeftParty", {"reason": "struck_off"}),
        Fact(day("2022-01-01"), 5, "MemberReadmitted", {"unit_id": "c3"}),
        Fact(day("2024-02-02"), 6, "MemberDied", {}),
    ]
    assert member_transitions(member_intervals(facts), facts) == [
        MemberTransition(day("2015-05-19"), None, "c1", "admitted", None),
        MemberTransition(day("2016-05-19"), "c1", "c1", "reorganized_in", "reorganized_out"),
        MemberTransition(day("2017-01-01"), "c1", "c2", "moved_in", "moved_out"),
        MemberTransition(day("2018-03-01"), "c2", None, None, "struck_off"),
        MemberTransition(day("2022-01-01"), None, "c3", "readmitted", None),
        MemberTransition(day("2024-02-02"), "c3", None, None, "deceased"),
    ]


def test_an_existing_member_and_one_from_another_province_enter_under_their_own_categories() -> None:
    existing = [Fact(day("2015-01-01"), 1, "MemberEnrolled", {"unit_id": "c1", "status": "official",
                                                              "source": "existing"})]
    arriving = [Fact(day("2020-03-01"), 1, "MemberEnrolled", {"unit_id": "c1", "status": "official",
                                                              "source": "incoming_transfer"}),
                Fact(day("2021-03-01"), 2, "MemberTransferredOut", {})]
    assert [t.entry for t in member_transitions(member_intervals(existing), existing)] == ["enrolled_existing"]
    assert [(t.entry, t.exit) for t in member_transitions(member_intervals(arriving), arriving)] == [
        ("transferred_in_other_province", None), (None, "transferred_out_other_province")]


ENROLLED = {"member_id": "m1", "full_name": "Nguyễn Văn An", "gender": "male", "birth_date": "1980-01-01",
            "citizen_id": "001080000001", "unit_id": "c1", "status": "official", "source": "import",
            "admitted_on": "2005-05-19", "official_on": "2006-05-19", "member_since": "2005-05-19",
            "card_number": "01000001", "profile": {"ethnicity": "Tày", "occupation": "retired"},
            "interruptions": [{"start": "2010-01-01", "end": "2010-01-31", "reason": ""}]}


def test_a_member_row_follows_its_events() -> None:
    row = members.apply(None, "MemberEnrolled", ENROLLED, 1)
    assert (row["search_name"], row["ethnicity"], row["interruption_days"]) == ("nguyen van an", "Tày", 30)
    row = members.apply(row, "MemberTemporaryHostChanged", {"host_unit_id": "c9"}, 2)
    row = members.apply(row, "MemberExempted", {}, 3)
    row = members.apply(row, "PartyBadgeAwarded", {"years": 30}, 4)
    row = members.apply(row, "AnnualRatingRecorded", {"year": 2025, "level": "hoan_thanh"}, 5)
    assert (row["host_unit_id"], row["exempted"], row["badges"], row["ratings"]) == (
        "c9", True, [30], {"2025": "hoan_thanh"})
    row = members.apply(row, "MemberUnitChanged", {"to_unit_id": "c9"}, 6)
    assert (row["unit_id"], row["host_unit_id"]) == ("c9", None), "moving into the host cell ends the hosting"
    row = members.apply(row, "MemberLeftParty", {"reason": "resigned", "decided_on": "2026-01-01"}, 7)
    assert (row["status"], row["exempted"], row["version"]) == ("left", False, 7)


def test_a_member_counts_in_its_cell_and_where_it_is_hosted() -> None:
    row = members.apply(None, "MemberEnrolled", ENROLLED, 1)
    row = members.apply(row, "MemberTemporaryHostChanged", {"host_unit_id": "c9"}, 2)
    counts = members.contribution(row)
    assert counts[("c1", "status", "official")] == 1
    assert counts[("c1", "ethnicity", "Tày")] == 1
    assert counts[("c1", "flag", "temporarily_away")] == 1
    assert counts[("c9", "flag", "hosted")] == 1
    assert counts[("c1", "admission_era", "after_1975")] == 1
    left = members.apply(row, "MemberLeftParty", {"reason": "resigned", "decided_on": "2026-01-01"}, 3)
    assert members.contribution(left) == {}


def test_a_fact_naming_no_date_takes_the_vietnamese_day_it_was_recorded_on() -> None:
    assert recorded_day("2026-11-24T16:59:59+00:00") == dt.date(2026, 11, 24)
    assert recorded_day("2026-11-24T17:00:00+00:00") == dt.date(2026, 11, 25), "00:00 in Hanoi, 17:00 in UTC"
    assert recorded_day("2026-11-25T01:30:00+07:00") == dt.date(2026, 11, 25)
    assert effective_on("MemberProfileUpdated", {"changes": {}}, recorded_day("2026-11-24T20:00:00+00:00")) \
        == dt.date(2026, 11, 25)
    assert effective_on("MemberExempted", {"effective_on": "2026-11-20"}, dt.date(2026, 11, 25)) \
        == dt.date(2026, 11, 20)
