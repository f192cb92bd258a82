"""Read endpoints of the registry: a unit as of any date, its history, a member's record."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from contracts import registry_v1
from contracts.codec import to_json
from registry.application.handlers import MEMBER, today
from registry.domain import members, units
from servicekit.auth import Actor
from servicekit.http import ProblemError, current_actor, problem_responses
from servicekit.pgstore import PostgresEventStore

PII = ("birth_date", "citizen_id", "phone", "address")


def build_router(store: PostgresEventStore, check_scope: Callable[[Actor, str], None]) -> APIRouter:
    """`check_scope(actor, unit_id)` raises when the unit lies outside the actor's subtree."""
    router = APIRouter()

    def history(category: str, aggregate_id: uuid.UUID) -> list[Any]:
        events = store.read_stream(f"{category}-{aggregate_id}")
        if not events:
            raise ProblemError(404, f"{category}-not-found", f"no {category} {aggregate_id}")
        return events

    @router.get("/units/{unit_id}", tags=["units"], summary="A unit as it stood on a date (default today)",
                responses=problem_responses(401, 403, 404, 422))
    def get_unit(unit_id: uuid.UUID, actor: Annotated[Actor, Depends(current_actor)],
                 as_of: Annotated[dt.date | None, Query(description="Asia/Ho_Chi_Minh date")] = None) -> dict[str, Any]:
        events = history("unit", unit_id)
        decoded = [registry_v1.CATALOGUE.decode(e.type, e.data) for e in events]
        check_scope(actor, str(unit_id))
        day = as_of or today()
        state = units.as_of([(units.effective_date(d), d) for d in decoded], day)
        if not state.exists:
            raise ProblemError(404, "unit-not-found", f"unit {unit_id} did not exist on {day}")
        return {"id": state.unit_id, "code": state.code, "name": state.name, "kind": state.kind,
                "parent_id": state.parent_id, "status": state.status, "as_of": day.isoformat(),
                "version": events[-1].version}

    @router.get("/units/{unit_id}/history", tags=["units"], summary="Every decision about a unit, in order",
                responses=problem_responses(401, 403, 404, 422))
    def unit_history(unit_id: uuid.UUID, actor: Annotated[Actor, Depends(current_actor)]) -> list[dict[str, Any]]:
        events = history("unit", unit_id)
        check_scope(actor, str(unit_id))
        return [{"type": e.type, "version": e.version, "data": e.data, "recorded_at": e.recorded_at.isoformat(),
                 "actor": e.metadata.get("actor"), "legal_basis": e.metadata.get("legal_basis")} for e in events]

    @router.get("/members/{member_id}", tags=["members"], summary="A member's current record",
                responses=problem_responses(401, 403, 404, 422))
    def get_member(member_id: uuid.UUID, actor: Annotated[Actor, Depends(current_actor)]) -> dict[str, Any]:
        events = history("member", member_id)
        state = members.INITIAL
        for e in events:
            state = MEMBER.evolve(state, e)
        check_scope(actor, state.unit_id)
        record: dict[str, Any] = to_json({k: v for k, v in state.__dict__.items() if k != "exists"})
        record["party_age"] = members.party_age_on(state, today())
        record["version"] = events[-1].version
        if not actor.pii_read:
            for key in PII:
                record[key] = None
            record["profile"] = {k: v for k, v in record["profile"].items() if k not in PII}
        return record

    return router
