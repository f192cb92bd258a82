"""Kafka topic names; a breaking change gets a new `.vN` and a migration window."""

REGISTRY = "party.registry.v1"
ADMISSIONS = "party.admissions.v1"
TRANSFERS = "party.transfers.v1"

PARTITIONS = {REGISTRY: 8, ADMISSIONS: 4, TRANSFERS: 4}


def dead_letter_topic(consumer_name: str) -> str:
    return f"party.deadletter.{consumer_name}.v1"
