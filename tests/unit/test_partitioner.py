"""The relay's partitioner: the same partition as kafka-python's default for every key, so a stream's events
land where any Kafka client would put them."""

from __future__ import annotations

import random
import uuid

from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_murmur2

from servicekit.kafka import KeyPartitioner, murmur2


class _Cluster:
    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"registry.events.v1"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._partitions if topic in self.topics() else None

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


def test_murmur2_agrees_with_kafka_python_for_keys_of_every_length_and_byte() -> None:
    rng = random.Random(7)
    for length in range(0, 70):
        for _ in range(40):
            key = bytes(rng.randrange(256) for _ in range(length))
            assert murmur2(key) == kafka_murmur2(key), key


def test_a_stream_key_goes_to_the_partition_the_default_partitioner_chooses() -> None:
    ours, theirs = KeyPartitioner(), DefaultPartitioner()
    for partitions in (1, 4, 8, 13):
        cluster = _Cluster(partitions)
        for _ in range(300):
            key = str(uuid.uuid4()).encode()
            assert ours.partition("registry.events.v1", None, key, None, b"", cluster) == \
                theirs.partition("registry.events.v1", None, key, None, b"", cluster)
    keyless = ours.partition("registry.events.v1", None, None, None, b"", _Cluster(4))
    assert keyless in range(4)
