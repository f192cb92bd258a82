"""The policy table's legal basis: the Charter with the implementing rules and guidance in force on a date."""

from __future__ import annotations

import datetime as dt

import pytest

from registry.domain.policy import legal_basis


@pytest.mark.parametrize(("on", "expected"), [
    (dt.date(2011, 1, 18), None),
    (dt.date(2015, 6, 1), "Điều lệ Đảng (2011)"),
    (dt.date(2021, 7, 29), "Điều lệ Đảng (2011); Quy định 29-QĐ/TW (25/07/2016)"),
    (dt.date(2021, 7, 30), "Điều lệ Đảng (2011); Quy định 24-QĐ/TW (30/07/2021)"),
    (dt.date(2025, 6, 30), "Điều lệ Đảng (2011); Quy định 232-QĐ/TW (20/01/2025); Hướng dẫn 06-HD/TW (09/06/2025)"),
    (dt.date(2025, 7, 1), "Điều lệ Đảng (2011); Quy định 294-QĐ/TW (26/05/2025); Hướng dẫn 06-HD/TW (09/06/2025)"),
])
def test_a_decision_stands_on_the_rules_in_force_on_its_date(on: dt.date, expected: str | None) -> None:
    assert legal_basis(on) == expected


def test_a_rating_stands_on_the_rating_rules_of_its_year() -> None:
    assert legal_basis(dt.date(2024, 12, 31), rating=True) == "Điều lệ Đảng (2011); Quy định 124-QĐ/TW (04/10/2023)"
    assert legal_basis(dt.date(2025, 12, 31), rating=True) == \
        "Điều lệ Đảng (2011); Quy định 366-QĐ/TW (30/08/2025); Hướng dẫn 43-HD/BTCTW (31/10/2025)"
