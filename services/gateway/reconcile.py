"""`python -m gateway reconcile`: recount the per-unit counts from the member rows and report every
difference from the incrementally kept ones (there must be none)."""

from __future__ import annotations

import psycopg

from gateway.projections.members import unit_counts


def differences(conn: psycopg.Connection) -> list[tuple[str, str, str, int, int]]:
    """(unit, dimension, value, kept, recounted) for every count that disagrees."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        expected = unit_counts(conn)
        kept = {(str(u), d, v): n for u, d, v, n in conn.execute(
            "SELECT unit_id, dimension, value, count FROM unit_member_counts").fetchall()}
    keys = set(expected) | set(kept)
    return sorted((u, d, v, kept.get((u, d, v), 0), expected.get((u, d, v), 0)) for u, d, v in keys
                  if kept.get((u, d, v), 0) != expected.get((u, d, v), 0))
