"""PostgreSQL drops every connection (a restart, a failover): the APIs answer "retry" (never a 500), a retried
command applies once, and the projector applies what it was applying when its connection went."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import psycopg

from servicekit.embedded.system import RunningSystem
from tests.e2e.test_gateway_graphql import clients, establish

UNIT = "query($code: String!) { organizationUnit(code: $code) { id name } }"


def drop_every_connection(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return len(conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchall())


def until_it_works(call: Any, attempts: int = 40) -> tuple[Any, list[Any]]:
    """Calls until an answer is not "retry"; returns it and the retry answers before it."""
    retries = []
    for _ in range(attempts):
        answer = call()
        if not answer[0]:
            return answer[1], retries
        retries.append(answer[1])
        time.sleep(0.05)
    raise AssertionError(f"still unavailable after {attempts} attempts: {retries[-1]}")


def test_the_apis_say_retry_while_the_database_is_away_and_a_retried_command_applies_once(
        system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    admin.eventually(UNIT, code=city["code"], until=lambda d: d.get("organizationUnit"))
    assert drop_every_connection(system.database_url) > 0

    key = str(uuid.uuid4())
    unit_code = f"R{uuid.uuid4().hex[:10]}"

    def command() -> tuple[bool, httpx.Response]:
        response = admin.registry.post("/units", headers={"Idempotency-Key": key}, json={
            "code": unit_code, "name": "Đảng bộ phường Khôi Phục", "kind": "commune_committee",
            "parent_id": city["id"], "established_on": "2025-07-01"})
        return response.status_code == 503, response

    created, refused = until_it_works(command)
    assert created.status_code == 201, created.text
    assert refused, "the first command met a connection the restart had broken"
    for response in refused:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"] == "1"
        assert response.json()["code"] == "database-unavailable"
    again = admin.registry.post("/units", headers={"Idempotency-Key": key}, json={
        "code": unit_code, "name": "Đảng bộ phường Khôi Phục", "kind": "commune_committee",
        "parent_id": city["id"], "established_on": "2025-07-01"})
    assert again.status_code in (200, 201) and again.json() == created.json(), "the retry is answered, not applied"

    def query() -> tuple[bool, dict[str, Any]]:
        body: dict[str, Any] = admin.graphql(UNIT, code=unit_code).json()
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
        assert codes in ([], ["DATABASE_UNAVAILABLE"]), body
        return bool(codes), body

    answered, unavailable = until_it_works(query)
    assert unavailable, "the first query met a connection the restart had broken"
    assert all(b["errors"][0]["message"] == "The database is unavailable; retry" for b in unavailable)
    # The projector lost its connection too, perhaps in the middle of a batch: the new unit still shows up.
    seen = answered if (answered.get("data") or {}).get("organizationUnit") else admin.eventually(
        UNIT, code=unit_code, until=lambda d: d.get("organizationUnit"))
    assert seen["data"]["organizationUnit"]["id"] == created.json()["id"]
    for service in ("registry", "gateway"):  # every broken connection gone before the next test
        until_it_works(lambda s=service: (httpx.get(f"{system.url(s)}/readyz").status_code != 200, None),
                       attempts=400)
