"""Where a partition ends, against the real broker: a reader inside the last record batch is behind."""

from __future__ import annotations

from kafka import TopicPartition

from servicekit import kafka as kafka_setup


def test_a_reader_inside_the_last_record_batch_is_not_taken_for_caught_up(bootstrap_servers: str,
                                                                            topic: str) -> None:
    admin = kafka_setup.new_admin(bootstrap_servers, client_id="test-ends")
    kafka_setup.ensure_topics(admin, {topic: 2})
    admin.close()
    producer = kafka_setup.new_producer(bootstrap_servers, client_id="test-ends")
    for _ in range(3):  # three record batches of ten, as the relay publishes a bulk load
        for n in range(10):
            producer.send(topic, key=b"k", value=str(n).encode(), partition=0)
        producer.flush()
    producer.close()
    full, empty = TopicPartition(topic, 0), TopicPartition(topic, 1)
    probe = kafka_setup.new_consumer(bootstrap_servers, client_id="test-ends-probe")
    try:
        assert kafka_setup.partition_ends(probe, [full, empty], positions={full: 21, empty: 0}) == {full: 30,
                                                                                                      empty: 0}
        assert kafka_setup.partition_ends(probe, [full], positions={full: 30}) == {full: 30}
        behind = kafka_setup.partition_ends(probe, [full], positions={full: 3})
        assert behind[full] > 3, "a reader well behind is seen behind without a fetch"
    finally:
        probe.close()
