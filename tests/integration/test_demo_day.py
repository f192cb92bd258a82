"""The demo's history runs "from 2015 to today": a load keeps the day it was first planned on."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from demo.loader import planned_day
from demo.plan import SCALES, DemoPlan
from tests.support.registry import registry_for


def test_a_load_resumed_on_another_day_keeps_the_day_and_the_plan_it_began_with(database_url: str,
                                                                                 tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:10]
    reg = registry_for(database_url, f"r_{suffix}", f"t.{suffix}", tmp_path)
    try:
        began = dt.date(2026, 11, 24)
        assert planned_day(reg.registry, "tiny", 2015, began) == began
        resumed = planned_day(reg.registry, "tiny", 2015, began + dt.timedelta(days=1))
        assert resumed == began, "the resumed load plans up to the day the first one did"
        assert planned_day(reg.registry, "tiny", 2016, began + dt.timedelta(days=1)) == began + dt.timedelta(days=1), \
            "another seed is another load"
        planned = [step.key for step in DemoPlan(SCALES["tiny"], seed=2015, today=began).steps()]
        a_later_plan = [step.key for step in DemoPlan(SCALES["tiny"], seed=2015, today=dt.date(2027, 3, 1)).steps()]
        assert planned != a_later_plan, "a plan depends on its day, which is why a resumed load keeps it"
    finally:
        reg.close()
