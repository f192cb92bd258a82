"""Rule parameters of the registry, in one table: which unit kind may sit under which."""

from __future__ import annotations

from types import MappingProxyType

ROOT = None

# Each kind mapped to the kinds its parent may have (None: may be a root). Dates do not change this
# table (ARCHITECTURE.md §10): the pre-2025 district level and today's levels coexist in history.
ALLOWED_PARENTS: MappingProxyType[str, frozenset[str | None]] = MappingProxyType({
    "city_committee": frozenset({ROOT}),
    "district_committee": frozenset({"city_committee"}),
    "commune_committee": frozenset({"city_committee", "district_committee"}),
    "sector_committee": frozenset({"city_committee"}),
    "grassroots_committee": frozenset(
        {"city_committee", "district_committee", "commune_committee", "sector_committee"}
    ),
    "grassroots_cell": frozenset(
        {"city_committee", "district_committee", "commune_committee", "sector_committee"}
    ),
    "sub_committee": frozenset({"grassroots_committee"}),
    "cell": frozenset({"grassroots_committee", "sub_committee"}),
})

MEMBER_HOLDING_KINDS = frozenset({"cell", "grassroots_cell"})

MAX_UNIT_CODE_LENGTH = 32
