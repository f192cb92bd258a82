"""Fixtures shared by the kit's integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicekit.pgstore import PostgresEventStore
from tests.integration.test_consumer import EFFECTS_DDL
from tests.support.kit import pg_store


@pytest.fixture
def store(database_url: str, schema: str, topic: str) -> Iterator[PostgresEventStore]:
    """A PostgreSQL store on a fresh schema, with the `effects` tables the consumer tests write."""
    pg, pool = pg_store(database_url, schema, topic)
    with pool.connection() as conn:
        conn.execute(EFFECTS_DDL)
    yield pg
    pool.close()
