"""Commands the registry accepts, as plain data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class EstablishUnit:
    unit_id: str
    code: str
    name: str
    kind: str
    parent_id: str | None
    established_on: dt.date
    decision_ref: str | None = None
