"""Subscriptions over graphql-transport-ws: members joining, leaving or moving within a subtree.

Every gateway process LISTENs on the projector's channel, so a client of any process hears every change,
whichever process projected it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

import psycopg
import strawberry
from strawberry.types import Info

from gateway.api.common import require_id, today
from gateway.api.context import GatewayContext
from gateway.api.errors import Forbidden
from gateway.projections.members import MEMBER_CHANGES_CHANNEL
from gateway.read_models import TREE_AT

log = logging.getLogger("gateway.subscriptions")


@strawberry.enum
class ChangeKind(enum.Enum):
    JOINED = "joined"
    LEFT = "left"
    MOVED = "moved"


@strawberry.type(description="A member joined, left or moved within the subscribed subtree")
class MemberChange:
    member_id: strawberry.ID
    change: ChangeKind
    from_unit_id: strawberry.ID | None
    to_unit_id: strawberry.ID | None
    effective_on: dt.date


class ChangeFeed:
    """One LISTEN connection per process, fanned out to every subscriber's queue."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {MEMBER_CHANGES_CHANNEL}")
                    async for notice in conn.notifies():
                        change = json.loads(notice.payload)
                        for queue in list(self.queues):
                            queue.put_nowait(change)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("change feed lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(1)

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self.queues.add(queue)
        try:
            yield queue
        finally:
            self.queues.discard(queue)


def authenticate_connection(context: GatewayContext) -> None:
    """A browser cannot set headers on a websocket: take the token from connection_init's payload."""
    from gateway.read_models import Scope
    from servicekit.auth import AuthenticationError

    params = getattr(context, "connection_params", None)
    if context.actor is not None or context.verifier is None or not isinstance(params, dict):
        return
    token = params.get("Authorization") or params.get("authorization")
    try:
        context.actor = context.verifier.verify(token)
    except AuthenticationError:
        return
    context.scope = Scope(context.actor.unit_code)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Members joining, leaving or moving within a unit's subtree")
    async def member_changes(self, info: Info[GatewayContext, None], unit_id: strawberry.ID
                             ) -> AsyncGenerator[MemberChange, None]:
        root = require_id(unit_id, "unitId")
        authenticate_connection(info.context)
        if info.context.actor is None:
            raise Forbidden("a bearer token is required")
        if not await info.context.in_scope(root):
            raise Forbidden("outside your subtree")
        feed: ChangeFeed = info.context.change_feed
        with feed.subscribe() as queue:
            while True:
                change = await queue.get()
                units = [u for u in (change.get("from_unit_id"), change.get("to_unit_id")) if u]
                inside = {str(r["unit_id"]) for r in await info.context.read_models.fetch(
                    TREE_AT + "SELECT unit_id FROM tree WHERE unit_id = ANY(%(units)s::uuid[])",
                    {"roots": [root], "day": today(), "units": units})}
                if not inside:
                    continue
                kind = ChangeKind(change["change"])
                if kind is ChangeKind.MOVED:
                    # Seen from the subtree, a move across its border is an arrival or a departure.
                    came_from_inside = change.get("from_unit_id") in inside
                    went_inside = change.get("to_unit_id") in inside
                    if came_from_inside and not went_inside:
                        kind = ChangeKind.LEFT
                    elif went_inside and not came_from_inside:
                        kind = ChangeKind.JOINED
                yield MemberChange(
                    member_id=strawberry.ID(change["member_id"]), change=kind,
                    from_unit_id=strawberry.ID(change["from_unit_id"]) if change.get("from_unit_id") else None,
                    to_unit_id=strawberry.ID(change["to_unit_id"]) if change.get("to_unit_id") else None,
                    effective_on=dt.date.fromisoformat(change["effective_on"]))

