"""The lists committees ask for, computed from the registry's facts for a subtree (today's hierarchy)."""

from __future__ import annotations

import datetime as dt
import uuid

import strawberry
from strawberry.types import Info

from gateway.api.common import require_id, today
from gateway.api.context import GatewayContext
from gateway.api.errors import BadUserInput, Forbidden
from gateway.api.members import Member, member_from_row
from gateway.api.units import OrganizationUnit, unit_from_row
from gateway.read_models import CELL_COLUMNS, MEMBER_COLUMNS, TREE_AT, UnitRow, take_cell

BADGE_MILESTONES = (30, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90)
LIST_LIMIT = 1000


@strawberry.type
class BadgeDue:
    member: Member
    years: int
    due_on: dt.date


@strawberry.type
class CellBelowThree:
    unit: OrganizationUnit
    official_members: int


async def _subtree(info: Info[GatewayContext, None], unit_id: strawberry.ID) -> uuid.UUID:
    root = require_id(unit_id, "unitId")
    if not await info.context.in_scope(root):
        raise Forbidden("outside your subtree")
    return root


async def _members(info: Info[GatewayContext, None], root: uuid.UUID, condition: str,
                   params: dict[str, object], order: str = "m.search_name") -> list[Member]:
    rows = await info.context.read_models.fetch(
        TREE_AT + f"SELECT {MEMBER_COLUMNS}, {CELL_COLUMNS} FROM members m LEFT JOIN units cu ON cu.id = m.unit_id"
        f" WHERE m.unit_id IN (SELECT unit_id FROM tree) AND m.status IN ('official', 'probationary') AND {condition}"
        f" ORDER BY {order} LIMIT {LIST_LIMIT}",
        {"roots": [root], "day": today(), **params})
    return [member_from_row(take_cell(r), info.context.pii) for r in rows]


@strawberry.type
class ListQueries:
    @strawberry.field(description="Probationary members whose 12 months end within `withinDays` days")
    async def probation_ending(self, info: Info[GatewayContext, None], unit_id: strawberry.ID,
                               within_days: int = 30) -> list[Member]:
        if not 0 <= within_days <= 400:
            raise BadUserInput("withinDays is between 0 and 400", field="withinDays")
        root = await _subtree(info, unit_id)
        return await _members(info, root, "m.status = 'probationary' AND m.probation_ends_on <= %(until)s",
                              {"until": today() + dt.timedelta(days=within_days)}, "m.probation_ends_on")

    @strawberry.field(description="Members whose next party-age badge falls due by a date")
    async def badges_due(self, info: Info[GatewayContext, None], unit_id: strawberry.ID,
                         by: dt.date | None = None) -> list[BadgeDue]:
        root = await _subtree(info, unit_id)
        day = by or today()
        candidates = await _members(info, root, "m.admitted_on <= %(oldest)s",
                                    {"oldest": day.replace(year=day.year - BADGE_MILESTONES[0])}, "m.admitted_on")
        due: list[BadgeDue] = []
        for member in candidates:
            admitted: dt.date = member.row["admitted_on"]
            gap = dt.timedelta(days=member.row["interruption_days"] or 0)
            for years in BADGE_MILESTONES:
                if years in member.badges:
                    continue
                try:
                    on = admitted.replace(year=admitted.year + years) + gap
                except ValueError:
                    on = admitted.replace(year=admitted.year + years, day=28) + gap
                if on <= day:
                    due.append(BadgeDue(member=member, years=years, due_on=on))
                break
        return due

    @strawberry.field(description="Members on the screening list")
    async def screening_candidates(self, info: Info[GatewayContext, None], unit_id: strawberry.ID) -> list[Member]:
        return await _members(info, await _subtree(info, unit_id), "m.on_screening_list", {})

    @strawberry.field(description="Members exempted from work and activities")
    async def exempted_members(self, info: Info[GatewayContext, None], unit_id: strawberry.ID) -> list[Member]:
        return await _members(info, await _subtree(info, unit_id), "m.exempted", {})

    @strawberry.field(description="Cells with fewer than 3 official members (they cannot hold valid votes)")
    async def cells_below_three_official(self, info: Info[GatewayContext, None],
                                         unit_id: strawberry.ID) -> list[CellBelowThree]:
        root = await _subtree(info, unit_id)
        rows = await info.context.read_models.fetch(
            TREE_AT + "SELECT u.id, u.code, u.name, u.kind, u.parent_id, u.status, u.established_on,"
            " coalesce(c.count, 0) AS official FROM units u LEFT JOIN unit_member_counts c ON c.unit_id = u.id"
            " AND c.dimension = 'status' AND c.value = 'official'"
            " WHERE u.id IN (SELECT unit_id FROM tree) AND u.status = 'active'"
            " AND u.kind IN ('cell', 'grassroots_cell') AND coalesce(c.count, 0) < 3 ORDER BY u.code"
            f" LIMIT {LIST_LIMIT}", {"roots": [root], "day": today()})
        return [CellBelowThree(unit=unit_from_row(UnitRow(**{k: v for k, v in r.items() if k != "official"})),
                               official_members=r["official"]) for r in rows]
