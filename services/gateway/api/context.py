"""Per-request GraphQL context: the actor, its scope, typed DataLoaders (no N+1) and the registry client."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext
from strawberry.schema.base import BaseSchema

from gateway.read_models import ReadModels, Scope, UnitRow, vietnam_today
from servicekit.auth import Actor, AuthenticationError


@dataclass
class Loaders:
    unit: DataLoader[uuid.UUID, UnitRow | None]
    member: DataLoader[uuid.UUID, dict[str, Any] | None]


class GatewayContext(BaseContext):
    def __init__(self, *, actor: Actor | None, read_models: ReadModels, registry: Any, authorization: str | None,
                 change_feed: Any = None, legal_basis: str | None = None) -> None:
        super().__init__()
        self.actor = actor
        self.scope = Scope(actor.unit_code if actor else None)
        self.read_models = read_models
        self.registry = registry
        self.authorization = authorization
        self.legal_basis = legal_basis
        """The request's X-Legal-Basis, forwarded with its mutations as the registry reads it."""
        self.change_feed = change_feed
        self.loaders = Loaders(unit=DataLoader(load_fn=read_models.units_by_ids),
                               member=DataLoader(load_fn=self._members_with_their_units))
        self._scopes: dict[dt.date, set[uuid.UUID] | None] = {}
        self.histories: dict[uuid.UUID, asyncio.Future[list[dict[str, Any]]]] = {}
        """Member histories read ahead, beside their members (`member(id)`)."""
        self.verifier: Any = None

    async def _members_with_their_units(self, ids: list[uuid.UUID]) -> list[dict[str, Any] | None]:
        members, units = await self.read_models.members_with_units(ids)
        for unit_id, unit in units.items():
            self.loaders.unit.prime(unit_id, unit)
        return members

    @property
    def pii(self) -> bool:
        return self.actor is not None and self.actor.pii_read

    async def in_scope(self, unit_id: uuid.UUID | None, day: dt.date | None = None) -> bool:
        """Whether the unit lies in the caller's subtree (on `day`, by default today)."""
        if self.scope.unit_code is None:
            return True
        if unit_id is None:
            return False
        day = day or vietnam_today()
        if day not in self._scopes:
            self._scopes[day] = await self.read_models.units_in_scope(self.scope, day)
        allowed = self._scopes[day]
        return allowed is None or unit_id in allowed


class GraphQLEndpoint(GraphQL[GatewayContext, None]):
    """`/graphql` over HTTP (queries, mutations, GraphiQL) and websockets (subscriptions), served by the kit's
    gate without FastAPI's routing: the gate has verified an HTTP request's token and left the actor in its state."""

    def __init__(self, schema: BaseSchema, *, read_models: ReadModels, registry: Any, change_feed: Any,
                 verifier: Any) -> None:
        super().__init__(schema, graphql_ide="graphiql")
        self.read_models = read_models
        self.registry = registry
        self.change_feed = change_feed
        self.verifier = verifier

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> GatewayContext:
        authorization = request.headers.get("authorization")
        if isinstance(request, WebSocket):
            # A websocket is not seen by the HTTP gate: verify its token here (header or connection_init).
            actor = None
            if authorization and self.verifier is not None:
                try:
                    actor = self.verifier.verify(authorization)
                except AuthenticationError:
                    actor = None
            context = GatewayContext(actor=actor, read_models=self.read_models, registry=self.registry,
                                     authorization=authorization, change_feed=self.change_feed)
            context.verifier = self.verifier
            return context
        return GatewayContext(actor=request.scope.get("state", {}).get("actor"), read_models=self.read_models,
                              registry=self.registry, authorization=authorization, change_feed=self.change_feed,
                              legal_basis=request.headers.get("x-legal-basis"))
