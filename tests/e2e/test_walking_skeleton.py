"""A unit established over REST becomes visible through GraphQL; strangers and bad input are refused."""

from __future__ import annotations

import uuid

from servicekit.embedded.system import RunningSystem
from tests.e2e.client import Client

UNIT_QUERY = "query($code: String!) { organizationUnit(code: $code) { id code name kind parent { code } } }"


def code() -> str:
    return f"E{uuid.uuid4().hex[:10]}"


def test_an_established_unit_travels_from_the_command_to_graphql(system: RunningSystem) -> None:
    client = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"), token=system.token())
    city, ward = code(), code()
    created = client.establish_unit(code=city, name="Đảng bộ Thành phố", kind="city_committee",
                                    established_on="1930-02-03")
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) >= {"id", "version", "consistency_token"} and body["version"] == 1
    child = client.establish_unit(code=ward, name="Đảng bộ phường Ba Đình", kind="commune_committee",
                                  parent_id=body["id"], established_on="2025-07-01")
    assert child.status_code == 201, child.text

    seen = client.eventually(UNIT_QUERY, code=ward, until=lambda d: d.get("organizationUnit"))
    unit = seen["data"]["organizationUnit"]
    assert unit == {"id": child.json()["id"], "code": ward, "name": "Đảng bộ phường Ba Đình",
                    "kind": "COMMUNE_COMMITTEE", "parent": {"code": city}}


def test_an_idempotency_key_makes_a_retried_command_a_no_op(system: RunningSystem) -> None:
    client = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"), token=system.token())
    body = {"code": code(), "name": "Đảng bộ thử", "kind": "city_committee", "established_on": "2020-01-01"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.registry.post("/units", json=body, headers=key)
    again = client.registry.post("/units", json=body, headers=key)
    assert first.status_code == 201
    assert again.status_code == 200 and again.json() == first.json()
    other = client.registry.post("/units", json={**body, "name": "khác"}, headers=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency-key-reused"


def test_requests_without_a_token_are_refused(system: RunningSystem) -> None:
    anonymous = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"), token=None)
    refused = anonymous.establish_unit(code=code(), name="x", kind="city_committee", established_on="2020-01-01")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "unauthenticated"
    assert anonymous.graphql(UNIT_QUERY, code="HN").status_code == 401
    forged = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"), token="not.a.jwt")
    assert forged.graphql(UNIT_QUERY, code="HN").status_code == 401
    for service in ("registry", "gateway"):
        for path in ("/livez", "/openapi.json"):
            assert anonymous.registry.get(f"{system.url(service)}{path}").status_code == 200


def test_bad_input_is_answered_with_problem_json_never_500(system: RunningSystem) -> None:
    client = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"), token=system.token())
    cases = [
        ({"code": code()}, 422, "invalid-input"),
        ({"code": code(), "name": "x", "kind": "galaxy", "established_on": "2020-01-01"}, 422, "invalid-input"),
        ({"code": code(), "name": "x", "kind": "cell", "established_on": "2020-01-01"}, 422, "unit-parent-required"),
        ({"code": code(), "name": "x", "kind": "cell", "parent_id": str(uuid.uuid4()),
          "established_on": "2020-01-01"}, 404, "parent-not-found"),
        ({"code": code(), "name": "x", "kind": "city_committee", "established_on": "2999-01-01"}, 422,
         "date-in-future"),
        ({"code": "x" * 40, "name": "x", "kind": "city_committee", "established_on": "2020-01-01"}, 422,
         "invalid-input"),
    ]
    for body, status, machine_code in cases:
        response = client.establish_unit(**body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == machine_code
    garbage = client.registry.post("/units", content=b"{not json", headers={"content-type": "application/json"})
    assert garbage.status_code == 422 and garbage.json()["code"] == "invalid-input"
    taken = code()
    assert client.establish_unit(code=taken, name="x", kind="city_committee", established_on="2020-01-01"
                                 ).status_code == 201
    duplicate = client.establish_unit(code=taken, name="y", kind="city_committee", established_on="2020-01-01")
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "unit-code-taken"
    assert duplicate.json()["field"] == "code"


def test_a_scoped_role_cannot_act_outside_its_subtree(system: RunningSystem) -> None:
    admin = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"), token=system.token())
    first, second = code(), code()
    first_id = admin.establish_unit(code=first, name="A", kind="city_committee", established_on="2020-01-01"
                                    ).json()["id"]
    second_id = admin.establish_unit(code=second, name="B", kind="city_committee", established_on="2020-01-01"
                                     ).json()["id"]
    committee = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"),
                       token=system.token("committee", first))
    inside = committee.establish_unit(code=code(), name="ward", kind="commune_committee", parent_id=first_id,
                                      established_on="2025-07-01")
    assert inside.status_code == 201
    outside = committee.establish_unit(code=code(), name="ward", kind="commune_committee", parent_id=second_id,
                                       established_on="2025-07-01")
    assert outside.status_code == 403 and outside.json()["code"] == "outside-scope"
    reader = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"),
                    token=system.token("reader", first))
    assert reader.establish_unit(code=code(), name="w", kind="commune_committee", parent_id=first_id,
                                 established_on="2025-07-01").status_code == 403


def test_graphql_errors_carry_codes(system: RunningSystem) -> None:
    client = Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"), token=system.token())
    response = client.graphql("{ organizationUnit { id } }")
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert client.graphql("{ organizationUnit(code: \"nope\") { id } }").json()["data"] == {
        "organizationUnit": None}


def test_graphiql_opens_in_a_browser_without_a_token(system: RunningSystem) -> None:
    import httpx

    page = httpx.get(f"{system.url('gateway')}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    query = httpx.get(f"{system.url('gateway')}/graphql", params={"query": "{ __typename }"},
                      headers={"Accept": "application/json"})
    assert query.status_code == 401, "queries still need a token"
