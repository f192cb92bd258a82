"""The organization units read model."""

from __future__ import annotations

import psycopg

from gateway.projections.base import Projection
from servicekit.consumer import ConsumedEvent

DDL = """
CREATE TABLE IF NOT EXISTS units (
    id uuid PRIMARY KEY,
    code text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    parent_id uuid,
    status text NOT NULL,
    established_on date NOT NULL,
    decision_ref text,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS units_by_code ON units (code, status);
CREATE INDEX IF NOT EXISTS units_by_parent ON units (parent_id);
"""


def unit_established(conn: psycopg.Connection, event: ConsumedEvent) -> None:
    d = event.data
    conn.execute(
        "INSERT INTO units (id, code, name, kind, parent_id, status, established_on, decision_ref, version)"
        " VALUES (%s, %s, %s, %s, %s, 'active', %s, %s, %s)",
        (d["unit_id"], d["code"], d["name"], d["kind"], d["parent_id"], d["established_on"], d.get("decision_ref"),
         event.version),
    )


PROJECTION = Projection(
    name="units",
    ddl=DDL,
    handlers={("registry", "OrganizationUnitEstablished"): unit_established},
)
