"""Events the registry publishes on `party.registry.v1` (schema version 1; changes are additive)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar, Literal

from contracts.codec import Catalogue

UnitKind = Literal[
    "city_committee",
    "district_committee",
    "commune_committee",
    "sector_committee",
    "grassroots_committee",
    "grassroots_cell",
    "sub_committee",
    "cell",
]
UNIT_KINDS: tuple[str, ...] = UnitKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class OrganizationUnitEstablished:
    event_type: ClassVar[str] = "OrganizationUnitEstablished"
    schema_version: ClassVar[int] = 1
    unit_id: str
    code: str
    name: str
    kind: UnitKind
    parent_id: str | None
    established_on: dt.date
    decision_ref: str | None = None


CATALOGUE = Catalogue("registry", OrganizationUnitEstablished)
