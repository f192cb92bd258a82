"""Executes a demo plan through the registry's own command path: its command bus, event store, outbox and
inline views, in this process (the relay and the projector carry the events on as for any command). The roll
of 2015 goes through the registry's import; the rest through the bulk commands (`establish_units`,
`enrol_members`, `record_member_facts`, `exchange_cards`) and the reorganization commands.

Each step commits together with its row in `demo_steps`, so an interrupted load resumes at the first step
not done, and nothing is written twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from demo.national import NationalPlan, store_schema
from demo.plan import (
    CardExchange,
    Dissolve,
    Fact,
    Merge,
    NewUnit,
    Reattach,
    RollMember,
    Scale,
    Step,
    member_uuid,
    unit_uuid,
)
from registry.application.handlers import MemberDecision
from registry.domain import members
from registry.domain.commands import DissolveUnit, EnrolMember, EstablishUnit, MergeUnits, NewUnitSpec, ReattachUnits
from registry.main import Registry
from servicekit import collector
from servicekit.commands import CommandContext, Handler
from servicekit.settings import ServiceSettings

DDL = """
CREATE TABLE IF NOT EXISTS demo_steps (
  scale text NOT NULL,
  seed integer NOT NULL,
  step_key text NOT NULL,
  detail text,
  done boolean NOT NULL DEFAULT false,
  events integer NOT NULL DEFAULT 0,
  finished_at timestamptz,
  PRIMARY KEY (scale, seed, step_key)
);
CREATE TABLE IF NOT EXISTS demo_runs (
  scale text NOT NULL,
  seed integer NOT NULL,
  planned_on date NOT NULL,
  PRIMARY KEY (scale, seed)
);
"""
ACTOR = "demo-loader"
# Every member and unit of a register stays folded between the loader's commands: each year's facts then read
# only the events of the year before, not each member's whole history again (~2 KB a member).
STATE_CACHE = 2_000_000
ROLL_COLUMNS = ("full_name", "gender", "birth_date", "citizen_id", "cell_code", "status", "admitted_on",
                "official_on", "card_number", "ethnicity", "religion", "hometown", "address", "phone", "education",
                "qualification", "political_theory", "occupation", "youth_union")


@dataclass
class LoadReport:
    steps: int = 0
    skipped: int = 0
    events: int = 0
    seconds: float = 0.0
    by_action: dict[str, float] = field(default_factory=dict)
    events_by_action: dict[str, int] = field(default_factory=dict)
    reform_seconds: float = 0.0
    """The 2025 decision set: the sector committees of February and the ward/commune reform of July."""
    reform_steps: int = 0
    reform_events: int = 0


class ProgressBar:
    """One line on stderr: share of the plan's events done, the current step, events/s."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total = max(1, total)
        self.done = 0
        self.started = time.monotonic()
        self.stream = stream or sys.stderr
        self.last = 0.0

    def advance(self, weight: int, label: str) -> None:
        self.done += weight
        now = time.monotonic()
        if now - self.last < 0.25 and self.done < self.total:
            return
        self.last = now
        share = min(1.0, self.done / self.total)
        bar = "#" * int(share * 30)
        rate = self.done / max(1e-6, now - self.started)
        self.stream.write(f"\rdemo [{bar:<30}] {share:6.1%}  {label[:44]:<44} {rate:8,.0f} events/s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class Plan(Protocol):
    """What the loader needs of a plan: `plan.DemoPlan` (one city) or `national.NationalPlan` (province by
    province)."""

    @property
    def scale(self) -> Scale: ...

    @property
    def seed(self) -> int: ...

    def steps(self) -> Iterator[Step]: ...


def planned_day(registry: Registry, scale: str, seed: int, today: dt.date) -> dt.date:
    """The day a load of this scale and seed plans its history up to: `today` for the first load, and the first
    load's day for every one after it. A plan runs "from 2015 to today", so a load interrupted on one day and
    resumed on the next would otherwise take up a different plan, whose steps no longer follow from those done."""
    with registry.pool.connection() as conn:
        conn.execute(DDL)
        conn.execute("INSERT INTO demo_runs (scale, seed, planned_on) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                     (scale, seed, today))
        row = conn.execute("SELECT planned_on FROM demo_runs WHERE scale = %s AND seed = %s", (scale, seed)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


class DemoLoader:
    def __init__(self, registry: Registry, plan: Plan, *, on_progress: Callable[[int, str], None] | None = None
                 ) -> None:
        self.registry = registry
        self.plan = plan
        self.seed = plan.seed
        self.on_progress = on_progress or (lambda weight, label: None)
        self.member_ids: dict[str, str] = {}
        self._learned_prefix: str | None = None
        with registry.pool.connection() as conn:
            conn.execute(DDL)

    # Bookkeeping -------------------------------------------------------------------------------------

    def _done_steps(self) -> set[str]:
        with self.registry.pool.connection() as conn:
            rows = conn.execute("SELECT step_key FROM demo_steps WHERE scale = %s AND seed = %s AND done",
                                (self.plan.scale.name, self.seed)).fetchall()
        return {r[0] for r in rows}

    def _context(self, step: Step) -> CommandContext:
        return CommandContext(actor=ACTOR, legal_basis=f"demo {self.plan.scale.name}/{self.seed}: {step.label}")

    def _run(self, step: Step, handler: Handler) -> int:
        """One command and its step row, in one transaction."""
        result = self.registry.bus.execute(self._context(step), handler,
                                           then=lambda tx, done: self._mark(tx.conn, step, done.event_count))
        return result.event_count

    def _mark(self, conn: Any, step: Step, events: int, detail: str | None = None) -> None:
        conn.execute(
            "INSERT INTO demo_steps (scale, seed, step_key, detail, done, events, finished_at)"
            " VALUES (%s, %s, %s, %s, true, %s, now()) ON CONFLICT (scale, seed, step_key)"
            " DO UPDATE SET done = true, events = EXCLUDED.events, finished_at = now()",
            (self.plan.scale.name, self.seed, step.key, detail, events))

    def _unit(self, code: str) -> str:
        return unit_uuid(self.seed, code)

    def _member(self, citizen_id: str) -> str:
        if citizen_id not in self.member_ids:
            self._learn_member_ids(citizen_id[:3])
        return str(self.member_ids[citizen_id])

    def _learn_member_ids(self, province: str) -> None:
        """The ids of the members registered under a province's citizen-id code (the import chose them). One
        province's at a time: the national scale has millions."""
        if province != self._learned_prefix:
            self.member_ids.clear()
            self._learned_prefix = province
        with self.registry.pool.connection() as conn:
            rows = conn.execute("SELECT value, owner FROM unique_claims WHERE scope = 'citizen-id'"
                                " AND value LIKE %s", (f"{province}%",)).fetchall()
        self.member_ids.update({r[0]: r[1] for r in rows})

    # Running -----------------------------------------------------------------------------------------

    def run(self, steps: Iterable[Step] | None = None) -> LoadReport:
        report = LoadReport()
        started = time.monotonic()
        done = self._done_steps()
        with collector.bulk_work() as set_aside_survivors:
            for step in steps if steps is not None else self.plan.steps():
                if step.key in done:
                    report.skipped += 1
                    self.on_progress(step.weight, step.label)
                    continue
                step_started = time.monotonic()
                events = self.execute(step)
                # The bus's cached states (a member each) live on to the next step: the collector leaves them be.
                set_aside_survivors()
                report.steps += 1
                report.events += events
                report.by_action[step.action] = (report.by_action.get(step.action, 0.0) + time.monotonic()
                                                 - step_started)
                report.events_by_action[step.action] = report.events_by_action.get(step.action, 0) + events
                if step.key.startswith(("2025/reform/", "2025/sectors/")):
                    report.reform_seconds += time.monotonic() - step_started
                    report.reform_steps += 1
                    report.reform_events += events
                self.on_progress(step.weight, step.label)
        report.seconds = time.monotonic() - started
        return report

    def execute(self, step: Step) -> int:
        commands = self.registry.commands
        payload: Any = step.payload
        if step.action == "establish":
            return self._run(step, commands.establish_units(step.key, [self._establish(u) for u in payload]))
        if step.action == "import":
            return self._import(step, payload)
        if step.action == "enrol":
            count = self._run(step, commands.enrol_members(step.key, [self._enrol(r) for r in payload]))
            self.member_ids.update({r.citizen_id: member_uuid(self.seed, r.citizen_id) for r in payload})
            return count
        if step.action == "facts":
            today = commands.clock()
            return self._run(step, commands.record_member_facts(step.key, [self._fact(f, today) for f in payload]))
        if step.action == "cards":
            exchange: CardExchange = payload
            return self._run(step, commands.exchange_cards(step.key, [self._member(c) for c in exchange.citizen_ids],
                                                           reason="exchange_2025", issued_on=exchange.issued_on))
        if step.action == "merge":
            merge: Merge = payload
            target = merge.target
            assert target.parent_code is not None
            return self._run(step, commands.merge_units(MergeUnits(
                source_ids=tuple(self._unit(c) for c in merge.source_codes), target_id=None,
                new_target=NewUnitSpec(target.code, target.name, target.kind, self._unit(target.parent_code)),
                new_target_id=self._unit(target.code), effective_on=target.established_on,
                decision_ref=target.decision_ref)))
        if step.action == "reattach":
            reattach: Reattach = payload
            return self._run(step, commands.reattach_units(ReattachUnits(
                tuple(self._unit(c) for c in reattach.unit_codes), self._unit(reattach.parent_code),
                reattach.effective_on, reattach.decision_ref)))
        if step.action == "dissolve":
            dissolve: Dissolve = payload
            return self._run(step, commands.dissolve_unit(DissolveUnit(
                self._unit(dissolve.code), None, dissolve.effective_on, dissolve.decision_ref)))
        raise ValueError(f"unknown step action {step.action!r}")

    def _establish(self, unit: NewUnit) -> EstablishUnit:
        return EstablishUnit(unit_id=self._unit(unit.code), code=unit.code, name=unit.name, kind=unit.kind,
                             parent_id=self._unit(unit.parent_code) if unit.parent_code else None,
                             established_on=unit.established_on, decision_ref=unit.decision_ref)

    def _enrol(self, row: RollMember) -> EnrolMember:
        return EnrolMember(
            member_id=member_uuid(self.seed, row.citizen_id), full_name=row.full_name, gender=row.gender,
            birth_date=row.birth_date, citizen_id=row.citizen_id, unit_id=self._unit(row.cell_code),
            status=row.status, admitted_on=row.admitted_on, source="existing", official_on=row.official_on,
            card_number=row.card_number, profile=dict(row.profile))

    def _fact(self, fact: Fact, today: dt.date) -> tuple[str, MemberDecision]:
        detail = fact.detail
        on = fact.on
        decide: MemberDecision
        if fact.kind == "rate":
            decide = lambda m, _: members.rate(m, year=int(str(detail["year"])), level=str(detail["level"]),  # noqa: E731
                                               today=today)
        elif fact.kind == "recognize":
            decide = self._recognition(on, str(detail["decision_ref"]))
        elif fact.kind == "badge":
            decide = lambda m, _: members.award_badge(m, years=int(str(detail["years"])), awarded_on=on,  # noqa: E731
                                                      early_reason=None, decision_ref="demo: trao huy hiệu",
                                                      today=today)
        elif fact.kind == "exempt":
            decide = lambda m, _: members.exempt(m, effective_on=on, reason=str(detail["reason"]),  # noqa: E731
                                                 decision_ref="demo: miễn sinh hoạt", today=today)
        elif fact.kind == "die":
            decide = lambda m, _: members.die(m, died_on=on, today=today)  # noqa: E731
        elif fact.kind == "leave":
            excluded = detail.get("excluded") or []
            assert isinstance(excluded, list)
            decide = lambda m, _: members.leave(m, reason=str(detail["reason"]), decided_on=on,  # noqa: E731
                                                decision_ref="demo: quyết định", basis=None, note=None,
                                                excluded=tuple(excluded), today=today)
        elif fact.kind == "readmit":
            decide = self._readmission(on, str(detail["unit_code"]), str(detail["decision_ref"]))
        else:
            raise ValueError(f"unknown fact {fact.kind!r}")
        return self._member(fact.citizen_id), decide

    def _recognition(self, on: dt.date, decision_ref: str) -> MemberDecision:
        def decide(member: members.Member, uow: Any) -> list[Any]:
            number = self.registry.commands.allocate_card(uow, member.member_id)
            return members.recognize(member, official_on=on, decision_ref=decision_ref, card_number=number,
                                     today=self.registry.commands.clock())
        return decide

    def _readmission(self, on: dt.date, cell_code: str, decision_ref: str) -> MemberDecision:
        from registry.application.handlers import UNIT

        def decide(member: members.Member, uow: Any) -> list[Any]:
            unit = uow.load(UNIT, self._unit(cell_code)).state
            return members.readmit(member, readmitted_on=on, unit=unit, decision_ref=decision_ref,
                                   today=self.registry.commands.clock())
        return decide

    def _import(self, step: Step, rows: list[RollMember]) -> int:
        """The roll goes in as a CSV file through the registry's import, as a city would bring its own."""
        runner = self.registry.imports
        with self.registry.pool.connection() as conn:
            found = conn.execute("SELECT detail FROM demo_steps WHERE scale = %s AND seed = %s AND step_key = %s",
                                 (self.plan.scale.name, self.seed, step.key)).fetchone()
        if found is not None and found[0]:
            import_id = str(found[0])
        else:
            import_id = runner.submit(file_name=f"demo-{self.plan.scale.name}-roll-2015.csv",
                                      content=roll_csv(rows), actor=ACTOR, scope_unit_id=None,
                                      legal_basis=self._context(step).legal_basis)
            with self.registry.pool.connection() as conn:
                conn.execute(
                    "INSERT INTO demo_steps (scale, seed, step_key, detail) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (scale, seed, step_key) DO UPDATE SET detail = EXCLUDED.detail",
                    (self.plan.scale.name, self.seed, step.key, import_id))
        result = runner.run(import_id)
        if result.status != "completed":
            first = result.errors[:3]
            raise RuntimeError(f"the demo roll import {import_id} ended {result.status}: {first}")
        with self.registry.pool.connection() as conn:
            self._mark(conn, step, result.written, import_id)
        if rows:
            self._learn_member_ids(rows[0].citizen_id[:3])
        return result.written


def load_national(settings: ServiceSettings, plan: NationalPlan, *,
                  on_progress: Callable[[int, str], None] | None = None) -> LoadReport:
    """Each province into its own register (`national.store_schema`), one after the other; resumes like a city."""
    from registry.main import build

    total = LoadReport()
    for province_plan in plan.province_plans():
        registry = build(settings, schema=store_schema(province_plan.province), card_code=province_plan.card_prefix,
                         max_pool=4, state_cache=STATE_CACHE)
        try:
            report = DemoLoader(registry, province_plan, on_progress=on_progress).run()
        finally:
            registry.close()
        total.steps += report.steps
        total.skipped += report.skipped
        total.events += report.events
        total.seconds += report.seconds
        for action, seconds in report.by_action.items():
            total.by_action[action] = total.by_action.get(action, 0.0) + seconds
            events = report.events_by_action.get(action, 0)
            total.events_by_action[action] = total.events_by_action.get(action, 0) + events
    return total


def roll_csv(rows: list[RollMember]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(ROLL_COLUMNS)
    for row in rows:
        profile = row.profile
        writer.writerow([
            row.full_name, row.gender, row.birth_date.isoformat(), row.citizen_id, row.cell_code, row.status,
            row.admitted_on.isoformat(), row.official_on.isoformat() if row.official_on else "",
            row.card_number or "", profile.get("ethnicity", ""), profile.get("religion", ""),
            profile.get("hometown", ""), profile.get("address", ""), profile.get("phone", ""),
            profile.get("education", ""), profile.get("qualification", ""), profile.get("political_theory", ""),
            profile.get("occupation", ""), "yes" if profile.get("youth_union") else "",
        ])
    return out.getvalue().encode("utf-8")
