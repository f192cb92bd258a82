"""Read models, one module each; `PROJECTIONS` lists them and the projector applies them all."""

from __future__ import annotations

from gateway.projections import figures, members, units
from gateway.projections.base import Projection

# The pre-aggregated statistics are kept by the units and members projections, in the same transactions.
FIGURES = Projection(name="figures", ddl=figures.DDL, handlers={})
PROJECTIONS: tuple[Projection, ...] = (FIGURES, units.PROJECTION, members.PROJECTION)
