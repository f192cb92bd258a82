"""`python -m gateway reconcile`: recount the per-unit counts from the member rows and report every
difference from the incrementally kept ones (there must be none)."""

from __future__ import annotations

from collections import Counter

import psycopg
from psycopg.rows import dict_row

from gateway.projections.members import COLUMNS, contribution


def recount(conn: psycopg.Connection) -> Counter[tuple[str, str, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    with conn.cursor(name="reconcile", row_factory=dict_row) as cur:
        cur.itersize = 10_000
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM members WHERE status IN ('official', 'probationary')")
        for row in cur:
            row["unit_id"] = str(row["unit_id"])
            row["host_unit_id"] = str(row["host_unit_id"]) if row["host_unit_id"] else None
            counts.update(contribution(row))
    return counts


def differences(conn: psycopg.Connection) -> list[tuple[str, str, str, int, int]]:
    """(unit, dimension, value, kept, recounted) for every count that disagrees."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        expected = recount(conn)
        kept = {(str(u), d, v): n for u, d, v, n in conn.execute(
            "SELECT unit_id, dimension, value, count FROM unit_member_counts").fetchall()}
    keys = set(expected) | set(kept)
    return sorted((u, d, v, kept.get((u, d, v), 0), expected.get((u, d, v), 0)) for u, d, v in keys
                  if kept.get((u, d, v), 0) != expected.get((u, d, v), 0))
