"""The registry's REST API: commands in, `{id, version, consistency_token}` out, problems on refusal."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from contracts.registry_v1 import UNIT_KINDS, UnitKind
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from servicekit.auth import Actor
from servicekit.commands import CommandBus, CommandContext, CommandResult, Outcome, UnitOfWork
from servicekit.http import ProblemError, current_actor, problem_responses
from servicekit.telemetry import current_trace_headers

from registry.application import handlers
from registry.domain.commands import EstablishUnit
from registry.domain.errors import DomainError

STATUS_BY_KIND = {"not-found": 404, "conflict": 409, "unprocessable": 422}


def domain_problem(exc: Exception) -> ProblemError:
    assert isinstance(exc, DomainError)
    return ProblemError(STATUS_BY_KIND.get(exc.kind, 422), exc.code, str(exc), detail=str(exc), field=exc.field)


class CommandAccepted(BaseModel):
    id: uuid.UUID
    version: int
    consistency_token: str

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "0b6f1c8e-8a0e-4d4c-9d87-3c1f1f3b2a10", "version": 1, "consistency_token": "ct1.MGI2ZjFjOGU"}
    ]})


class EstablishUnitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"code": "HN", "name": "Đảng bộ Thành phố Hà Nội", "kind": "city_committee",
         "established_on": "1930-02-03", "decision_ref": "Lập theo Điều lệ Đảng"},
        {"code": "00004", "name": "Đảng bộ phường Ba Đình", "kind": "commune_committee", "parent_code": "HN",
         "established_on": "2025-07-01", "decision_ref": "QĐ 1234-QĐ/TU"},
    ]})

    code: str = Field(min_length=1, max_length=32, description="Unique among active units")
    name: str = Field(min_length=1, max_length=300)
    kind: UnitKind = Field(description=f"One of {', '.join(UNIT_KINDS)}")
    parent_id: uuid.UUID | None = None
    parent_code: str | None = Field(default=None, max_length=32)
    established_on: dt.date
    decision_ref: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_parent_reference(self) -> EstablishUnitRequest:
        if self.parent_id is not None and self.parent_code is not None:
            raise ValueError("give parent_id or parent_code, not both")
        return self


def command_context(request: Request, actor: Actor, idempotency_key: str | None) -> CommandContext:
    traceparent, tracestate = current_trace_headers()
    correlation = request.headers.get("x-correlation-id")
    try:
        correlation_id = uuid.UUID(correlation) if correlation else None
    except ValueError:
        raise ProblemError(422, "invalid-input", "X-Correlation-Id must be a UUID",
                           field="X-Correlation-Id") from None
    return CommandContext(actor=actor.label(), idempotency_key=idempotency_key, traceparent=traceparent,
                          tracestate=tracestate, correlation_id=correlation_id)


def accepted(result: CommandResult, status: int) -> JSONResponse:
    return JSONResponse(
        {"id": result.aggregate_id, "version": result.version, "consistency_token": result.consistency_token},
        status_code=200 if result.replayed and status == 201 else status,
        headers={"ETag": f'"{result.version}"', "Location": f"/units/{result.aggregate_id}"},
    )


def build_router(bus: CommandBus) -> APIRouter:
    router = APIRouter(tags=["units"])

    @router.post(
        "/units",
        status_code=201,
        response_model=CommandAccepted,
        summary="Establish an organization unit",
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    def establish_unit(
        body: EstablishUnitRequest,
        request: Request,
        actor: Annotated[Actor, Depends(current_actor)],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
    ) -> JSONResponse:
        actor.require("committee")
        context = command_context(request, actor, idempotency_key)
        unit_id = str(uuid.uuid4())

        def handle(uow: UnitOfWork) -> Outcome:
            parent_id = str(body.parent_id) if body.parent_id else None
            if body.parent_code is not None:
                parent_id = handlers.resolve_unit_code(uow, body.parent_code)
                if parent_id is None:
                    raise DomainError(f"no active unit has code {body.parent_code!r}", code="parent-not-found",
                                      field="parent_code")
            handlers.authorize_within(uow, actor_unit_code=actor.unit_code, unit_id=parent_id)
            command = EstablishUnit(unit_id=unit_id, code=body.code, name=body.name, kind=body.kind,
                                    parent_id=parent_id, established_on=body.established_on,
                                    decision_ref=body.decision_ref)
            return handlers.establish_unit(command)(uow)

        result = bus.execute(context, handle, request=body.model_dump(mode="json"))
        return accepted(result, 201)

    return router
