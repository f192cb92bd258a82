"""The gateway's projections applied twice from the whole topic are the same as applied once."""

from __future__ import annotations

import uuid

from servicekit.database import CONSUMER_SCHEMA_DDL, connect, migrate
from servicekit.embedded.system import RunningSystem
from tests.e2e.test_gateway_graphql import clients, enrol, establish
from tests.e2e.test_rebuild import TABLES
from tests.support.kit import wait_until


def test_redelivered_events_change_no_projection(system: RunningSystem) -> None:
    from gateway import wiring as gateway_wiring
    from servicekit.consumer import ConsumerSettings, EventConsumer

    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    cell = establish(admin, "grassroots_cell", establish(admin, "commune_committee", city["id"])["id"])
    enrol(admin, cell["id"])
    schema = f"gw_{uuid.uuid4().hex[:8]}"
    migrate(system.database_url, schema=schema, ddl=[CONSUMER_SCHEMA_DDL, *(p.ddl for p in gateway_wiring.PROJECTIONS)])
    consumer = EventConsumer(ConsumerSettings(name="redelivery", database_url=system.database_url, schema=schema,
                                              bootstrap_servers=system.bootstrap_servers,
                                              topics=gateway_wiring.CONSUMED_TOPICS, lease_ttl_s=3),
                             gateway_wiring.dispatcher(gateway_wiring.PROJECTIONS),
                             catalogues=[gateway_wiring.registry_v1.CATALOGUE])
    assert consumer.lease.acquire()

    def caught_up() -> bool:
        consumer.poll_once()
        return bool(consumer.lag) and consumer.total_lag() == 0

    def snapshot() -> dict[str, list[object]]:
        with connect(system.database_url, schema=schema) as conn:
            return {name: conn.execute(query).fetchall() for name, query in TABLES.items()}

    wait_until(caught_up, timeout_s=60, interval_s=0, message="first pass")
    once = snapshot()
    assert once["members"], "the projection is not empty"
    assert consumer._consumer is not None
    for tp in consumer._consumer.assignment():
        consumer._consumer.seek_to_beginning(tp)
    wait_until(caught_up, timeout_s=60, interval_s=0, message="second pass")
    assert snapshot() == once
    consumer.close()
