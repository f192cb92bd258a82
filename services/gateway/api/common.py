"""Shared GraphQL pieces: the Node interface, page info, paging arguments."""

from __future__ import annotations

import datetime as dt
import uuid

import strawberry

from gateway.api.errors import BadUserInput

MAX_PAGE = 200


@strawberry.interface(description="An object with a global id (the UUID the REST APIs return)")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def page_size(first: int | None) -> int:
    if first is None:
        return 50
    if first < 0 or first > MAX_PAGE:
        raise BadUserInput(f"first is between 0 and {MAX_PAGE}", field="first")
    return first


def parse_id(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def require_id(value: str, field: str) -> uuid.UUID:
    parsed = parse_id(value)
    if parsed is None:
        raise BadUserInput(f"{field} is not an id from this API", field=field)
    return parsed


def today() -> dt.date:
    from gateway.read_models import vietnam_today

    return vietnam_today()


def check_cursor(after: str | None) -> None:
    from gateway.read_models import decode_cursor

    if after is not None:
        try:
            decode_cursor(after)
        except ValueError:
            raise BadUserInput("after is not a cursor from this API", field="after") from None
