"""The demo register as a deterministic plan: the units of 2015, the roll of 2015, and then, period by period
to today, the registry facts (enrolments of existing members, recognitions, exemptions, deaths, exits,
re-admissions, badges, ratings, the 2025 card exchange) and the 2025 reform as registry decisions.

The plan is data (steps of registry commands described by value); `loader.py` executes it through the
registry's own command path. A simulation of every member keeps the facts legal: nobody dies twice, is rated
while exempted, re-admitted before 36 months, or counted in a unit that no longer exists.

Modelling choices (README "Demo data" repeats them):
- Before 01/07/2025: HN → 30 district committees → 526 ward/commune committees (the old wards' đảng bộ,
  kind `commune_committee` under a district) → residential party cells (chi bộ tổ dân phố / thôn) as
  grassroots cells; the district's agencies, schools, hospitals and enterprises sit under the district.
  Sector committees: Khối các cơ quan, Khối doanh nghiệp, Khối các trường đại học – cao đẳng, Quân sự,
  Công an.
- 07/02/2025 (QĐ 8152-QĐ/TU): Đảng bộ các cơ quan Đảng TP and Đảng bộ UBND TP established; the Khối
  committees' organizations reattached to them; the Khối committees dissolved.
- 01/07/2025 (NQ 1656/NQ-UBTVQH15): each new ward/commune committee is the merge of the old ones whose
  default successor it is (`converter_2025.json`); organizations of divided wards and of the districts are
  reattached along the mapping; urban residential cells merged pairwise (members follow); the districts
  dissolved.
- The 136 − 130 committees the research could not name are not invented.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from demo.geography import HANOI, CityGeography, LegacyWard, city
from demo.people import PersonFactory

NAMESPACE = uuid.UUID("6c1b6f0e-2f8e-4b59-9a7a-0d2a6b1f5e11")
ROLL_DATE = dt.date(2015, 1, 1)
HANOI_EXPANSION = dt.date(2008, 8, 1)
SECTOR_REFORM = dt.date(2025, 2, 7)
REFORM = dt.date(2025, 7, 1)
CARD_EXCHANGE_DAYS = (dt.date(2025, 7, 15), dt.date(2025, 8, 1), dt.date(2025, 8, 15), dt.date(2025, 8, 25),
                      dt.date(2025, 9, 2))
BADGE_DAYS = ((2, 3), (5, 19), (9, 2), (11, 7))
MILESTONES = (30, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90)
DECISION_2025 = "NQ 1656/NQ-UBTVQH15; QĐ thành lập đảng bộ xã, phường 01/7/2025"
DECISION_SECTORS = "QĐ 8152-QĐ/TU ngày 07/02/2025"


@dataclass(frozen=True)
class Scale:
    name: str
    orgs_per_district: int | None  # None: the realistic number
    orgs_per_sector: int | None
    residential_per_ward: tuple[int, int]
    cells_per_committee: int | None  # None: one per about 20 members
    members_per_cell: tuple[int, int]
    rated_from: int


SCALES = {
    # Every committee; one organization per district and sector, one residential cell per ward (tests).
    "tiny": Scale("tiny", 1, 1, (2, 2), 1, (3, 4), 2024),
    # Every committee and grassroots organization; a sample of cells (about 25,000 members).
    "small": Scale("small", None, None, (2, 2), 1, (4, 10), 2024),
    # About 500,000 members.
    "hanoi": Scale("hanoi", None, None, (14, 26), None, (20, 45), 2024),
}


def unit_uuid(seed: int, code: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{seed}:unit:{code}"))


def member_uuid(seed: int, citizen_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{seed}:member:{citizen_id}"))


# Steps --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NewUnit:
    code: str
    name: str
    kind: str
    parent_code: str | None
    established_on: dt.date
    decision_ref: str | None = None


@dataclass(frozen=True)
class RollMember:
    full_name: str
    gender: str
    birth_date: dt.date
    citizen_id: str
    cell_code: str
    status: str
    admitted_on: dt.date
    official_on: dt.date | None
    card_number: str | None
    profile: dict[str, object]


@dataclass(frozen=True)
class Fact:
    """One registry fact about a member, by citizen id; `kind` names the registry command."""

    citizen_id: str
    kind: str
    on: dt.date
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    action: str  # establish | import | enrol | facts | cards | merge | reattach | dissolve
    payload: object
    weight: int  # events it appends, roughly (for the progress bar)


@dataclass(frozen=True)
class Merge:
    source_codes: tuple[str, ...]
    target: NewUnit


@dataclass(frozen=True)
class Reattach:
    unit_codes: tuple[str, ...]
    parent_code: str
    effective_on: dt.date
    decision_ref: str


@dataclass(frozen=True)
class Dissolve:
    code: str
    effective_on: dt.date
    decision_ref: str


@dataclass(frozen=True)
class CardExchange:
    citizen_ids: tuple[str, ...]
    issued_on: dt.date


# The organizations --------------------------------------------------------------------------------------

@dataclass
class Org:
    code: str
    name: str
    setting: str  # occupation setting (people.OCCUPATION_BY_SETTING) and Biểu 5 type in the name
    parent_code: str
    size: int
    ward_code: str | None  # the legacy ward it stands in (for the 2025 mapping)
    cells: list[str] = field(default_factory=list)
    kind: str = "grassroots_cell"


DISTRICT_AGENCIES = (
    "Cơ quan {level} ủy {d}", "Cơ quan Ủy ban nhân dân {d}", "Phòng Tài chính - Kế hoạch {d}",
    "Phòng Giáo dục và Đào tạo {d}", "Phòng Tài nguyên và Môi trường {d}", "Phòng Nội vụ {d}",
    "Phòng Văn hóa và Thông tin {d}", "Thanh tra {d}", "Chi cục Thuế {d}", "Kho bạc Nhà nước {d}",
    "Tòa án nhân dân {d}", "Viện Kiểm sát nhân dân {d}", "Chi cục Thi hành án dân sự {d}", "Bảo hiểm xã hội {d}",
    "Ban Quản lý dự án đầu tư xây dựng {d}", "Phòng Quản lý đô thị {d}", "Phòng Kinh tế {d}", "Phòng Tư pháp {d}",
    "Cơ quan Mặt trận Tổ quốc và các đoàn thể {d}", "Trung tâm Văn hóa - Thông tin và Thể thao {d}",
)
ENTERPRISE_STEMS = ("Môi trường đô thị", "Nước sạch", "Thoát nước", "Công viên cây xanh", "Xây dựng và Phát triển nhà",
                    "Dịch vụ Thương mại", "Vận tải", "Thủy lợi", "Đầu tư Phát triển", "May mặc", "Cơ khí",
                    "Du lịch", "Dược phẩm", "Thực phẩm", "Điện tử", "Phần mềm", "Bất động sản", "Vật liệu xây dựng")
SECTORS_BEFORE = (
    ("KCQ", "Đảng bộ Khối các cơ quan Thành phố", 64, "agency"),
    ("KDN", "Đảng bộ Khối doanh nghiệp Thành phố", 150, "enterprise"),
    ("KDH", "Đảng bộ Khối các trường đại học, cao đẳng Hà Nội", 30, "university"),
    ("QSTP", "Đảng bộ Quân sự Thành phố", 40, "army"),
    ("CATP", "Đảng bộ Công an Thành phố", 90, "police"),
)
SECTORS_FROM_2025 = (
    ("DCQD", "Đảng bộ các cơ quan Đảng Thành phố"),
    ("DUBND", "Đảng bộ Ủy ban nhân dân Thành phố"),
)
SIZES = {"agency": (15, 120), "school": (8, 45), "hospital": (40, 260), "enterprise": (8, 160),
         "university": (60, 500), "army": (40, 400), "police": (60, 500)}
# All grassroots organizations of 2022 (2,308) less the 526 ward committees and the sector ones.
DISTRICT_ORGS_TOTAL = 2308 - 526 - sum(s[2] for s in SECTORS_BEFORE)


def _unit_name(kind_label: str, name: str) -> str:
    prefix = "Đảng bộ" if kind_label == "grassroots_committee" else "Chi bộ"
    return f"{prefix} {name}"


def lower_kind(name: str) -> str:
    """'Quận Ba Đình' → 'quận Ba Đình' (unit names read "Đảng bộ quận Ba Đình")."""
    head, _, rest = name.partition(" ")
    if head == "Thị" and rest.startswith("xã "):
        return "thị " + rest
    if head == "Thị" and rest.startswith("trấn "):
        return "thị " + rest
    return f"{head.lower()} {rest}"


class _Placed(Protocol):
    units: list[list[NewUnit]]
    cell_setting: dict[str, str]
    cell_ward: dict[str, str | None]


def place_organization(plan: _Placed, org: Org, start: dt.date, cells: int | None) -> None:
    """A grassroots organization into the plan's units: a grassroots committee with a cell per ~22 members (or
    `cells` of them) from 30 members, a grassroots cell below that."""
    cells_wanted = cells or max(1, math.ceil(org.size / 22))
    org.kind = "grassroots_committee" if org.size >= 30 or cells_wanted > 1 else "grassroots_cell"
    plan.units[2].append(NewUnit(org.code, _unit_name(org.kind, org.name), org.kind, org.parent_code, start, "demo"))
    if org.kind == "grassroots_cell":
        org.cells = [org.code]
    else:
        org.cells = [f"{org.code}-C{n:02d}" for n in range(1, cells_wanted + 1)]
        for number, code in enumerate(org.cells, start=1):
            plan.units[3].append(NewUnit(code, f"Chi bộ {number} - {org.name}", "cell", org.code, start, "demo"))
    for code in org.cells:
        plan.cell_setting[code] = org.setting
        plan.cell_ward[code] = org.ward_code


class DemoPlan:
    """Everything the demo load does, decided up front from the seed."""

    def __init__(self, scale: Scale, *, seed: int = 2015, today: dt.date | None = None,
                 geography: CityGeography | None = None, root_code: str = "HN") -> None:
        self.scale = scale
        self.seed = seed
        self.today = today or dt.date.today()
        self.geo = geography or city(HANOI)
        self.root = root_code
        self.card_prefix = "01"
        self.rng = random.Random(seed)
        self.people = PersonFactory(random.Random(seed + 1))
        self.units: list[list[NewUnit]] = [[], [], [], []]
        self.orgs: list[Org] = []
        self.residential: dict[str, list[str]] = {}  # legacy ward code → residential cell codes
        self.cell_setting: dict[str, str] = {}
        self.cell_ward: dict[str, str | None] = {}
        self.ward_names = {w.code: w.name for w in self.geo.legacy_wards}
        self._build_units()

    # Units of 2015 ------------------------------------------------------------------------------------

    def _build_units(self) -> None:
        rng, geo, scale = self.rng, self.geo, self.scale
        self.units[0].append(NewUnit(self.root, f"Đảng bộ {geo.province.name}", "city_committee", None,
                                     dt.date(1930, 2, 3), "Điều lệ Đảng"))
        for district in geo.districts:
            established = dt.date(2014, 4, 1) if "Từ Liêm" in district.name else HANOI_EXPANSION
            self.units[1].append(NewUnit(district.code, f"Đảng bộ {lower_kind(district.name)}",
                                         "district_committee", self.root, established, "demo: lập đảng bộ"))
        for code, name, _, _ in SECTORS_BEFORE:
            self.units[1].append(NewUnit(code, name, "sector_committee", self.root, HANOI_EXPANSION, "demo"))
        for ward in geo.legacy_wards:
            self.units[2].append(NewUnit(self._legacy_code(ward), f"Đảng bộ {lower_kind(ward.name)}",
                                         "commune_committee", ward.district_code, self._district_start(ward),
                                         "demo: lập đảng bộ"))
            low, high = scale.residential_per_ward
            label = "Tổ dân phố" if ward.kind == "Phường" else "Thôn"
            cells = []
            for number in range(1, rng.randint(low, high) + 1):
                code = f"{self._legacy_code(ward)}-R{number:02d}"
                cells.append(code)
                self.cell_setting[code] = "residential" if ward.kind == "Phường" else "rural"
                self.cell_ward[code] = ward.code
                self.units[3].append(NewUnit(code, f"Chi bộ {label.lower()} số {number} {ward.name}",
                                             "grassroots_cell", self._legacy_code(ward), self._district_start(ward),
                                             "demo"))
            self.residential[ward.code] = cells
        self._district_orgs()
        self._sector_orgs()
        for org in self.orgs:
            start = next((u.established_on for u in self.units[1] if u.code == org.parent_code), HANOI_EXPANSION)
            place_organization(self, org, start, scale.cells_per_committee)

    def _legacy_code(self, ward: LegacyWard) -> str:
        return f"{ward.district_code}-{ward.code}"

    def _district_start(self, ward: LegacyWard) -> dt.date:
        district = next(d for d in self.geo.districts if d.code == ward.district_code)
        return dt.date(2014, 4, 1) if "Từ Liêm" in district.name else HANOI_EXPANSION

    def _district_orgs(self) -> None:
        rng, geo = self.rng, self.geo
        total_wards = len(geo.legacy_wards)
        for district in geo.districts:
            wards = geo.wards_of(district.code)
            count = self.scale.orgs_per_district or max(8, round(DISTRICT_ORGS_TOTAL * len(wards) / total_wards))
            urban = district.kind == "Quận"
            level = "Quận" if urban else ("Thị" if district.kind == "Thị xã" else "Huyện")
            d_name = district.name
            agencies = [a.format(d=d_name, level=level) for a in DISTRICT_AGENCIES]
            used: set[str] = set()
            for number in range(1, count + 1):
                ward = rng.choice(wards)
                ward_name = ward.name.split(" ", 1)[1]
                roll = rng.random()
                if number <= min(len(agencies), max(1, count // 4)):
                    name, setting = agencies[number - 1], "agency"
                elif roll < (0.30 if urban else 0.45):
                    school = rng.choice(("Trường Mầm non", "Trường Tiểu học", "Trường THCS", "Trường THPT"))
                    name, setting = f"{school} {ward_name}", "school"
                elif roll < (0.36 if urban else 0.50):
                    name, setting = rng.choice((f"Trạm Y tế {ward.name}", f"Bệnh viện đa khoa {d_name}",
                                                f"Trung tâm Y tế {d_name}")), "hospital"
                elif roll < (0.50 if urban else 0.62):
                    name, setting = f"Công ty TNHH MTV {rng.choice(ENTERPRISE_STEMS)} {d_name}", "enterprise"
                elif roll < 0.56:
                    name, setting = rng.choice((f"Ban Chỉ huy Quân sự {ward.name}", f"Ban Chỉ huy Quân sự {d_name}")), \
                        "army"
                elif roll < 0.62:
                    name, setting = rng.choice((f"Công an {ward.name}", f"Công an {d_name}")), "police"
                else:
                    name, setting = f"Công ty Cổ phần {rng.choice(ENTERPRISE_STEMS)} {ward_name}", "enterprise"
                base, suffix = name, 2
                while name in used:
                    name, suffix = f"{base} số {suffix}", suffix + 1
                used.add(name)
                self.orgs.append(Org(f"{district.code}-D{number:03d}", name, setting, district.code,
                                     self._size(setting), ward.code))

    def _sector_orgs(self) -> None:
        rng = self.rng
        for code, _, count, setting in SECTORS_BEFORE:
            for number in range(1, (self.scale.orgs_per_sector or count) + 1):
                if setting == "agency":
                    name = rng.choice(("Sở", "Ban", "Văn phòng", "Cơ quan")) + f" {number} thuộc Thành phố"
                    name = f"{name} ({'khối Đảng' if number % 3 == 0 else 'khối chính quyền'})"
                elif setting == "enterprise":
                    name = f"Tổng công ty {rng.choice(ENTERPRISE_STEMS)} Hà Nội số {number}"
                elif setting == "university":
                    name = f"Trường Đại học {rng.choice(('Thủ đô', 'Công nghiệp', 'Kinh doanh', 'Y tế công cộng'))}" \
                           f" số {number}"
                elif setting == "army":
                    name = f"Đơn vị quân đội số {number} Bộ Tư lệnh Thủ đô"
                else:
                    name = f"Phòng nghiệp vụ số {number} Công an Thành phố"
                self.orgs.append(Org(f"{code}-{number:03d}", name, setting, code, self._size(setting), None))

    def _size(self, setting: str) -> int:
        low, high = SIZES[setting]
        # Sizes are skewed: many small organizations, a few large ones.
        return int(low + (high - low) * self.rng.random() ** 2)

    # Steps ----------------------------------------------------------------------------------------------

    def steps(self) -> Iterator[Step]:
        for level, units in enumerate(self.units):
            for index in range(0, len(units), 400):
                batch = units[index:index + 400]
                yield Step(f"units/{level}/{index}", "units of 2015", "establish", batch, len(batch))
        simulation = Simulation(self)
        roll = simulation.roll()
        yield Step("roll/2015", "the roll of 1/1/2015 (import)", "import", roll, len(roll))
        for period_start, period_end in self._periods():
            if period_start == SECTOR_REFORM:
                yield from self._sector_reform()
            if period_start == REFORM:
                yield from self._reform(simulation)
            yield from simulation.period(period_start, period_end)

    def _periods(self) -> Iterator[tuple[dt.date, dt.date]]:
        bounds = [dt.date(year, 1, 1) for year in range(2015, self.today.year + 1)]
        bounds += [SECTOR_REFORM, REFORM]
        bounds = sorted(b for b in set(bounds) if b <= self.today)
        for index, start in enumerate(bounds):
            end = bounds[index + 1] - dt.timedelta(days=1) if index + 1 < len(bounds) else self.today
            yield start, end

    def _sector_reform(self) -> Iterator[Step]:
        new = [NewUnit(code, name, "sector_committee", self.root, SECTOR_REFORM, DECISION_SECTORS)
               for code, name in SECTORS_FROM_2025]
        yield Step("2025/sectors/establish", "2025: new sector committees", "establish", new, len(new))
        moves: dict[str, list[str]] = {"DCQD": [], "DUBND": []}
        for org in self.orgs:
            if org.parent_code in ("KCQ", "KDN", "KDH"):
                party_body = org.parent_code == "KCQ" and "khối Đảng" in org.name
                moves["DCQD" if party_body else "DUBND"].append(org.code)
        for parent, codes in moves.items():
            for index in range(0, len(codes), 500):
                yield Step(f"2025/sectors/reattach/{parent}/{index}", "2025: sector organizations reattached",
                           "reattach", Reattach(tuple(codes[index:index + 500]), parent, SECTOR_REFORM,
                                                DECISION_SECTORS), len(codes[index:index + 500]))
        for org in self.orgs:
            if org.parent_code in ("KCQ", "KDN", "KDH"):
                org.parent_code = "DCQD" if org.parent_code == "KCQ" and "khối Đảng" in org.name else "DUBND"
        for code in ("KCQ", "KDN", "KDH"):
            yield Step(f"2025/sectors/dissolve/{code}", "2025: Khối committees dissolved", "dissolve",
                       Dissolve(code, SECTOR_REFORM, DECISION_SECTORS), 1)

    def _reform(self, simulation: Simulation) -> Iterator[Step]:
        geo = self.geo
        for ward in geo.province.wards:
            sources = tuple(f"{w.district_code}-{w.code}" for w in geo.predecessors_of(ward.code))
            target = NewUnit(ward.code, f"Đảng bộ {lower_kind(ward.name)}", "commune_committee", self.root, REFORM,
                             DECISION_2025)
            if sources:
                yield Step(f"2025/reform/merge/{ward.code}", "2025 reform: ward and commune committees", "merge",
                           Merge(sources, target), len(sources) + 1)
            else:
                yield Step(f"2025/reform/establish/{ward.code}", "2025 reform: ward and commune committees",
                           "establish", [target], 1)
        # Organizations go where their ward went; a divided ward's are spread over the wards that took a part.
        moves: dict[str, list[str]] = {}
        for org in self.orgs:
            if org.ward_code is None:
                continue
            shares = geo.shares_of[org.ward_code]
            heir = shares[self.rng.randrange(len(shares))] if len(shares) > 1 else shares[0]
            from_district = org.parent_code in {d.code for d in geo.districts}
            if from_district or heir != geo.successor_of[org.ward_code]:
                moves.setdefault(heir, []).append(org.code)
            org.parent_code = heir
        for heir, codes in sorted(moves.items()):
            yield Step(f"2025/reform/reattach/{heir}", "2025 reform: organizations reattached", "reattach",
                       Reattach(tuple(codes), heir, REFORM, DECISION_2025), len(codes))
        yield from simulation.merge_residential_cells()
        for district in geo.districts:
            yield Step(f"2025/reform/dissolve/{district.code}", "2025 reform: district committees dissolved",
                       "dissolve", Dissolve(district.code, REFORM, DECISION_2025), 1)


@dataclass(slots=True)
class SimMember:
    citizen_id: str
    gender: str
    birth_date: dt.date
    admitted_on: dt.date
    official_on: dt.date | None
    cell: str
    status: str = "official"  # official | probationary | left | deceased
    exempted: bool = False
    left_on: dt.date | None = None
    readmissible: bool = False
    readmitted: bool = False
    failed_last: bool = False
    badges: int = 0  # how many milestones awarded
    card_2025: bool = False  # recognized since 2025: the new card came with recognition


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


class Simulation:
    """Every member's life from 2015 to today, emitted as registry steps period by period."""

    def __init__(self, plan: DemoPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed + 2)
        self.members: list[SimMember] = []
        self.active_cells: list[str] = []
        self.cell_count: dict[str, int] = {}
        self.next_card = 1

    def _day(self, start: dt.date, end: dt.date) -> dt.date:
        return start + dt.timedelta(days=self.rng.randrange((end - start).days + 1))

    def _new_person(self, cell: str, *, on: dt.date, fresh: bool) -> tuple[SimMember, RollMember]:
        rng, plan = self.rng, self.plan
        setting = plan.cell_setting[cell]
        if setting in ("residential", "rural") and not fresh:
            age = int(rng.triangular(42, 92, 72))
        elif setting == "university" and rng.random() < 0.25:
            age = rng.randint(20, 23)
        else:
            age = int(rng.triangular(24, 60, 36))
        birth = dt.date(on.year - age, rng.randint(1, 12), rng.randint(1, 28))
        if fresh and rng.random() < 0.3:
            admitted = on - dt.timedelta(days=rng.randint(10, 200))
        else:
            earliest = _add_years(birth, 19)
            latest = min(on - dt.timedelta(days=400), _add_years(birth, 45))
            if latest <= earliest:
                latest = earliest + dt.timedelta(days=30)
            admitted = self._day(earliest, latest)
        admitted = max(admitted, _add_years(birth, 18) + dt.timedelta(days=1))
        probation_end = _add_months(admitted, 12)
        official = probation_end <= on
        female_share = 0.45 if setting in ("school", "hospital") else 0.40
        ward = plan.cell_ward.get(cell)
        hometown = f"{plan.ward_names[ward]}, {plan.geo.province.short_name}" if ward else plan.geo.province.name
        person = plan.people.person(birth_date=birth, setting=setting, hometown=hometown, female_share=female_share)
        if person.profile.get("occupation") == "retired" and age < 55:
            person.profile["occupation"] = "other"
        card = None
        if official and not fresh:
            card = f"{plan.card_prefix}{self.next_card:06d}"
            self.next_card += 1
        member = SimMember(person.citizen_id, person.gender, birth, admitted, probation_end if official else None,
                           cell, "official" if official else "probationary")
        row = RollMember(person.full_name, person.gender, birth, person.citizen_id, cell,
                         member.status, admitted, member.official_on, card, person.profile)
        return member, row

    def roll(self) -> list[RollMember]:
        low, high = self.plan.scale.members_per_cell
        rows: list[RollMember] = []
        cells = [u.code for u in self.plan.units[3]] + [o.code for o in self.plan.orgs if o.kind == "grassroots_cell"]
        sizes = {o.code: o.size for o in self.plan.orgs}
        orgs = {o.code: o for o in self.plan.orgs}
        for cell in cells:
            if self.plan.scale.cells_per_committee is None:
                parent = cell.rsplit("-C", 1)[0]
                count = max(3, min(high, round(sizes[parent] / max(1, len(orgs[parent].cells)))))\
                    if parent in sizes else self.rng.randint(low, high)
            else:
                count = self.rng.randint(low, high)
            self.active_cells.append(cell)
            for _ in range(count):
                member, row = self._new_person(cell, on=ROLL_DATE, fresh=False)
                self.members.append(member)
                rows.append(row)
                self.cell_count[cell] = self.cell_count.get(cell, 0) + 1
        return rows

    def _ratings_year(self, start: dt.date) -> int | None:
        if start.month == 1 and start.day == 1 and start.year - 1 >= self.plan.scale.rated_from:
            return start.year - 1
        return None

    def period(self, start: dt.date, end: dt.date) -> Iterator[Step]:
        rng = self.rng
        tag = start.isoformat()
        facts: list[Fact] = []
        rated_year = self._ratings_year(start)
        year_fraction = ((end - start).days + 1) / 365.25
        for member in self.members:
            if member.status in ("deceased",):
                continue
            if member.status == "left":
                if member.readmissible and not member.readmitted and member.left_on \
                        and _add_months(member.left_on, 36) <= start and rng.random() < 0.2 * year_fraction:
                    cell = rng.choice(self.active_cells)
                    facts.append(Fact(member.citizen_id, "readmit", self._day(start, end),
                                      {"unit_code": cell, "decision_ref": "demo: kết nạp lại"}))
                    member.status, member.readmitted, member.cell = "probationary", True, cell
                    member.admitted_on = facts[-1].on
                    member.official_on = None
                    self.cell_count[cell] = self.cell_count.get(cell, 0) + 1
                continue
            last = start
            if rated_year is not None and member.status == "official" and not member.exempted \
                    and member.admitted_on.year <= rated_year:
                failed = rng.random() < (0.35 if member.failed_last else 0.006)
                level = "khong_hoan_thanh" if failed else rng.choices(
                    ("hoan_thanh_xuat_sac", "hoan_thanh_tot", "hoan_thanh"), (15, 70, 15))[0]
                facts.append(Fact(member.citizen_id, "rate", start, {"year": rated_year, "level": level}))
                member.failed_last = failed
            if member.status == "probationary":
                due = _add_months(member.admitted_on, 12)
                if start <= due <= end:
                    facts.append(Fact(member.citizen_id, "recognize", due, {"decision_ref": "demo: công nhận"}))
                    member.status, member.official_on = "official", due
                    member.card_2025 = due.year >= 2025
                    last = due
            for years in MILESTONES[member.badges:]:
                due = _add_years(member.admitted_on, years)
                if due > end:
                    break
                member.badges += 1
                if due < start or member.readmitted:
                    continue
                award = next((dt.date(due.year, m, d) for m, d in BADGE_DAYS if dt.date(due.year, m, d) >= due),
                             dt.date(due.year, 12, 31))
                if last <= award <= end and member.status == "official":
                    facts.append(Fact(member.citizen_id, "badge", award, {"years": years}))
                    last = award
            age = start.year - member.birth_date.year
            retired_age = 60 if member.gender == "male" else 55
            if not member.exempted and member.status == "official" and age >= retired_age \
                    and rng.random() < 0.03 * year_fraction:
                facts.append(Fact(member.citizen_id, "exempt", self._day(last, end),
                                  {"reason": "tuổi cao, sức khỏe yếu"}))
                member.exempted = True
                last = facts[-1].on
            if self.cell_count.get(member.cell, 0) <= 3:
                continue  # a sampled cell keeps its three members
            p_death = 0.0008 if age < 50 else 0.004 if age < 60 else 0.012 if age < 70 else 0.035 if age < 80 \
                else 0.09
            roll = rng.random()
            if roll < p_death * year_fraction:
                facts.append(Fact(member.citizen_id, "die", self._day(last, end)))
                member.status = "deceased"
                self.cell_count[member.cell] -= 1
            elif roll < (p_death + 0.0012) * year_fraction and member.status == "official":
                reason = rng.choices(("struck_off", "expelled", "resigned"), (70, 20, 10))[0]
                excluded = ["abandoned_activities"] if reason == "struck_off" and rng.random() < 0.5 else []
                facts.append(Fact(member.citizen_id, "leave", self._day(last, end),
                                  {"reason": reason, "excluded": excluded}))
                member.status, member.left_on = "left", facts[-1].on
                member.readmissible = reason == "struck_off" and not excluded
                self.cell_count[member.cell] -= 1
        newcomers = self._enrolments(start, end, year_fraction)
        if newcomers:
            for index in range(0, len(newcomers), 2000):
                chunk = newcomers[index:index + 2000]
                yield Step(f"{tag}/enrol/{index}", f"{start.year}: existing members enrolled", "enrol", chunk,
                           len(chunk))
        facts.sort(key=lambda f: f.on)
        for index in range(0, len(facts), 2000):
            batch = facts[index:index + 2000]
            yield Step(f"{tag}/facts/{index}", f"{start.year}: registry facts", "facts", batch,
                       sum(2 if f.kind == "recognize" else 1 for f in batch))
        if start <= CARD_EXCHANGE_DAYS[-1] <= end:
            yield from self._card_exchange(start, end)

    def _enrolments(self, start: dt.date, end: dt.date, year_fraction: float) -> list[RollMember]:
        active = sum(1 for m in self.members if m.status in ("official", "probationary"))
        count = int(active * 0.035 * year_fraction)
        rows: list[RollMember] = []
        for _ in range(count):
            cell = self.rng.choice(self.active_cells)
            on = self._day(start, end)
            member, row = self._new_person(cell, on=on, fresh=True)
            self.members.append(member)
            self.cell_count[cell] = self.cell_count.get(cell, 0) + 1
            rows.append(row)
        return rows

    def _card_exchange(self, start: dt.date, end: dt.date) -> Iterator[Step]:
        holders = [m.citizen_id for m in self.members if m.status == "official" and not m.card_2025]
        days = [d for d in CARD_EXCHANGE_DAYS if start <= d <= end]
        for index in range(0, len(holders), 2000):
            chunk = tuple(holders[index:index + 2000])
            yield Step(f"2025/cards/{index}", "2025: party cards exchanged", "cards",
                       CardExchange(chunk, days[(index // 2000) % len(days)]), len(chunk))

    def merge_residential_cells(self) -> Iterator[Step]:
        """Urban residential cells of each old ward merge pairwise into the new ward's; members follow."""
        plan = self.plan
        renamed: dict[str, str] = {}
        for ward in plan.geo.legacy_wards:
            if ward.kind != "Phường":
                continue
            cells = plan.residential[ward.code]
            heir = plan.geo.successor_of[ward.code]
            for pair_index in range(0, len(cells) - 1, 2):
                pair = cells[pair_index:pair_index + 2]
                code = f"{heir}-{ward.code}-K{pair_index // 2 + 1:02d}"
                target = NewUnit(code, f"Chi bộ khu dân cư số {pair_index // 2 + 1} ({ward.name} cũ)",
                                 "grassroots_cell", heir, REFORM, DECISION_2025)
                yield Step(f"2025/reform/cells/{code}", "2025 reform: residential cells merged", "merge",
                           Merge(tuple(pair), target), 2 + sum(self.cell_count.get(c, 0) for c in pair))
                for old in pair:
                    renamed[old] = code
        if not renamed:
            return
        self.active_cells = list(dict.fromkeys(renamed.get(c, c) for c in self.active_cells))
        for member in self.members:
            if member.cell in renamed:
                member.cell = renamed[member.cell]
        counts: dict[str, int] = {}
        for old, new in renamed.items():
            counts[new] = counts.get(new, 0) + self.cell_count.pop(old, 0)
        self.cell_count.update(counts)
        for new in counts:
            plan.cell_setting[new] = "residential"
