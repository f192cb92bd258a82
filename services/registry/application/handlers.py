"""Command handlers: which aggregates a command loads, what it decides and claims, in one table per kind.

Each `*_handler(command)` returns a function of a UnitOfWork; the command bus runs it in one transaction
and retries it on a version conflict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from contracts import registry_v1
from contracts.codec import to_json
from registry.application.views import RegistryViews
from registry.domain import members, units
from registry.domain.commands import (
    DissolveUnit,
    EnrolMember,
    EstablishUnit,
    MergeUnits,
    ReattachUnits,
    RenameUnit,
    SplitUnit,
)
from registry.domain.errors import Conflict, DomainError
from registry.domain.policy import CARD_PROVINCE_CODE
from servicekit.commands import Aggregate, Loaded, Outcome, UnitOfWork
from servicekit.events import NewEvent, StoredEvent
from servicekit.store import UniquenessViolation

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
UNIT_CODE_SCOPE = "unit-code"
CITIZEN_ID_SCOPE = "citizen-id"
CARD_NUMBER_SCOPE = "card-number"
HIERARCHY_LOCK = "registry-hierarchy"

Handler = Callable[[UnitOfWork], Outcome]
ViewsFor = Callable[[UnitOfWork], RegistryViews]


def today() -> dt.date:
    return dt.datetime.now(VIETNAM).date()


def _decode(event: StoredEvent) -> Any:
    return registry_v1.CATALOGUE.decode(event.type, event.data)


UNIT = Aggregate(category="unit", initial=units.INITIAL,
                 evolve=lambda state, event: units.evolve(state, _decode(event)))
MEMBER = Aggregate(category="member", initial=members.INITIAL,
                   evolve=lambda state, event: members.evolve(state, _decode(event)))


MemberDecision = Callable[[members.Member, UnitOfWork], list[Any]]


def to_new_events(events: Sequence[Any]) -> list[NewEvent]:
    return [NewEvent(type=e.event_type, schema_version=e.schema_version, data=to_json(e)) for e in events]


class OutsideScope(Exception):
    """The unit is not in the actor's subtree."""


@dataclass(frozen=True)
class Scope:
    """The actor's unit code (None: city-wide)."""

    unit_code: str | None


def authorize(views: RegistryViews, scope: Scope, *unit_ids: str | None) -> None:
    if scope.unit_code is None:
        return
    for unit_id in unit_ids:
        if unit_id is None or scope.unit_code not in views.ancestor_codes(unit_id):
            raise OutsideScope(f"outside the subtree of {scope.unit_code}")


def _claim(uow: UnitOfWork, scope: str, value: str, owner: str, *, code: str, field: str, what: str) -> None:
    try:
        uow.tx.claim_unique(scope=scope, value=value, owner=owner)
    except UniquenessViolation:
        raise Conflict(f"{what} {value!r} is already in use", code=code, field=field) from None


def _naming(exc: DomainError, where: str) -> DomainError:
    """The same refusal, saying which item of a bulk command it is about."""
    return type(exc)(f"{where}: {exc}", code=exc.code, field=exc.field)


class RegistryCommands:
    """Builds the handler of each registry command."""

    def __init__(self, views_for: ViewsFor, *, clock: Callable[[], dt.date] = today,
                 card_code: str = CARD_PROVINCE_CODE) -> None:
        self.views_for = views_for
        self.clock = clock
        self.card_code = card_code
        """The provincial committee's code that this register's card numbers begin with (01: Hanoi)."""

    # Units ---------------------------------------------------------------------------------------------

    def establish_unit(self, command: EstablishUnit, scope: Scope = Scope(None)) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            # A new leaf cannot create a cycle; it only must not slip in beside a restructuring of its branch.
            uow.tx.serialize(HIERARCHY_LOCK, exclusive=False)
            views = self.views_for(uow)
            if command.parent_id or scope.unit_code:
                authorize(views, scope, command.parent_id)
            if command.parent_id:
                current, parent_loaded = uow.load_many(UNIT, [command.unit_id, command.parent_id])
                parent: units.Unit | None = parent_loaded.state
            else:
                current, parent = uow.load(UNIT, command.unit_id), None
            decided = units.establish(command, current=current.state, parent=parent, today=self.clock())
            _claim(uow, UNIT_CODE_SCOPE, command.code.strip(), command.unit_id, code="unit-code-taken", field="code",
                   what="unit code")
            uow.record(current.stream_id, to_new_events(decided), expected_version=current.version)
            return Outcome(command.unit_id, current.stream_id)

        return handle

    def establish_units(self, batch_id: str, commands: Sequence[EstablishUnit]) -> Handler:
        """Many units in one transaction (a migration or demo load), each decided as `establish_unit` does.
        Parents must already be stored: a batch holds one level of the tree."""

        def handle(uow: UnitOfWork) -> Outcome:
            for index, command in enumerate(commands):
                try:
                    self.establish_unit(command)(uow)
                except DomainError as exc:
                    raise _naming(exc, f"unit {index} ({command.code})") from exc
            return Outcome(batch_id, f"batch-{batch_id}", {"established": len(commands)})

        return handle

    def rename_unit(self, command: RenameUnit, scope: Scope = Scope(None)) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            authorize(self.views_for(uow), scope, command.unit_id)
            unit = uow.load(UNIT, command.unit_id)
            decided = units.rename(command, unit=unit.state, today=self.clock())
            uow.record(unit.stream_id, to_new_events(decided), expected_version=unit.version)
            return Outcome(command.unit_id, unit.stream_id)

        return handle

    def reattach_units(self, command: ReattachUnits, scope: Scope = Scope(None)) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            uow.tx.serialize(HIERARCHY_LOCK)
            views = self.views_for(uow)
            authorize(views, scope, command.parent_id, *command.unit_ids)
            loaded = uow.load_many(UNIT, [*command.unit_ids, command.parent_id])
            moving, parent = loaded[:-1], loaded[-1]
            decided = units.reattach(command, units=[m.state for m in moving], parent=parent.state,
                                     parent_ancestor_ids=views.ancestors(command.parent_id), today=self.clock())
            by_unit = {m.state.unit_id: m for m in moving}
            for event in decided:
                target = by_unit[event.unit_id]
                uow.record(target.stream_id, to_new_events([event]), expected_version=target.version)
            return Outcome(command.parent_id, parent.stream_id, {"moved": len(decided)})

        return handle

    def merge_units(self, command: MergeUnits, scope: Scope = Scope(None)) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            uow.tx.serialize(HIERARCHY_LOCK)
            views = self.views_for(uow)
            target_id = command.target_id or command.new_target_id
            assert target_id is not None
            anchor = command.target_id or (command.new_target.parent_id if command.new_target else None)
            authorize(views, scope, *command.source_ids, anchor)
            sources = uow.load_many(UNIT, list(command.source_ids))
            if command.target_id:
                target_loaded = uow.load(UNIT, command.target_id)
                target_state: units.Unit | None = target_loaded.state
                ancestors = views.ancestors(command.target_id)
            else:
                assert command.new_target is not None
                parent_id = command.new_target.parent_id
                target_state = uow.load(UNIT, parent_id).state if parent_id else None
                ancestors = views.ancestors(parent_id) if parent_id else []
            children = {s.state.unit_id: self._children(uow, views, s.state.unit_id) for s in sources}
            held = {s.state.unit_id: views.active_members(s.state.unit_id) for s in sources}
            plan = units.merge(command, sources=[s.state for s in sources], target=target_state,
                               target_ancestor_ids=ancestors, children=children, members=held, today=self.clock())
            if command.new_target is not None:
                _claim(uow, UNIT_CODE_SCOPE, command.new_target.code.strip(), target_id, code="unit-code-taken",
                       field="target.code", what="unit code")
            self._apply_reorganization(uow, plan, command.effective_on, command.decision_ref)
            return Outcome(target_id, f"unit-{target_id}",
                           {"members_moved": len(plan.member_moves)})

        return handle

    def split_unit(self, command: SplitUnit, scope: Scope = Scope(None)) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            uow.tx.serialize(HIERARCHY_LOCK)
            views = self.views_for(uow)
            authorize(views, scope, command.unit_id)
            source = uow.load(UNIT, command.unit_id)
            parent = uow.load(UNIT, source.state.parent_id).state if source.state.parent_id else None
            plan = units.split(command, unit=source.state, parent=parent,
                               children=self._children(uow, views, command.unit_id),
                               members=views.active_members(command.unit_id), today=self.clock())
            for index, part in enumerate(command.parts):
                _claim(uow, UNIT_CODE_SCOPE, part.code.strip(), part.unit_id, code="unit-code-taken",
                       field=f"parts[{index}].code", what="unit code")
            self._apply_reorganization(uow, plan, command.effective_on, command.decision_ref)
            return Outcome(command.unit_id, source.stream_id, {"part_ids": [p.unit_id for p in command.parts],
                                                                "members_moved": len(plan.member_moves)})

        return handle

    def dissolve_unit(self, command: DissolveUnit, scope: Scope = Scope(None)) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            uow.tx.serialize(HIERARCHY_LOCK)
            views = self.views_for(uow)
            authorize(views, scope, command.unit_id, command.successor_id if command.successor_id else command.unit_id)
            unit = uow.load(UNIT, command.unit_id)
            successor = uow.load(UNIT, command.successor_id).state if command.successor_id else None
            plan = units.dissolve(command, unit=unit.state, successor=successor,
                                  successor_ancestor_ids=views.ancestors(command.successor_id)
                                  if command.successor_id else [],
                                  children=self._children(uow, views, command.unit_id),
                                  members=views.active_members(command.unit_id), today=self.clock())
            self._apply_reorganization(uow, plan, command.effective_on, command.decision_ref)
            return Outcome(command.unit_id, unit.stream_id, {"members_moved": len(plan.member_moves)})

        return handle

    def _children(self, uow: UnitOfWork, views: RegistryViews, unit_id: str) -> list[units.Unit]:
        ids = views.active_children(unit_id)
        return [c.state for c in uow.load_many(UNIT, ids)] if ids else []

    def _apply_reorganization(self, uow: UnitOfWork, plan: units.Reorganization, effective_on: dt.date,
                              decision_ref: str | None) -> None:
        """Unit events, code releases for ended units, and one MemberUnitChanged per member that follows."""
        for unit_id, event in plan.unit_events:
            stream = f"unit-{unit_id}"
            expected = uow.version_after(stream)
            uow.record(stream, to_new_events([event]), expected_version=expected)
            if isinstance(event, registry_v1.OrganizationUnitDissolved):
                ended = uow.load(UNIT, unit_id).state
                uow.tx.release_unique(scope=UNIT_CODE_SCOPE, value=ended.code, owner=unit_id)
        if not plan.member_moves:
            return
        moving = uow.load_many(MEMBER, list(plan.member_moves))
        for loaded in moving:
            decided = members.move(loaded.state, to_unit_id=plan.member_moves[loaded.state.member_id],
                                   reason="reorganization", effective_on=effective_on, decision_ref=decision_ref)
            if decided:
                uow.record(loaded.stream_id, to_new_events(decided), expected_version=loaded.version)

    # Members -------------------------------------------------------------------------------------------

    def import_chunk(self, import_id: str, rows: Sequence[Any]) -> Handler:
        """Enrol the validated rows of one chunk; a citizen id already in the register is a match, skipped,
        so re-importing a file (or resuming an interrupted import) writes nothing twice."""

        def handle(uow: UnitOfWork) -> Outcome:
            # The rows were checked against their cells when the file was validated; a cell merged or dissolved
            # since then would strand them, so the cells are checked again under the hierarchy's lock.
            uow.tx.serialize(HIERARCHY_LOCK, exclusive=False)
            cell_ids = list(dict.fromkeys(r.command.unit_id for r in rows))
            for loaded in uow.load_many(UNIT, cell_ids):
                members.require_active_cell(loaded.state, field="cell_code")
            claimed = uow.tx.claim_unique_many(
                scope=CITIZEN_ID_SCOPE, claims=[(r.command.citizen_id, r.command.member_id) for r in rows])
            fresh = [r for r in rows if r.command.citizen_id in claimed]
            cards = [(r.command.card_number, r.command.member_id) for r in fresh if r.command.card_number]
            if cards:
                got = uow.tx.claim_unique_many(scope=CARD_NUMBER_SCOPE, claims=cards)
                if len(got) != len(cards):
                    raise Conflict("a card number was taken meanwhile", code="card-number-taken",
                                   field="card_number")
            for r in fresh:
                uow.record(f"member-{r.command.member_id}", to_new_events(r.events), expected_version=0)
            return Outcome(import_id, f"import-{import_id}", {"written": len(fresh),
                                                              "skipped": len(rows) - len(fresh)})

        return handle

    def enrol_members(self, batch_id: str, commands: Sequence[EnrolMember]) -> Handler:
        """The bulk path of enrolment (a migration or demo load): many members in one command, their cells
        read in one round trip. A citizen id already in the register is a match and is skipped, so a resumed
        load writes nothing twice; any other refusal names the member at fault and writes nothing."""

        def handle(uow: UnitOfWork) -> Outcome:
            uow.tx.serialize(HIERARCHY_LOCK, exclusive=False)
            claimed = uow.tx.claim_unique_many(
                scope=CITIZEN_ID_SCOPE, claims=[(c.citizen_id, c.member_id) for c in commands])
            fresh = [c for c in commands if c.citizen_id in claimed]
            cards = [(c.card_number, c.member_id) for c in fresh if c.card_number]
            if cards and len(uow.tx.claim_unique_many(scope=CARD_NUMBER_SCOPE, claims=cards)) != len(cards):
                raise Conflict("a card number is already held", code="card-number-taken", field="card_number")
            unit_ids = list(dict.fromkeys(c.unit_id for c in fresh))
            cells = {unit_id: loaded.state for unit_id, loaded in zip(unit_ids, uow.load_many(UNIT, unit_ids),
                                                                      strict=True)}
            for index, command in enumerate(fresh):
                try:
                    decided = members.enrol(command, current=members.INITIAL, unit=cells[command.unit_id],
                                            today=self.clock(), card_code=self.card_code)
                except DomainError as exc:
                    raise _naming(exc, f"member {index} ({command.citizen_id})") from exc
                uow.record(f"member-{command.member_id}", to_new_events(decided), expected_version=0)
            return Outcome(batch_id, f"batch-{batch_id}", {"written": len(fresh),
                                                           "skipped": len(commands) - len(fresh)})

        return handle

    def record_member_facts(self, batch_id: str, facts: Sequence[tuple[str, MemberDecision]]) -> Handler:
        """The bulk path of member facts: each member loaded once, each fact decided against the state the
        earlier facts of the batch left, everything appended in one transaction. A refusal names the fact."""

        def handle(uow: UnitOfWork) -> Outcome:
            member_ids = list(dict.fromkeys(member_id for member_id, _ in facts))
            loaded = dict(zip(member_ids, uow.load_many(MEMBER, member_ids), strict=True))
            states = {member_id: entry.state for member_id, entry in loaded.items()}
            decided: dict[str, list[Any]] = {}
            for index, (member_id, decide) in enumerate(facts):
                try:
                    events = decide(states[member_id], uow)
                except DomainError as exc:
                    raise _naming(exc, f"fact {index} (member {member_id})") from exc
                for event in events:
                    states[member_id] = members.evolve(states[member_id], event)
                decided.setdefault(member_id, []).extend(events)
            for member_id, events in decided.items():
                if events:
                    entry = loaded[member_id]
                    uow.record(entry.stream_id, to_new_events(events), expected_version=entry.version,
                               state_after=states[member_id])
            return Outcome(batch_id, f"batch-{batch_id}", {"facts": len(facts)})

        return handle

    def exchange_cards(self, batch_id: str, member_ids: Sequence[str], *, reason: str, issued_on: dt.date) -> Handler:
        """Issue new cards to many members at once (the 2025 exchange): numbers drawn in one round trip."""

        def handle(uow: UnitOfWork) -> Outcome:
            views = self.views_for(uow)
            wanted = list(dict.fromkeys(member_ids))
            number_of: dict[str, str] = {}
            pending = wanted
            while pending:
                pairs = list(zip(views.next_card_numbers(len(pending), self.card_code), pending, strict=True))
                got = uow.tx.claim_unique_many(scope=CARD_NUMBER_SCOPE, claims=pairs)
                if not got:
                    raise DomainError("the allocated card-number range is exhausted", code="card-range-exhausted")
                number_of.update({member_id: number for number, member_id in pairs if number in got})
                pending = [member_id for number, member_id in pairs if number not in got]
            def exchange(number: str) -> MemberDecision:
                return lambda member, _: members.issue_card(member, reason=reason, card_number=number,
                                                             issued_on=issued_on, today=self.clock(),
                                                             card_code=self.card_code)

            facts = [(member_id, exchange(number_of[member_id])) for member_id in wanted]
            return self.record_member_facts(batch_id, facts)(uow)

        return handle

    def enrol_member(self, command: EnrolMember, scope: Scope = Scope(None)) -> Handler:
        def handle(uow: UnitOfWork) -> Outcome:
            uow.tx.serialize(HIERARCHY_LOCK, exclusive=False)
            views = self.views_for(uow)
            authorize(views, scope, command.unit_id)
            current, unit = uow.load(MEMBER, command.member_id), uow.load(UNIT, command.unit_id)
            decided = members.enrol(command, current=current.state, unit=unit.state, today=self.clock(),
                                    card_code=self.card_code)
            self._claim_member_keys(uow, command.member_id, command.citizen_id, command.card_number)
            uow.record(current.stream_id, to_new_events(decided), expected_version=current.version)
            return Outcome(command.member_id, current.stream_id)

        return handle

    @staticmethod
    def _claim_member_keys(uow: UnitOfWork, member_id: str, citizen_id: str, card_number: str | None) -> None:
        _claim(uow, CITIZEN_ID_SCOPE, citizen_id, member_id, code="citizen-id-taken", field="citizen_id",
               what="citizen id")
        if card_number:
            _claim(uow, CARD_NUMBER_SCOPE, card_number, member_id, code="card-number-taken", field="card_number",
                   what="card number")

    def member_command(self, member_id: str, decide: Callable[[members.Member, UnitOfWork], list[Any]],
                       scope: Scope = Scope(None)) -> Handler:
        """Load one member, authorize by their cell, decide, append."""

        def handle(uow: UnitOfWork) -> Outcome:
            loaded: Loaded[members.Member] = uow.load(MEMBER, member_id)
            if loaded.state.exists:
                authorize(self.views_for(uow), scope, loaded.state.unit_id)
            decided = decide(loaded.state, uow)
            if not decided:
                raise Conflict("nothing changes", code="no-change")
            uow.record(loaded.stream_id, to_new_events(decided), expected_version=loaded.version)
            return Outcome(member_id, loaded.stream_id)

        return handle

    def update_profile(self, member_id: str, changes: dict[str, Any], scope: Scope = Scope(None)) -> Handler:
        def decide(member: members.Member, uow: UnitOfWork) -> list[Any]:
            decided = members.update_profile(member, changes, today=self.clock())
            new_id = changes.get("citizen_id")
            if new_id and new_id != member.citizen_id:
                uow.tx.release_unique(scope=CITIZEN_ID_SCOPE, value=member.citizen_id, owner=member_id)
                _claim(uow, CITIZEN_ID_SCOPE, str(new_id), member_id, code="citizen-id-taken", field="citizen_id",
                       what="citizen id")
            return decided

        return self.member_command(member_id, decide, scope)

    def recognize(self, member_id: str, *, official_on: dt.date, decision_ref: str | None,
                  scope: Scope = Scope(None)) -> Handler:
        def decide(member: members.Member, uow: UnitOfWork) -> list[Any]:
            number = self.allocate_card(uow, member_id)
            return members.recognize(member, official_on=official_on, decision_ref=decision_ref, card_number=number,
                                     today=self.clock())

        return self.member_command(member_id, decide, scope)

    def issue_card(self, member_id: str, *, reason: str, card_number: str | None, issued_on: dt.date | None,
                   scope: Scope = Scope(None)) -> Handler:
        def decide(member: members.Member, uow: UnitOfWork) -> list[Any]:
            if card_number:
                _claim(uow, CARD_NUMBER_SCOPE, card_number, member_id, code="card-number-taken",
                       field="card_number", what="card number")
                number = card_number
            else:
                number = self.allocate_card(uow, member_id)
            return members.issue_card(member, reason=reason, card_number=number,
                                      issued_on=issued_on or self.clock(), today=self.clock(), card_code=self.card_code)

        return self.member_command(member_id, decide, scope)

    def allocate_card(self, uow: UnitOfWork, member_id: str) -> str:
        """The next number of the allocated range that nobody holds; numbers are never reused."""
        views = self.views_for(uow)
        for _ in range(1000):
            number = views.next_card_number(self.card_code)
            try:
                uow.tx.claim_unique(scope=CARD_NUMBER_SCOPE, value=number, owner=member_id)
                return number
            except UniquenessViolation:
                continue
        raise DomainError("the allocated card-number range is exhausted", code="card-range-exhausted")

    def readmit(self, member_id: str, *, readmitted_on: dt.date, unit_id: str, decision_ref: str,
                scope: Scope = Scope(None)) -> Handler:
        def decide(member: members.Member, uow: UnitOfWork) -> list[Any]:
            uow.tx.serialize(HIERARCHY_LOCK, exclusive=False)
            authorize(self.views_for(uow), scope, unit_id)
            unit = uow.load(UNIT, unit_id).state
            return members.readmit(member, readmitted_on=readmitted_on, unit=unit, decision_ref=decision_ref,
                                   today=self.clock())

        return self.member_command(member_id, decide, scope)

    def transfer_member(self, member_id: str, *, to_unit_id: str, effective_on: dt.date, transfer_id: str | None,
                        reason: str = "transfer") -> Handler:
        def decide(member: members.Member, uow: UnitOfWork) -> list[Any]:
            uow.tx.serialize(HIERARCHY_LOCK, exclusive=False)
            members.require_active_cell(uow.load(UNIT, to_unit_id).state, field="to_unit_id")
            return members.move(member, to_unit_id=to_unit_id, reason=reason, effective_on=effective_on,
                                transfer_id=transfer_id)

        return self.member_command(member_id, decide)

    def host_member(self, member_id: str, *, host_unit_id: str | None, effective_on: dt.date, until: dt.date | None,
                    transfer_id: str | None) -> Handler:
        """A temporary host cell from `effective_on` (None: the temporary transfer ended)."""
        def decide(member: members.Member, uow: UnitOfWork) -> list[Any]:
            if host_unit_id is not None:
                uow.tx.serialize(HIERARCHY_LOCK, exclusive=False)
                members.require_active_cell(uow.load(UNIT, host_unit_id).state, field="to_unit_id")
            return members.host_temporarily(member, host_unit_id=host_unit_id, effective_on=effective_on,
                                            until=until, transfer_id=transfer_id)

        return self.member_command(member_id, decide)
