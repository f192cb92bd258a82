"""The gateway as front ends use it: units and members as of any date, scopes, PII, limits, mutations."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from servicekit.embedded.system import RunningSystem
from tests.e2e.client import Client


def code() -> str:
    return f"G{uuid.uuid4().hex[:10]}"


def clients(system: RunningSystem, role: str = "city-admin", unit: str | None = None) -> Client:
    return Client(registry_url=system.url("registry"), gateway_url=system.url("gateway"),
                  token=system.token(role, unit))


def gql(client: Client, query: str, **variables: Any) -> dict[str, Any]:
    response = client.graphql(query, **variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def mutate(client: Client, query: str, **variables: Any) -> dict[str, Any]:
    data = gql(client, query, **variables)
    [result] = data.values()
    assert result["projected"] is True
    return result  # type: ignore[no-any-return]


ESTABLISH = """mutation($input: EstablishUnitInput!) {
  establishUnit(input: $input, waitForProjection: true) { id version consistencyToken projected }
}"""
ENROL = """mutation($input: EnrolMemberInput!) {
  enrolMember(input: $input, waitForProjection: true) { id version projected }
}"""


def establish(client: Client, kind: str, parent: str | None, on: str = "2020-01-01", name: str = "Đơn vị") -> dict[
        str, str]:
    unit_code = code()
    result = mutate(client, ESTABLISH, input={"code": unit_code, "name": name, "kind": kind.upper(), "parentId": parent,
                                              "establishedOn": on})
    return {"id": result["id"], "code": unit_code}


def enrol(client: Client, unit_id: str, name: str = "Nguyễn Văn An", since: str = "2020-06-01") -> str:
    result = mutate(client, ENROL, input={
        "fullName": name, "gender": "male", "birthDate": "1980-01-01",
        "citizenId": f"{uuid.uuid4().int % 10**12:012d}", "unitId": unit_id, "status": "official",
        "admittedOn": "2005-05-19", "officialOn": "2006-05-19", "memberSince": since, "ethnicity": "Kinh"})
    return str(result["id"])


def a_ward_of_cells(client: Client, *, cells: int, members: int, name: str
                    ) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A city, a ward under it, `cells` cells under the ward and `members` members enrolled in turn into them."""
    city = establish(client, "city_committee", None, on="1930-02-03")
    ward = establish(client, "commune_committee", city["id"])
    made = [establish(client, "grassroots_cell", ward["id"]) for _ in range(cells)]
    for index in range(members):
        enrol(client, made[index % cells]["id"], f"{name} {index}")
    return ward, made


MEMBERS = """query($unit: ID!, $asOf: Date, $search: String) {
  members(unitId: $unit, asOf: $asOf, search: $search, first: 50) {
    totalCount edges { node { id fullName citizenId unit { code } } } pageInfo { hasNextPage endCursor }
  }
}"""


def member_ids(client: Client, unit: str, as_of: str | None = None) -> set[str]:
    data = gql(client, MEMBERS, unit=unit, asOf=as_of)
    return {e["node"]["id"] for e in data["members"]["edges"]}


def test_yesterdays_and_todays_answers_both_hold_across_a_merge(system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    district = establish(admin, "district_committee", city["id"], on="2000-01-01")
    ward_a = establish(admin, "commune_committee", district["id"], on="2000-01-01")
    ward_b = establish(admin, "commune_committee", district["id"], on="2000-01-01")
    cell_a = establish(admin, "grassroots_cell", ward_a["id"], on="2000-01-01")
    cell_b = establish(admin, "grassroots_cell", ward_b["id"], on="2000-01-01")
    alice, bob = enrol(admin, cell_a["id"], "Trần Thị Ánh"), enrol(admin, cell_b["id"], "Lê Văn Bình")
    merged = mutate(admin, """mutation($s: [ID!]!, $t: NewUnitInput!) {
      mergeUnits(sourceIds: $s, target: $t, effectiveOn: "2025-07-01", decisionRef: "NQ 1656",
                 waitForProjection: true) { id projected details } }""",
                    s=[ward_a["id"], ward_b["id"]],
                    t={"code": code(), "name": "Phường mới", "kind": "COMMUNE_COMMITTEE", "parentId": city["id"]})
    new_ward = merged["id"]

    assert member_ids(admin, ward_a["id"], "2024-12-31") == {alice}
    assert member_ids(admin, district["id"], "2024-12-31") == {alice, bob}
    assert member_ids(admin, new_ward) == {alice, bob}
    assert member_ids(admin, new_ward, "2024-12-31") == set()
    before = gql(admin, """query($id: ID!) { organizationUnit(id: $id, asOf: "2024-12-31") {
        code status parent { code } ancestors { code } } }""", id=cell_a["id"])["organizationUnit"]
    assert before == {"code": cell_a["code"], "status": "active", "parent": {"code": ward_a["code"]},
                      "ancestors": [{"code": ward_a["code"]}, {"code": district["code"]}, {"code": city["code"]}]}
    after = gql(admin, """query($id: ID!) { organizationUnit(id: $id) { parent { id } } }""",
                id=cell_a["id"])["organizationUnit"]
    assert after == {"parent": {"id": new_ward}}
    units_2024 = gql(admin, """query($p: ID!) { organizationUnits(parentId: $p, asOf: "2024-12-31") {
        totalCount edges { node { code } } } }""", p=district["id"])["organizationUnits"]
    assert units_2024["totalCount"] == 2
    units_today = gql(admin, """query($p: ID!) { organizationUnits(parentId: $p) { totalCount } }""",
                      p=district["id"])["organizationUnits"]
    assert units_today["totalCount"] == 0, "the merged wards are no longer active"


def test_biểu_1_reconciles_and_counts_moves_and_exits(system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward = establish(admin, "commune_committee", city["id"], on="2000-01-01")
    cell = establish(admin, "grassroots_cell", ward["id"], on="2000-01-01")
    other = establish(admin, "grassroots_cell", establish(admin, "commune_committee", city["id"], on="2000-01-01")[
        "id"], on="2000-01-01")
    stays, leaves, moves = (enrol(admin, cell["id"], since="2019-01-01") for _ in range(3))
    transient = enrol(admin, cell["id"], since="2026-01-15")
    mutate(admin, """mutation($m: ID!) { recordDeath(memberId: $m, diedOn: "2026-02-10", waitForProjection: true) {
        id projected } }""", m=transient)
    mutate(admin, """mutation($m: ID!) { recordLeaving(memberId: $m, reason: "struck_off", decidedOn: "2026-02-01",
        decisionRef: "QĐ 1", waitForProjection: true) { id projected } }""", m=leaves)
    mutate(admin, """mutation($u: [ID!]!, $t: ID!) { mergeUnits(sourceIds: $u, targetId: $t, effectiveOn: "2026-03-01",
        waitForProjection: true) { id projected } }""", u=[cell["id"]], t=other["id"])
    del stays, moves
    stats = gql(admin, """query($u: ID!) { statistics(unitId: $u, asOf: "2026-06-30") {
        period { start end }
        bieu1 { opening { thisPeriod } closing { thisPeriod } totalIncrease { thisPeriod }
                totalDecrease { thisPeriod } decreases { category figure { thisPeriod } }
                increases { category figure { thisPeriod } } }
        bieu3 { dimension value figure { thisPeriod sameperiodlastyear: samePeriodLastYear } }
        bieu5 { category figure { thisPeriod } } } }""", u=ward["id"])["statistics"]
    b1 = stats["bieu1"]
    assert b1["opening"]["thisPeriod"] == 3
    assert b1["closing"]["thisPeriod"] == 0
    assert (b1["opening"]["thisPeriod"] + b1["totalIncrease"]["thisPeriod"] - b1["totalDecrease"]["thisPeriod"]
            == b1["closing"]["thisPeriod"])
    decreases = {d["category"]: d["figure"]["thisPeriod"] for d in b1["decreases"] if d["figure"]["thisPeriod"]}
    assert decreases == {"struck_off": 1, "moved_out": 2, "deceased": 1}, "gross: who came and went counts too"
    increases = {d["category"]: d["figure"]["thisPeriod"] for d in b1["increases"] if d["figure"]["thisPeriod"]}
    assert increases == {"enrolled_existing": 1}
    kinds = {b["category"]: b["figure"]["thisPeriod"] for b in stats["bieu5"] if b["figure"]["thisPeriod"]}
    assert kinds == {"commune_committee": 1}, "the merged cell no longer counts as an organization"
    city_stats = gql(admin, """query($u: ID!) { statistics(unitId: $u, asOf: "2026-06-30") { bieu1 {
        opening { thisPeriod } closing { thisPeriod } decreases { category } } } }""", u=city["id"])["statistics"]
    assert city_stats["bieu1"]["closing"]["thisPeriod"] == 2, "moves inside the city are no decrease for it"
    assert sorted(d["category"] for d in city_stats["bieu1"]["decreases"]) == ["deceased", "struck_off"]


def test_a_ward_reader_reaches_nothing_outside_its_ward_and_sees_no_personal_data(system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward_x = establish(admin, "commune_committee", city["id"])
    ward_y = establish(admin, "commune_committee", city["id"])
    cell_x = establish(admin, "grassroots_cell", ward_x["id"])
    cell_y = establish(admin, "grassroots_cell", ward_y["id"])
    mine, theirs = enrol(admin, cell_x["id"], "Phạm Thị Xuân"), enrol(admin, cell_y["id"], "Phạm Văn Yên")
    reader = clients(system, "reader", ward_x["code"])
    assert member_ids(reader, ward_x["id"]) == {mine}
    assert member_ids(reader, city["id"]) == {mine}, "the city root lists only the reader's subtree"
    assert member_ids(reader, ward_y["id"]) == set()
    leaked = gql(reader, """query($m: ID!, $u: ID!, $c: String!) {
        member(id: $m) { id } node(id: $u) { id } organizationUnit(code: $c) { id } }""",
                 m=theirs, u=ward_y["id"], c=ward_y["code"])
    assert leaked == {"member": None, "node": None, "organizationUnit": None}
    found = gql(reader, """query($m: ID!, $u: ID!) {
        member: node(id: $m) { id ... on Member { fullName } }
        unit: node(id: $u) { id ... on OrganizationUnit { code } } }""", m=mine, u=cell_x["id"])
    assert found == {"member": {"id": mine, "fullName": "Phạm Thị Xuân"},
                     "unit": {"id": cell_x["id"], "code": cell_x["code"]}}, "node(id) resolves a member and a unit"
    # A member's history is read beside the member, and answered only for a member in scope.
    assert gql(reader, """query($m: ID!) { member(id: $m) { history { type } } }""", m=theirs) == {"member": None}
    through_fragment = gql(reader, """query($m: ID!) { member(id: $m) { ...Story } }
        fragment Story on Member { history { type } }""", m=mine)["member"]
    assert [entry["type"] for entry in through_fragment["history"]] == ["MemberEnrolled"]
    parent = gql(reader, """query($u: ID!) { organizationUnit(id: $u) { parent { id } ancestors { id } } }""",
                 u=ward_x["id"])["organizationUnit"]
    assert parent == {"parent": None, "ancestors": []}
    own = gql(reader, """query($m: ID!) { member(id: $m) { fullName citizenId birthDate } }""", m=mine)["member"]
    assert own == {"fullName": "Phạm Thị Xuân", "citizenId": None, "birthDate": None}
    clerk = clients(system, "clerk", ward_x["code"])
    assert gql(clerk, """query($m: ID!) { member(id: $m) { citizenId } }""", m=mine)["member"]["citizenId"]
    refused = reader.graphql("""query($u: ID!) { statistics(unitId: $u) { asOf } }""", u=ward_y["id"]).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_statistics_are_refused_with_a_code_while_their_sums_wait_for_a_recount(system: RunningSystem) -> None:
    from servicekit.database import connect

    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    query = """query($u: ID!) { statistics(unitId: $u) { bieu1 { closing { thisPeriod } } } }"""
    assert gql(admin, query, u=city["id"])["statistics"]
    with connect(system.database_url, schema="gateway", autocommit=True) as conn:
        conn.execute("INSERT INTO statistics_pending DEFAULT VALUES")
        try:
            # The gateway reads the flag at most once a second (ReadModels.PENDING_TTL_S).
            body = _within_seconds(3, lambda: admin.graphql(query, u=city["id"]).json(), lambda b: "errors" in b)
            assert body["errors"][0]["extensions"]["code"] == "STATISTICS_PENDING", body
            assert body["errors"][0]["extensions"]["since"]
            # Members, units and their counts stay current meanwhile.
            assert gql(admin, """query($u: ID!) { organizationUnit(id: $u) { memberCounts { count } } }""",
                       u=city["id"])["organizationUnit"] is not None
            readiness = httpx.get(f"{system.url('gateway')}/readyz", timeout=10)
            assert readiness.status_code == 503, readiness.text
            assert readiness.json()["checks"]["statistics"]["ok"] is False, readiness.text
        finally:
            conn.execute("DELETE FROM statistics_pending")
    body = _within_seconds(3, lambda: admin.graphql(query, u=city["id"]).json(), lambda b: "errors" not in b)
    assert body["data"]["statistics"], body
    readiness = _within_seconds(10, lambda: httpx.get(f"{system.url('gateway')}/readyz", timeout=10),
                                lambda r: r.status_code == 200)
    assert readiness.json()["checks"]["statistics"]["ok"] is True


def test_a_mutation_forwards_the_legal_basis_its_request_names(system: RunningSystem) -> None:
    from urllib.parse import quote

    admin = clients(system)
    unit_code = code()
    basis = "Quyết định 15-QĐ/TU (2025)"
    response = admin.gateway.post("/graphql", headers={"X-Legal-Basis": quote(basis)}, json={
        "query": ESTABLISH, "variables": {"input": {"code": unit_code, "name": "Thành ủy", "kind": "CITY_COMMITTEE",
                                                    "establishedOn": "1930-02-03"}}})
    unit_id = response.json()["data"]["establishUnit"]["id"]
    [established] = admin.registry.get(f"/units/{unit_id}/history").json()
    assert established["legal_basis"] == basis


def test_the_gateway_is_ready_only_while_its_projections_hold_every_published_event(system: RunningSystem) -> None:
    import os
    import signal

    def readiness() -> httpx.Response:
        return httpx.get(f"{system.url('gateway')}/readyz", timeout=10)

    admin = clients(system)
    establish(admin, "city_committee", None, on="1930-02-03")
    assert _within_seconds(30, readiness, lambda r: r.status_code == 200).status_code == 200
    projector = system.processes["gateway-projector"].pid
    os.kill(projector, signal.SIGSTOP)
    try:
        created = admin.establish_unit(code=code(), name="Thành ủy", kind="city_committee",
                                       established_on="1930-02-03")
        assert created.status_code == 201, created.text
        behind = _within_seconds(10, readiness, lambda r: r.status_code == 503)
        assert behind.status_code == 503, behind.text
        check = behind.json()["checks"]["projections"]
        assert check["ok"] is False and check["detail"].endswith("records behind"), check
    finally:
        os.kill(projector, signal.SIGCONT)
    assert _within_seconds(30, readiness, lambda r: r.status_code == 200).status_code == 200


def _within_seconds(seconds: float, ask: Any, done: Any) -> Any:
    import time

    deadline = time.monotonic() + seconds
    while True:
        answer = ask()
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_search_is_accent_insensitive(system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward = establish(admin, "commune_committee", city["id"])
    cell = establish(admin, "grassroots_cell", ward["id"])
    an = enrol(admin, cell["id"], "Nguyễn Văn An")
    enrol(admin, cell["id"], "Đỗ Thị Hằng")
    found = gql(admin, MEMBERS, unit=ward["id"], search="nguyen van an")["members"]
    assert [e["node"]["id"] for e in found["edges"]] == [an]
    assert gql(admin, MEMBERS, unit=ward["id"], search="do thi hang")["members"]["totalCount"] == 1


def test_limits_and_errors_carry_codes(system: RunningSystem) -> None:
    admin = clients(system)
    deep = "{ organizationUnit(code: \"x\") { " + "parent { " * 12 + "id" + " }" * 12 + " } }"
    body = admin.graphql(deep).json()
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"
    assert admin.graphql("{ nope }").json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    too_big = admin.graphql("{ organizationUnits(first: 5000) { totalCount } }").json()
    assert too_big["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    refused = admin.graphql("""mutation { establishUnit(input: {code: "x", name: "y", kind: CELL,
        establishedOn: "2020-01-01"}) { id } }""").json()
    assert refused["errors"][0]["extensions"]["code"] == "unit-parent-required"
    assert refused["errors"][0]["extensions"]["status"] == 422


def test_pages_follow_cursors(system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward = establish(admin, "commune_committee", city["id"])
    cell = establish(admin, "grassroots_cell", ward["id"])
    everyone = {enrol(admin, cell["id"], f"Hoàng Văn {i}") for i in range(5)}
    seen: set[str] = set()
    after = None
    query = """query($u: ID!, $after: String) { members(unitId: $u, first: 2, after: $after) {
        totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""
    while True:
        page = gql(admin, query, u=ward["id"], after=after)["members"]
        assert page["totalCount"] == 5
        seen |= {e["node"]["id"] for e in page["edges"]}
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == everyone



def test_as_of_answers_hold_across_a_split_and_a_reattachment_and_counts_roll_up(system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward_a = establish(admin, "commune_committee", city["id"], on="2000-01-01")
    ward_b = establish(admin, "commune_committee", city["id"], on="2000-01-01")
    cell = establish(admin, "grassroots_cell", ward_a["id"], on="2000-01-01")
    people = [enrol(admin, cell["id"], f"Mai Văn {i}") for i in range(4)]
    first_code, second_code = code(), code()
    split = mutate(admin, """mutation($u: ID!, $parts: [SplitPartInput!]!) { splitUnit(unitId: $u, parts: $parts,
        effectiveOn: "2025-07-01", waitForProjection: true) { id projected details } }""", u=cell["id"], parts=[
        {"code": first_code, "name": "Chi bộ 1", "kind": "GRASSROOTS_CELL", "memberIds": people[:1]},
        {"code": second_code, "name": "Chi bộ 2", "kind": "GRASSROOTS_CELL", "memberIds": people[1:]}])
    first_part, second_part = split["details"]["part_ids"]
    mutate(admin, """mutation($u: [ID!]!, $p: ID!) { reattachUnits(unitIds: $u, parentId: $p,
        effectiveOn: "2025-09-01", waitForProjection: true) { id projected } }""", u=[second_part], p=ward_b["id"])
    assert member_ids(admin, cell["id"], "2025-06-30") == set(people)
    assert member_ids(admin, cell["id"]) == set()
    assert member_ids(admin, ward_a["id"], "2025-08-01") == set(people)
    assert member_ids(admin, ward_a["id"]) == {people[0]}
    assert member_ids(admin, ward_b["id"]) == set(people[1:])
    assert member_ids(admin, ward_b["id"], "2025-08-01") == set()
    cells_then = {e["node"]["id"]: e["node"]["unit"]["code"]
                  for e in gql(admin, MEMBERS, unit=city["id"], asOf="2025-06-30")["members"]["edges"]}
    cells_now = {e["node"]["id"]: e["node"]["unit"]["code"]
                 for e in gql(admin, MEMBERS, unit=city["id"])["members"]["edges"]}
    assert cells_then == dict.fromkeys(people, cell["code"]), "each member's cell on the date asked for"
    assert cells_now == {people[0]: first_code, **dict.fromkeys(people[1:], second_code)}
    counts = gql(admin, """query($u: ID!) { organizationUnit(id: $u) { memberCounts { dimension value count } } }""",
                 u=city["id"])["organizationUnit"]["memberCounts"]
    assert {"dimension": "status", "value": "official", "count": 4} in counts
    ward_b_counts = gql(admin, """query($u: ID!) { organizationUnit(id: $u) { memberCounts { dimension value count }
        } }""", u=ward_b["id"])["organizationUnit"]["memberCounts"]
    assert {"dimension": "status", "value": "official", "count": 3} in ward_b_counts
    assert first_part != second_part
