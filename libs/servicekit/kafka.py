"""kafka-python settings chosen on purpose (kafka-python 3 changed defaults), and topic administration.

Measured on this machine: a produce -> consume round trip is ~3 ms p50 with `linger_ms=0` and a short
`fetch_max_wait_ms`, ~133 ms with the defaults; kafka-python produces ~15,000 records/s per process
whatever the batching, so the relay batches by flushing, not by lingering.
"""

from __future__ import annotations

import contextlib
import struct
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner import DefaultPartitioner

_MURMUR_M = 0x5BD1E995
_WORD = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's `Utils.murmur2`, which kafka-python copies byte by byte), with the key
    read in 32-bit words at once: the same partition for every key in half the time. kafka-python's own took a
    fifth of the relay's CPU in a bulk load."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _MURMUR_M) & _WORD
        k ^= k >> 24
        h = ((h * _MURMUR_M) & _WORD) ^ ((k * _MURMUR_M) & _WORD)
    tail = data[words << 2:]
    if tail:
        if len(tail) >= 3:
            h ^= tail[2] << 16
        if len(tail) >= 2:
            h ^= tail[1] << 8
        h = ((h ^ tail[0]) * _MURMUR_M) & _WORD
    h ^= h >> 13
    h = (h * _MURMUR_M) & _WORD
    return h ^ (h >> 15)


class KeyPartitioner(DefaultPartitioner):  # type: ignore[misc]
    """kafka-python's default partitioner (a key's murmur2, positive, modulo the partitions; no key: any
    available partition) on the faster hash above."""

    def partition(self, topic: str, key: Any, serialized_key: bytes | None, value: Any, serialized_value: Any,
                  cluster: Any) -> int:
        partitions = cluster.partitions_for_topic(topic)
        if serialized_key is None or not partitions:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)  # type: ignore[no-any-return]
        partitions = sorted(partitions)
        return partitions[(murmur2(serialized_key) & 0x7FFFFFFF) % len(partitions)]  # type: ignore[no-any-return]

PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    # Idempotence keeps order with up to 5 in-flight requests per connection.
    "max_in_flight_requests_per_connection": 5,
    "retries": 5,
    # The relay flushes each batch it sends, so lingering adds no latency: it only gathers a batch's records
    # into one record batch per partition. Sent as they come (linger 1 ms), a bulk load became record
    # batches of 1-5 records, and Tansu's in-memory log serves one record batch per fetch, found by a scan
    # that grows with the log: consuming 170,000 such records took hours (measured, bench/RESULTS.md).
    "linger_ms": 1_000,
    "batch_size": 1 << 20,
    "max_request_size": 1 << 20,
    "compression_type": None,
    # A missing topic must fail fast and send the relay to its topic check, not be auto-created.
    "allow_auto_create_topics": False,
    "max_block_ms": 5_000,
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 30_000,
    "reconnect_backoff_ms": 50,
    "reconnect_backoff_max_ms": 1_000,
}

CONSUMER_SETTINGS: dict[str, Any] = {
    # Progress lives in PostgreSQL with the effects; Kafka offsets are never committed.
    "enable_auto_commit": False,
    # An offset out of range (broker lost its log) restarts from the beginning; versions drop repeats.
    "auto_offset_reset": "earliest",
    "fetch_max_wait_ms": 5,
    "fetch_min_bytes": 1,
    "max_poll_records": 2_000,
    "max_partition_fetch_bytes": 4 << 20,
    "allow_auto_create_topics": False,
    # Topic ids come from metadata; refreshing it often is how a consumer notices a lost broker.
    "metadata_max_age_ms": 2_000,
    "reconnect_backoff_ms": 50,
    "reconnect_backoff_max_ms": 1_000,
    "request_timeout_ms": 10_000,
}


def new_producer(bootstrap_servers: str, *, client_id: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap_servers, client_id=client_id, partitioner=KeyPartitioner(),
                         **PRODUCER_SETTINGS)


END_PROBE_FETCH_WAIT_MS = 500


def new_end_probe(bootstrap_servers: str, *, client_id: str) -> KafkaConsumer:
    """A consumer for `partition_ends`. It fetches only records known to be there, which Tansu answers as soon as
    it has read them, so it can ask for a long wait; with a live consumer's few milliseconds, a Tansu whose
    in-memory log had taken well over 100,000 live commands answered every fetch empty, and the gateway's
    readiness stayed "no fetch answered" for good."""
    return new_consumer(bootstrap_servers, client_id=client_id, fetch_max_wait_ms=END_PROBE_FETCH_WAIT_MS)


def new_consumer(bootstrap_servers: str, *, client_id: str, **overrides: Any) -> KafkaConsumer:
    # No group: partitions are assigned by hand. Tansu makes a dynamic member's JoinGroup wait half
    # the session timeout (23 s with kafka-python defaults), and each consumer's progress is in
    # PostgreSQL anyway; one active consumer per name is guaranteed by a lease instead.
    return KafkaConsumer(bootstrap_servers=bootstrap_servers, client_id=client_id, group_id=None,
                         **{**CONSUMER_SETTINGS, **overrides})


def partition_ends(probe: KafkaConsumer, partitions: Sequence[TopicPartition], *,
                   positions: Mapping[TopicPartition, int] | None = None, timeout_s: float = 5.0
                   ) -> dict[TopicPartition, int]:
    """Where each partition ends, as far as a reader at `positions` needs to know.

    Tansu answers ListOffsets(latest) with its last record batch's base offset + 1, not the offset after its
    last record (measured: 21 for 30 records in three batches of ten), so a reader inside the last batch would
    look caught up. A fetch's high watermark is right. Where ListOffsets already shows the reader behind, that
    is enough; elsewhere `probe` (a consumer used for nothing else, from `new_end_probe`: its assignment is
    replaced) fetches the last batch and the high watermark that came with it is the end.
    """
    reported: dict[TopicPartition, int] = probe.end_offsets(list(partitions))
    known = positions or {}
    unsure = [tp for tp in partitions if reported[tp] > 0 and known.get(tp, reported[tp]) >= reported[tp]]
    if not unsure:
        return reported
    ends = dict(reported)
    probe.assign(unsure)
    for tp in unsure:
        probe.seek(tp, reported[tp] - 1)
    deadline = time.monotonic() + timeout_s
    pending = set(unsure)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no fetch answered for {sorted(map(str, pending))}")
        for tp in probe.poll(timeout_ms=100):
            if tp in pending:
                ends[tp] = max(ends[tp], probe.highwater(tp) or 0)
                pending.discard(tp)
    return ends


def new_admin(bootstrap_servers: str, *, client_id: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=10_000,
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=1_000,
    )


def topic_ids(admin: KafkaAdminClient, topics: list[str]) -> dict[str, str]:
    """The current id of each existing topic (absent ones are left out)."""
    return ids_of(admin.describe_topics(topics))


def ids_of(descriptions: list[dict[str, Any]]) -> dict[str, str]:
    """The id of each existing topic in an answer of `describe_topics` (absent ones are left out)."""
    found: dict[str, str] = {}
    for described in descriptions:
        if described.get("error_code", 0) == 0 and described.get("topic_id"):
            topic_id = str(described["topic_id"])
            if topic_id != str(uuid.UUID(int=0)):
                found[described["name"]] = topic_id
    return found


def ensure_topics(admin: KafkaAdminClient, partitions: dict[str, int]) -> dict[str, str]:
    """Create missing topics explicitly with their partition count; return every topic's id."""
    existing = topic_ids(admin, list(partitions))
    missing = {t: n for t, n in partitions.items() if t not in existing}
    if missing:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(
                {t: {"num_partitions": n, "replication_factor": 1} for t, n in missing.items()},
                raise_errors=True,
            )
        existing = topic_ids(admin, list(partitions))
    return existing
