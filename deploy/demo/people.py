"""Realistic people for the demo: Vietnamese names (family name first, surnames weighted as published) and a
composition close to the published proportions of the Hanoi party membership.

Sources and assumptions (README "Demo data" repeats them):
- Surnames: the published frequencies (Lê Trung Hoa, *Họ và tên người Việt Nam*; the shares quoted by the
  issue): Nguyễn 38.4%, Trần 11%, Lê 9.5%, Phạm 7.1%, Hoàng/Huỳnh 5.1%, Phan 4.5%, Vũ/Võ 3.9%, Đặng 2.1%,
  Bùi 2%, Đỗ 1.4%, Hồ 1.3%, Ngô 1.3%, Dương 1%, Lý 0.5%; the rest spread over other common surnames.
- Given names from Faker `vi_VN` plus a wider list of common ones; middle names by gender (Văn, Thị, ...).
- Women about 40% of Hanoi's members (the national share passed 38% in 2023; the capital's is higher).
- Ethnic minorities about 1.5% (Mường, Dao, Tày in Ba Vì, Thạch Thất, Mỹ Đức), religion about 2%
  (Catholic, Buddhist): the city's population shares, since the membership shares are NOT FOUND.
- Occupations, education and political theory as assumed for a capital with many retired members; the
  shares are tunable in this file and documented, not published.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from faker import Faker

SURNAMES: tuple[tuple[str, float], ...] = (
    ("Nguyễn", 38.4), ("Trần", 11.0), ("Lê", 9.5), ("Phạm", 7.1), ("Hoàng", 4.1), ("Huỳnh", 1.0),
    ("Phan", 4.5), ("Vũ", 2.9), ("Võ", 1.0), ("Đặng", 2.1), ("Bùi", 2.0), ("Đỗ", 1.4), ("Hồ", 1.3), ("Ngô", 1.3),
    ("Dương", 1.0), ("Lý", 0.5), ("Đinh", 0.9), ("Đào", 0.8), ("Trịnh", 0.8), ("Lương", 0.6), ("Mai", 0.6),
    ("Tạ", 0.5), ("Cao", 0.5), ("Lưu", 0.4), ("Chu", 0.4), ("Kiều", 0.3), ("Khuất", 0.3), ("Nghiêm", 0.3),
    ("Tô", 0.3), ("Quách", 0.2), ("Hà", 0.5), ("Thái", 0.3), ("Vương", 0.3), ("Lại", 0.3), ("Triệu", 0.3),
)
MIDDLE_MALE = (("Văn", 40), ("Đức", 10), ("Minh", 10), ("Quang", 7), ("Hữu", 7), ("Mạnh", 5), ("Xuân", 5),
               ("Thanh", 5), ("Ngọc", 4), ("Công", 4), ("Trung", 3), ("Tuấn", 3))
MIDDLE_FEMALE = (("Thị", 60), ("Thu", 7), ("Thanh", 7), ("Ngọc", 6), ("Minh", 5), ("Phương", 5), ("Hồng", 5),
                 ("Kim", 5))
GIVEN_MALE = ("An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hùng", "Huy", "Khánh", "Long", "Nam", "Phong", "Quân",
              "Sơn", "Thắng", "Thành", "Tiến", "Toàn", "Trung", "Tuấn", "Việt", "Vinh", "Hiếu", "Hoàng", "Kiên",
              "Lâm", "Lợi", "Nghĩa", "Phúc", "Quyết", "Tâm", "Thịnh", "Tùng", "Tú", "Đông", "Giang", "Hưng", "Khoa")
GIVEN_FEMALE = ("Anh", "Chi", "Dung", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hồng", "Hương", "Lan", "Liên", "Linh",
                "Loan", "Mai", "Minh", "Nga", "Ngọc", "Nhung", "Oanh", "Phương", "Quyên", "Thảo", "Thu", "Thủy",
                "Trang", "Tuyết", "Vân", "Yến", "Huyền", "Lệ", "Ly", "My", "Nhàn", "Tâm", "Thanh", "Trâm", "Uyên")
ETHNICITIES = (("Kinh", 98.5), ("Mường", 0.9), ("Dao", 0.25), ("Tày", 0.2), ("Thái", 0.1), ("Nùng", 0.05))
RELIGIONS = (("", 98.0), ("Công giáo", 1.2), ("Phật giáo", 0.7), ("Tin lành", 0.1))
EDUCATION = (("12/12", 93.0), ("9/12", 6.0), ("10/10", 1.0))
QUALIFICATION = (("", 10.0), ("Trung cấp", 10.0), ("Cao đẳng", 8.0), ("Đại học", 55.0), ("Thạc sĩ", 14.0),
                 ("Tiến sĩ", 3.0))
POLITICAL_THEORY = (("Sơ cấp", 55.0), ("Trung cấp", 30.0), ("Cao cấp", 12.0), ("Cử nhân", 3.0))

# Occupation shares by the kind of organization a member sits in.
OCCUPATION_BY_SETTING: dict[str, tuple[tuple[str, float], ...]] = {
    "residential": (("retired", 70.0), ("non_public_service", 8.0), ("enterprise_worker", 6.0),
                    ("farmer_forester_fisher", 6.0), ("commune_official", 4.0), ("other", 6.0)),
    "rural": (("farmer_forester_fisher", 45.0), ("retired", 35.0), ("commune_official", 8.0), ("other", 12.0)),
    "agency": (("state_cadre", 60.0), ("party_front_mass_cadre", 25.0), ("public_service_employee", 15.0)),
    "school": (("public_service_employee", 92.0), ("state_cadre", 5.0), ("university_student", 3.0)),
    "university": (("public_service_employee", 75.0), ("university_student", 25.0)),
    "hospital": (("public_service_employee", 95.0), ("state_cadre", 5.0)),
    "enterprise": (("enterprise_worker", 90.0), ("other", 10.0)),
    "army": (("army_police", 100.0),),
    "police": (("army_police", 100.0),),
}

STREETS = ("Kim Mã", "Đội Cấn", "Láng Hạ", "Nguyễn Chí Thanh", "Giảng Võ", "Hàng Bài", "Bà Triệu", "Trần Hưng Đạo",
           "Lê Duẩn", "Giải Phóng", "Nguyễn Trãi", "Cầu Giấy", "Xuân Thủy", "Hoàng Quốc Việt", "Phạm Văn Đồng",
           "Nguyễn Văn Cừ", "Ngọc Lâm", "Tây Sơn", "Chùa Bộc", "Minh Khai", "Lạc Long Quân", "Âu Cơ", "Thụy Khuê")


def _weights(table: tuple[tuple[str, float], ...]) -> tuple[list[str], list[float]]:
    return [name for name, _ in table], [weight for _, weight in table]


@dataclass(frozen=True)
class Person:
    full_name: str
    gender: str
    birth_date: dt.date
    citizen_id: str
    profile: dict[str, object]


class PersonFactory:
    """Deterministic people for a seed; citizen ids are unique (a counter under the province/birth prefix)."""

    def __init__(self, rng: random.Random, *, province_code: str = "001") -> None:
        self.rng = rng
        faker = Faker("vi_VN")
        faker.seed_instance(rng.randrange(1 << 30))
        self.given_male = tuple(dict.fromkeys([*GIVEN_MALE, *(faker.first_name_male() for _ in range(40))]))
        self.given_female = tuple(dict.fromkeys([*GIVEN_FEMALE, *(faker.first_name_female() for _ in range(40))]))
        self.streets = tuple(dict.fromkeys([*STREETS, *(faker.street_name() for _ in range(30))]))
        self.province_code = province_code
        self.serial = 0
        self._surnames = _weights(SURNAMES)
        self._middle = {"male": _weights(MIDDLE_MALE), "female": _weights(MIDDLE_FEMALE)}
        self._tables = {name: _weights(table) for name, table in (
            ("ethnicity", ETHNICITIES), ("religion", RELIGIONS), ("education", EDUCATION),
            ("qualification", QUALIFICATION), ("political_theory", POLITICAL_THEORY))}
        self._occupations = {setting: _weights(table) for setting, table in OCCUPATION_BY_SETTING.items()}

    def pick(self, table: tuple[list[str], list[float]]) -> str:
        return self.rng.choices(table[0], table[1])[0]

    def person(self, *, birth_date: dt.date, setting: str, hometown: str, female_share: float = 0.40) -> Person:
        rng = self.rng
        gender = "female" if rng.random() < female_share else "male"
        given = rng.choice(self.given_female if gender == "female" else self.given_male)
        name = f"{self.pick(self._surnames)} {self.pick(self._middle[gender])} {given}"
        self.serial += 1
        # Căn cước: province of birth registration (3), gender-and-century (1), year (2), serial (6).
        century = (0 if birth_date.year < 2000 else 2) + (1 if gender == "female" else 0)
        citizen_id = f"{self.province_code}{century}{birth_date.year % 100:02d}{self.serial % 1_000_000:06d}"
        profile: dict[str, object] = {
            "ethnicity": self.pick(self._tables["ethnicity"]),
            "hometown": hometown,
            "address": f"Số {rng.randint(1, 200)} phố {rng.choice(self.streets)}",
            "education": self.pick(self._tables["education"]),
            "political_theory": self.pick(self._tables["political_theory"]),
            "occupation": self.pick(self._occupations[setting]),
            "phone": f"09{rng.randrange(10**8):08d}",
        }
        if religion := self.pick(self._tables["religion"]):
            profile["religion"] = religion
        if qualification := self.pick(self._tables["qualification"]):
            profile["qualification"] = qualification
        if birth_date.year >= 1996:
            profile["youth_union"] = True
        return Person(name, gender, birth_date, citizen_id, profile)
