"""GraphQL types and root fields of organization units."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Annotated

import strawberry
from strawberry.types import Info

from gateway.api.context import GatewayContext
from gateway.read_models import UnitRow


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


@strawberry.interface(description="An object with a global id (the UUID the REST APIs return)")
class Node:
    id: strawberry.ID


@strawberry.type(description="A party organization unit: committee, grassroots organization or cell")
class OrganizationUnit(Node):
    code: str
    name: str
    kind: UnitKind
    status: str
    established_on: dt.date
    parent_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The unit this one sits under")
    async def parent(self, info: Info[GatewayContext, None]) -> OrganizationUnit | None:
        if self.parent_id is None:
            return None
        row = await info.context.loaders.unit.load(self.parent_id)
        return unit_from_row(row) if row else None

    @staticmethod
    def from_row(row: UnitRow) -> OrganizationUnit:
        return unit_from_row(row)


def unit_from_row(row: UnitRow) -> OrganizationUnit:
    return OrganizationUnit(
        id=strawberry.ID(str(row.id)), code=row.code, name=row.name, kind=UnitKind(row.kind), status=row.status,
        established_on=row.established_on, parent_id=row.parent_id,
    )


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@strawberry.type
class UnitQueries:
    @strawberry.field(description="One unit, by id or by code")
    async def organization_unit(
        self,
        info: Info[GatewayContext, None],
        id: Annotated[strawberry.ID | None, strawberry.argument(description="The unit's UUID")] = None,
        code: Annotated[str | None, strawberry.argument(description="The unit's code")] = None,
    ) -> OrganizationUnit | None:
        if (id is None) == (code is None):
            from gateway.api.errors import BadUserInput

            raise BadUserInput("give exactly one of id or code")
        if id is not None:
            unit_id = parse_id(id)
            if unit_id is None:
                return None
            row = await info.context.loaders.unit.load(unit_id)
        else:
            assert code is not None
            row = await info.context.read_models.unit_by_code(code)
        return unit_from_row(row) if row else None

    @strawberry.field(description="Any object by its global id")
    async def node(self, info: Info[GatewayContext, None], id: strawberry.ID) -> Node | None:
        unit_id = parse_id(id)
        if unit_id is None:
            return None
        row = await info.context.loaders.unit.load(unit_id)
        return unit_from_row(row) if row else None
