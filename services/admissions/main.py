"""Composition root of admissions: so far its event store, the relay of its topic and an HTTP app with health checks."""

from __future__ import annotations

from contracts import topics
from servicekit.skeleton import StoreOnlyService

SERVICE = StoreOnlyService(
    service="admissions",
    topic=topics.ADMISSIONS,
    partitions=topics.PARTITIONS[topics.ADMISSIONS],
    description="Skeleton: the admissions process arrives next round on the same kit.",
)
DEFAULT_PORT = 8102
create_api = SERVICE.create_api
run_relay = SERVICE.run_relay
