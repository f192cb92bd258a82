"""The GraphQL schema, composed from one module per type family, with its protective limits."""

from __future__ import annotations

from typing import Any

import psycopg
import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from gateway.api.common import Node
from gateway.api.lists import ListQueries
from gateway.api.members import Member, MemberQueries
from gateway.api.mutations import Mutation
from gateway.api.statistics import StatisticsQueries
from gateway.api.subscriptions import Subscription
from gateway.api.units import OrganizationUnit, UnitQueries

MAX_DEPTH = 10


@strawberry.type
class Query(UnitQueries, MemberQueries, StatisticsQueries, ListQueries):
    @strawberry.field(description="Any object by its global id (the UUID the REST APIs return)")
    async def node(self, info: strawberry.Info, id: strawberry.ID) -> Node | None:
        from gateway.api.common import parse_id
        from gateway.api.members import load_member
        from gateway.api.units import load_unit

        parsed = parse_id(id)
        if parsed is None:
            return None
        unit = await load_unit(info, parsed, None)
        if unit is not None:
            return unit
        return await load_member(info, parsed)


class MaskInternalErrors(MaskErrors):
    """Internal errors leave as "Internal error", except a database that went away (a restart, a failover): that
    one a client should retry, so it says so, with its own code and without the driver's details. The API's pool
    drops each broken connection after the request that found it."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if isinstance(error.original_error, psycopg.OperationalError):
            return GraphQLError("The database is unavailable; retry", nodes=error.nodes, source=error.source,
                                positions=error.positions, path=error.path,
                                extensions={"code": "DATABASE_UNAVAILABLE"})
        return super().anonymise_error(error)


def _internal(error: GraphQLError) -> bool:
    """Mask everything that is not one of our coded errors (no stack traces or SQL in answers)."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


LIMITS: list[Any] = [
    QueryDepthLimiter(max_depth=MAX_DEPTH),
    MaxAliasesLimiter(max_alias_count=30),
    MaxTokensLimiter(max_token_count=2000),
    MaskInternalErrors(should_mask_error=_internal, error_message="Internal error"),
    # Front ends send the same few documents again and again: parse and validate each once (bounded, so many
    # distinct documents cannot grow the memory).
    ParserCache(maxsize=512),
    ValidationCache(maxsize=512),
]

def _code_for(error: GraphQLError) -> str:
    message = error.message.lower()
    if "depth" in message:
        return "QUERY_TOO_DEEP"
    if "alias" in message:
        return "TOO_MANY_ALIASES"
    if "token" in message:
        return "TOO_MANY_TOKENS"
    if error.original_error is None:
        return "GRAPHQL_VALIDATION_FAILED"
    return "INTERNAL_SERVER_ERROR"


class CodedSchema(strawberry.Schema):
    """Every error leaves with a machine code in `extensions.code`, including parse, validation and limit
    refusals that GraphQL itself raises without one."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            if not (error.extensions or {}).get("code"):
                error.extensions = {**(error.extensions or {}), "code": _code_for(error)}
        super().process_errors(errors, execution_context)


schema = CodedSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[OrganizationUnit, Member],
    extensions=LIMITS,
)
