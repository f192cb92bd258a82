"""GraphQL errors with machine codes in `extensions.code`."""

from __future__ import annotations

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
