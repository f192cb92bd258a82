"""The `national` scale: the 34 provinces and centrally-run cities of 2025, about 5.5 million members, for
benchmarks. Each province is planned and loaded on its own, one after the other, so the plan in memory is one
province's (the whole country's would not fit beside the servers: `hanoi` alone held 2.6 GiB).

Modelling choices (README "Demo data" repeats them):
- Every province keeps its own register, as each provincial committee would: its own registry store (schema
  `registry_<root>`) whose card numbers begin with the province's code. Its root is a `city_committee` (a
  provincial committee sits directly under the Central Committee): `HN` for Hanoi, `T` + the national code for
  the others. One gateway projects all of them.
- A province has the units of its 2025 map for its whole history (2015 to today): the provincial committee,
  its wards and communes of 01/07/2025 as commune committees, residential cells under them, and grassroots
  organizations of the Biểu 5 types under the wards and under four sector committees (the Party's agencies,
  the People's Committee, military, police). The 2025 reform is replayed at the `hanoi` scale, not here.
- Sizes are proportional to a province's wards and communes (3,321 in all): about 1,400 members per ward at the
  roll of 2015 and 1,650 today, 5.5 million in all (the Party counted about 5.9 million members in 2025), and
  about 8,600 events per ward, 28 million in all.
- Members and their facts come from the same simulation as Hanoi's (`plan.Simulation`); citizen ids carry the
  province's code, card numbers its two digits.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from demo.geography import CityGeography, Province, Ward, provinces
from demo.people import PersonFactory
from demo.plan import (
    ENTERPRISE_STEMS,
    SIZES,
    NewUnit,
    Org,
    Scale,
    Simulation,
    Step,
    lower_kind,
    place_organization,
)

NATIONAL = Scale("national", None, None, (20, 32), None, (20, 45), 2024)
SECTORS = (("CQD", "Đảng bộ các cơ quan Đảng {p}", "agency"), ("UBND", "Đảng bộ Ủy ban nhân dân {p}", "agency"),
           ("QS", "Đảng bộ Quân sự {p}", "army"), ("CA", "Đảng bộ Công an {p}", "police"))
ORGS_PER_WARD = (5, 11)
SECTOR_ORGS_PER_WARD = 0.6
ESTIMATED_EVENTS_PER_WARD = 8_600
"""For the progress bar before a province is planned: the roll, ten years of facts and the units."""


def root_code(province: Province) -> str:
    return "HN" if province.code == "01" else f"T{province.code}"


class ProvincePlan:
    """One province on its 2025 map, with what `plan.Simulation` reads of a plan."""

    def __init__(self, province: Province, *, seed: int, today: dt.date, scale: Scale = NATIONAL) -> None:
        self.scale = scale
        self.seed = seed
        self.today = today
        self.province = province
        self.geo = CityGeography(province, (), (), {}, {})
        self.root = root_code(province)
        self.card_prefix = province.code
        self.rng = random.Random(f"{seed}:{province.code}")
        self.people = PersonFactory(random.Random(f"{seed}:{province.code}:people"),
                                    province_code=f"0{province.code}")
        self.units: list[list[NewUnit]] = [[], [], [], []]
        self.orgs: list[Org] = []
        self.residential: dict[str, list[str]] = {}
        self.cell_setting: dict[str, str] = {}
        self.cell_ward: dict[str, str | None] = {}
        self.ward_names = {w.code: w.name for w in province.wards}
        self._build_units()

    def _build_units(self) -> None:
        province = self.province
        start = dt.date(2008, 1, 1)
        self.units[0].append(NewUnit(self.root, f"Đảng bộ {lower_kind(province.name)}", "city_committee", None,
                                     dt.date(1930, 2, 3), "Điều lệ Đảng"))
        for code, name, _ in SECTORS:
            self.units[1].append(NewUnit(f"{self.root}-{code}", name.format(p=province.name), "sector_committee",
                                         self.root, start, "demo"))
        for ward in province.wards:
            self._ward(ward, start)
        per_sector = max(4, round(len(province.wards) * SECTOR_ORGS_PER_WARD / len(SECTORS)))
        for code, _, setting in SECTORS:
            sector = f"{self.root}-{code}"
            for number in range(1, per_sector + 1):
                name = {"agency": f"Cơ quan số {number} thuộc {sector}",
                        "army": f"Đơn vị quân đội số {number}, {province.name}",
                        "police": f"Phòng nghiệp vụ số {number}, Công an {province.name}"}[setting]
                self.orgs.append(Org(f"{sector}-{number:03d}", name, setting, sector, self._size(setting), None))
        for org in self.orgs:
            place_organization(self, org, start, None)

    def _ward(self, ward: Ward, start: dt.date) -> None:
        rng = self.rng
        self.units[1].append(NewUnit(ward.code, f"Đảng bộ {lower_kind(ward.name)}", "commune_committee", self.root,
                                     start, "demo: lập đảng bộ"))
        urban = ward.kind == "Phường"
        label = "tổ dân phố" if urban else "thôn"
        cells = []
        low, high = self.scale.residential_per_ward
        for number in range(1, rng.randint(low, high) + 1):
            code = f"{ward.code}-R{number:02d}"
            cells.append(code)
            self.cell_setting[code] = "residential" if urban else "rural"
            self.cell_ward[code] = ward.code
            self.units[3].append(NewUnit(code, f"Chi bộ {label} số {number} {ward.name}", "grassroots_cell",
                                         ward.code, start, "demo"))
        self.residential[ward.code] = cells
        short = ward.name.split(" ", 1)[1] if " " in ward.name else ward.name
        for number in range(1, rng.randint(*ORGS_PER_WARD) + 1):
            roll = rng.random()
            if number == 1:
                name, setting = f"Cơ quan {ward.name}", "agency"
            elif roll < 0.45:
                school = rng.choice(("Trường Mầm non", "Trường Tiểu học", "Trường THCS", "Trường THPT"))
                name, setting = f"{school} {short} số {number}", "school"
            elif roll < 0.60:
                name, setting = f"Trạm Y tế {ward.name} số {number}", "hospital"
            elif roll < 0.70:
                name, setting = f"Công an {ward.name} số {number}", "police"
            else:
                name, setting = f"Công ty {rng.choice(ENTERPRISE_STEMS)} {short} số {number}", "enterprise"
            self.orgs.append(Org(f"{ward.code}-O{number:02d}", name, setting, ward.code, self._size(setting),
                                 ward.code))

    def _size(self, setting: str) -> int:
        low, high = SIZES[setting]
        return int(low + (high - low) * self.rng.random() ** 2)

    def steps(self) -> Iterator[Step]:
        prefix, short = self.root, self.province.short_name
        for level, units in enumerate(self.units):
            for index in range(0, len(units), 400):
                batch = units[index:index + 400]
                yield Step(f"{prefix}/units/{level}/{index}", f"{short}: units", "establish", batch, len(batch))
        simulation = Simulation(self)  # type: ignore[arg-type]
        roll = simulation.roll()
        yield Step(f"{prefix}/roll/2015", f"{short}: the roll of 1/1/2015", "import", roll, len(roll))
        for year in range(2015, self.today.year + 1):
            start = dt.date(year, 1, 1)
            end = min(self.today, dt.date(year, 12, 31))
            for step in simulation.period(start, end):
                yield Step(f"{prefix}/{step.key}", f"{short}: {step.label}", step.action, step.payload, step.weight)


def store_schema(province: Province) -> str:
    """Each province keeps its own register (its own registry, store and card numbers), in a schema of its own."""
    return f"registry_{root_code(province).lower()}"


class NationalPlan:
    """Every province's plan in turn; `only` keeps the first N provinces (a slice, for a benchmark that cannot
    wait for the whole country)."""

    def __init__(self, *, seed: int = 2015, today: dt.date | None = None, only: int | None = None) -> None:
        self.scale = NATIONAL
        self.seed = seed
        self.today = today or dt.date.today()
        self.provinces = provinces()[:only] if only else provinces()

    def estimated_weight(self) -> int:
        return sum(len(p.wards) for p in self.provinces) * ESTIMATED_EVENTS_PER_WARD

    def store_schemas(self) -> list[str]:
        return [store_schema(p) for p in self.provinces]

    def province_plans(self) -> Iterator[ProvincePlan]:
        """Planned when reached, so only one province's plan is in memory."""
        for province in self.provinces:
            yield ProvincePlan(province, seed=self.seed, today=self.today)
