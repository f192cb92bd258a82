"""The registry turns admissions and transfers facts into member events, once, whatever Kafka redelivers."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import admissions_v1, transfers_v1
from contracts.codec import to_json
from contracts.envelope import Envelope
from registry import main as registry_main
from registry.domain.policy import legal_basis
from servicekit import kafka as kafka_setup
from servicekit.consumer import ConsumerSettings, EventConsumer
from tests.support.kit import wait_until
from tests.support.registry import RegistryUnderTest, registry_for


@pytest.fixture
def reg(database_url: str, schema: str, topic: str, tmp_path: Path) -> Iterator[RegistryUnderTest]:
    under_test = registry_for(database_url, schema, topic, tmp_path)
    yield under_test
    under_test.close()


class Publisher:
    """Plays the admissions and transfers services: facts with their stream versions, as their relays would."""

    def __init__(self, bootstrap: str, topics: dict[str, str]) -> None:
        self.topics = topics
        admin = kafka_setup.new_admin(bootstrap, client_id="facts")
        kafka_setup.ensure_topics(admin, dict.fromkeys(topics.values(), 2))
        admin.close()
        self.producer = kafka_setup.new_producer(bootstrap, client_id="facts")
        self.versions: dict[str, int] = {}

    def publish(self, source: str, aggregate_id: str, fact: Any) -> None:
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        event_id = str(uuid.uuid4())
        envelope = Envelope(id=event_id, source=f"/party/{source}", type=f"vn.party.{source}.{fact.event_type}.v1",
                            subject=aggregate_id, time="2026-01-01T00:00:00+00:00", stream_version=version,
                            correlation_id=event_id, causation_id=event_id, actor="tester", command_id=event_id,
                            command_event_count=1)
        self.producer.send(self.topics[source], key=aggregate_id.encode(), value=json.dumps(to_json(fact)).encode(),
                           headers=envelope.to_headers()).get(timeout=10)


def reactions_consumer(reg: RegistryUnderTest, database_url: str, schema: str, bootstrap_servers: str,
                       topic_names: dict[str, str]) -> EventConsumer:
    c = EventConsumer(ConsumerSettings(name="reactions", database_url=database_url, schema=schema,
                                       bootstrap_servers=bootstrap_servers, topics=tuple(topic_names.values()),
                                       lease_ttl_s=5),
                      registry_main.reaction_handler(reg.registry),
                      catalogues=[admissions_v1.CATALOGUE, transfers_v1.CATALOGUE])
    c.retry_interval_s = 0.1
    assert c.lease.acquire()
    return c


def fresh_topics(bootstrap_servers: str) -> tuple[dict[str, str], Publisher]:
    suffix = uuid.uuid4().hex[:8]
    topic_names = {"admissions": f"test.admissions.{suffix}", "transfers": f"test.transfers.{suffix}"}
    return topic_names, Publisher(bootstrap_servers, topic_names)


def test_admission_recognition_and_transfers_become_member_events_once(
    reg: RegistryUnderTest, database_url: str, schema: str, bootstrap_servers: str
) -> None:
    topic_names, facts = fresh_topics(bootstrap_servers)

    def consumer() -> EventConsumer:
        return reactions_consumer(reg, database_url, schema, bootstrap_servers, topic_names)

    city = reg.unit("city_committee")
    ward = reg.unit("commune_committee", city)
    cell, other_cell, host_cell = (reg.unit("grassroots_cell", ward) for _ in range(3))
    application, member_id, transfer = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    facts.publish("admissions", application, admissions_v1.MemberAdmitted(
        application_id=application, member_id=member_id, full_name="Phạm Thị Dung", gender="female",
        birth_date=dt.date(2000, 4, 30), citizen_id=f"{uuid.uuid4().int % 10**12:012d}", unit_id=cell,
        decision_date=dt.date(2025, 5, 1), decision_ref="QĐ 10-QĐ/ĐU", ceremony_date=dt.date(2025, 5, 19),
        probation_ends_on=dt.date(2026, 5, 19)))
    facts.publish("admissions", application, admissions_v1.MemberRecognizedAsOfficial(
        application_id=application, member_id=member_id, official_on=dt.date(2026, 5, 19), decision_ref="QĐ 11"))
    # Topics are not ordered with each other: the transfers come once the member exists, as they would.
    first = consumer()
    wait_until(lambda: first.poll_once() >= 0 and first.applied_total == 2, interval_s=0, message="admission")
    facts.publish("transfers", transfer, transfers_v1.MembershipTransferred(
        transfer_id=transfer, member_id=member_id, kind="temporary", from_unit_id=cell, to_unit_id=host_cell,
        received_on=dt.date(2026, 6, 1), until=dt.date(2026, 12, 1)))
    facts.publish("transfers", transfer, transfers_v1.TemporaryTransferEnded(
        transfer_id=transfer, member_id=member_id, ended_on=dt.date(2026, 9, 1)))
    official_transfer = str(uuid.uuid4())
    facts.publish("transfers", official_transfer, transfers_v1.MembershipTransferred(
        transfer_id=official_transfer, member_id=member_id, kind="official", from_unit_id=cell,
        to_unit_id=other_cell, received_on=dt.date(2026, 10, 1)))


    wait_until(lambda: first.poll_once() >= 0 and first.applied_total == 5, interval_s=0, message="5 facts applied")
    events = reg.events(f"member-{member_id}")
    # Facts about different transfers have different keys: Kafka orders each key, not the pair.
    assert [e.type for e in events[:3]] == ["MemberEnrolled", "MemberRecognizedAsOfficial", "PartyCardIssued"]
    assert sorted(e.type for e in events[3:]) == ["MemberTemporaryHostChanged", "MemberTemporaryHostChanged",
                                                 "MemberUnitChanged"]
    assert events[0].data["source"] == "admission" and events[0].data["status"] == "probationary"
    assert events[0].metadata["legal_basis"] == legal_basis(dt.date(2025, 5, 1)), "the rules of the decision's date"
    assert "294-QĐ/TW" in events[1].metadata["legal_basis"]
    assert events[1].data["official_on"] == "2026-05-19"
    hosts = [e.data["host_unit_id"] for e in events if e.type == "MemberTemporaryHostChanged"]
    assert hosts == [host_cell, None]
    [moved] = [e for e in events if e.type == "MemberUnitChanged"]
    assert moved.data["reason"] == "transfer" and moved.data["transfer_id"] == official_transfer
    state = reg.member_state(member_id)
    assert (state.status, state.unit_id, state.host_unit_id) == ("official", other_cell, None)

    # Redelivery: the same records again, from the start, through a fresh consumer; nothing changes.
    assert first._consumer is not None
    for tp in first._consumer.assignment():
        first._consumer.seek_to_beginning(tp)
    for _ in range(10):
        first.poll_once()
    first.close()
    with reg.registry.pool.connection() as conn:
        conn.execute("DELETE FROM consumer_offsets WHERE consumer = 'reactions'")
    second = consumer()
    for _ in range(20):
        second.poll_once()
    second.close()
    assert len(reg.events(f"member-{member_id}")) == 6


def test_a_fact_the_rules_refuse_is_dead_lettered_and_writes_nothing(
    reg: RegistryUnderTest, database_url: str, schema: str, bootstrap_servers: str
) -> None:
    topic_names, facts = fresh_topics(bootstrap_servers)
    city = reg.unit("city_committee")
    cell = reg.unit("grassroots_cell", reg.unit("commune_committee", city))
    official = reg.member(cell, status="official")
    facts.publish("admissions", str(uuid.uuid4()), admissions_v1.MemberRecognizedAsOfficial(
        application_id=str(uuid.uuid4()), member_id=official, official_on=dt.date(2026, 5, 19),
        decision_ref="QĐ 11"))
    c = reactions_consumer(reg, database_url, schema, bootstrap_servers, topic_names)

    def dead_letters() -> int:
        with reg.registry.pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM consumer_dead_letters WHERE error LIKE %s AND NOT retryable",
                               ("%not-probationary%",)).fetchone()
        return int(row[0]) if row else 0

    wait_until(lambda: c.poll_once() >= 0 and dead_letters() == 1, interval_s=0, message="dead letter")
    c.close()
    assert [e.type for e in reg.events(f"member-{official}")] == ["MemberEnrolled"]


def test_a_transfer_heard_before_the_admission_waits_for_it(
    reg: RegistryUnderTest, database_url: str, schema: str, bootstrap_servers: str
) -> None:
    topic_names, facts = fresh_topics(bootstrap_servers)
    city = reg.unit("city_committee")
    ward = reg.unit("commune_committee", city)
    cell, other = reg.unit("grassroots_cell", ward), reg.unit("grassroots_cell", ward)
    member_id, transfer, application = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    facts.publish("transfers", transfer, transfers_v1.MembershipTransferred(
        transfer_id=transfer, member_id=member_id, kind="official", from_unit_id=cell, to_unit_id=other,
        received_on=dt.date(2026, 10, 1)))
    facts.publish("transfers", transfer, transfers_v1.TemporaryTransferEnded(
        transfer_id=transfer, member_id=member_id, ended_on=dt.date(2026, 10, 2)))
    c = reactions_consumer(reg, database_url, schema, bootstrap_servers, topic_names)
    for _ in range(20):
        c.poll_once()
    assert reg.events(f"member-{member_id}") == [], "the transfer waits for its member"
    facts.publish("admissions", application, admissions_v1.MemberAdmitted(
        application_id=application, member_id=member_id, full_name="Hà Thị Thu", gender="female",
        birth_date=dt.date(1995, 1, 1), citizen_id=f"{uuid.uuid4().int % 10**12:012d}", unit_id=cell,
        decision_date=dt.date(2025, 5, 1), decision_ref="QĐ 10", ceremony_date=dt.date(2025, 5, 19),
        probation_ends_on=dt.date(2026, 5, 19)))
    wait_until(lambda: c.poll_once() >= 0 and len(reg.events(f"member-{member_id}")) >= 2, interval_s=0.05,
               message="the waiting transfer applied")
    for _ in range(10):
        c.poll_once()
    c.close()
    assert [e.type for e in reg.events(f"member-{member_id}")] == ["MemberEnrolled", "MemberUnitChanged"]
    assert reg.member_state(member_id).unit_id == other
    with reg.registry.pool.connection() as conn:
        left = conn.execute("SELECT count(*) FROM consumer_dead_letters").fetchone()
        parked = conn.execute("SELECT count(*) FROM consumer_parked").fetchone()
    assert left == (0,) and parked == (0,), "the fact that ends nothing is a no-op, not a dead letter"
