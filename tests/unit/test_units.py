"""Organization units: given a history, when a command arrives, then events or a refusal with a code."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from contracts.registry_v1 import OrganizationUnitEstablished
from registry.domain import units
from registry.domain.commands import EstablishUnit
from registry.domain.errors import Conflict, DomainError, NotFound

TODAY = dt.date(2026, 11, 23)


def establish(kind: str, parent_id: str | None = None, on: dt.date = dt.date(2025, 7, 1), code: str = "U1",
              name: str = "Đảng bộ") -> EstablishUnit:
    return EstablishUnit(unit_id=str(uuid.uuid4()), code=code, name=name, kind=kind, parent_id=parent_id,
                         established_on=on)


def unit(kind: str, on: dt.date = dt.date(2000, 1, 1), status: str = "active") -> units.Unit:
    return units.Unit(exists=True, unit_id=str(uuid.uuid4()), code="P", name="P", kind=kind, status=status,
                      established_on=on)


def test_a_city_committee_is_a_root() -> None:
    events = units.establish(establish("city_committee"), current=units.INITIAL, parent=None, today=TODAY)
    assert isinstance(events[0], OrganizationUnitEstablished)
    assert events[0].kind == "city_committee" and events[0].parent_id is None


def test_a_cell_needs_a_parent() -> None:
    with pytest.raises(DomainError) as refused:
        units.establish(establish("cell"), current=units.INITIAL, parent=None, today=TODAY)
    assert refused.value.code == "unit-parent-required"


@pytest.mark.parametrize(("kind", "parent_kind"), [
    ("cell", "city_committee"),
    ("cell", "commune_committee"),
    ("commune_committee", "sector_committee"),
    ("sub_committee", "grassroots_cell"),
    ("city_committee", "city_committee"),
])
def test_a_unit_kind_sits_only_under_the_kinds_the_policy_allows(kind: str, parent_kind: str) -> None:
    parent = unit(parent_kind)
    with pytest.raises(DomainError) as refused:
        units.establish(establish(kind, parent.unit_id), current=units.INITIAL, parent=parent, today=TODAY)
    assert refused.value.code in {"unit-kind-not-allowed-here", "unit-parent-required"}


def test_a_cell_may_sit_under_a_grassroots_committee() -> None:
    parent = unit("grassroots_committee")
    events = units.establish(establish("cell", parent.unit_id), current=units.INITIAL, parent=parent, today=TODAY)
    assert events[0].parent_id == parent.unit_id


def test_the_parent_must_exist_and_be_active() -> None:
    with pytest.raises(NotFound):
        units.establish(establish("commune_committee", str(uuid.uuid4())), current=units.INITIAL,
                        parent=units.INITIAL, today=TODAY)
    dissolved = unit("city_committee", status="dissolved")
    with pytest.raises(Conflict) as refused:
        units.establish(establish("commune_committee", dissolved.unit_id), current=units.INITIAL, parent=dissolved,
                        today=TODAY)
    assert refused.value.code == "parent-not-active"


def test_a_unit_is_not_established_before_its_parent_or_in_the_future() -> None:
    parent = unit("city_committee", on=dt.date(2025, 7, 1))
    with pytest.raises(DomainError) as early:
        units.establish(establish("commune_committee", parent.unit_id, on=dt.date(2024, 1, 1)),
                        current=units.INITIAL, parent=parent, today=TODAY)
    assert early.value.code == "before-parent-established"
    with pytest.raises(DomainError) as future:
        units.establish(establish("city_committee", on=TODAY + dt.timedelta(days=1)), current=units.INITIAL,
                        parent=None, today=TODAY)
    assert future.value.code == "date-in-future"


def test_codes_and_names_are_checked() -> None:
    with pytest.raises(DomainError) as long_code:
        units.establish(establish("city_committee", code="X" * 33), current=units.INITIAL, parent=None, today=TODAY)
    assert long_code.value.code == "unit-code-invalid"
    with pytest.raises(DomainError) as blank:
        units.establish(establish("city_committee", name="  "), current=units.INITIAL, parent=None, today=TODAY)
    assert blank.value.code == "unit-name-missing"


def test_a_unit_is_established_once() -> None:
    command = establish("city_committee")
    state = units.INITIAL
    for e in units.establish(command, current=state, parent=None, today=TODAY):
        state = units.evolve(state, e)
    assert state.status == "active" and state.code == "U1"
    with pytest.raises(Conflict) as again:
        units.establish(command, current=state, parent=None, today=TODAY)
    assert again.value.code == "unit-already-exists"
