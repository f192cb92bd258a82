"""The real administrative units, from the `vietnamadminunits` wheel: Hanoi's 30 district-level units over
526 wards and communes before 01/07/2025, its 126 wards and communes after, and the official mapping of
every old ward onto the new one that took it in (`converter_2025.json`). The 34 provinces of 2025 serve the
national scale.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Any

HANOI = "01"


@dataclass(frozen=True)
class LegacyDistrict:
    code: str
    name: str
    kind: str  # Quận, Huyện, Thị xã


@dataclass(frozen=True)
class LegacyWard:
    code: str
    name: str
    kind: str  # Phường, Xã, Thị trấn
    district_code: str
    key: str


@dataclass(frozen=True)
class Ward:
    code: str
    name: str
    kind: str  # Phường, Xã, Đặc khu
    key: str


@dataclass(frozen=True)
class Province:
    code: str
    name: str
    short_name: str
    wards: tuple[Ward, ...]


@dataclass(frozen=True)
class CityGeography:
    """One province before and after the 2025 reform, with the mapping between them."""

    province: Province
    districts: tuple[LegacyDistrict, ...]
    legacy_wards: tuple[LegacyWard, ...]
    successor_of: dict[str, str]
    """Legacy ward code → code of the 2025 ward that took it in (its default one when it was divided)."""
    shares_of: dict[str, tuple[str, ...]]
    """Legacy ward code → every 2025 ward that took a part of it (the default first)."""

    def wards_of(self, district_code: str) -> list[LegacyWard]:
        return [w for w in self.legacy_wards if w.district_code == district_code]

    def predecessors_of(self, ward_code: str) -> list[LegacyWard]:
        return [w for w in self.legacy_wards if self.successor_of[w.code] == ward_code]


def _data() -> resources.abc.Traversable:
    return resources.files("vietnamadminunits") / "data"


@functools.cache
def _database() -> sqlite3.Connection:
    with resources.as_file(_data() / "dataset.db") as path:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


@functools.cache
def _converter() -> dict[str, dict[str, Any]]:
    return json.loads((_data() / "converter_2025.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@functools.cache
def provinces() -> tuple[Province, ...]:
    """The 34 provinces and centrally-run cities of 01/07/2025 with their wards and communes."""
    rows = _database().execute(
        "SELECT provinceCode, province, provinceShort, wardCode, ward, wardType, wardKey FROM admin_units"
        " ORDER BY provinceCode, wardCode").fetchall()
    grouped: dict[str, tuple[str, str, list[Ward]]] = {}
    for province_code, province, short, ward_code, ward, ward_type, ward_key in rows:
        entry = grouped.setdefault(province_code, (province, short, []))
        entry[2].append(Ward(ward_code, ward, ward_type, ward_key))
    return tuple(Province(code, name, short, tuple(wards)) for code, (name, short, wards) in grouped.items())


def province(code: str) -> Province:
    for candidate in provinces():
        if candidate.code == code:
            return candidate
    raise KeyError(code)


@functools.cache
def city(code: str = HANOI) -> CityGeography:
    """A province before and after 2025. Every legacy ward maps to exactly one 2025 ward."""
    current = province(code)
    rows = _database().execute(
        "SELECT districtCode, district, districtType, wardCode, ward, wardType, provinceKey, districtKey, wardKey"
        " FROM admin_units_legacy WHERE provinceCode = ? ORDER BY districtCode, wardCode", (code,)).fetchall()
    districts: dict[str, LegacyDistrict] = {}
    legacy: list[LegacyWard] = []
    province_key = ""
    for district_code, district, district_type, ward_code, ward, ward_type, p_key, d_key, w_key in rows:
        province_key = p_key
        districts.setdefault(district_code, LegacyDistrict(district_code, district, district_type))
        legacy.append(LegacyWard(ward_code, ward, ward_type, district_code, f"{p_key}_{d_key}_{w_key}"))
    new_by_key = {w.key: w.code for w in current.wards}
    successor_by_key: dict[str, str] = {}
    shares_by_key: dict[str, tuple[str, ...]] = {}
    converter = _converter()
    undivided = converter["DICT_PROVINCE_WARD_NO_DIVIDED"]
    divided = converter["DICT_PROVINCE_WARD_DIVIDED"]
    current_key = next((key for key, olds in converter["DICT_PROVINCE"].items() if province_key in olds),
                       province_key)
    for new_key, old_keys in undivided.get(current_key, {}).items():
        for old_key in old_keys:
            successor_by_key[old_key] = new_by_key[new_key]
    for old_key, options in divided.get(current_key, {}).items():
        default = next((o for o in options if o["isDefaultNewWard"]), options[0])
        successor_by_key.setdefault(old_key, new_by_key[default["newWardKey"]])
        shares_by_key[old_key] = tuple(dict.fromkeys(
            [successor_by_key[old_key], *(new_by_key[o["newWardKey"]] for o in options)]))
    successor_of: dict[str, str] = {}
    for ward in legacy:
        if ward.key not in successor_by_key:
            raise LookupError(f"no 2025 successor for {ward.name} ({ward.code}) in converter_2025.json")
        successor_of[ward.code] = successor_by_key[ward.key]
    shares_of = {w.code: shares_by_key.get(w.key, (successor_of[w.code],)) for w in legacy}
    return CityGeography(current, tuple(districts.values()), tuple(legacy), successor_of, shares_of)
