"""Reading a roll file: CSV (UTF-8, with or without BOM; comma or semicolon) or XLSX (first sheet)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


class UnreadableFile(ValueError):
    """Neither a CSV nor an XLSX file we can read."""


def sniff_kind(name: str, head: bytes) -> str:
    if head.startswith(b"PK\x03\x04") or name.lower().endswith(".xlsx"):
        return "xlsx"
    return "csv"


def read_rows(path: Path, *, kind: str | None = None) -> Iterator[Sequence[Any]]:
    with path.open("rb") as handle:
        head = handle.read(8)
    kind = kind or sniff_kind(path.name, head)
    if kind == "xlsx":
        yield from _xlsx_rows(path)
    else:
        yield from _csv_rows(path)


def _csv_rows(path: Path) -> Iterator[Sequence[Any]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"the CSV file is not UTF-8 (byte {exc.start})") from exc
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    yield from csv.reader(io.StringIO(text), delimiter=delimiter)


def _xlsx_rows(path: Path) -> Iterator[Sequence[Any]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise UnreadableFile(f"not a readable XLSX file: {exc}") from exc
    try:
        sheet = workbook.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            yield list(row)
    finally:
        workbook.close()
