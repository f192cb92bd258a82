"""The demo register loaded end to end (`python -m demo`, tiny scale: every committee, few members) into a
system of its own, read back through GraphQL: the city before the 2025 reform and after it."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from demo.geography import city
from servicekit.embedded.broker import EmbeddedBroker
from servicekit.embedded.system import ROOT, RunningSystem

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def demo_system(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """Its own database and broker: the demo's codes (HN, ...) must not meet other tests' units."""
    name = f"demo_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("demo-broker") / "broker.log").start()
    system = RunningSystem(make_conninfo(database_url, dbname=name), broker.bootstrap_servers,
                           tmp_path_factory.mktemp("demo-system")).start()
    try:
        yield system
    finally:
        system.stop()
        broker.stop()


def load(system: RunningSystem) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": system.database_url, "KAFKA_BOOTSTRAP_SERVERS": system.bootstrap_servers}
    return subprocess.run([sys.executable, "-m", "demo", "--scale", "tiny", "--data-dir", str(system.data_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, check=False)


def graphql(system: RunningSystem, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(f"{system.url('gateway')}/graphql", json={"query": query, "variables": variables},
                          headers={"Authorization": f"Bearer {system.token()}"}, timeout=30)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def store_size(system: RunningSystem) -> int:
    with psycopg.connect(system.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM registry.events").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="module")
def loaded(demo_system: RunningSystem) -> RunningSystem:
    marker = Path(demo_system.data_dir) / "demo-loading"
    marker.write_text("the tiny demo is about to load")
    response = httpx.get(f"{demo_system.url('gateway')}/readyz", timeout=5)
    assert response.status_code == 503
    assert response.json()["checks"]["demo"]["detail"] == "the tiny demo is about to load"
    assert response.headers["content-type"] == "application/problem+json", "a refusal like any other"
    assert (response.json()["code"], response.json()["status"]) == ("not-ready", 503)
    assert "demo: the tiny demo is about to load" in response.json()["detail"]
    result = load(demo_system)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not marker.exists(), "the loader clears the marker once everything is published"
    demo_system.wait_ready()
    return demo_system


UNITS = """query($asOf: Date, $kind: UnitKind) {
  organizationUnits(asOf: $asOf, kind: $kind, first: 1) { totalCount } }"""


def count_units(system: RunningSystem, kind: str, as_of: str | None = None) -> int:
    return int(graphql(system, UNITS, asOf=as_of, kind=kind)["organizationUnits"]["totalCount"])


def test_before_the_reform_the_city_had_30_districts_over_526_wards_and_communes(loaded: RunningSystem) -> None:
    assert count_units(loaded, "DISTRICT_COMMITTEE", "2024-12-31") == 30
    assert count_units(loaded, "COMMUNE_COMMITTEE", "2024-12-31") == 526
    assert count_units(loaded, "SECTOR_COMMITTEE", "2024-12-31") == 5
    ba_dinh = graphql(loaded, """{ organizationUnit(code: "001", asOf: "2024-12-31") {
        name kind parent { code } children(first: 20) { totalCount } } }""")["organizationUnit"]
    assert ba_dinh["name"] == "Đảng bộ quận Ba Đình"
    assert ba_dinh["parent"]["code"] == "HN"
    # Its wards in the dataset (13: Nguyễn Trung Trực had joined Trúc Bạch), and its one district-level
    # organization of the tiny scale.
    assert ba_dinh["children"]["totalCount"] == len(city().wards_of("001")) + 1 == 14


def test_after_the_reform_126_ward_and_commune_committees_sit_under_the_city(loaded: RunningSystem) -> None:
    assert count_units(loaded, "DISTRICT_COMMITTEE") == 0
    assert count_units(loaded, "COMMUNE_COMMITTEE") == 126
    city = graphql(loaded, """{ organizationUnit(code: "HN") { children(first: 1) { totalCount } } }""")
    # 126 wards and communes, and the four sector committees named in the sources.
    assert city["organizationUnit"]["children"]["totalCount"] == 130
    assert graphql(loaded, """{ organizationUnit(code: "001", asOf: "2025-07-01") { status } }""")[
        "organizationUnit"]["status"] == "dissolved"
    ba_dinh = graphql(loaded, """{ organizationUnit(code: "00004") { name establishedOn } }""")["organizationUnit"]
    assert ba_dinh == {"name": "Đảng bộ phường Ba Đình", "establishedOn": "2025-07-01"}


def test_members_followed_their_cells_through_the_reform(loaded: RunningSystem) -> None:
    today = graphql(loaded, """{ organizationUnit(code: "HN") { memberCounts { dimension value count } } }""")
    counts = {(c["dimension"], c["value"]): c["count"] for c in today["organizationUnit"]["memberCounts"]}
    active = counts.get(("status", "official"), 0) + counts.get(("status", "probationary"), 0)
    assert active > 1000
    with psycopg.connect(loaded.database_url) as conn:
        moved = conn.execute(
            "SELECT count(*) FROM gateway.member_facts WHERE event_type = 'MemberUnitChanged'"
            " AND data->>'reason' = 'reorganization' AND effective_on = '2025-07-01'").fetchone()
        names = [r[0] for r in conn.execute("SELECT full_name FROM gateway.members LIMIT 500").fetchall()]
    assert moved is not None and moved[0] > 0, "residential cells merged on 01/07/2025 and their members followed"
    surnames = [name.split()[0] for name in names]
    assert surnames.count("Nguyễn") / len(surnames) > 0.25, "family name first, Nguyễn the commonest"


def test_a_second_load_resumes_and_writes_nothing(loaded: RunningSystem) -> None:
    before = store_size(loaded)
    result = load(loaded)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0 events in 0 steps" in result.stderr
    assert store_size(loaded) == before


def test_statistics_of_the_city_answer_for_a_year_before_and_after_the_reform(loaded: RunningSystem) -> None:
    city = graphql(loaded, """{ organizationUnit(code: "HN") { id } }""")["organizationUnit"]["id"]
    for as_of in ("2024-12-31", dt.date.today().isoformat()):
        figures = graphql(loaded, """query($id: ID!, $asOf: Date) { statistics(unitId: $id, asOf: $asOf) {
            bieu1 { opening { thisPeriod } closing { thisPeriod } } } }""", id=city, asOf=as_of)["statistics"]["bieu1"]
        assert figures["opening"]["thisPeriod"] > 1000 and figures["closing"]["thisPeriod"] > 1000
