"""GraphQL types and root fields of organization units."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from gateway.api.common import Node, PageInfo, check_cursor, page_size, parse_id, today
from gateway.api.context import GatewayContext
from gateway.api.errors import BadUserInput
from gateway.read_models import UnitRow

if TYPE_CHECKING:
    from gateway.api.members import MemberConnection, MemberFlag, MemberOrder, MemberStatus
    from gateway.api.statistics import Statistics


@strawberry.enum(description="Kinds of party organization units")
class UnitKind(enum.Enum):
    CITY_COMMITTEE = "city_committee"
    DISTRICT_COMMITTEE = "district_committee"
    COMMUNE_COMMITTEE = "commune_committee"
    SECTOR_COMMITTEE = "sector_committee"
    GRASSROOTS_COMMITTEE = "grassroots_committee"
    GRASSROOTS_CELL = "grassroots_cell"
    SUB_COMMITTEE = "sub_committee"
    CELL = "cell"


@strawberry.type(description="One decision in a unit's history")
class UnitHistoryEntry:
    type: str
    version: int
    effective_on: dt.date
    recorded_at: str
    actor: str | None
    data: JSON


@strawberry.type(description="A party organization unit: committee, grassroots organization or cell")
class OrganizationUnit(Node):
    code: str
    name: str
    kind: UnitKind
    status: str
    established_on: dt.date
    parent_id: strawberry.Private[uuid.UUID | None]
    as_of: strawberry.Private[dt.date | None]

    @strawberry.field(description="The unit this one sat under (on the date it was read for)")
    async def parent(self, info: Info[GatewayContext, None]) -> OrganizationUnit | None:
        if self.parent_id is None or not await info.context.in_scope(self.parent_id, self.as_of):
            return None
        if self.as_of is not None:
            row = await info.context.read_models.unit_as_of(self.parent_id, self.as_of)
        else:
            row = await info.context.loaders.unit.load(self.parent_id)
        return unit_from_row(row, self.as_of) if row else None

    @strawberry.field(description="Parent, grandparent, ... up to the root (nearest first)")
    async def ancestors(self, info: Info[GatewayContext, None]) -> list[OrganizationUnit]:
        day = self.as_of or today()
        rows = await info.context.read_models.ancestors(uuid.UUID(str(self.id)), day)
        return [unit_from_row(r, self.as_of) for r in rows if await info.context.in_scope(r.id, day)]

    @strawberry.field(description="Units directly under this one, active on the date")
    async def children(self, info: Info[GatewayContext, None], kind: UnitKind | None = None, first: int | None = 50,
                       after: str | None = None) -> UnitConnection:
        return await unit_connection(info, parent_id=uuid.UUID(str(self.id)), kind=kind, search=None,
                                     as_of=self.as_of, first=first, after=after)

    @strawberry.field(description="Members of this unit (and, by default, of the units under it)")
    async def members(
        self, info: Info[GatewayContext, None], include_descendants: bool = True,
        status: list[Annotated[MemberStatus, strawberry.lazy("gateway.api.members")]] | None = None,
        flags: list[Annotated[MemberFlag, strawberry.lazy("gateway.api.members")]] | None = None,
        search: str | None = None, as_of: dt.date | None = None,
        order_by: Annotated[MemberOrder, strawberry.lazy("gateway.api.members")] | None = None,
        first: int | None = 50, after: str | None = None,
    ) -> Annotated[MemberConnection, strawberry.lazy("gateway.api.members")]:
        from gateway.api.members import member_connection

        return await member_connection(info, unit_id=uuid.UUID(str(self.id)), include_descendants=include_descendants,
                                       status=status, flags=flags, search=search, as_of=as_of or self.as_of,
                                       order_by=order_by, first=first, after=after)

    @strawberry.field(description="The central statistics forms for this unit's subtree")
    async def statistics(self, info: Info[GatewayContext, None], as_of: dt.date | None = None,
                         compare_with: dt.date | None = None
                         ) -> Annotated[Statistics, strawberry.lazy("gateway.api.statistics")]:
        from gateway.api.statistics import build_statistics

        return await build_statistics(info, uuid.UUID(str(self.id)), as_of or self.as_of, compare_with)

    @strawberry.field(description="Current members by status, flags and composition, kept incrementally; the "
                                  "subtree's numbers sum its units (today's hierarchy)")
    async def member_counts(self, info: Info[GatewayContext, None], include_descendants: bool = True
                            ) -> list[MemberCount]:
        from gateway.read_models import TREE_AT

        unit_id = uuid.UUID(str(self.id))
        if include_descendants:
            rows = await info.context.read_models.fetch(
                TREE_AT + "SELECT dimension, value, sum(count)::int AS n FROM unit_member_counts"
                " WHERE unit_id IN (SELECT unit_id FROM tree) GROUP BY 1, 2 HAVING sum(count) <> 0 ORDER BY 1, 2",
                {"roots": [unit_id], "day": today()})
        else:
            rows = await info.context.read_models.fetch(
                "SELECT dimension, value, count AS n FROM unit_member_counts WHERE unit_id = %s AND count <> 0"
                " ORDER BY 1, 2", (unit_id,))
        return [MemberCount(dimension=r["dimension"], value=r["value"], count=r["n"]) for r in rows]

    @strawberry.field(description="Every decision about this unit, in order")
    async def history(self, info: Info[GatewayContext, None]) -> list[UnitHistoryEntry]:
        rows = await info.context.read_models.unit_history(uuid.UUID(str(self.id)))
        return [UnitHistoryEntry(type=r["event_type"], version=r["seq"], effective_on=r["effective_on"],
                                 recorded_at=r["recorded_at"].isoformat(), actor=r["actor"],
                                 data=json.loads(json.dumps(r["data"]))) for r in rows]


@strawberry.type(description="How many current members a unit (or its subtree) has along one dimension")
class MemberCount:
    dimension: str
    value: str
    count: int


@strawberry.type
class UnitEdge:
    node: OrganizationUnit
    cursor: str


@strawberry.type
class UnitConnection:
    edges: list[UnitEdge]
    page_info: PageInfo
    total_count: int


def unit_from_row(row: UnitRow, as_of: dt.date | None = None) -> OrganizationUnit:
    return OrganizationUnit(
        id=strawberry.ID(str(row.id)), code=row.code, name=row.name, kind=UnitKind(row.kind), status=row.status,
        established_on=row.established_on, parent_id=row.parent_id, as_of=as_of,
    )


async def unit_connection(info: Info[GatewayContext, None], *, parent_id: uuid.UUID | None, kind: UnitKind | None,
                          search: str | None, as_of: dt.date | None, first: int | None, after: str | None
                          ) -> UnitConnection:
    from gateway.read_models import encode_cursor

    size = page_size(first)
    check_cursor(after)
    page = await info.context.read_models.unit_page(
        scope=info.context.scope, day=as_of or today(), parent_id=parent_id, kind=kind.value if kind else None,
        search=search, first=size, after=after)
    edges = [UnitEdge(node=unit_from_row(r, as_of), cursor=encode_cursor(r.code, r.id)) for r in page.rows]
    return UnitConnection(edges=edges, total_count=page.total,
                          page_info=PageInfo(has_next_page=page.has_next, has_previous_page=page.has_previous,
                                             start_cursor=page.start_cursor, end_cursor=page.end_cursor))


async def load_unit(info: Info[GatewayContext, None], unit_id: uuid.UUID, as_of: dt.date | None
                    ) -> OrganizationUnit | None:
    if not await info.context.in_scope(unit_id, as_of):
        return None
    if as_of is not None:
        row = await info.context.read_models.unit_as_of(unit_id, as_of)
    else:
        row = await info.context.loaders.unit.load(unit_id)
    return unit_from_row(row, as_of) if row else None


@strawberry.type
class UnitQueries:
    @strawberry.field(description="One unit, by id or by code (as it stood on `asOf` when given)")
    async def organization_unit(
        self,
        info: Info[GatewayContext, None],
        id: Annotated[strawberry.ID | None, strawberry.argument(description="The unit's UUID")] = None,
        code: Annotated[str | None, strawberry.argument(description="The unit's code")] = None,
        as_of: dt.date | None = None,
    ) -> OrganizationUnit | None:
        if (id is None) == (code is None):
            raise BadUserInput("give exactly one of id or code")
        if id is not None:
            unit_id = parse_id(id)
            return await load_unit(info, unit_id, as_of) if unit_id else None
        assert code is not None
        row = await info.context.read_models.unit_by_code(code)
        return await load_unit(info, row.id, as_of) if row else None

    @strawberry.field(description="Units active on `asOf` (default today), of every level unless filtered")
    async def organization_units(
        self, info: Info[GatewayContext, None], parent_id: strawberry.ID | None = None, kind: UnitKind | None = None,
        search: str | None = None, as_of: dt.date | None = None, first: int | None = 50, after: str | None = None,
    ) -> UnitConnection:
        parent = parse_id(parent_id) if parent_id is not None else None
        if parent_id is not None and parent is None:
            raise BadUserInput("parentId is not an id from this API", field="parentId")
        return await unit_connection(info, parent_id=parent, kind=kind, search=search, as_of=as_of, first=first,
                                     after=after)
