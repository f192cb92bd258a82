"""Command handlers: which aggregates a command loads, what it decides and claims, in one table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from contracts import registry_v1
from contracts.codec import to_json
from servicekit.commands import Aggregate, Outcome, UnitOfWork
from servicekit.events import NewEvent, StoredEvent
from servicekit.store import UniquenessViolation

from registry.domain import units
from registry.domain.commands import EstablishUnit
from registry.domain.errors import Conflict

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
UNIT_CODE_SCOPE = "unit-code"
HIERARCHY_LOCK = "registry-hierarchy"


def today() -> dt.date:
    return dt.datetime.now(VIETNAM).date()


def _decode(event: StoredEvent) -> Any:
    return registry_v1.CATALOGUE.decode(event.type, event.data)


UNIT = Aggregate(category="unit", initial=units.INITIAL,
                 evolve=lambda state, event: units.evolve(state, _decode(event)))


def to_new_events(events: list[Any]) -> list[NewEvent]:
    return [NewEvent(type=e.event_type, schema_version=e.schema_version, data=to_json(e)) for e in events]


def establish_unit(command: EstablishUnit) -> Callable[[UnitOfWork], Outcome]:
    def handle(uow: UnitOfWork) -> Outcome:
        # A new leaf cannot create a cycle; it only must not slip in beside a restructuring of its branch.
        uow.tx.serialize(HIERARCHY_LOCK, exclusive=False)
        if command.parent_id:
            current, parent_loaded = uow.load_many(UNIT, [command.unit_id, command.parent_id])
            parent: units.Unit | None = parent_loaded.state
        else:
            current, parent = uow.load(UNIT, command.unit_id), None
        decided = units.establish(command, current=current.state, parent=parent, today=today())
        try:
            uow.tx.claim_unique(scope=UNIT_CODE_SCOPE, value=command.code.strip(), owner=command.unit_id)
        except UniquenessViolation:
            raise Conflict(f"an active unit already has code {command.code.strip()!r}", code="unit-code-taken",
                           field="code") from None
        uow.record(current.stream_id, to_new_events(decided), expected_version=current.version)
        return Outcome(command.unit_id, current.stream_id)

    return handle


def resolve_unit_code(uow: UnitOfWork, code: str) -> str | None:
    return uow.tx.find_unique(scope=UNIT_CODE_SCOPE, value=code)


HANDLERS: dict[type, Callable[[Any], Callable[[UnitOfWork], Outcome]]] = {
    EstablishUnit: establish_unit,
}


def authorize_within(uow: UnitOfWork, *, actor_unit_code: str | None, unit_id: str | None) -> None:
    """A scoped actor may act only inside its unit's subtree; city-wide actors anywhere."""
    if actor_unit_code is None:
        return
    current = unit_id
    seen: set[str] = set()
    while current is not None and current not in seen:
        seen.add(current)
        unit = uow.load(UNIT, current).state
        if unit.code == actor_unit_code:
            return
        current = unit.parent_id
    raise OutsideScope(f"outside the subtree of {actor_unit_code}")


class OutsideScope(Exception):
    """The unit is not in the actor's subtree."""
