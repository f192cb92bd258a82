"""Mutations forward to the registry over HTTP with the caller's token, and can wait for the projections
(read-your-writes through the consistency token)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from contracts.consistency import ConsistencyToken
from gateway.api.context import GatewayContext
from gateway.api.errors import BadUserInput, CommandRefused
from gateway.api.units import UnitKind

WAIT_LIMIT_S = 15.0


@strawberry.type(description="What the registry answered; `projected` tells whether the read side has it")
class CommandResult:
    id: strawberry.ID
    version: int
    consistency_token: str
    projected: bool
    details: JSON


@strawberry.type
class ImportStarted:
    import_id: strawberry.ID
    status: str


@strawberry.input
class EstablishUnitInput:
    code: str
    name: str
    kind: UnitKind
    parent_id: strawberry.ID | None = None
    parent_code: str | None = None
    established_on: dt.date
    decision_ref: str | None = None


@strawberry.input
class NewUnitInput:
    code: str
    name: str
    kind: UnitKind
    parent_id: strawberry.ID | None = None


@strawberry.input
class SplitPartInput:
    code: str
    name: str
    kind: UnitKind
    unit_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    member_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input
class EnrolMemberInput:
    full_name: str
    gender: str
    birth_date: dt.date
    citizen_id: str
    unit_id: strawberry.ID
    status: str
    admitted_on: dt.date
    official_on: dt.date | None = None
    member_since: dt.date | None = None
    card_number: str | None = None
    ethnicity: str | None = None
    religion: str | None = None
    occupation: str | None = None
    education: str | None = None


async def wait_for(info: Info[GatewayContext, None], token: str) -> bool:
    from gateway.wiring import PROJECTOR

    parsed = ConsistencyToken.decode(token)
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        if await info.context.read_models.command_applied(consumer=PROJECTOR, command_id=parsed.command_id,
                                                          event_count=parsed.event_count):
            return True
        await asyncio.sleep(0.005)
    return False


def forwarded_headers(info: Info[GatewayContext, None]) -> dict[str, str]:
    """The caller's token, and the legal basis it named, for the registry."""
    headers = {"Authorization": info.context.authorization or ""}
    if info.context.legal_basis:
        headers["X-Legal-Basis"] = info.context.legal_basis
    return headers


async def forward(info: Info[GatewayContext, None], path: str, body: dict[str, Any], wait: bool) -> CommandResult:
    response = await info.context.registry.post(
        path, json={k: v for k, v in body.items() if v is not None}, headers=forwarded_headers(info))
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"code": "registry-unavailable", "detail": response.text[:200]}
        raise CommandRefused(problem, response.status_code)
    answer = response.json()
    projected = await wait_for(info, answer["consistency_token"]) if wait else False
    details = {k: v for k, v in answer.items() if k not in ("id", "version", "consistency_token")}
    return CommandResult(id=strawberry.ID(answer["id"]), version=answer["version"],
                         consistency_token=answer["consistency_token"], projected=projected,
                         details=details)  # type: ignore[arg-type]


def _iso(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_iso(v) for v in value]
    if isinstance(value, UnitKind):
        return value.value
    return value


def _body(obj: Any) -> dict[str, Any]:
    return {k: _iso(v) for k, v in vars(obj).items()}


def _id(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise BadUserInput(f"{field} is not an id from this API", field=field) from None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Establish a unit (registry POST /units)")
    async def establish_unit(self, info: Info[GatewayContext, None], input: EstablishUnitInput,
                             wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, "/units", _body(input), wait_for_projection)

    @strawberry.mutation
    async def rename_unit(self, info: Info[GatewayContext, None], unit_id: strawberry.ID, name: str,
                          effective_on: dt.date, decision_ref: str | None = None,
                          wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, f"/units/{_id(unit_id, 'unitId')}/rename",
                             {"name": name, "effective_on": effective_on.isoformat(), "decision_ref": decision_ref},
                             wait_for_projection)

    @strawberry.mutation
    async def reattach_units(self, info: Info[GatewayContext, None], unit_ids: list[strawberry.ID],
                             parent_id: strawberry.ID, effective_on: dt.date, decision_ref: str | None = None,
                             wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, "/units/reattach", {
            "unit_ids": [_id(u, "unitIds") for u in unit_ids], "parent_id": _id(parent_id, "parentId"),
            "effective_on": effective_on.isoformat(), "decision_ref": decision_ref}, wait_for_projection)

    @strawberry.mutation
    async def merge_units(self, info: Info[GatewayContext, None], source_ids: list[strawberry.ID],
                          effective_on: dt.date, target_id: strawberry.ID | None = None,
                          target: NewUnitInput | None = None, decision_ref: str | None = None,
                          wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, "/units/merge", {
            "source_ids": [_id(u, "sourceIds") for u in source_ids], "target_id": target_id,
            "target": {k: v for k, v in _body(target).items() if v is not None} if target else None,
            "effective_on": effective_on.isoformat(), "decision_ref": decision_ref}, wait_for_projection)

    @strawberry.mutation
    async def split_unit(self, info: Info[GatewayContext, None], unit_id: strawberry.ID, parts: list[SplitPartInput],
                         effective_on: dt.date, decision_ref: str | None = None,
                         wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, f"/units/{_id(unit_id, 'unitId')}/split", {
            "parts": [_body(p) for p in parts], "effective_on": effective_on.isoformat(),
            "decision_ref": decision_ref}, wait_for_projection)

    @strawberry.mutation
    async def dissolve_unit(self, info: Info[GatewayContext, None], unit_id: strawberry.ID, effective_on: dt.date,
                            successor_id: strawberry.ID | None = None, decision_ref: str | None = None,
                            wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, f"/units/{_id(unit_id, 'unitId')}/dissolve", {
            "successor_id": successor_id, "effective_on": effective_on.isoformat(), "decision_ref": decision_ref},
            wait_for_projection)

    @strawberry.mutation(description="Enrol one existing member (registry POST /members)")
    async def enrol_member(self, info: Info[GatewayContext, None], input: EnrolMemberInput,
                           wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, "/members", _body(input), wait_for_projection)

    @strawberry.mutation(description="Update profile fields: a JSON object of the fields to change")
    async def update_member_profile(self, info: Info[GatewayContext, None], member_id: strawberry.ID,
                                    changes: JSON, wait_for_projection: bool = False) -> CommandResult:
        if not isinstance(changes, dict):
            raise BadUserInput("changes is an object of profile fields", field="changes")
        return await forward(info, f"/members/{_id(member_id, 'memberId')}/profile", changes, wait_for_projection)

    @strawberry.mutation(description="Record leaving the Party: struck_off, expelled or resigned")
    async def record_leaving(self, info: Info[GatewayContext, None], member_id: strawberry.ID, reason: str,
                             decided_on: dt.date, decision_ref: str, basis: str | None = None,
                             wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, f"/members/{_id(member_id, 'memberId')}/leave", {
            "reason": reason, "decided_on": decided_on.isoformat(), "decision_ref": decision_ref, "basis": basis},
            wait_for_projection)

    @strawberry.mutation(description="Start importing a roll (CSV or XLSX, base64): answers the import id; poll "
                                     "the registry's GET /imports/{id} or wait for the members to appear")
    async def start_import(self, info: Info[GatewayContext, None], file_name: str, content_base64: str
                           ) -> ImportStarted:
        import base64
        import binascii

        try:
            content = base64.b64decode(content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise BadUserInput("contentBase64 is not base64", field="contentBase64") from None
        response = await info.context.registry.post(
            "/imports", files={"file": (file_name, content)}, headers=forwarded_headers(info))
        if response.status_code >= 400:
            raise CommandRefused(response.json(), response.status_code)
        answer = response.json()
        return ImportStarted(import_id=strawberry.ID(answer["import_id"]), status=answer["status"])

    @strawberry.mutation
    async def record_death(self, info: Info[GatewayContext, None], member_id: strawberry.ID, died_on: dt.date,
                           wait_for_projection: bool = False) -> CommandResult:
        return await forward(info, f"/members/{_id(member_id, 'memberId')}/death",
                             {"died_on": died_on.isoformat()}, wait_for_projection)
