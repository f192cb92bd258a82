"""Committee lists, and no N+1: a page of 50 members with their unit and card costs a fixed few statements."""

from __future__ import annotations

import os

from fastapi.testclient import TestClient

from servicekit.embedded.system import RunningSystem
from servicekit.settings import ServiceSettings
from tests.e2e.test_gateway_graphql import a_ward_of_cells, clients, enrol, establish, gql, mutate


def test_committee_lists(system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward = establish(admin, "commune_committee", city["id"])
    full_cell, thin_cell = establish(admin, "grassroots_cell", ward["id"]), establish(admin, "grassroots_cell",
                                                                                        ward["id"])
    crew = [enrol(admin, full_cell["id"]) for _ in range(3)]
    enrol(admin, thin_cell["id"])
    registry = clients(system).registry
    assert registry.post(f"/members/{crew[0]}/exemption", json={"effective_on": "2026-01-01",
                                                               "reason": "tuổi cao"}).status_code == 200
    for year in (2024, 2025):
        assert registry.post(f"/members/{crew[1]}/ratings", json={"year": year, "level": "khong_hoan_thanh"}
                             ).status_code == 200
    mutate(admin, """mutation($m: ID!) { recordDeath(memberId: $m, diedOn: "2026-05-01", waitForProjection: true) {
        id projected } }""", m=crew[2])
    import time

    deadline = time.monotonic() + 20
    while True:
        lists = gql(admin, """query($u: ID!) {
            exemptedMembers(unitId: $u) { id } screeningCandidates(unitId: $u) { id }
            cellsBelowThreeOfficial(unitId: $u) { unit { id } officialMembers }
            badgesDue(unitId: $u, by: "2036-01-01") { member { id } years dueOn } }""", u=ward["id"])
        if lists["screeningCandidates"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [m["id"] for m in lists["exemptedMembers"]] == [crew[0]]
    assert [m["id"] for m in lists["screeningCandidates"]] == [crew[1]]
    below = {c["unit"]["id"]: c["officialMembers"] for c in lists["cellsBelowThreeOfficial"]}
    assert below == {full_cell["id"]: 2, thin_cell["id"]: 1}
    assert {b["years"] for b in lists["badgesDue"]} == {30}, "admitted 2005: 30 years on 2035-05-19"


def test_a_page_of_fifty_members_with_unit_and_card_costs_a_fixed_number_of_statements(system: RunningSystem
                                                                                        ) -> None:
    admin = clients(system)
    ward, cells = a_ward_of_cells(admin, cells=5, members=50, name="Đặng Văn")
    from gateway import main as gateway_main

    settings = ServiceSettings(DATABASE_URL=system.database_url, KAFKA_BOOTSTRAP_SERVERS=system.bootstrap_servers,
                               PARTY_DATA_DIR=system.data_dir)
    os.environ.setdefault("REGISTRY_URL", system.url("registry"))
    app = gateway_main.create_api(settings)
    with TestClient(app) as client:
        read_models = app.state.read_models
        before = read_models.statements
        response = client.post("/graphql", headers={"Authorization": f"Bearer {system.token()}"}, json={
            "query": """query($u: ID!) { members(unitId: $u, first: 50) { totalCount
                edges { node { id fullName card { number } unit { code parent { code } } } } } }""",
            "variables": {"u": ward["id"]}})
        used = read_models.statements - before
        body = response.json()
        assert len(body["data"]["members"]["edges"]) == 50
        assert used <= 5, f"{used} statements for one page: N+1?"
        member_id = body["data"]["members"]["edges"][0]["node"]["id"]
        before = read_models.statements
        one = client.post("/graphql", headers={"Authorization": f"Bearer {system.token()}"}, json={
            "query": """query($m: ID!) { member(id: $m) { fullName unit { code } history { type } } }""",
            "variables": {"m": member_id}}).json()
        assert one["data"]["member"]["unit"]["code"] in {c["code"] for c in cells}
        assert read_models.statements - before == 2, "the member comes with its cell, then its history"



def test_an_import_started_through_graphql_enrols_its_rows(system: RunningSystem) -> None:
    import base64
    import time
    import uuid

    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward = establish(admin, "commune_committee", city["id"])
    cell = establish(admin, "grassroots_cell", ward["id"])
    roll = ("full_name,gender,birth_date,citizen_id,cell_code,status,admitted_on\n"
            f"Kiều Thị Mai,female,1988-08-08,{uuid.uuid4().int % 10**12:012d},{cell['code']},official,2012-03-03\n")
    started = gql(admin, """mutation($n: String!, $c: String!) { startImport(fileName: $n, contentBase64: $c) {
        importId status } }""", n="roll.csv", c=base64.b64encode(roll.encode()).decode())["startImport"]
    assert started["status"] == "queued"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = gql(admin, """query($u: ID!) { members(unitId: $u) { totalCount } }""", u=ward["id"])
        if found["members"]["totalCount"] == 1:
            break
        time.sleep(0.1)
    assert found["members"]["totalCount"] == 1
    refused = admin.graphql("""mutation { startImport(fileName: "x.csv", contentBase64: "!!") { importId } }""")
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
