"""The registry's REST API: commands in, `{id, version, consistency_token}` out, problems on refusal."""

from __future__ import annotations

import datetime as dt
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Header, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.registry_v1 import UNIT_KINDS, UnitKind
from registry.application.handlers import Handler, RegistryCommands, Scope
from registry.domain import members, policy
from registry.domain.commands import (
    DissolveUnit,
    EnrolMember,
    EstablishUnit,
    MergeUnits,
    NewUnitSpec,
    ReattachUnits,
    RenameUnit,
    SplitPart,
    SplitUnit,
)
from registry.domain.errors import DomainError, PreconditionFailed
from registry.domain.policy import OCCUPATIONS, RATING_LEVELS, READMISSION_EXCLUSIONS
from servicekit.auth import Actor
from servicekit.commands import CommandBus, CommandContext, CommandResult, Outcome, UnitOfWork
from servicekit.http import ProblemError, current_actor, problem_responses
from servicekit.telemetry import current_trace_headers

STATUS_BY_KIND = {"not-found": 404, "conflict": 409, "unprocessable": 422, "precondition-failed": 412}
COMMAND_PROBLEMS = problem_responses(401, 403, 404, 409, 412, 422)
MAX_IMPORT_BYTES = 256 * 1024 * 1024


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


REPLAYED_ANSWER: dict[int | str, dict[str, Any]] = {200: {"model": CommandAccepted,
                                                   "description": "A repeated Idempotency-Key: the first answer again,"
                                                                  " nothing appended"}}
NEW_TARGET_ANSWER: dict[int | str, dict[str, Any]] = {201: {"model": CommandAccepted,
                                                      "description": "A new target unit was established"}}


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_on: dt.date
    decision_ref: str | None = Field(default=None, max_length=200)


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


class RenameRequest(Decision):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Đảng bộ phường Hoàn Kiếm", "effective_on": "2025-07-01", "decision_ref": "QĐ 15-QĐ/TU"}]})
    name: str = Field(min_length=1, max_length=300)


class ReattachRequest(Decision):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"unit_ids": ["6f1c2b1e-4c7e-4d8a-9a55-2f0f0d0c0b01"], "parent_id": "0b6f1c8e-8a0e-4d4c-9d87-3c1f1f3b2a10",
         "effective_on": "2025-07-01", "decision_ref": "QĐ 20-QĐ/TU"}]})
    unit_ids: list[uuid.UUID] = Field(min_length=1, max_length=5000)
    parent_id: uuid.UUID


class NewTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=300)
    kind: UnitKind
    parent_id: uuid.UUID | None = None


class MergeRequest(Decision):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"source_ids": ["6f1c2b1e-4c7e-4d8a-9a55-2f0f0d0c0b01", "7a2d3c2f-5d8f-4e9b-8b66-3a1e1e1d1c02"],
         "target": {"code": "00004", "name": "Đảng bộ phường Ba Đình", "kind": "commune_committee",
                    "parent_id": "0b6f1c8e-8a0e-4d4c-9d87-3c1f1f3b2a10"},
         "effective_on": "2025-07-01", "decision_ref": "NQ 1656/NQ-UBTVQH15"}]})
    source_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    target_id: uuid.UUID | None = None
    target: NewTarget | None = None

    @model_validator(mode="after")
    def _one_target(self) -> MergeRequest:
        if (self.target_id is None) == (self.target is None):
            raise ValueError("give target_id or target, exactly one")
        return self


class SplitPartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=300)
    kind: UnitKind
    unit_ids: list[uuid.UUID] = Field(default_factory=list)
    member_ids: list[uuid.UUID] = Field(default_factory=list)


class SplitRequest(Decision):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"parts": [{"code": "CB1A", "name": "Chi bộ 1A", "kind": "cell", "member_ids": []},
                   {"code": "CB1B", "name": "Chi bộ 1B", "kind": "cell", "member_ids": []}],
         "effective_on": "2025-07-01", "decision_ref": "QĐ 33-QĐ/ĐU"}]})
    parts: list[SplitPartRequest] = Field(min_length=2, max_length=100)


class DissolveRequest(Decision):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"successor_id": "0b6f1c8e-8a0e-4d4c-9d87-3c1f1f3b2a10", "effective_on": "2025-07-01",
         "decision_ref": "QĐ 40-QĐ/TU"}]})
    successor_id: uuid.UUID | None = None


class Interruption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: dt.date
    end: dt.date
    reason: str = ""


class ProfileFields(BaseModel):
    ethnicity: str | None = Field(default=None, max_length=100)
    religion: str | None = Field(default=None, max_length=100)
    hometown: str | None = Field(default=None, max_length=300)
    address: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, max_length=20)
    education: str | None = Field(default=None, max_length=100)
    qualification: str | None = Field(default=None, max_length=100)
    political_theory: str | None = Field(default=None, max_length=100)
    occupation: str | None = Field(default=None, description=f"Biểu 2 category: {', '.join(sorted(OCCUPATIONS))}")
    youth_union: bool | None = None


class EnrolRequest(ProfileFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"full_name": "Nguyễn Văn An", "gender": "male", "birth_date": "1985-04-12", "citizen_id": "001085012345",
         "unit_code": "CB01-00004", "status": "official", "admitted_on": "2010-05-19", "official_on": "2011-05-19",
         "card_number": "01012345", "ethnicity": "Kinh", "occupation": "public_service_employee"}]})
    full_name: str = Field(min_length=1, max_length=200)
    gender: Literal["male", "female"]
    birth_date: dt.date
    citizen_id: str = Field(pattern=r"^\d{12}$", description="12 digits (căn cước công dân)")
    unit_id: uuid.UUID | None = None
    unit_code: str | None = Field(default=None, max_length=32)
    status: Literal["official", "probationary"]
    admitted_on: dt.date = Field(description="Date of the admission decision (party age counts from it)")
    official_on: dt.date | None = None
    member_since: dt.date | None = Field(default=None, description="Counts in the cell from this date")
    card_number: str | None = Field(default=None, pattern=r"^\d{8}$",
                                    description="The register's two-digit code (01 for Hanoi), then six digits")
    interruptions: list[Interruption] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_unit(self) -> EnrolRequest:
        if (self.unit_id is None) == (self.unit_code is None):
            raise ValueError("give unit_id or unit_code, exactly one")
        return self


class ProfileRequest(ProfileFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"address": "Số 5 phố Kim Mã, phường Giảng Võ", "occupation": "retired"}]})
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    gender: Literal["male", "female"] | None = None
    birth_date: dt.date | None = None
    citizen_id: str | None = Field(default=None, pattern=r"^\d{12}$")


class ExemptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"effective_on": "2026-03-01", "reason": "tuổi cao, sức khỏe yếu", "decision_ref": "NQ 03/CB"}]})
    effective_on: dt.date
    reason: str = Field(min_length=1, max_length=500)
    decision_ref: str | None = None


class EffectiveOn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"effective_on": "2026-03-01"}]})
    effective_on: dt.date


class ScreeningRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"effective_on": "2026-01-15", "reason": "2 năm liền không hoàn thành nhiệm vụ"}]})
    effective_on: dt.date
    reason: str = Field(min_length=1, max_length=500)


class LeaveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "struck_off", "decided_on": "2026-02-10", "decision_ref": "QĐ 12-QĐ/ĐU",
         "basis": "bỏ sinh hoạt 3 tháng không lý do", "excluded_from_readmission": ["abandoned_activities"]}]})
    reason: Literal["struck_off", "expelled", "resigned"]
    decided_on: dt.date
    decision_ref: str = Field(min_length=1, max_length=200)
    basis: str | None = Field(default=None, max_length=500)
    note: str | None = Field(default=None, max_length=1000)
    excluded_from_readmission: list[Literal[tuple(sorted(READMISSION_EXCLUSIONS))]] = Field(  # type: ignore[valid-type]
        default_factory=list)


class DeathRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"died_on": "2026-02-14"}]})
    died_on: dt.date


class ReadmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"readmitted_on": "2026-06-01", "unit_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
         "decision_ref": "QĐ 88-QĐ/TU"}]})
    readmitted_on: dt.date
    unit_id: uuid.UUID
    decision_ref: str = Field(min_length=1, max_length=200)


class RecognitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"official_on": "2026-05-19", "decision_ref": "QĐ 11-QĐ/ĐU"}]})
    official_on: dt.date
    decision_ref: str | None = None


class CardRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "exchange_2025", "issued_on": "2025-09-02"}]})
    reason: Literal["first_issue", "reissue_lost", "exchange_damaged", "exchange_2025"]
    card_number: str | None = Field(default=None, pattern=r"^\d{8}$",
                                    description="Omit to take the next number of the allocated range")
    issued_on: dt.date | None = None


class BadgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"years": 30, "awarded_on": "2026-09-02"}]})
    years: int
    awarded_on: dt.date
    early_reason: str | None = Field(default=None, description="e.g. serious illness: up to 12 months early "
                                                                 "(24 from 70 years)")
    decision_ref: str | None = None


class RatingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"year": 2025, "level": "hoan_thanh_tot"}]})
    year: int = Field(ge=1930, le=2100)
    level: Literal[RATING_LEVELS]  # type: ignore[valid-type]


DECISION_DATES = ("effective_on", "established_on", "decided_on", "died_on", "readmitted_on", "awarded_on",
                  "issued_on", "member_since", "official_on")
"""The fields a command's body may date its decision by, in the order they are looked for: an existing member's
enrolment is dated by when they count in the cell (or their recognition), not by their admission long ago."""
MAX_LEGAL_BASIS = 500
LEGAL_BASIS_HEADER = "X-Legal-Basis"


def legal_basis_header(basis: Annotated[str | None, Header(
        alias=LEGAL_BASIS_HEADER, max_length=3 * MAX_LEGAL_BASIS,
        description="What the decision stands on, UTF-8 and percent-encoded (at most 500 characters). Without it,"
                    " the policy table's basis in force on the date the decision takes effect")] = None) -> None:
    """Declares the header in OpenAPI; `decision_basis` reads it."""


def decision_basis(request: Request, body: BaseModel | None, today: dt.date) -> str | None:
    """The client's legal basis, or the policy table's for the date the decision takes effect (a rating: the end of
    its year; a body naming no date: today)."""
    given = client_basis(request)
    if given:
        return given
    values = dict(body) if body is not None else {}
    rating = isinstance(values.get("year"), int) and request.url.path.endswith("/ratings")
    day = dt.date(values["year"], 12, 31) if rating else next(
        (values[f] for f in DECISION_DATES if isinstance(values.get(f), dt.date)), today)
    return policy.legal_basis(day, rating=rating)


def client_basis(request: Request) -> str | None:
    """The legal basis the client named in X-Legal-Basis, if any."""
    raw = request.headers.get(LEGAL_BASIS_HEADER.lower()) or ""
    try:
        # Headers are ASCII on the wire (Starlette reads them as latin-1): raw UTF-8 would be stored garbled.
        given = urllib.parse.unquote(raw.encode("ascii").decode(), errors="strict").strip()
    except UnicodeError:
        raise ProblemError(422, "invalid-input", "X-Legal-Basis is UTF-8 text, percent-encoded",
                           field=LEGAL_BASIS_HEADER) from None
    if len(given) > MAX_LEGAL_BASIS or not given.isprintable():
        raise ProblemError(422, "invalid-input", f"X-Legal-Basis is printable text of at most {MAX_LEGAL_BASIS}"
                           " characters", field=LEGAL_BASIS_HEADER)
    return given or None


def command_context(request: Request, actor: Actor, idempotency_key: str | None, *, legal_basis: str | None
                    ) -> CommandContext:
    traceparent, tracestate = current_trace_headers()
    correlation = request.headers.get("x-correlation-id")
    try:
        correlation_id = uuid.UUID(correlation) if correlation else None
    except ValueError:
        raise ProblemError(422, "invalid-input", "X-Correlation-Id must be a UUID",
                           field="X-Correlation-Id") from None
    return CommandContext(actor=actor.label(), idempotency_key=idempotency_key, traceparent=traceparent,
                          tracestate=tracestate, correlation_id=correlation_id, legal_basis=legal_basis)


def answer(result: CommandResult, status: int, location: str) -> JSONResponse:
    body = {"id": result.aggregate_id, "version": result.version, "consistency_token": result.consistency_token,
            **result.details}
    return JSONResponse(body, status_code=200 if result.replayed and status == 201 else status,
                        headers={"ETag": f'"{result.version}"', "Location": location})


def if_match_version(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip().strip('W/').strip('"'))
    except ValueError:
        raise ProblemError(422, "invalid-input", "If-Match carries the version number", field="If-Match") from None


def checked(handler: Handler, expected_version: int | None) -> Handler:
    """Refuse with 412 when the client's If-Match version is not current."""
    if expected_version is None:
        return handler

    def handle(uow: UnitOfWork) -> Outcome:
        outcome = handler(uow)
        before = uow.version_before(outcome.stream_id)
        if before != expected_version:
            raise PreconditionFailed(f"the current version is {before}, not {expected_version}")
        return outcome

    return handle


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=40)]
CurrentActor = Annotated[Actor, Depends(current_actor)]


class ImportAccepted(BaseModel):
    import_id: uuid.UUID
    status: Literal["queued", "running", "completed", "rejected"]


class ImportRowError(BaseModel):
    row: int
    field: str
    code: str
    message: str


class ImportStatus(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"import_id": "5b0c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4", "status": "rejected", "total": 3, "accepted": 0,
         "rejected": 1, "written": 0, "skipped": 0,
         "errors": [{"row": 3, "field": "citizen_id", "code": "citizen-id-invalid",
                     "message": "a citizen id has exactly 12 digits"}]}]})
    import_id: uuid.UUID
    status: Literal["queued", "running", "completed", "rejected"]
    total: int
    accepted: int
    rejected: int
    written: int
    skipped: int
    errors: list[ImportRowError]


def build_router(bus: CommandBus, commands: RegistryCommands, resolve_code: Callable[[str], str | None],
                 imports: Any = None) -> APIRouter:
    router = APIRouter()
    decided = [Depends(legal_basis_header)]

    def run(request: Request, actor: Actor, key: str | None, handler: Handler, body: BaseModel | None,
            status: int, location: Callable[[CommandResult], str]) -> JSONResponse:
        context = command_context(request, actor, key,
                                  legal_basis=decision_basis(request, body, commands.clock()))
        payload: Any = {"path": request.url.path, "body": body.model_dump(mode="json") if body else None}
        result = bus.execute(context, handler, request=payload)
        return answer(result, status, location(result))

    def unit_location(result: CommandResult) -> str:
        return f"/units/{result.aggregate_id}"

    def member_location(result: CommandResult) -> str:
        return f"/members/{result.aggregate_id}"

    def code_to_id(code: str, field: str) -> str:
        found = resolve_code(code)
        if found is None:
            raise ProblemError(404, "unit-not-found", f"no active unit has code {code!r}", field=field)
        return found

    @router.post("/units", status_code=201, response_model=CommandAccepted, tags=["units"],
                 summary="Establish an organization unit", responses={**REPLAYED_ANSWER, **COMMAND_PROBLEMS},
                 dependencies=decided)
    def establish_unit(body: EstablishUnitRequest, request: Request, actor: CurrentActor,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
        actor.require("committee")
        parent_id = str(body.parent_id) if body.parent_id else None
        if body.parent_code is not None:
            found = resolve_code(body.parent_code)
            if found is None:
                raise ProblemError(404, "parent-not-found", f"no active unit has code {body.parent_code!r}",
                                   field="parent_code")
            parent_id = found
        command = EstablishUnit(unit_id=str(uuid.uuid4()), code=body.code, name=body.name, kind=body.kind,
                                parent_id=parent_id, established_on=body.established_on,
                                decision_ref=body.decision_ref)
        return run(request, actor, idempotency_key, commands.establish_unit(command, Scope(actor.unit_code)), body,
                   201, unit_location)

    @router.post("/units/reattach", response_model=CommandAccepted, tags=["units"],
                 summary="Re-parent one or many units in one decision", responses=COMMAND_PROBLEMS,
                 dependencies=decided)
    def reattach(body: ReattachRequest, request: Request, actor: CurrentActor,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
        actor.require("committee")
        command = ReattachUnits(unit_ids=tuple(str(u) for u in body.unit_ids), parent_id=str(body.parent_id),
                                effective_on=body.effective_on, decision_ref=body.decision_ref)
        return run(request, actor, idempotency_key, commands.reattach_units(command, Scope(actor.unit_code)), body,
                   200, unit_location)

    @router.post("/units/merge", response_model=CommandAccepted, tags=["units"],
                 summary="Merge units into one; their sub-units and members follow",
                 responses={**NEW_TARGET_ANSWER, **COMMAND_PROBLEMS}, dependencies=decided)
    def merge(body: MergeRequest, request: Request, actor: CurrentActor,
              idempotency_key: IdempotencyKey = None) -> JSONResponse:
        actor.require("committee")
        spec = None
        if body.target is not None:
            spec = NewUnitSpec(code=body.target.code, name=body.target.name, kind=body.target.kind,
                               parent_id=str(body.target.parent_id) if body.target.parent_id else None)
        command = MergeUnits(source_ids=tuple(str(s) for s in body.source_ids),
                             target_id=str(body.target_id) if body.target_id else None, new_target=spec,
                             new_target_id=str(uuid.uuid4()) if spec else None, effective_on=body.effective_on,
                             decision_ref=body.decision_ref)
        return run(request, actor, idempotency_key, commands.merge_units(command, Scope(actor.unit_code)), body,
                   201 if spec else 200, unit_location)

    @router.post("/units/{unit_id}/rename", response_model=CommandAccepted, tags=["units"],
                 summary="Rename a unit", responses=COMMAND_PROBLEMS, dependencies=decided)
    def rename(unit_id: uuid.UUID, body: RenameRequest, request: Request, actor: CurrentActor,
               idempotency_key: IdempotencyKey = None, if_match: IfMatch = None) -> JSONResponse:
        actor.require("committee")
        command = RenameUnit(unit_id=str(unit_id), name=body.name, effective_on=body.effective_on,
                             decision_ref=body.decision_ref)
        handler = checked(commands.rename_unit(command, Scope(actor.unit_code)), if_match_version(if_match))
        return run(request, actor, idempotency_key, handler, body, 200, unit_location)

    @router.post("/units/{unit_id}/split", response_model=CommandAccepted, tags=["units"],
                 summary="Split a unit; every sub-unit and member is assigned to a part", responses=COMMAND_PROBLEMS,
                 dependencies=decided)
    def split(unit_id: uuid.UUID, body: SplitRequest, request: Request, actor: CurrentActor,
              idempotency_key: IdempotencyKey = None) -> JSONResponse:
        actor.require("committee")
        parts = tuple(SplitPart(unit_id=str(uuid.uuid4()), code=p.code, name=p.name, kind=p.kind,
                                unit_ids=tuple(str(u) for u in p.unit_ids),
                                member_ids=tuple(str(m) for m in p.member_ids)) for p in body.parts)
        command = SplitUnit(unit_id=str(unit_id), parts=parts, effective_on=body.effective_on,
                            decision_ref=body.decision_ref)
        return run(request, actor, idempotency_key, commands.split_unit(command, Scope(actor.unit_code)), body,
                   200, unit_location)

    @router.post("/units/{unit_id}/dissolve", response_model=CommandAccepted, tags=["units"],
                 summary="Dissolve a unit (a successor takes what remains)", responses=COMMAND_PROBLEMS,
                 dependencies=decided)
    def dissolve(unit_id: uuid.UUID, body: DissolveRequest, request: Request, actor: CurrentActor,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
        actor.require("committee")
        command = DissolveUnit(unit_id=str(unit_id), successor_id=str(body.successor_id) if body.successor_id else None,
                               effective_on=body.effective_on, decision_ref=body.decision_ref)
        return run(request, actor, idempotency_key, commands.dissolve_unit(command, Scope(actor.unit_code)), body,
                   200, unit_location)

    @router.post("/members", status_code=201, response_model=CommandAccepted, tags=["members"],
                 summary="Enrol one existing member", responses={**REPLAYED_ANSWER, **COMMAND_PROBLEMS},
                 dependencies=decided)
    def enrol(body: EnrolRequest, request: Request, actor: CurrentActor,
              idempotency_key: IdempotencyKey = None) -> JSONResponse:
        actor.require("clerk")
        unit_id = str(body.unit_id) if body.unit_id else code_to_id(body.unit_code or "", "unit_code")
        profile = body.model_dump(include=set(ProfileFields.model_fields), exclude_none=True)
        command = EnrolMember(
            member_id=str(uuid.uuid4()), full_name=body.full_name, gender=body.gender, birth_date=body.birth_date,
            citizen_id=body.citizen_id, unit_id=unit_id, status=body.status, admitted_on=body.admitted_on,
            source="existing", official_on=body.official_on, member_since=body.member_since,
            card_number=body.card_number, profile=profile,
            interruptions=tuple((i.start, i.end, i.reason) for i in body.interruptions))
        return run(request, actor, idempotency_key, commands.enrol_member(command, Scope(actor.unit_code)), body,
                   201, member_location)

    def member_route(path: str, summary: str, role: str, model: type[BaseModel],
                     make: Callable[[str, Any, Scope], Handler]) -> None:
        def endpoint(member_id: uuid.UUID, body: Any, request: Request, actor: CurrentActor,
                     idempotency_key: IdempotencyKey = None, if_match: IfMatch = None) -> JSONResponse:
            actor.require(role)
            handler = checked(make(str(member_id), body, Scope(actor.unit_code)), if_match_version(if_match))
            return run(request, actor, idempotency_key, handler, body, 200, member_location)

        endpoint.__annotations__["body"] = model
        router.add_api_route(f"/members/{{member_id}}/{path}", endpoint, methods=["POST"], dependencies=decided,
                             response_model=CommandAccepted, tags=["members"], summary=summary,
                             responses=COMMAND_PROBLEMS, name=f"member_{path.replace('/', '_')}")

    if imports is not None:
        @router.post("/imports", status_code=202, response_model=ImportAccepted, tags=["imports"],
                     summary="Import an existing roll (CSV or XLSX, English or Vietnamese headings)",
                     responses=problem_responses(401, 403, 413, 422), dependencies=decided)
        def start_import(file: Annotated[UploadFile, File(description="CSV (UTF-8) or XLSX")], request: Request,
                         actor: CurrentActor) -> JSONResponse:
            actor.require("clerk")
            scope = None if actor.unit_code is None else resolve_code(actor.unit_code)
            if actor.unit_code is not None and scope is None:
                raise ProblemError(403, "outside-scope", f"no active unit has the code {actor.unit_code!r}")
            basis = client_basis(request)
            content = file.file.read(MAX_IMPORT_BYTES + 1)
            if len(content) > MAX_IMPORT_BYTES:
                raise ProblemError(413, "file-too-large", f"an import file is at most {MAX_IMPORT_BYTES} bytes",
                                   field="file")
            if not content:
                raise ProblemError(422, "file-empty", "the file is empty", field="file")
            import_id = imports.submit(file_name=file.filename or "roll", content=content, actor=actor.label(),
                                       scope_unit_id=scope, legal_basis=basis)
            imports.start_in_background(import_id)
            return JSONResponse({"import_id": import_id, "status": "queued"}, status_code=202,
                                headers={"Location": f"/imports/{import_id}"})

        @router.get("/imports/{import_id}", response_model=ImportStatus, tags=["imports"],
                    summary="An import's status and its report of bad rows",
                    responses=problem_responses(401, 403, 404, 422))
        def import_status(import_id: uuid.UUID, actor: CurrentActor) -> dict[str, Any]:
            actor.require("clerk")
            report = imports.report(str(import_id))
            if report is None:
                raise ProblemError(404, "import-not-found", f"no import {import_id}")
            if not imports.visible_to(str(import_id), unit_code=actor.unit_code):
                raise ProblemError(403, "outside-scope", f"import {import_id} was submitted outside your subtree")
            return dict(report.as_json())

    clock = commands.clock
    member_route("profile", "Update profile fields (partial)", "clerk", ProfileRequest,
                 lambda m, b, s: commands.update_profile(m, b.model_dump(exclude_unset=True), s))
    member_route("recognition", "Recognize a probationary member as official (normally from admissions)",
                 "committee", RecognitionRequest,
                 lambda m, b, s: commands.recognize(m, official_on=b.official_on, decision_ref=b.decision_ref, scope=s))
    member_route("exemption", "Exempt from work and activities", "committee", ExemptionRequest,
                 lambda m, b, s: commands.member_command(m, lambda mem, _: members.exempt(
                     mem, effective_on=b.effective_on, reason=b.reason, decision_ref=b.decision_ref,
                     today=clock()), s))
    member_route("exemption/end", "End an exemption", "committee", EffectiveOn,
                 lambda m, b, s: commands.member_command(m, lambda mem, _: members.end_exemption(
                     mem, effective_on=b.effective_on, today=clock()), s))
    member_route("screening", "Place on the screening list", "committee", ScreeningRequest,
                 lambda m, b, s: commands.member_command(m, lambda mem, _: members.place_on_screening_list(
                     mem, effective_on=b.effective_on, reason=b.reason, today=clock()), s))
    member_route("leave", "Record leaving the Party (struck off, expelled, resigned)", "committee", LeaveRequest,
                 lambda m, b, s: commands.member_command(m, lambda mem, _: members.leave(
                     mem, reason=b.reason, decided_on=b.decided_on, decision_ref=b.decision_ref, basis=b.basis,
                     note=b.note, excluded=tuple(b.excluded_from_readmission), today=clock()), s))
    member_route("death", "Record a death", "clerk", DeathRequest,
                 lambda m, b, s: commands.member_command(m, lambda mem, _: members.die(
                     mem, died_on=b.died_on, today=clock()), s))
    member_route("readmit", "Re-admit (once, 36 months after leaving at the earliest)", "committee", ReadmitRequest,
                 lambda m, b, s: commands.readmit(m, readmitted_on=b.readmitted_on, unit_id=str(b.unit_id),
                                                  decision_ref=b.decision_ref, scope=s))
    member_route("card", "Issue a party card (reissue, exchange, the 2025 exchange)", "committee", CardRequest,
                 lambda m, b, s: commands.issue_card(m, reason=b.reason, card_number=b.card_number,
                                                     issued_on=b.issued_on, scope=s))
    member_route("badges", "Award a party-age badge", "committee", BadgeRequest,
                 lambda m, b, s: commands.member_command(m, lambda mem, _: members.award_badge(
                     mem, years=b.years, awarded_on=b.awarded_on, early_reason=b.early_reason,
                     decision_ref=b.decision_ref, today=clock()), s))
    member_route("ratings", "Record the annual rating", "committee", RatingRequest,
                 lambda m, b, s: commands.member_command(m, lambda mem, _: members.rate(
                     mem, year=b.year, level=b.level, today=clock()), s))
    return router
