"""Which rows of `statistics_deltas` add up to a running sum on a day (pure; gateway.projections.figures
keeps the rows).

The rows hold each subtree's changes by day ('d'), month ('m') and year ('y'), and, as grain 'b' dated on
a boundary (a 1 January), everything before that boundary. A running sum up to a day is either every change
from the beginning, or the boundary's total plus (or minus) the changes between the boundary and the day.
Each is a short list of signed ranges of one grain; the one that reads fewer rows is taken.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

EARLIEST = dt.date(1930, 1, 1)
"""No change is older (the party was founded on 3 February 1930): only used to estimate a range's rows."""


@dataclass(frozen=True)
class Range:
    """The rows of one grain with lo <= period_start < hi, counted with `sign`."""

    sign: int
    grain: str
    lo: dt.date
    hi: dt.date

    @property
    def periods(self) -> int:
        """How many periods of its grain the range spans: the rows it reads for each (dimension, value)."""
        if self.grain == "b":
            return 1
        if self.grain == "d":
            return (self.hi - self.lo).days
        if self.grain == "m":
            return (self.hi.year - self.lo.year) * 12 + self.hi.month - self.lo.month
        return self.hi.year - max(self.lo, EARLIEST).year


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def span(lo: dt.date, hi: dt.date, sign: int = 1) -> list[Range]:
    """The changes of the days lo <= day < hi: days up to a month's start, months up to a year's, years, then
    months and days again up to `hi`."""
    if lo >= hi:
        return []
    ranges: list[Range] = []
    cursor = lo
    month = lo if lo.day == 1 else min(_next_month(lo), hi)
    if cursor < month:
        ranges.append(Range(sign, "d", cursor, month))
        cursor = month
    year = cursor if (cursor.month, cursor.day) == (1, 1) else dt.date(cursor.year + 1, 1, 1)
    last_month = _month_start(hi)
    stop = min(year, last_month)
    if cursor < stop:
        ranges.append(Range(sign, "m", cursor, stop))
        cursor = stop
    last_year = dt.date(hi.year, 1, 1)
    if cursor < last_year:
        ranges.append(Range(sign, "y", cursor, last_year))
        cursor = last_year
    if cursor < last_month:
        ranges.append(Range(sign, "m", cursor, last_month))
        cursor = last_month
    if cursor < hi:
        ranges.append(Range(sign, "d", cursor, hi))
    return ranges


def running_sum(day: dt.date, boundary: dt.date) -> list[Range]:
    """The ranges whose signed sum is every change up to and including `day`."""
    end = day + dt.timedelta(days=1)
    from_start = span(dt.date.min, end)
    around = [Range(1, "b", boundary, boundary + dt.timedelta(days=1))]
    around += span(boundary, end) if boundary <= end else span(end, boundary, sign=-1)
    return min(from_start, around, key=lambda ranges: sum(r.periods for r in ranges))
