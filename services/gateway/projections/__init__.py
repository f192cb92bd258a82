"""Read models, one module each; `PROJECTIONS` lists them and the projector applies them all."""

from __future__ import annotations

import psycopg

from gateway.projections import figures, members, units
from gateway.projections.base import Projection, create_stage

# The pre-aggregated statistics are kept by the units and members projections, in the same transactions.
FIGURES = Projection(name="figures", ddl=figures.DDL, handlers={})
PROJECTIONS: tuple[Projection, ...] = (FIGURES, units.PROJECTION, members.PROJECTION)


def prepare_session(conn: psycopg.Connection) -> None:
    """A projector connection's temporary work tables and settings, made once (servicekit.consumer runs this on
    every new connection, outside any transaction)."""
    figures.prepare_session(conn)
    for table in ("units", "members"):
        create_stage(conn, table)


def count_deferred(conn: psycopg.Connection) -> None:
    """What the projections leave alone while figures.DEFERRED is set (a rebuild), counted from their rows: the
    statistics' ancestry and running sums, and the per-unit counts."""
    figures.recount(conn)
    members.recount_unit_counts(conn)
