"""Building blocks for kit tests: stores on a fresh schema, metadata, and reading a topic back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from psycopg_pool import ConnectionPool

from contracts.envelope import Envelope
from servicekit import kafka as kafka_setup
from servicekit.database import CONSUMER_SCHEMA_DDL, KIT_SCHEMA_DDL, connect_pool, migrate
from servicekit.events import EventMetadata, NewEvent
from servicekit.pgstore import PostgresEventStore


def metadata(actor: str = "test") -> EventMetadata:
    command = uuid.uuid4()
    return EventMetadata(actor=actor, command_id=command, correlation_id=command, causation_id=command)


def event(n: int = 0, type_: str = "OrganizationUnitEstablished") -> NewEvent:
    return NewEvent(type=type_, data={"n": n})


def pg_store(database_url: str, schema: str, topic: str, *, max_size: int = 10) -> tuple[PostgresEventStore,
                                                                                         ConnectionPool]:
    migrate(database_url, schema=schema, ddl=[KIT_SCHEMA_DDL, CONSUMER_SCHEMA_DDL])
    pool = connect_pool(database_url, schema=schema, min_size=1, max_size=max_size)
    return PostgresEventStore(pool, schema=schema, topic=topic), pool


@dataclass(frozen=True)
class Published:
    key: str
    version: int
    event_id: str
    offset: int
    partition: int
    envelope: Envelope
    value: bytes


def read_topic(bootstrap_servers: str, topic: str, *, expect_at_least: int, timeout_s: float = 60.0) -> list[Published]:
    """Every record on the topic (all partitions, from the start), once at least `expect_at_least` arrived."""
    admin = kafka_setup.new_admin(bootstrap_servers, client_id="test-reader")
    try:
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    partitions = [TopicPartition(topic, p["partition_index"]) for p in described[0]["partitions"]]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=10)
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list[Published] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            for part in consumer.poll(timeout_ms=200).values():
                for r in part:
                    env = Envelope.from_headers(r.headers)
                    records.append(Published(r.key.decode(), env.stream_version, env.id, r.offset, r.partition,
                                             env, r.value))
            if len(records) >= expect_at_least:
                ends = consumer.end_offsets(partitions)
                if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                    return records
            if time.monotonic() > deadline:
                return records
    finally:
        consumer.close()


def wait_until(condition: Callable[[], Any], *, timeout_s: float = 30.0, interval_s: float = 0.05,
               message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


def apply_like_a_consumer(records: list[Published]) -> dict[str, int]:
    """What a version-checking consumer ends with per key: the last version applied in sequence."""
    last: dict[str, int] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        if r.version == last.get(r.key, 0) + 1:
            last[r.key] = r.version
    return last
