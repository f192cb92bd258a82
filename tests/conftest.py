"""Session-wide real servers: a private PostgreSQL and Kafka-protocol broker unless the environment gives them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicekit.telemetry import setup_telemetry

setup_telemetry("tests", record_spans=True)  # the tracing tests add their own span processors


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    from servicekit.embedded.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "data", keep_data=False).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def bootstrap_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    from servicekit.embedded.broker import EmbeddedBroker

    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log").start()
    yield broker.bootstrap_servers
    broker.stop()


@pytest.fixture
def schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def topic() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def issuer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from servicekit.devissuer import ensure_keys

    directory = tmp_path_factory.mktemp("issuer")
    ensure_keys(directory)
    return directory
