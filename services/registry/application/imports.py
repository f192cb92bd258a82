"""Importing an existing roll: header mapping (English or Vietnamese), validation of every row before any
write, and the chunked, resumable write that matches members by citizen id.

The pure part (reading values, validating) is here; the file formats are read in adapters/roll_files.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.domain import members
from registry.domain.commands import EnrolMember
from registry.domain.errors import DomainError
from registry.domain.policy import CARD_PROVINCE_CODE
from registry.domain.units import Unit

REQUIRED = ("full_name", "gender", "birth_date", "citizen_id", "cell_code", "status", "admitted_on")
OPTIONAL = ("ethnicity", "religion", "hometown", "address", "phone", "education", "qualification",
            "political_theory", "occupation", "youth_union", "official_on", "card_number", "member_since",
            "interruptions")

# The usual roll headings (sổ đảng viên / danh sách đảng viên), compared without accents and case.
VIETNAMESE_HEADERS = {
    "ho va ten": "full_name", "ho ten": "full_name",
    "gioi tinh": "gender",
    "ngay sinh": "birth_date", "ngay thang nam sinh": "birth_date",
    "so cccd": "citizen_id", "cccd": "citizen_id", "so can cuoc": "citizen_id", "so can cuoc cong dan": "citizen_id",
    "so dinh danh": "citizen_id",
    "dan toc": "ethnicity",
    "ton giao": "religion",
    "que quan": "hometown",
    "noi o hien nay": "address", "dia chi": "address", "noi o": "address",
    "so dien thoai": "phone", "dien thoai": "phone",
    "trinh do giao duc pho thong": "education", "hoc van": "education", "trinh do hoc van": "education",
    "trinh do chuyen mon": "qualification", "chuyen mon nghiep vu": "qualification", "chuyen mon": "qualification",
    "ly luan chinh tri": "political_theory", "trinh do ly luan chinh tri": "political_theory",
    "nghe nghiep": "occupation",
    "doan vien": "youth_union",
    "ma chi bo": "cell_code", "chi bo": "cell_code",
    "trang thai": "status", "loai dang vien": "status", "dang vien": "status",
    "ngay vao dang": "admitted_on", "ngay ket nap": "admitted_on",
    "ngay chinh thuc": "official_on", "ngay cong nhan chinh thuc": "official_on",
    "so the dang vien": "card_number", "so the": "card_number", "so the dang": "card_number",
    "sinh hoat tu ngay": "member_since", "ngay sinh hoat": "member_since",
    "thoi gian gian doan": "interruptions", "gian doan": "interruptions",
}

GENDERS = {"male": "male", "female": "female", "nam": "male", "nu": "female"}
STATUSES = {"official": "official", "probationary": "probationary", "chinh thuc": "official", "du bi": "probationary"}
YES_NO = {"yes": True, "no": False, "true": True, "false": False, "co": True, "khong": False, "x": True, "1": True,
          "0": False, "": None}
OCCUPATION_LABELS = {
    "sinh vien": "university_student", "hoc sinh": "high_school_pupil", "huu tri": "retired",
    "cong nhan": "enterprise_worker", "nong dan": "farmer_forester_fisher", "quan doi": "army_police",
    "cong an": "army_police", "vien chuc": "public_service_employee", "cong chuc": "state_cadre",
    "can bo": "state_cadre", "khac": "other",
}


@functools.lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Lower case without accents (đ -> d): how headings and labels are compared."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return " ".join("".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower().split())


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    code: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class RollRow:
    row: int
    command: EnrolMember
    events: list[Any]


@dataclass
class Validated:
    rows: list[RollRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    total: int = 0


def map_header(header: Sequence[Any]) -> tuple[dict[int, str], list[RowError]]:
    columns: dict[int, str] = {}
    errors: list[RowError] = []
    known = set(REQUIRED) | set(OPTIONAL)
    for index, raw in enumerate(header):
        name = str(raw or "").strip()
        if not name:
            continue
        key = name.lower().strip().replace(" ", "_") if name.lower().replace(" ", "_") in known else None
        key = key or VIETNAMESE_HEADERS.get(fold(name).replace("(", "").replace(")", "").strip())
        if key is None:
            errors.append(RowError(1, name, "column-unknown", f"unknown column {name!r}"))
        elif key in columns.values():
            errors.append(RowError(1, name, "column-repeated", f"column {key} appears twice"))
        else:
            columns[index] = key
    for required in REQUIRED:
        if required not in columns.values():
            errors.append(RowError(1, required, "column-missing", f"required column {required} is missing"))
    return columns, errors


def parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _interruptions(value: str) -> tuple[tuple[dt.date, dt.date, str], ...]:
    periods = []
    for part in filter(None, (p.strip() for p in value.split(";"))):
        span, _, reason = part.partition(" ")
        start, sep, end = span.partition("..")
        if not sep:
            raise ValueError("periods are START..END, separated by ';'")
        periods.append((parse_date(start), parse_date(end), reason.strip()))
    return tuple(periods)


def validate_rows(rows: Iterable[Sequence[Any]], *, cell_for_code: Callable[[Sequence[str]], dict[str, Unit]],
                  card_holders: Callable[[Sequence[str]], dict[str, str]], citizen_holders: Callable[
                      [Sequence[str]], dict[str, str]],
                  today: dt.date, progress: Callable[[int], None] | None = None,
                  card_code: str = CARD_PROVINCE_CODE,
                  in_scope: Callable[[Unit], bool] | None) -> Validated:
    """Every row checked before anything is written; each error names the row (1 = the header), field and code.
    `in_scope`: whether the submitting actor may enrol members into a cell (asked once per cell); None: anywhere."""
    iterator = iter(rows)
    result = Validated()
    try:
        header = next(iterator)
    except StopIteration:
        result.errors.append(RowError(1, "", "file-empty", "the file has no header row"))
        return result
    columns, header_errors = map_header(header)
    if header_errors:
        result.errors.extend(header_errors)
        return result
    raw_rows: list[tuple[int, dict[str, str | Any]]] = []
    for number, raw in enumerate(iterator, start=2):
        if not any(_text(v) for v in raw):
            continue
        raw_rows.append((number, {key: raw[i] if i < len(raw) else None for i, key in columns.items()}))
    result.total = len(raw_rows)
    cells = cell_for_code(sorted({_text(values.get("cell_code")) for _, values in raw_rows}))
    outside = {code for code, cell in cells.items() if in_scope is not None and not in_scope(cell)}
    seen_citizen: dict[str, int] = {}
    seen_card: dict[str, int] = {}
    for done, (number, values) in enumerate(raw_rows, start=1):
        if progress is not None and done % 5000 == 0:
            progress(done)
        if (code := _text(values.get("cell_code"))) in outside:
            result.errors.append(RowError(number, "cell_code", "outside-scope",
                                          f"cell {code} is outside the subtree the import was submitted in"))
            continue
        try:
            command = _row_command(number, values, cells)
            events = members.enrol(command, current=members.INITIAL, unit=cells.get(_text(values.get("cell_code"))),
                                   today=today, card_code=card_code)
        except _FieldError as exc:
            result.errors.append(RowError(number, exc.field, exc.code, str(exc)))
            continue
        except DomainError as exc:
            result.errors.append(RowError(number, _row_field(exc.field), exc.code, str(exc)))
            continue
        if command.citizen_id in seen_citizen:
            result.errors.append(RowError(number, "citizen_id", "citizen-id-repeated",
                                          f"also on row {seen_citizen[command.citizen_id]}"))
            continue
        seen_citizen[command.citizen_id] = number
        if command.card_number:
            if command.card_number in seen_card:
                result.errors.append(RowError(number, "card_number", "card-number-repeated",
                                              f"also on row {seen_card[command.card_number]}"))
                continue
            seen_card[command.card_number] = number
        result.rows.append(RollRow(number, command, events))
    # Cards already held by a member who is not this row's (matched by citizen id) are refused.
    card_rows = [r for r in result.rows if r.command.card_number]
    if card_rows:
        holders = card_holders([r.command.card_number or "" for r in card_rows])
        existing = citizen_holders([r.command.citizen_id for r in card_rows])
        refused = set()
        for r in card_rows:
            holder = holders.get(r.command.card_number or "")
            if holder is not None and holder != existing.get(r.command.citizen_id):
                result.errors.append(RowError(r.row, "card_number", "card-number-taken",
                                              f"card {r.command.card_number} belongs to another member"))
                refused.add(r.row)
        result.rows = [r for r in result.rows if r.row not in refused]
    result.errors.sort(key=lambda e: e.row)
    if progress is not None:
        progress(len(raw_rows))
    return result


def _row_field(field_name: str | None) -> str:
    return {"unit_id": "cell_code"}.get(field_name or "", field_name or "")


class _FieldError(ValueError):
    def __init__(self, field_name: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.code = code


def _row_command(number: int, values: dict[str, Any], cells: dict[str, Unit]) -> EnrolMember:
    for required in REQUIRED:
        if not _text(values.get(required)):
            raise _FieldError(required, "value-missing", f"{required} is required")

    def date_of(name: str) -> dt.date | None:
        raw = values.get(name)
        if raw is None or _text(raw) == "":
            return None
        try:
            return parse_date(raw)
        except ValueError as exc:
            raise _FieldError(name, "date-invalid", str(exc)) from None

    gender = GENDERS.get(fold(_text(values["gender"])))
    if gender is None:
        raise _FieldError("gender", "gender-invalid", "gender is male/female (Nam/Nữ)")
    status = STATUSES.get(fold(_text(values["status"])))
    if status is None:
        raise _FieldError("status", "status-invalid", "status is official/probationary (Chính thức/Dự bị)")
    cell = cells.get(_text(values["cell_code"]))
    if cell is None:
        raise _FieldError("cell_code", "cell-not-found", f"no active cell has code {_text(values['cell_code'])!r}")
    profile: dict[str, Any] = {}
    for name in ("ethnicity", "religion", "hometown", "address", "phone", "education", "qualification",
                 "political_theory"):
        if text := _text(values.get(name)):
            profile[name] = text
    if occupation := _text(values.get("occupation")):
        profile["occupation"] = OCCUPATION_LABELS.get(fold(occupation), occupation)
    if "youth_union" in values and values["youth_union"] is not None:
        flag = YES_NO.get(fold(_text(values["youth_union"])))
        if flag is None and _text(values["youth_union"]):
            raise _FieldError("youth_union", "value-invalid", "youth_union is yes/no (Có/Không)")
        if flag is not None:
            profile["youth_union"] = flag
    try:
        interruptions = _interruptions(_text(values.get("interruptions")))
    except ValueError as exc:
        raise _FieldError("interruptions", "interruption-invalid", str(exc)) from None
    birth, admitted = date_of("birth_date"), date_of("admitted_on")
    assert birth is not None and admitted is not None
    raw_citizen = values["citizen_id"]
    # A spreadsheet that stored the id as a number dropped its leading zeros.
    citizen_id = str(int(raw_citizen)).zfill(12) if isinstance(raw_citizen, int | float) else _text(raw_citizen)
    return EnrolMember(
        member_id=str(uuid.uuid4()), full_name=_text(values["full_name"]), gender=gender, birth_date=birth,
        citizen_id=citizen_id,
        unit_id=cell.unit_id, status=status, admitted_on=admitted, source="import",
        official_on=date_of("official_on"), member_since=date_of("member_since"),
        card_number=_text(values.get("card_number")) or None, profile=profile, interruptions=interruptions)
