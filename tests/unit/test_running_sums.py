"""The ranges of a running sum cover every day up to the asked one exactly once, aligned to their grains."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from gateway.running_sums import Range, running_sum, span

DAYS = st.dates(min_value=dt.date(1930, 2, 3), max_value=dt.date(2040, 12, 31))
BOUNDARIES = st.integers(1931, 2041).map(lambda year: dt.date(year, 1, 1))


def covered(ranges: list[Range], day: dt.date) -> int:
    """How many times the signed ranges count the changes of `day`."""
    total = 0
    for r in ranges:
        if r.grain == "b":
            total += r.sign * (day < r.lo)
        else:
            total += r.sign * (r.lo <= day < r.hi)
    return total


def aligned(r: Range) -> bool:
    if r.grain == "m":
        return r.lo.day == 1 and r.hi.day == 1
    if r.grain == "y":
        return (r.lo.month, r.lo.day, r.hi.month, r.hi.day) == (1, 1, 1, 1)
    return True


def edges(ranges: list[Range], day: dt.date) -> set[dt.date]:
    """Every day on which the coverage could change, and its neighbours: checking those checks every day."""
    points = {day, dt.date(1930, 1, 1), dt.date(2041, 12, 31)}
    for r in ranges:
        points |= {r.lo, r.hi} if r.lo > dt.date(1900, 1, 1) else {r.hi}
    return {p + dt.timedelta(days=k) for p in points for k in (-1, 0, 1)
            if dt.date(1900, 1, 2) <= p <= dt.date(2100, 1, 1)}


@given(day=DAYS, boundary=BOUNDARIES)
def test_a_running_sum_counts_each_day_up_to_the_asked_one_once(day: dt.date, boundary: dt.date) -> None:
    ranges = running_sum(day, boundary)
    assert all(aligned(r) for r in ranges), ranges
    for point in edges(ranges, day):
        assert covered(ranges, point) == (1 if point <= day else 0), (point, ranges)


@given(lo=DAYS, hi=DAYS)
def test_a_span_covers_its_days_once_with_few_periods(lo: dt.date, hi: dt.date) -> None:
    ranges = span(lo, hi)
    assert all(aligned(r) for r in ranges), ranges
    for point in edges(ranges, hi) | {lo - dt.timedelta(days=1), lo}:
        assert covered(ranges, point) == (1 if lo <= point < hi else 0), (point, ranges)
    assert sum(r.periods for r in ranges) <= 31 + 11 + max(0, hi.year - lo.year) + 11 + 31


def test_a_day_near_the_boundary_reads_the_boundary_total_and_a_few_periods() -> None:
    ranges = running_sum(dt.date(2026, 11, 23), dt.date(2026, 1, 1))
    assert ranges[0].grain == "b"
    assert sum(r.periods for r in ranges) == 1 + 10 + 23
    before = running_sum(dt.date(2024, 12, 31), dt.date(2026, 1, 1))
    assert [(r.sign, r.grain) for r in before] == [(1, "b"), (-1, "y")]


def test_a_day_long_before_the_boundary_is_summed_from_the_beginning() -> None:
    ranges = running_sum(dt.date(1950, 6, 15), dt.date(2026, 1, 1))
    assert all(r.sign == 1 and r.grain != "b" for r in ranges)
