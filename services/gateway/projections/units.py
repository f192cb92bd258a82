"""Organization units: every fact, the effective-dated versions derived from them, and the current row."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from gateway.projections import figures
from gateway.projections.base import Projection, copy_rows, record_facts, upsert_rows
from gateway.projections.history import Fact, recorded_day, unit_versions
from gateway.projections.text import fold
from servicekit.consumer import ConsumedEvent

DDL = """
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

CREATE TABLE IF NOT EXISTS unit_facts (
    unit_id uuid NOT NULL,
    seq integer NOT NULL,
    effective_on date NOT NULL,
    event_type text NOT NULL,
    data jsonb NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor text,
    PRIMARY KEY (unit_id, seq)
);

-- One row per period in which a unit had the same parent, name, kind and status: [valid_from, valid_to).
CREATE TABLE IF NOT EXISTS unit_versions (
    unit_id uuid NOT NULL,
    valid_from date NOT NULL,
    valid_to date NOT NULL,
    code text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    parent_id uuid,
    status text NOT NULL,
    PRIMARY KEY (unit_id, valid_from)
);
CREATE INDEX IF NOT EXISTS unit_versions_children ON unit_versions (parent_id, valid_from, valid_to);

CREATE TABLE IF NOT EXISTS units (
    id uuid PRIMARY KEY,
    code text NOT NULL,
    name text NOT NULL,
    search_name text NOT NULL DEFAULT '',
    kind text NOT NULL,
    parent_id uuid,
    status text NOT NULL,
    established_on date NOT NULL,
    ended_on date,
    decision_ref text,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS units_by_code ON units (code, status);
CREATE INDEX IF NOT EXISTS units_by_parent ON units (parent_id);
CREATE INDEX IF NOT EXISTS units_by_kind ON units (kind, status);
CREATE INDEX IF NOT EXISTS units_search ON units USING gin (search_name gin_trgm_ops);
"""

UNIT_EVENTS = ("OrganizationUnitEstablished", "OrganizationUnitRenamed", "OrganizationUnitReattached",
               "OrganizationUnitsMerged", "OrganizationUnitSplit", "OrganizationUnitDissolved")



def apply_unit_event(conn: psycopg.Connection, event: ConsumedEvent) -> None:
    apply_unit_events(conn, [event])


def apply_unit_events(conn: psycopg.Connection, events: list[ConsumedEvent]) -> None:
    """Facts first, then each touched unit's versions derived again from all its facts, in a few statements."""
    facts = [(event, _effective(event.event_type, event.data, recorded_day(event.envelope.time)))
             for event in events]
    record_facts(conn, table="unit_facts", key="unit_id", facts=facts)
    first_event: dict[str, ConsumedEvent] = {}
    last_event: dict[str, ConsumedEvent] = {}
    for event in events:
        first_event.setdefault(event.aggregate_id, event)
        last_event[event.aggregate_id] = event
    unit_ids = list(first_event)
    by_unit: dict[str, list[Fact]] = {unit_id: [] for unit_id in unit_ids}
    for r in conn.execute("SELECT unit_id::text, effective_on, seq, event_type, data FROM unit_facts"
                          " WHERE unit_id = ANY(%b::text[]::uuid[]) ORDER BY unit_id, seq", (unit_ids,)).fetchall():
        by_unit[r[0]].append(Fact(r[1], r[2], r[3], r[4]))
    version_rows: list[tuple[Any, ...]] = []
    unit_rows: list[tuple[Any, ...]] = []
    for unit_id in unit_ids:
        versions = unit_versions(by_unit[unit_id])
        if not versions:
            continue
        version_rows += [(unit_id, v.valid_from, v.valid_to, v.code, v.name, v.kind, v.parent_id, v.status)
                         for v in versions]
        latest, first = versions[-1], versions[0]
        ended = latest.valid_from if latest.status != "active" else None
        unit_rows.append((unit_id, latest.code, latest.name, fold(f"{latest.code} {latest.name}"), latest.kind,
                          latest.parent_id, latest.status, first.valid_from, ended,
                          first_event[unit_id].data.get("decision_ref"), last_event[unit_id].version))

    def rewrite_versions() -> None:
        conn.execute("DELETE FROM unit_versions WHERE unit_id = ANY(%b::text[]::uuid[])", (unit_ids,))
        copy_rows(conn, "unit_versions",
                  ("unit_id", "valid_from", "valid_to", "code", "name", "kind", "parent_id", "status"), version_rows)

    figures.units_changed(conn, unit_ids, rewrite_versions)
    upsert_rows(conn, "units", "id", UNIT_COLUMNS, unit_rows, kept=("established_on", "decision_ref"))


UNIT_COLUMNS = ("id", "code", "name", "search_name", "kind", "parent_id", "status", "established_on", "ended_on",
                "decision_ref", "version")


def _effective(event_type: str, data: dict[str, Any], recorded: dt.date) -> dt.date:
    value = data.get("effective_on") or data.get("established_on")
    return dt.date.fromisoformat(value) if value else recorded


PROJECTION = Projection(
    name="units",
    ddl=DDL,
    handlers={("registry", t): apply_unit_event for t in UNIT_EVENTS},
    apply_many=apply_unit_events,
)
