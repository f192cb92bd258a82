"""The demo plan: the real geography, determinism, the 2025 decision set and realistic people."""

from __future__ import annotations

import collections
import datetime as dt
import random

import pytest

from demo.geography import city, provinces
from demo.people import SURNAMES, PersonFactory
from demo.plan import SCALES, DemoPlan, Dissolve, Merge, Step

TODAY = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def tiny_steps() -> list[Step]:
    return list(DemoPlan(SCALES["tiny"], seed=2015, today=TODAY).steps())


def test_hanoi_before_and_after_2025_comes_from_the_dataset() -> None:
    hanoi = city()
    kinds = collections.Counter(d.kind for d in hanoi.districts)
    assert kinds == {"Quận": 12, "Huyện": 17, "Thị xã": 1}
    assert len(hanoi.legacy_wards) == 526
    assert collections.Counter(w.kind for w in hanoi.province.wards) == {"Phường": 51, "Xã": 75}
    new_codes = {w.code for w in hanoi.province.wards}
    assert set(hanoi.successor_of) == {w.code for w in hanoi.legacy_wards}
    assert set(hanoi.successor_of.values()) <= new_codes
    # Every 2025 ward took a part of some old ward (Yên Sở only parts of divided ones).
    assert {code for shares in hanoi.shares_of.values() for code in shares} == new_codes
    assert hanoi.successor_of["00001"] == "00097"  # Phúc Xá went into Hồng Hà


def test_the_national_scale_has_34_provinces() -> None:
    assert len(provinces()) == 34
    assert sum(len(p.wards) for p in provinces()) == 3321


def test_a_seed_gives_the_same_plan(tiny_steps: list[Step]) -> None:
    again = list(DemoPlan(SCALES["tiny"], seed=2015, today=TODAY).steps())
    assert [s.key for s in again] == [s.key for s in tiny_steps]
    assert again[-1].payload == tiny_steps[-1].payload
    roll = next(s for s in tiny_steps if s.action == "import")
    other = next(s for s in DemoPlan(SCALES["tiny"], seed=7, today=TODAY).steps() if s.action == "import")
    assert roll.payload != other.payload


def test_the_2025_decisions_dissolve_the_districts_and_make_126_wards(tiny_steps: list[Step]) -> None:
    reform = [s for s in tiny_steps if s.key.startswith("2025/reform/")]
    wards = [s for s in reform if s.key.startswith(("2025/reform/merge/", "2025/reform/establish/"))]
    assert len(wards) == 126
    merged_sources = [code for s in wards if isinstance(s.payload, Merge) for code in s.payload.source_codes]
    assert len(merged_sources) == len(set(merged_sources)) == 526, "every old ward merges exactly once"
    dissolved = [s.payload.code for s in reform if isinstance(s.payload, Dissolve)]
    assert sorted(dissolved) == sorted(d.code for d in city().districts)
    assert all(s.payload.effective_on == dt.date(2025, 7, 1) for s in reform if isinstance(s.payload, Dissolve))
    keys = [s.key for s in tiny_steps]
    assert keys.index("2025/sectors/establish") < keys.index(wards[0].key), "the sector reform of 07/02/2025 first"


def test_facts_run_in_time_order_and_never_into_the_future(tiny_steps: list[Step]) -> None:
    facts = [f for s in tiny_steps if s.action == "facts" for f in s.payload]
    assert facts, "the history is not empty"
    assert all(f.on <= TODAY for f in facts)
    kinds = collections.Counter(f.kind for f in facts)
    assert {"rate", "badge", "die", "exempt", "recognize"} <= set(kinds)
    deaths = collections.Counter(f.citizen_id for f in facts if f.kind == "die")
    assert max(deaths.values()) == 1
    died_on = {f.citizen_id: f.on for f in facts if f.kind == "die"}
    assert not [f for f in facts if f.citizen_id in died_on and f.on > died_on[f.citizen_id]]


def test_the_card_exchange_skips_cards_already_of_2025(tiny_steps: list[Step]) -> None:
    exchanged = [c for s in tiny_steps if s.action == "cards" for c in s.payload.citizen_ids]
    recognized_2025 = {f.citizen_id for s in tiny_steps if s.action == "facts" for f in s.payload
                        if f.kind == "recognize" and f.on.year >= 2025}
    assert exchanged and not recognized_2025 & set(exchanged)
    assert len(exchanged) == len(set(exchanged))


def test_names_put_the_family_name_first_weighted_as_published() -> None:
    factory = PersonFactory(random.Random(1))
    people = [factory.person(birth_date=dt.date(1970, 5, 1), setting="agency", hometown="Hà Nội")
              for _ in range(6000)]
    family = collections.Counter(p.full_name.split()[0] for p in people)
    assert set(family) <= {name for name, _ in SURNAMES}
    assert 0.35 < family["Nguyễn"] / len(people) < 0.42
    assert 0.08 < family["Trần"] / len(people) < 0.14
    women = sum(p.gender == "female" for p in people) / len(people)
    assert 0.36 < women < 0.44
    middle_of_women = collections.Counter(p.full_name.split()[1] for p in people if p.gender == "female")
    assert middle_of_women.most_common(1)[0][0] == "Thị"
    ids = [p.citizen_id for p in people]
    assert len(set(ids)) == len(ids) and all(len(i) == 12 and i.isdigit() for i in ids)
