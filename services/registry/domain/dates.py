"""Calendar arithmetic the rules need: whole months and years between dates, month offsets."""

from __future__ import annotations

import calendar
import datetime as dt


def add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def add_years(day: dt.date, years: int) -> dt.date:
    return add_months(day, 12 * years)


def whole_years_between(start: dt.date, end: dt.date) -> int:
    """Anniversaries reached by `end`; an anniversary of 29 February falls on 28 February in common years."""
    years = end.year - start.year
    if years > 0 and add_years(start, years) > end:
        years -= 1
    return max(years, 0) if end >= start else years
