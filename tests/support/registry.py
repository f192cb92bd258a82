"""A registry on its own schema for integration tests, and a few builders of units and members."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from registry import main as registry_main
from registry.application.handlers import Handler
from registry.domain.commands import EnrolMember, EstablishUnit
from servicekit.commands import CommandContext, CommandResult
from servicekit.settings import ServiceSettings


@dataclass
class RegistryUnderTest:
    registry: registry_main.Registry

    def run(self, handler: Handler, actor: str = "test") -> CommandResult:
        return self.registry.bus.execute(CommandContext(actor=actor), handler)

    @property
    def commands(self) -> Any:
        return self.registry.commands

    def unit(self, kind: str, parent_id: str | None = None, code: str | None = None,
             on: dt.date = dt.date(2000, 1, 1), name: str = "Đơn vị") -> str:
        unit_id = str(uuid.uuid4())
        self.run(self.commands.establish_unit(EstablishUnit(
            unit_id=unit_id, code=code or f"U{uuid.uuid4().hex[:10]}", name=name, kind=kind, parent_id=parent_id,
            established_on=on)))
        return unit_id

    def member(self, unit_id: str, *, status: str = "official", admitted_on: dt.date = dt.date(2010, 5, 19),
               citizen_id: str | None = None, card_number: str | None = None) -> str:
        member_id = str(uuid.uuid4())
        self.run(self.commands.enrol_member(EnrolMember(
            member_id=member_id, full_name="Nguyễn Văn An", gender="male", birth_date=dt.date(1980, 1, 1),
            citizen_id=citizen_id or f"{uuid.uuid4().int % 10**12:012d}", unit_id=unit_id, status=status,
            admitted_on=admitted_on, source="existing", card_number=card_number)))
        return member_id

    def member_state(self, member_id: str) -> Any:
        from registry.application.handlers import MEMBER

        state = MEMBER.initial
        for event in self.registry.store.read_stream(f"member-{member_id}"):
            state = MEMBER.evolve(state, event)
        return state

    def events(self, stream: str) -> list[Any]:
        return self.registry.store.read_stream(stream)

    def close(self) -> None:
        self.registry.close()


def registry_for(database_url: str, schema: str, topic: str, tmp_dir: Any, *, card_code: str | None = None
                 ) -> RegistryUnderTest:
    settings = ServiceSettings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS="unused", PARTY_DATA_DIR=tmp_dir)
    return RegistryUnderTest(registry_main.build(settings, schema=schema, topic=topic, max_pool=6,
                                                 card_code=card_code))
