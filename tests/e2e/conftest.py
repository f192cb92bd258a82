"""The system under test, started once for the e2e session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicekit.embedded.system import RunningSystem


@pytest.fixture(scope="session")
def system(database_url: str, bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RunningSystem]:
    running = RunningSystem(database_url, bootstrap_servers, tmp_path_factory.mktemp("system")).start()
    yield running
    running.stop()
