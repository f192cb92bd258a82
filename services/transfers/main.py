"""Composition root of transfers: so far its event store, the relay of its topic and an HTTP app with health checks."""

from __future__ import annotations

from contracts import topics
from servicekit.skeleton import StoreOnlyService

SERVICE = StoreOnlyService(
    service="transfers",
    topic=topics.TRANSFERS,
    partitions=topics.PARTITIONS[topics.TRANSFERS],
    description="Skeleton: the transfers process arrives next round on the same kit.",
)
DEFAULT_PORT = 8103
create_api = SERVICE.create_api
run_relay = SERVICE.run_relay
