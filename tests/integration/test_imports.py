"""Importing a roll: every row validated first, a rejected file writes nothing, a re-import changes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.application.handlers import today as vietnam_today
from registry.domain.commands import DissolveUnit
from registry.domain.policy import legal_basis
from tests.support.registry import RegistryUnderTest, registry_for

HEADER = ["full_name", "gender", "birth_date", "citizen_id", "ethnicity", "religion", "occupation", "cell_code",
          "status", "admitted_on", "official_on", "card_number"]


@pytest.fixture
def reg(database_url: str, schema: str, topic: str, tmp_path: Path) -> Iterator[RegistryUnderTest]:
    under_test = registry_for(database_url, schema, topic, tmp_path)
    yield under_test
    under_test.close()


def cells(reg: RegistryUnderTest, count: int) -> list[str]:
    city = reg.unit("city_committee", on=dt.date(1930, 2, 3))
    ward = reg.unit("commune_committee", city, on=dt.date(1945, 1, 1))
    codes = []
    for i in range(count):
        code = f"CB{i}-{ward[:6]}"
        reg.unit("grassroots_cell", ward, code=code, on=dt.date(1990, 1, 1))
        codes.append(code)
    return codes


def two_wards(reg: RegistryUnderTest, count: int) -> tuple[str, list[str], str]:
    """A ward's code and `count` of its cells' codes, and the code of a cell of another ward."""
    city = reg.unit("city_committee", on=dt.date(1930, 2, 3))
    ward_code, inside, outside = f"W1-{city[:6]}", [f"CB{i}-{city[:6]}" for i in range(count)], f"CB-{city[:6]}"
    ward = reg.unit("commune_committee", city, code=ward_code, on=dt.date(1945, 1, 1))
    other = reg.unit("commune_committee", city, code=f"W2-{city[:6]}", on=dt.date(1945, 1, 1))
    for code in inside:
        reg.unit("grassroots_cell", ward, code=code, on=dt.date(1990, 1, 1))
    reg.unit("grassroots_cell", other, code=outside, on=dt.date(1990, 1, 1))
    return ward_code, inside, outside


def roll(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def person(i: int, cell: str, *, citizen: str | None = None, status: str = "official", card: str = "") -> list[str]:
    return [f"Nguyễn Văn {i}", "male" if i % 2 else "female", "1980-03-0" + str(1 + i % 9),
            citizen or f"{10**11 + i:012d}", "Kinh", "", "public_service_employee", cell, status, "2005-05-19",
            "2006-05-19" if status == "official" else "", card]


def run_import(reg: RegistryUnderTest, content: bytes, name: str = "roll.csv", *, scope: str | None = None,
               legal_basis: str | None = None) -> dict[str, object]:
    """An import submitted by an actor scoped to the unit coded `scope` (None: the whole register)."""
    runner = reg.registry.imports
    import_id = runner.submit(file_name=name, content=content, actor="test",
                              scope_unit_id=unit_id_of(reg, scope) if scope else None, legal_basis=legal_basis)
    return runner.run(import_id).as_json()


def unit_id_of(reg: RegistryUnderTest, code: str) -> str:
    with reg.registry.pool.connection() as conn:
        row = conn.execute("SELECT unit_id::text FROM unit_view WHERE code = %s", (code,)).fetchone()
    assert row is not None
    return str(row[0])


def count_members(reg: RegistryUnderTest) -> int:
    with reg.registry.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM member_view").fetchone()
    return int(row[0]) if row else 0


def test_a_file_with_bad_rows_is_rejected_whole_with_a_report_naming_row_field_and_code(reg: RegistryUnderTest
                                                                                        ) -> None:
    [cell] = cells(reg, 1)
    rows = [person(1, cell), person(2, cell, citizen="12345"), person(3, "NO-SUCH-CELL"), person(4, cell),
            person(5, cell, citizen=f"{10**11 + 1:012d}"), person(6, cell, status="probationary", card="01000001")]
    rows[3][2] = "31/02/1980"
    report = run_import(reg, roll(rows))
    assert report["status"] == "rejected"
    found = {(e["row"], e["field"], e["code"]) for e in report["errors"]}  # type: ignore[attr-defined]
    assert found == {(3, "citizen_id", "citizen-id-invalid"), (4, "cell_code", "cell-not-found"),
                     (5, "birth_date", "date-invalid"), (6, "citizen_id", "citizen-id-repeated"),
                     (7, "card_number", "card-for-official-only")}
    assert report["rejected"] == 5
    assert count_members(reg) == 0, "nothing of a rejected file is written"


def test_unknown_or_repeated_headings_and_a_card_given_twice_reject_the_file(reg: RegistryUnderTest) -> None:
    [cell] = cells(reg, 1)
    header = [*HEADER, "shoe_size"]
    header[0] = "Họ và tên"
    report = run_import(reg, roll([[*person(1, cell), "42"]], header=[*header, "full_name"]))
    found = {(e["row"], e["field"], e["code"]) for e in report["errors"]}  # type: ignore[attr-defined]
    assert (report["status"], found) == ("rejected", {(1, "shoe_size", "column-unknown"),
                                                      (1, "full_name", "column-repeated")})
    twice = run_import(reg, roll([person(1, cell, card="01000001"), person(2, cell, card="01000001")]))
    assert [(e["row"], e["field"], e["code"]) for e in twice["errors"]] == [  # type: ignore[attr-defined]
        (3, "card_number", "card-number-repeated")]
    assert count_members(reg) == 0


def test_a_missing_required_column_is_named(reg: RegistryUnderTest) -> None:
    report = run_import(reg, roll([], header=[h for h in HEADER if h != "citizen_id"]))
    assert report["status"] == "rejected"
    assert report["errors"] == [{"row": 1, "field": "citizen_id", "code": "column-missing",  # type: ignore[comparison-overlap]
                                 "message": "required column citizen_id is missing"}]


def test_re_importing_the_same_file_changes_nothing(reg: RegistryUnderTest) -> None:
    codes = cells(reg, 3)
    content = roll([person(i, codes[i % 3], card=f"01{500000 + i:06d}") for i in range(30)])
    first = run_import(reg, content)
    assert (first["status"], first["written"], first["skipped"]) == ("completed", 30, 0)
    with reg.registry.pool.connection() as conn:
        events_before = conn.execute("SELECT count(*) FROM events").fetchone()
    again = run_import(reg, content)
    assert (again["status"], again["written"], again["skipped"]) == ("completed", 0, 30)
    with reg.registry.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == events_before
    assert count_members(reg) == 30


def test_vietnamese_headings_and_an_xlsx_file_are_read(reg: RegistryUnderTest, tmp_path: Path) -> None:
    import openpyxl

    [cell] = cells(reg, 1)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Họ và tên", "Giới tính", "Ngày sinh", "Số CCCD", "Dân tộc", "Nghề nghiệp", "Mã chi bộ",
                  "Loại đảng viên", "Ngày vào Đảng", "Ngày chính thức", "Đoàn viên"])
    sheet.append(["Trần Thị Bình", "Nữ", dt.datetime(1990, 9, 2), 1190012345, "Tày", "Sinh viên", cell, "Dự bị",
                  "15/05/2026", None, "Có"])
    sheet.append(["Lê Văn Cường", "Nam", "02/09/1975", "001075000111", "Kinh", "Hưu trí", cell, "Chính thức",
                  "1999-12-22", "2000-12-22", "Không"])
    path = tmp_path / "danh-sach.xlsx"
    book.save(path)
    report = run_import(reg, path.read_bytes(), "danh-sach.xlsx")
    assert report["status"] == "completed", report
    assert report["written"] == 2
    with reg.registry.pool.connection() as conn:
        ids = {r[0] for r in conn.execute("SELECT citizen_id FROM member_view").fetchall()}
    assert ids == {"001190012345", "001075000111"}, "leading zeros lost by a numeric cell are restored"


@pytest.mark.slow
def test_a_fifty_thousand_row_file_is_imported_in_chunks(reg: RegistryUnderTest) -> None:
    codes = cells(reg, 50)
    rng = random.Random(7)
    rows = [person(i, rng.choice(codes)) for i in range(50_000)]
    report = run_import(reg, roll(rows))
    assert (report["status"], report["total"], report["written"]) == ("completed", 50_000, 50_000)
    assert count_members(reg) == 50_000
    with reg.registry.pool.connection() as conn:
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()
    assert outbox == (50_000 + 52,), "every event is queued for the relay (and the 52 units)"


def test_an_import_enrols_members_only_into_the_subtree_it_was_submitted_in(reg: RegistryUnderTest) -> None:
    ward, inside, outside = two_wards(reg, 2)
    rows = [person(1, inside[0]), person(2, outside), person(3, inside[1])]
    report = run_import(reg, roll(rows), scope=ward)
    assert report["status"] == "rejected"
    assert [(e["row"], e["field"], e["code"]) for e in report["errors"]] == [  # type: ignore[attr-defined]
        (3, "cell_code", "outside-scope")]
    assert count_members(reg) == 0
    assert run_import(reg, roll([rows[0], rows[2]]), scope=ward)["written"] == 2
    assert run_import(reg, roll([rows[1]]))["written"] == 1, "an import submitted for the whole register"


def test_an_import_s_report_is_read_over_the_subtree_it_was_submitted_in(reg: RegistryUnderTest) -> None:
    ward, _, outside = two_wards(reg, 1)
    runner = reg.registry.imports
    import_id = runner.submit(file_name="roll.csv", content=roll([]), actor="test",
                              scope_unit_id=unit_id_of(reg, ward), legal_basis=None)
    city = parent_code(reg, ward)
    assert runner.visible_to(import_id, unit_code=ward) and runner.visible_to(import_id, unit_code=city)
    assert runner.visible_to(import_id, unit_code=None)
    assert not runner.visible_to(import_id, unit_code=outside), "a cell of another ward"
    assert not runner.visible_to(import_id, unit_code=ward.replace("W1", "W2")), "another ward"
    whole = runner.submit(file_name="roll.csv", content=roll([]), actor="test", scope_unit_id=None,
                          legal_basis=None)
    assert runner.visible_to(whole, unit_code=None) and not runner.visible_to(whole, unit_code=ward)


def test_a_cell_dissolved_between_validation_and_writing_stops_the_import_before_its_rows(
        reg: RegistryUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    [code] = cells(reg, 1)
    runner = reg.registry.imports
    validate = runner._validate

    def validate_then_dissolve(*args: Any, **kwargs: Any) -> Any:
        validated = validate(*args, **kwargs)
        reg.run(reg.commands.dissolve_unit(DissolveUnit(unit_id=unit_id_of(reg, code), successor_id=None,
                                                        effective_on=dt.date(2024, 1, 1), decision_ref="QĐ 9")))
        return validated

    monkeypatch.setattr(runner, "_validate", validate_then_dissolve)
    report = run_import(reg, roll([person(1, code)]))
    assert (report["status"], [(e["row"], e["field"], e["code"]) for e in report["errors"]]) == (  # type: ignore[attr-defined]
        "rejected", [(2, "cell_code", "unit-not-active")])
    assert count_members(reg) == 0, "nobody enrolled into a dissolved cell"


def test_an_import_s_members_carry_its_legal_basis_or_the_table_s(reg: RegistryUnderTest) -> None:
    [code] = cells(reg, 1)
    run_import(reg, roll([person(1, code)]), legal_basis="Công văn 19370-CV/BTCTW")
    run_import(reg, roll([person(2, code)]))
    with reg.registry.pool.connection() as conn:
        bases = [r[0] for r in conn.execute(
            "SELECT metadata->>'legal_basis' FROM events WHERE event_type = 'MemberEnrolled' ORDER BY position")]
    assert bases == ["Công văn 19370-CV/BTCTW", legal_basis(vietnam_today())]


def parent_code(reg: RegistryUnderTest, ward_code: str) -> str:
    with reg.registry.pool.connection() as conn:
        row = conn.execute("SELECT p.code FROM unit_view u JOIN unit_view p ON p.unit_id = u.parent_id"
                           " WHERE u.code = %s", (ward_code,)).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.slow
def test_a_large_file_checked_by_several_workers_is_still_rejected_whole(reg: RegistryUnderTest) -> None:
    ward, codes, outside = two_wards(reg, 10)
    rows = [person(i, codes[i % 10]) for i in range(24_000)]
    rows[23_000][3] = rows[10][3]
    rows[15_000][1] = "unknown"
    rows[20_000][7] = outside
    report = run_import(reg, roll(rows), scope=ward)
    assert report["status"] == "rejected"
    found = {(e["row"], e["field"], e["code"]) for e in report["errors"]}  # type: ignore[attr-defined]
    assert found == {(23_002, "citizen_id", "citizen-id-repeated"), (15_002, "gender", "gender-invalid"),
                     (20_002, "cell_code", "outside-scope")}
    assert count_members(reg) == 0, "no worker wrote anything"


@pytest.mark.slow
def test_a_worker_that_cannot_reach_the_database_rejects_the_import_and_nothing_is_written(
        reg: RegistryUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    codes = cells(reg, 10)
    rows = [person(i, codes[i % 10]) for i in range(24_000)]
    runner = reg.registry.imports
    monkeypatch.setitem(runner.job_settings, "database_url", "postgresql://nobody@127.0.0.1:9/none")
    report = run_import(reg, roll(rows))
    assert report["status"] == "rejected"
    errors = report["errors"]
    assert isinstance(errors, list) and [e["code"] for e in errors] == ["worker-failed"]
    assert count_members(reg) == 0
