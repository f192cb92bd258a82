"""GraphQL types of the central statistics forms: each figure with this period, the same period a year
earlier, and the change in percent."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import strawberry
from strawberry.types import Info

from gateway.api.common import today
from gateway.api.context import GatewayContext
from gateway.api.errors import Forbidden, StatisticsPending
from gateway.statistics import forms, year_earlier, year_to_date


@strawberry.type
class Figure:
    this_period: int
    same_period_last_year: int

    @strawberry.field(description="Change in percent; null when last year's figure is zero")
    def change_percent(self) -> float | None:
        if self.same_period_last_year == 0:
            return None
        return round(100.0 * (self.this_period - self.same_period_last_year) / self.same_period_last_year, 2)


@strawberry.type
class CategoryFigure:
    category: str
    figure: Figure


@strawberry.type
class Breakdown:
    dimension: str
    value: str
    figure: Figure


@strawberry.type
class DateRange:
    start: dt.date
    end: dt.date


@strawberry.type(description="Biểu 1: increase and decrease over the period")
class Bieu1:
    opening: Figure
    closing: Figure
    increases: list[CategoryFigure]
    decreases: list[CategoryFigure]
    total_increase: Figure
    total_decrease: Figure


@strawberry.type(description="The central statistics forms for a subtree")
class Statistics:
    unit_id: strawberry.ID
    as_of: dt.date
    period: DateRange
    comparison_period: DateRange
    bieu1: Bieu1
    bieu2: list[Breakdown] = strawberry.field(description="New members by composition")
    bieu3: list[Breakdown] = strawberry.field(description="Membership on the date by composition")
    bieu5: list[CategoryFigure] = strawberry.field(description="Organizations by kind")


def _figure(now: int, before: int) -> Figure:
    return Figure(this_period=now, same_period_last_year=before)


def _categories(now: dict[tuple[str, str], int], before: dict[tuple[str, str], int], direction: str
                ) -> list[CategoryFigure]:
    keys = sorted({c for d, c in now if d == direction} | {c for d, c in before if d == direction})
    return [CategoryFigure(category=k, figure=_figure(now.get((direction, k), 0), before.get((direction, k), 0)))
            for k in keys]


def _breakdowns(now: dict[tuple[str, str], int], before: dict[tuple[str, str], int]) -> list[Breakdown]:
    return [Breakdown(dimension=d, value=v, figure=_figure(now.get((d, v), 0), before.get((d, v), 0)))
            for d, v in sorted(set(now) | set(before))]


async def build_statistics(info: Info[GatewayContext, None], unit_id: uuid.UUID, as_of: dt.date | None,
                           compare_with: dt.date | None) -> Statistics:
    day = as_of or today()
    if not await info.context.in_scope(unit_id, day):
        raise Forbidden("outside your subtree")
    period = year_to_date(day)
    comparison = year_to_date(compare_with) if compare_with else year_earlier(period)
    pending, found = await asyncio.gather(info.context.read_models.statistics_pending(),
                                          forms(info.context.read_models.pool, unit_id, period, comparison))
    if pending is not None:
        raise StatisticsPending(pending.isoformat())
    (b1_now, b1_before), (b2_now, b2_before) = found.bieu1, found.bieu2
    (b3_now, b3_before), (b5_now, b5_before) = found.bieu3, found.bieu5
    total = {"increase": 0, "decrease": 0}
    totals_before = {"increase": 0, "decrease": 0}
    for (direction, _), n in b1_now.items():
        if direction in total:
            total[direction] += n
    for (direction, _), n in b1_before.items():
        if direction in totals_before:
            totals_before[direction] += n
    return Statistics(
        unit_id=strawberry.ID(str(unit_id)), as_of=day,
        period=DateRange(start=period.start, end=period.end),
        comparison_period=DateRange(start=comparison.start, end=comparison.end),
        bieu1=Bieu1(
            opening=_figure(b1_now.get(("opening", "total"), 0), b1_before.get(("opening", "total"), 0)),
            closing=_figure(b1_now.get(("closing", "total"), 0), b1_before.get(("closing", "total"), 0)),
            increases=_categories(b1_now, b1_before, "increase"),
            decreases=_categories(b1_now, b1_before, "decrease"),
            total_increase=_figure(total["increase"], totals_before["increase"]),
            total_decrease=_figure(total["decrease"], totals_before["decrease"]),
        ),
        bieu2=_breakdowns(b2_now, b2_before),
        bieu3=_breakdowns(b3_now, b3_before),
        bieu5=[CategoryFigure(category=k, figure=_figure(b5_now.get(k, 0), b5_before.get(k, 0)))
               for k in sorted(set(b5_now) | set(b5_before))],
    )


@strawberry.type
class StatisticsQueries:
    @strawberry.field(description="Biểu 1, 2, 3 and 5 for a unit's subtree; period = the calendar year up to asOf")
    async def statistics(self, info: Info[GatewayContext, None], unit_id: strawberry.ID,
                         as_of: dt.date | None = None, compare_with: dt.date | None = None) -> Statistics:
        from gateway.api.common import require_id

        return await build_statistics(info, require_id(unit_id, "unitId"), as_of, compare_with)



