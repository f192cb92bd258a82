"""A rebuild from offset zero ends identical to the live projections and swaps in while the system runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from servicekit.database import connect
from servicekit.embedded.system import RunningSystem
from servicekit.settings import ServiceSettings
from tests.e2e.test_gateway_graphql import a_ward_of_cells, clients, enrol, establish, gql, member_ids

TABLES = {
    "units": "SELECT * FROM units ORDER BY id",
    "unit_versions": "SELECT * FROM unit_versions ORDER BY unit_id, valid_from",
    "members": "SELECT * FROM members ORDER BY member_id",
    "member_intervals": "SELECT * FROM member_intervals ORDER BY member_id, valid_from",
    "unit_member_counts": "SELECT * FROM unit_member_counts WHERE count <> 0 ORDER BY unit_id, dimension, value",
    "member_facts": "SELECT member_id, seq, effective_on, event_type, data FROM member_facts ORDER BY 1, 2",
    "unit_ancestry": "SELECT * FROM unit_ancestry ORDER BY unit_id, ancestor_id, lo",
    "member_transitions": "SELECT * FROM member_transitions ORDER BY member_id, day",
    "statistics_deltas": "SELECT * FROM statistics_deltas WHERE delta <> 0 ORDER BY root_id, grain, period_start,"
                         " dimension, value",
}


def snapshot(database_url: str) -> dict[str, list[Any]]:
    with connect(database_url, schema="gateway") as conn:
        return {name: conn.execute(query).fetchall() for name, query in TABLES.items()}


def wait_caught_up(system: RunningSystem) -> None:
    import time

    import httpx

    deadline = time.monotonic() + 30
    while httpx.get(f"{system.url('gateway')}/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the gateway never caught up"
        time.sleep(0.1)


def projector_for(system: RunningSystem, *, batched: bool) -> Callable[[str], Any]:
    """The gateway's projector on another schema: event by event, or a poll's events at once."""
    from gateway import wiring as gateway_wiring
    from servicekit.consumer import ConsumerSettings, EventConsumer

    def make_consumer(schema: str) -> EventConsumer:
        return EventConsumer(ConsumerSettings(name=gateway_wiring.PROJECTOR, database_url=system.database_url,
                                              schema=schema, bootstrap_servers=system.bootstrap_servers,
                                              topics=gateway_wiring.CONSUMED_TOPICS, lease_ttl_s=3),
                             gateway_wiring.dispatcher(gateway_wiring.PROJECTIONS),
                             catalogues=[gateway_wiring.registry_v1.CATALOGUE],
                             batch_handler=(gateway_wiring.batch_dispatcher(gateway_wiring.PROJECTIONS) if batched
                                            else None))

    return make_consumer


def test_a_rebuild_ends_identical_to_the_live_projections_and_keeps_serving(system: RunningSystem) -> None:
    from gateway import wiring as gateway_wiring
    from gateway.rebuild import rebuild

    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward = establish(admin, "commune_committee", city["id"])
    cell = establish(admin, "grassroots_cell", ward["id"])
    enrol(admin, cell["id"], "Ngô Văn Tâm")
    wait_caught_up(system)
    before = snapshot(system.database_url)
    settings = ServiceSettings(DATABASE_URL=system.database_url, KAFKA_BOOTSTRAP_SERVERS=system.bootstrap_servers,
                               PARTY_DATA_DIR=system.data_dir)

    applied = rebuild(settings, live_schema="gateway", make_consumer=projector_for(system, batched=False),
                      ddl=[p.ddl for p in gateway_wiring.PROJECTIONS])
    assert applied >= len(before["member_facts"])
    after = snapshot(system.database_url)
    for name in TABLES:
        assert after[name] == before[name], f"{name} differs after the rebuild"
    with connect(system.database_url, schema="gateway") as conn:
        unanalyzed = conn.execute("SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'gateway'"
                                  " AND last_analyze IS NULL").fetchall()
    assert unanalyzed == [], "the API plans its first statements after the swap on these tables' statistics"

    # The live projector carries on in the swapped-in schema: a new member shows up.
    newcomer = enrol(admin, cell["id"], "Ngô Thị Hạnh")
    assert newcomer in member_ids(admin, cell["id"])
    assert gql(admin, "query($u: ID!) { organizationUnit(id: $u) { code } }", u=ward["id"])["organizationUnit"]



def test_a_rebuild_in_shares_ends_identical_to_the_live_projections(system: RunningSystem,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two forked processes apply the topic side by side, each its share of the partitions, then one reads what
    they left with every partition; the statistics are counted once, with their key's index made after."""
    import gateway.rebuild as rebuilding
    from gateway import wiring as gateway_wiring

    admin = clients(system)
    _, cells = a_ward_of_cells(admin, cells=2, members=8, name="Phan Văn Số")
    wait_caught_up(system)
    before = snapshot(system.database_url)
    settings = ServiceSettings(DATABASE_URL=system.database_url, KAFKA_BOOTSTRAP_SERVERS=system.bootstrap_servers,
                               PARTY_DATA_DIR=system.data_dir)
    by_shares: list[int] = []
    in_shares = rebuilding._in_shares

    def counted(*args: Any, **kwargs: Any) -> int:
        by_shares.append(in_shares(*args, **kwargs))
        return by_shares[-1]

    monkeypatch.setattr(rebuilding, "_in_shares", counted)
    applied = rebuilding.rebuild(settings, live_schema="gateway", make_consumer=projector_for(system, batched=True),
                                 ddl=[p.ddl for p in gateway_wiring.PROJECTIONS], workers=2)
    assert by_shares and by_shares[0] >= len(before["member_facts"]), "the shares applied the history"
    assert applied >= by_shares[0]
    after = snapshot(system.database_url)
    for name in TABLES:
        assert after[name] == before[name], f"{name} differs after the rebuild in shares"
    with connect(system.database_url, schema="gateway") as conn:
        key = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                           " WHERE conname = 'statistics_deltas_pkey'"
                           " AND conrelid = 'statistics_deltas'::regclass").fetchone()
    assert key == ("PRIMARY KEY (root_id, grain, period_start, dimension, value)",)

    newcomer = enrol(admin, cells[0]["id"], "Phan Thị Mới")
    assert newcomer in member_ids(admin, cells[0]["id"])


def test_a_share_that_fails_stops_the_rebuild_and_leaves_the_live_projections_alone(system: RunningSystem) -> None:
    from gateway import wiring as gateway_wiring
    from gateway.rebuild import rebuild

    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    cell = establish(admin, "grassroots_cell", establish(admin, "commune_committee", city["id"])["id"])
    enrol(admin, cell["id"], "Lý Văn Hỏng")
    wait_caught_up(system)
    before = snapshot(system.database_url)
    settings = ServiceSettings(DATABASE_URL=system.database_url, KAFKA_BOOTSTRAP_SERVERS=system.bootstrap_servers,
                               PARTY_DATA_DIR=system.data_dir)
    make_projector = projector_for(system, batched=True)
    made: list[str] = []

    def broken_in_the_shares(schema: str) -> Any:
        made.append(schema)
        if len(made) > 1:  # the first is this process's own, which holds the lease; the rest are the shares'
            raise RuntimeError("a share cannot reach its database")
        return make_projector(schema)

    with pytest.raises(RuntimeError, match=r"rebuild-share-\d failed"):
        rebuild(settings, live_schema="gateway", make_consumer=broken_in_the_shares,
                ddl=[p.ddl for p in gateway_wiring.PROJECTIONS], workers=2, timeout_s=60)
    assert snapshot(system.database_url) == before
    # The lease went with the failed rebuild, and its half-built schema with the next one.
    rebuild(settings, live_schema="gateway", make_consumer=make_projector,
            ddl=[p.ddl for p in gateway_wiring.PROJECTIONS], workers=2)
    assert snapshot(system.database_url) == before


def test_a_rebuild_from_the_store_ends_identical_and_resumes_the_topic_at_its_end(system: RunningSystem) -> None:
    """The broker-loss path: the registry's event store, not the topic, is read; the live projector then resumes
    the topic where it ended when the replay began."""
    from contracts import topics
    from gateway import wiring as gateway_wiring
    from gateway.rebuild import rebuild
    from servicekit.replay import StoreReplay

    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward = establish(admin, "commune_committee", city["id"])
    cell = establish(admin, "grassroots_cell", ward["id"])
    enrol(admin, cell["id"], "Trịnh Văn Bình")
    enrol(admin, cell["id"], "Đỗ Thị Mai")
    wait_caught_up(system)
    before = snapshot(system.database_url)
    settings = ServiceSettings(DATABASE_URL=system.database_url, KAFKA_BOOTSTRAP_SERVERS=system.bootstrap_servers,
                               PARTY_DATA_DIR=system.data_dir)

    replay = StoreReplay(system.database_url, schema="registry", service="registry", topic=topics.REGISTRY,
                         page_size=50)
    applied = rebuild(settings, live_schema="gateway", make_consumer=projector_for(system, batched=True),
                      ddl=[p.ddl for p in gateway_wiring.PROJECTIONS], from_store=[replay])
    assert applied == replay.read > 0
    after = snapshot(system.database_url)
    for name in TABLES:
        assert after[name] == before[name], f"{name} differs after the rebuild from the store"
    # Again in two shares of the streams, each process reading the store for its own.
    in_shares = rebuild(settings, live_schema="gateway", make_consumer=projector_for(system, batched=True),
                        ddl=[p.ddl for p in gateway_wiring.PROJECTIONS], from_store=[replay], workers=2)
    assert in_shares == applied and replay.read == applied, "the shares applied it all, this process none of it"
    after = snapshot(system.database_url)
    for name in TABLES:
        assert after[name] == before[name], f"{name} differs after the rebuild from the store in shares"
    with connect(system.database_url, schema="gateway") as conn:
        hints = conn.execute("SELECT count(*), sum(next_offset) FROM consumer_offsets WHERE consumer = %s AND"
                             " topic = %s", (gateway_wiring.PROJECTOR, topics.REGISTRY)).fetchone()
    assert hints is not None and hints[0] == topics.PARTITIONS[topics.REGISTRY]
    assert hints[1] >= applied, "the topic's ends when the replay began (it holds at least what the store held)"

    newcomer = enrol(admin, cell["id"], "Đỗ Văn Nam")
    assert newcomer in member_ids(admin, cell["id"])
