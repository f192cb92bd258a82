"""The projector's temporary work tables: emptied by DELETE, truncated once their dead rows pile up."""

from __future__ import annotations

import psycopg
import pytest

from gateway.projections import base


def test_a_work_table_is_truncated_once_its_dead_rows_pass_the_limit(database_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "TRUNCATE_AFTER_ROWS", 250)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE work (n integer)")

        def fill_and_empty() -> int:
            with conn.transaction():
                conn.execute("INSERT INTO work SELECT generate_series(1, 100)")
                base.empty_work_tables(conn, "work")
            row = conn.execute("SELECT count(*), pg_relation_size('work') FROM work").fetchone()
            assert row is not None and row[0] == 0, "emptied for its next use"
            return int(row[1])

        sizes = [fill_and_empty() for _ in range(3)]
        assert sizes[0] > 0 and sizes[1] >= sizes[0], "deleted rows stay behind until the limit"
        assert sizes[2] == 0, "past 250 dead rows the table is truncated"
