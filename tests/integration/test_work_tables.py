"""The projector's temporary work tables: made once per session, emptied by DELETE, truncated once their dead rows
pile up."""

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


def test_several_work_tables_are_emptied_in_one_round_trip_and_each_counts_its_dead_rows(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "TRUNCATE_AFTER_ROWS", 150)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE small_work (n integer); CREATE TEMP TABLE large_work (n integer)")
        for _ in range(2):
            with conn.transaction():
                conn.execute("INSERT INTO small_work SELECT generate_series(1, 10)")
                conn.execute("INSERT INTO large_work SELECT generate_series(1, 100)")
                base.empty_work_tables(conn, "small_work", "large_work")
        row = conn.execute("SELECT (SELECT count(*) FROM small_work), (SELECT count(*) FROM large_work),"
                           " pg_relation_size('small_work'), pg_relation_size('large_work')").fetchone()
        assert row is not None and row[:2] == (0, 0), "both emptied"
        assert row[2] > 0, "20 dead rows: kept"
        assert row[3] == 0, "200 dead rows: past the limit, truncated"


def test_work_tables_made_outside_a_transaction_are_made_once_and_outlive_a_rolled_back_batch(
        database_url: str) -> None:
    ddl = "CREATE TEMP TABLE IF NOT EXISTS session_work (n integer)"
    with psycopg.connect(database_url, autocommit=True) as conn:
        base.create_work_tables(conn, "session", ddl)
        assert base.session_holds(conn, "session")
        with pytest.raises(ZeroDivisionError), conn.transaction():
            base.create_work_tables(conn, "session", ddl)
            conn.execute("INSERT INTO session_work VALUES (1)")
            raise ZeroDivisionError
        row = conn.execute("SELECT count(*) FROM session_work").fetchone()
        assert row == (0,), "the table is still there after the rollback"


def test_work_tables_made_inside_a_transaction_are_made_again_after_a_rollback(database_url: str) -> None:
    ddl = "CREATE TEMP TABLE IF NOT EXISTS batch_work (n integer)"
    with psycopg.connect(database_url, autocommit=True) as conn:
        with pytest.raises(ZeroDivisionError), conn.transaction():
            base.create_work_tables(conn, "batch", ddl)
            raise ZeroDivisionError
        assert not base.session_holds(conn, "batch"), "a rollback could take it away: not counted on"
        with conn.transaction():
            base.create_work_tables(conn, "batch", ddl)
            conn.execute("INSERT INTO batch_work VALUES (1)")
        row = conn.execute("SELECT count(*) FROM batch_work").fetchone()
        assert row == (1,)


def test_the_projector_prepares_its_work_tables_on_every_connection_it_makes(
        database_url: str, bootstrap_servers: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import wiring as gateway_wiring
    from servicekit.settings import ServiceSettings

    monkeypatch.setattr(gateway_wiring, "SCHEMA", schema)
    settings = ServiceSettings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers)
    gateway_wiring.migrate_gateway(settings)
    projector = gateway_wiring.projector(settings)
    try:
        for _ in range(2):
            conn = projector._conn
            assert all(base.session_holds(conn, name) for name in ("figures", "units_stage", "members_stage"))
            row = conn.execute("SELECT current_setting('work_mem'), to_regclass('figures_changes') IS NOT NULL,"
                               " to_regclass('members_stage') IS NOT NULL").fetchone()
            assert row == ("64MB", True, True)
            projector._reconnect_database()
    finally:
        projector.close()
