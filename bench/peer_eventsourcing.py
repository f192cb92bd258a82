"""The peer in the command benchmark: the `eventsourcing` library doing the equivalent command."""

from __future__ import annotations

import uuid

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Unit(Aggregate):
    @event("Established")
    def __init__(self, code: str) -> None:
        self.code = code
        self.name = ""

    @event("Renamed")
    def rename(self, name: str) -> None:
        self.name = name


class Units(Application[uuid.UUID]):
    def establish(self, code: str) -> None:
        unit = Unit(code)
        unit.rename("renamed")
        self.save(unit)
