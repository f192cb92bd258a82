"""Read models, one module each; `PROJECTIONS` lists them and the projector applies them all."""

from __future__ import annotations

from gateway.projections import members, units
from gateway.projections.base import Projection

PROJECTIONS: tuple[Projection, ...] = (units.PROJECTION, members.PROJECTION)
