"""PostgreSQL connection pools scoped to one service's schema, and the kit's own tables."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

LEASES_DDL = """
CREATE TABLE IF NOT EXISTS leases (
    name text PRIMARY KEY,
    epoch bigint NOT NULL,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
);
"""

KIT_SCHEMA_DDL = LEASES_DDL + """
CREATE TABLE IF NOT EXISTS events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    schema_version smallint NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_by_commit_order ON events (xid, position);

-- The outbox is a work queue, not a cursor over the log: a row leaves it only once Kafka acknowledged
-- it, so a transaction that commits late is simply picked up late (no sequence-gap hazard).
CREATE TABLE IF NOT EXISTS outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position bigint NOT NULL,
    topic text NOT NULL
);

CREATE TABLE IF NOT EXISTS unique_claims (
    scope text NOT NULL,
    value text NOT NULL,
    owner text NOT NULL,
    PRIMARY KEY (scope, value)
);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    response jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);


CREATE TABLE IF NOT EXISTS relay_topics (
    topic text PRIMARY KEY,
    topic_id text NOT NULL
);
"""

CONSUMER_SCHEMA_DDL = LEASES_DDL + """
CREATE TABLE IF NOT EXISTS consumer_streams (
    consumer text NOT NULL,
    stream_id text NOT NULL,
    version integer NOT NULL,
    poisoned_at_version integer,
    PRIMARY KEY (consumer, stream_id)
);

CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    topic_id text NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

CREATE TABLE IF NOT EXISTS consumer_commands (
    consumer text NOT NULL,
    command_id uuid NOT NULL,
    expected integer NOT NULL,
    applied integer NOT NULL,
    PRIMARY KEY (consumer, command_id)
);

CREATE TABLE IF NOT EXISTS consumer_dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    stream_id text,
    version integer,
    error text NOT NULL,
    key bytea,
    value bytea,
    headers jsonb NOT NULL,
    forwarded boolean NOT NULL DEFAULT false,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
-- A record whose handler said "not yet" (it depends on another key's fact) waits here and is retried.
ALTER TABLE consumer_dead_letters ADD COLUMN IF NOT EXISTS retryable boolean NOT NULL DEFAULT false;

-- Events of a key whose earlier event was dead-lettered wait here, in order, until it is resolved.
CREATE TABLE IF NOT EXISTS consumer_parked (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer text NOT NULL,
    stream_id text NOT NULL,
    version integer NOT NULL,
    topic text NOT NULL,
    key bytea,
    value bytea,
    headers jsonb NOT NULL
);
"""


def connect_pool(database_url: str, *, schema: str, min_size: int = 1, max_size: int = 10) -> ConnectionPool:
    """A pool whose connections see `schema` first; the pool opens and checks its first connection."""

    def configure(conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
        conn.commit()

    pool = ConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        configure=configure,
        kwargs={"autocommit": False},
        open=True,
        name=f"{schema}-pool",
    )
    pool.wait(timeout=30)
    return pool


def connect(database_url: str, *, schema: str, autocommit: bool = False) -> psycopg.Connection:
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    conn.autocommit = autocommit
    return conn


def migrate(database_url: str, *, schema: str, ddl: Iterable[str]) -> None:
    """Create the schema and run idempotent DDL, serialized across processes by an advisory lock."""
    with psycopg.connect(database_url, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('party-migrate'))")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
        for statement in ddl:
            conn.execute(statement.encode())
        conn.commit()


def notify_channel(schema: str) -> str:
    return f"outbox_{schema}"
