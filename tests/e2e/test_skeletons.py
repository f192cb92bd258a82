"""The admissions and transfers services start as `make up` starts them (an API and a relay each, on the kit): their
public endpoints answer without a token, everything else asks for one, and what their stores hold reaches their
topics. The processes arrive next round; their skeletons must already run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contracts import topics
from servicekit.devissuer import ensure_keys
from servicekit.embedded.ports import free_port
from tests.support.kit import event, metadata, pg_store, read_topic

ROOT = Path(__file__).resolve().parents[2]
TOPICS = {"admissions": topics.ADMISSIONS, "transfers": topics.TRANSFERS}


@pytest.fixture(params=["admissions", "transfers"])
def skeleton(request: pytest.FixtureRequest, database_url: str, bootstrap_servers: str,
             tmp_path: Path) -> Iterator[tuple[str, str]]:
    service: str = request.param
    ensure_keys(tmp_path / "dev-issuer")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
           "PARTY_DATA_DIR": str(tmp_path), f"{service.upper()}_PORT": str(port), "RELAY_LEASE_TTL_S": "3"}
    processes = [subprocess.Popen([sys.executable, "-m", service, role], cwd=ROOT, env=env,
                                  stdout=(tmp_path / f"{role}.log").open("ab"), stderr=subprocess.STDOUT)
                 for role in ("api", "relay")]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert all(p.poll() is None for p in processes), (tmp_path / "api.log").read_text()[-2000:]
            assert time.monotonic() < deadline, f"{service} did not start"
            time.sleep(0.1)
        yield service, url
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(timeout=20)


def test_a_skeleton_serves_its_public_endpoints_and_asks_a_token_for_the_rest(skeleton: tuple[str, str]) -> None:
    service, url = skeleton
    assert httpx.get(f"{url}/readyz", timeout=10).json()["status"] == "ready"
    assert httpx.get(f"{url}/openapi.json", timeout=10).json()["info"]["title"] == f"Party register: {service}"
    assert httpx.get(f"{url}/docs", timeout=10).status_code == 200
    refused = httpx.get(f"{url}/applications", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


def test_what_a_skeleton_s_store_holds_reaches_its_topic(skeleton: tuple[str, str], database_url: str,
                                                          bootstrap_servers: str) -> None:
    service, _ = skeleton
    store, pool = pg_store(database_url, service, TOPICS[service])
    try:
        stream = f"{service}-{uuid.uuid4()}"
        store.append(stream_id=stream, expected_version=0, events=[event(1, "Probe")], metadata=metadata())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            records = read_topic(bootstrap_servers, TOPICS[service], expect_at_least=1, timeout_s=5)
            if any(r.key == stream.split("-", 1)[1] for r in records):
                return
        raise AssertionError(f"the {service} relay did not publish {stream}")
    finally:
        pool.close()
