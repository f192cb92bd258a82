"""The `national` scale: 34 provinces planned one at a time, each a root on its 2025 map, with nothing shared
between provinces that the registry keeps unique."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from demo.geography import Province, provinces
from demo.national import NationalPlan, ProvincePlan, root_code
from demo.plan import NewUnit, RollMember, Step

TODAY = dt.date(2026, 11, 23)


def smallest(count: int) -> list[Province]:
    return sorted(provinces(), key=lambda p: len(p.wards))[:count]


@pytest.fixture(scope="module")
def two_provinces() -> dict[str, list[Step]]:
    return {p.code: list(ProvincePlan(p, seed=2015, today=TODAY).steps()) for p in smallest(2)}


def units_of(steps: list[Step]) -> list[NewUnit]:
    return [u for s in steps if s.action == "establish" for u in s.payload]


def roll_of(steps: list[Step]) -> list[RollMember]:
    return next(s.payload for s in steps if s.action == "import")


def test_a_province_is_a_root_over_its_2025_wards(two_provinces: dict[str, list[Step]]) -> None:
    for code, steps in two_provinces.items():
        province = next(p for p in provinces() if p.code == code)
        units = units_of(steps)
        roots = [u for u in units if u.parent_code is None]
        assert [(r.code, r.kind) for r in roots] == [(root_code(province), "city_committee")]
        wards = {u.code for u in units if u.kind == "commune_committee"}
        assert wards == {w.code for w in province.wards}
        seen: set[str] = set()
        for unit in units:  # every parent established before its children, every code once and short enough
            assert unit.parent_code is None or unit.parent_code in seen, unit
            assert unit.code not in seen and len(unit.code) <= 32
            seen.add(unit.code)
        cells = {r.cell_code for r in roll_of(steps)}
        assert cells <= seen and len(cells) > len(wards), "members sit in cells of the province's own units"


def test_nothing_the_registry_keeps_unique_is_shared_between_provinces(two_provinces: dict[str, list[Step]]
                                                                       ) -> None:
    first, second = two_provinces.values()
    assert not {u.code for u in units_of(first)} & {u.code for u in units_of(second)}
    for a, b in itertools.combinations([roll_of(s) for s in two_provinces.values()], 2):
        assert not {r.citizen_id for r in a} & {r.citizen_id for r in b}
        assert not {r.card_number for r in a if r.card_number} & {r.card_number for r in b if r.card_number}
    for steps in two_provinces.values():
        roll = roll_of(steps)
        assert len({r.citizen_id for r in roll}) == len(roll)


def test_the_national_plan_goes_province_by_province_each_into_its_own_store() -> None:
    plan = NationalPlan(seed=2015, today=TODAY, only=3)
    assert plan.store_schemas() == ["registry_hn", "registry_t04", "registry_t08"]
    plans = plan.province_plans()
    first = next(plans)
    assert (first.root, first.card_prefix) == ("HN", "01")
    assert next(plans).root == "T04", "the next province is planned only when reached"
    again = next(NationalPlan(seed=2015, today=TODAY, only=1).province_plans())
    assert [u.code for level in again.units for u in level] == [u.code for level in first.units for u in level]


def test_the_progress_estimate_is_close_to_a_province_s_real_weight(two_provinces: dict[str, list[Step]]) -> None:
    for code, steps in two_provinces.items():
        province = next(p for p in provinces() if p.code == code)
        estimate = NationalPlan(seed=2015, today=TODAY)
        estimate.provinces = (province,)
        real = sum(s.weight for s in steps)
        assert 0.6 < estimate.estimated_weight() / real < 1.6, (estimate.estimated_weight(), real)
