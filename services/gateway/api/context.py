"""Per-request GraphQL context: the actor and typed DataLoaders (no N+1)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from gateway.read_models import ReadModels, UnitRow
from servicekit.auth import Actor


@dataclass
class Loaders:
    unit: DataLoader[uuid.UUID, UnitRow | None]


class GatewayContext(BaseContext):
    def __init__(self, *, actor: Actor | None, read_models: ReadModels) -> None:
        super().__init__()
        self.actor = actor
        self.read_models = read_models
        self.loaders = Loaders(unit=DataLoader(load_fn=read_models.units_by_ids))


def context_getter_for(read_models: ReadModels) -> Any:
    async def get_context(request: Request) -> GatewayContext:
        return GatewayContext(actor=getattr(request.state, "actor", None), read_models=read_models)

    return get_context
