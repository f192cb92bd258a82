"""The registry's REST API as clients use it: pinned shapes, roles and subtrees, imports, problems."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from servicekit.embedded.system import RunningSystem


def code() -> str:
    return f"R{uuid.uuid4().hex[:10]}"


def client(system: RunningSystem, role: str = "city-admin", unit: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=system.url("registry"), timeout=30,
                        headers={"Authorization": f"Bearer {system.token(role, unit)}"})


def tree(admin: httpx.Client) -> dict[str, Any]:
    city, ward_x, ward_y = code(), code(), code()
    ids = {"city": admin.post("/units", json={"code": city, "name": "Thành ủy", "kind": "city_committee",
                                               "established_on": "1930-02-03"}).json()["id"]}
    ids["x"] = admin.post("/units", json={"code": ward_x, "name": "Phường X", "kind": "commune_committee",
                                          "parent_id": ids["city"], "established_on": "2025-07-01"}).json()["id"]
    ids["y"] = admin.post("/units", json={"code": ward_y, "name": "Phường Y", "kind": "commune_committee",
                                          "parent_code": city, "established_on": "2025-07-01"}).json()["id"]
    for ward in ("x", "y"):
        ids[f"cell_{ward}"] = admin.post("/units", json={
            "code": f"{code()}", "name": f"Chi bộ {ward}", "kind": "grassroots_cell", "parent_id": ids[ward],
            "established_on": "2025-07-01"}).json()["id"]
    ids["codes"] = {"city": city, "x": ward_x, "y": ward_y}
    return ids


def enrol(api: httpx.Client, unit_id: str, **extra: Any) -> httpx.Response:
    body = {"full_name": "Nguyễn Văn An", "gender": "male", "birth_date": "1980-01-01",
            "citizen_id": f"{uuid.uuid4().int % 10**12:012d}", "unit_id": unit_id, "status": "official",
            "admitted_on": "2005-05-19", "official_on": "2006-05-19", **extra}
    return api.post("/members", json=body)


def test_a_clerk_of_one_ward_cannot_touch_another_ward(system: RunningSystem) -> None:
    admin = client(system)
    ids = tree(admin)
    clerk_x = client(system, "clerk", ids["codes"]["x"])
    mine = enrol(clerk_x, ids["cell_x"])
    assert mine.status_code == 201, mine.text
    assert set(mine.json()) >= {"id", "version", "consistency_token"}
    theirs = enrol(clerk_x, ids["cell_y"])
    assert theirs.status_code == 403 and theirs.json()["code"] == "outside-scope"
    other = enrol(admin, ids["cell_y"]).json()["id"]
    profile = clerk_x.post(f"/members/{other}/profile", json={"address": "Số 1 phố Huế"})
    assert profile.status_code == 403
    assert clerk_x.post(f"/members/{mine.json()['id']}/leave", json={
        "reason": "resigned", "decided_on": "2026-01-01", "decision_ref": "QĐ 1"}).status_code == 403, \
        "a clerk records facts; leaving is the committee's decision"
    reader = client(system, "reader", ids["codes"]["x"])
    record = reader.get(f"/members/{mine.json()['id']}")
    assert record.status_code == 200 and record.json()["citizen_id"] is None, "PII masked for readers"
    assert clerk_x.get(f"/members/{other}").status_code == 403, "reads are scoped too"
    assert clerk_x.get(f"/units/{ids['y']}").status_code == 403
    assert clerk_x.get(f"/units/{ids['y']}/history").status_code == 403


def test_member_commands_answer_with_version_and_codes(system: RunningSystem) -> None:
    admin = client(system)
    ids = tree(admin)
    member = enrol(admin, ids["cell_x"]).json()
    path = f"/members/{member['id']}"
    exempted = admin.post(f"{path}/exemption", json={"effective_on": "2026-01-05", "reason": "tuổi cao"})
    assert exempted.status_code == 200 and exempted.json()["version"] == 2
    rated = admin.post(f"{path}/ratings", json={"year": 2025, "level": "hoan_thanh"})
    assert rated.status_code == 409 and rated.json()["code"] == "member-exempted"
    stale = admin.post(f"{path}/exemption/end", json={"effective_on": "2026-02-01"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["code"] == "version-mismatch"
    ended = admin.post(f"{path}/exemption/end", json={"effective_on": "2026-02-01"}, headers={"If-Match": '"2"'})
    assert ended.status_code == 200
    badge = admin.post(f"{path}/badges", json={"years": 30, "awarded_on": "2026-02-01"})
    assert badge.status_code == 422 and badge.json()["code"] == "badge-not-yet-due"
    card = admin.post(f"{path}/card", json={"reason": "exchange_2025", "issued_on": "2025-09-02"})
    assert card.status_code == 200
    assert admin.get(path).json()["card_number"].startswith("01")
    foreign = enrol(admin, ids["cell_x"], card_number="02123456")
    assert (foreign.status_code, foreign.json()["code"], foreign.json()["field"]) == (
        422, "card-number-invalid", "card_number"), "a card of another province's register"
    left = admin.post(f"{path}/leave", json={"reason": "struck_off", "decided_on": "2026-03-01",
                                             "decision_ref": "QĐ 2", "basis": "bỏ sinh hoạt"})
    assert left.status_code == 200
    too_early = admin.post(f"{path}/readmit", json={"readmitted_on": "2026-06-01", "unit_id": ids["cell_x"],
                                                    "decision_ref": "QĐ 3"})
    assert too_early.status_code == 422 and too_early.json()["code"] == "readmission-too-early"
    invalid = admin.post(f"{path}/profile", json={"citizen_id": "123"})
    assert invalid.status_code == 422 and invalid.json()["field"] == "citizen_id"


def test_a_merge_over_http_moves_members_and_is_visible_in_the_unit_history(system: RunningSystem) -> None:
    admin = client(system)
    ids = tree(admin)
    for _ in range(3):
        enrol(admin, ids["cell_y"])
    merged = admin.post("/units/merge", json={"source_ids": [ids["cell_y"]], "target_id": ids["cell_x"],
                                              "effective_on": "2025-08-01", "decision_ref": "QĐ 9"})
    assert merged.status_code == 200, merged.text
    assert merged.json()["members_moved"] == 3
    history = admin.get(f"/units/{ids['cell_y']}/history").json()
    assert history[-1]["type"] == "OrganizationUnitDissolved"
    assert admin.get(f"/units/{ids['cell_y']}", params={"as_of": "2025-07-31"}).json()["status"] == "active"
    assert admin.get(f"/units/{ids['cell_y']}").json()["status"] == "merged"
    assert admin.get(f"/units/{ids['cell_y']}", params={"as_of": "2025-06-30"}).status_code == 404
    split = admin.post(f"/units/{ids['cell_x']}/split", json={
        "parts": [{"code": code(), "name": "A", "kind": "grassroots_cell"},
                  {"code": code(), "name": "B", "kind": "grassroots_cell"}],
        "effective_on": "2025-07-01", "decision_ref": "QĐ 10"})
    assert split.status_code == 422 and split.json()["code"] == "split-leaves-members-unassigned"


def test_an_import_over_http_reports_bad_rows_then_accepts_a_good_file(system: RunningSystem) -> None:
    admin = client(system)
    ids = tree(admin)
    cell_code = admin.get(f"/units/{ids['cell_x']}").json()["code"]
    header = "Họ và tên,Giới tính,Ngày sinh,Số CCCD,Mã chi bộ,Loại đảng viên,Ngày vào Đảng\n"
    good = f"Lê Thị Hoa,Nữ,02/09/1985,{uuid.uuid4().int % 10**12:012d},{cell_code},Chính thức,19/05/2010\n"
    bad = f"Lê Văn Hùng,Nam,02/09/1985,12AB,{cell_code},Chính thức,19/05/2010\n"

    def submit(content: str, api: httpx.Client = admin) -> dict[str, Any]:
        started = api.post("/imports", files={"file": ("roll.csv", content.encode(), "text/csv")})
        assert started.status_code == 202, started.text
        import_id = started.json()["import_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = api.get(f"/imports/{import_id}").json()
            if status["status"] in ("completed", "rejected"):
                return {**status, "import_id": import_id}
            time.sleep(0.1)
        raise AssertionError("import did not finish")

    rejected = submit(header + good + bad)
    assert rejected["status"] == "rejected"
    assert rejected["errors"] == [{"row": 3, "field": "citizen_id", "code": "citizen-id-invalid",
                                   "message": "a citizen id has exactly 12 digits"}]
    completed = submit(header + good)
    assert (completed["status"], completed["written"]) == ("completed", 1)
    again = submit(header + good)
    assert (again["status"], again["written"], again["skipped"]) == ("completed", 0, 1)
    reader = client(system, "reader", ids["codes"]["x"])
    assert reader.post("/imports", files={"file": ("roll.csv", b"x", "text/csv")}).status_code == 403

    clerk_y = client(system, "clerk", ids["codes"]["y"])
    cell_y_code = admin.get(f"/units/{ids['cell_y']}").json()["code"]
    theirs = submit(header + f"Lê Thị Hà,Nữ,02/09/1985,{uuid.uuid4().int % 10**12:012d},{cell_y_code},Chính thức,"
                    "19/05/2010\n", clerk_y)
    assert (theirs["status"], theirs["written"]) == ("completed", 1)
    across = submit(header + good, clerk_y)
    assert [(e["row"], e["field"], e["code"]) for e in across["errors"]] == [(2, "cell_code", "outside-scope")]
    clerk_x = client(system, "clerk", ids["codes"]["x"])
    refused = clerk_x.get(f"/imports/{theirs['import_id']}")
    assert (refused.status_code, refused.json()["code"]) == (403, "outside-scope")
    assert reader.get(f"/imports/{completed['import_id']}").status_code == 403, "reading a report takes a clerk"
    assert client(system, "clerk", ids["codes"]["city"]).get(f"/imports/{theirs['import_id']}").status_code == 200


def test_a_decision_carries_its_legal_basis_the_client_s_or_the_one_in_force_on_its_date(
        system: RunningSystem) -> None:
    admin = client(system)
    ids = tree(admin)
    renamed = admin.post(f"/units/{ids['x']}/rename", json={"name": "Phường X mới", "effective_on": "2025-08-01"},
                         headers={"X-Legal-Basis": quote("Nghị quyết 60-NQ/TW (12/04/2025)")})
    assert renamed.status_code == 200, renamed.text
    cell = admin.post("/units", json={"code": code(), "name": "Chi bộ cũ", "kind": "grassroots_cell",
                                      "parent_id": ids["city"], "established_on": "2022-03-01"})
    assert cell.status_code == 201, cell.text
    bases = [e["legal_basis"] for e in admin.get(f"/units/{ids['x']}/history").json()]
    assert bases == ["Điều lệ Đảng (2011); Quy định 294-QĐ/TW (26/05/2025); Hướng dẫn 06-HD/TW (09/06/2025)",
                     "Nghị quyết 60-NQ/TW (12/04/2025)"]
    [established] = admin.get(f"/units/{cell.json()['id']}/history").json()
    assert established["legal_basis"] == \
        "Điều lệ Đảng (2011); Quy định 24-QĐ/TW (30/07/2021); Hướng dẫn 01-HD/TW (28/09/2021)", "the rules of 2022"
    too_long = admin.post(f"/units/{ids['x']}/rename", json={"name": "Phường X", "effective_on": "2025-09-01"},
                          headers={"X-Legal-Basis": "x" * 501})
    assert (too_long.status_code, too_long.json()["field"]) == (422, "X-Legal-Basis")
    for bad in ("%FF%FE", "%00", "Quy định".encode()):
        refused = admin.post(f"/units/{ids['x']}/rename", json={"name": "Phường X", "effective_on": "2025-09-01"},
                             headers={"X-Legal-Basis": bad})
        assert (refused.status_code, refused.json()["field"]) == (422, "X-Legal-Basis"), bad
    member = enrol(admin, ids["cell_x"]).json()["id"]
    rated = admin.post(f"/members/{member}/ratings", json={"year": 2024, "level": "hoan_thanh"})
    assert rated.status_code == 200, rated.text
    with psycopg.connect(system.database_url) as conn:
        stored = conn.execute("SELECT metadata->>'legal_basis' FROM registry.events WHERE stream_id = %s"
                              " AND event_type = 'AnnualRatingRecorded'", (f"member-{member}",)).fetchone()
    assert stored == ("Điều lệ Đảng (2011); Quy định 124-QĐ/TW (04/10/2023)",), "the rating rules of its year"
