"""GraphQL errors with machine codes in `extensions.code`."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError


class BadUserInput(GraphQLError):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        extensions: dict[str, object] = {"code": "BAD_USER_INPUT"}
        if field:
            extensions["field"] = field
        super().__init__(message, extensions=extensions)


class Forbidden(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "FORBIDDEN"})


class CommandRefused(GraphQLError):
    """The registry refused a forwarded command: its problem document's code, status and field."""

    def __init__(self, problem: dict[str, Any], status: int) -> None:
        super().__init__(problem.get("detail") or problem.get("title") or "refused",
                         extensions={"code": problem.get("code", "refused"), "status": status,
                                     "field": problem.get("field")})


class StatisticsPending(GraphQLError):
    """The projector is catching up with a large backlog and counts the statistics once it has: asking again
    later answers (gateway.projections.CatchingUp)."""

    def __init__(self, since: str) -> None:
        super().__init__("the statistics are being recounted after a large backlog; ask again shortly",
                         extensions={"code": "STATISTICS_PENDING", "since": since})
