"""The GraphQL schema, composed from one module per type family."""

from __future__ import annotations

import strawberry

from gateway.api.units import OrganizationUnit, UnitQueries


@strawberry.type
class Query(UnitQueries):
    pass


schema = strawberry.Schema(query=Query, types=[OrganizationUnit])
