"""The gateway's readiness probe against the real broker: its clients last from one check to the next, and a check
that fails makes them again."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kafka.errors import KafkaConnectionError

from contracts import topics
from gateway import wiring
from gateway.main import ProjectionLagProbe
from servicekit import kafka as kafka_setup
from servicekit.settings import ServiceSettings


@pytest.fixture
def probe(bootstrap_servers: str, database_url: str, tmp_path: Path) -> ProjectionLagProbe:
    admin = kafka_setup.new_admin(bootstrap_servers, client_id="test-readiness")
    try:
        kafka_setup.ensure_topics(admin, {t: topics.PARTITIONS[t] for t in wiring.CONSUMED_TOPICS})
    finally:
        admin.close()
    return ProjectionLagProbe(ServiceSettings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
                                              PARTY_DATA_DIR=tmp_path))


def test_checks_share_the_probes_clients(probe: ProjectionLagProbe) -> None:
    try:
        first = probe.caught_up({})
        clients = (probe._admin, probe._consumer)
        assert probe.caught_up({}) == first
        assert None not in clients
        assert (probe._admin, probe._consumer) == clients, "the second check made its clients again"
    finally:
        probe.close()


def test_a_failed_check_makes_the_clients_again_at_the_next(probe: ProjectionLagProbe,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        expected = probe.caught_up({})
        broken, consumer = probe._admin, probe._consumer

        def broker_gone(*_: object, **__: object) -> None:
            raise KafkaConnectionError("the broker went away")

        monkeypatch.setattr(broken, "describe_topics", broker_gone)
        with pytest.raises(KafkaConnectionError):
            probe.caught_up({})
        assert probe._admin is None and probe._consumer is None
        assert broken._closed and consumer._closed, "the failed check's clients were left open"
        assert probe.caught_up({}) == expected
        assert probe._admin is not broken
    finally:
        probe.close()


def test_a_check_behind_a_stuck_one_answers_not_ready_and_shutdown_closes_the_clients(
        probe: ProjectionLagProbe, monkeypatch: pytest.MonkeyPatch) -> None:
    probe.caught_up({})
    admin, consumer = probe._admin, probe._consumer
    asked, release = threading.Event(), threading.Event()
    describe = admin.describe_topics

    def stuck(*args: object, **kwargs: object) -> object:
        asked.set()
        release.wait(10)
        return describe(*args, **kwargs)

    monkeypatch.setattr(admin, "describe_topics", stuck)
    monkeypatch.setattr(probe, "wait_s", 0.2)
    first = threading.Thread(target=probe.caught_up, args=({},))
    first.start()
    try:
        assert asked.wait(5)
        ready, detail = probe.caught_up({})
        assert not ready and "still waiting for the broker" in detail
        probe.close()  # at shutdown, while the stuck check holds the clients
        assert not admin._closed, "closed under the check that uses it"
    finally:
        release.set()
        first.join(10)
    assert admin._closed and consumer._closed, "the check under way at shutdown left its clients open"
    assert probe.caught_up({}) == (False, "shutting down")
    assert probe._admin is None and probe._consumer is None
