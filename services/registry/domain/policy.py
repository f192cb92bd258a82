"""The registry's rule parameters: unit kinds and parents, members' ages and periods, cards, legal bases."""

from __future__ import annotations

import datetime as dt
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

# Members ---------------------------------------------------------------------------------------------
PROBATION_MONTHS = 12
MIN_ADMISSION_AGE = 18
READMISSION_MIN_MONTHS = 36
BADGE_MILESTONES = (30, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90)
EARLY_AWARD_MONTHS = 12
EARLY_AWARD_MONTHS_FROM_70 = 24
CARD_PROVINCE_CODE = "01"
CARD_SERIALS = 999_999
"""A card number is the province's two digits and six more: a register allocates at most this many."""
CARD_EXCHANGE_GENERATION = 2025
CITIZEN_ID_DIGITS = 12
SCREENING_AFTER_FAILED_YEARS = 2

RATING_LEVELS = ("hoan_thanh_xuat_sac", "hoan_thanh_tot", "hoan_thanh", "khong_hoan_thanh")
FAILED_RATING = "khong_hoan_thanh"

# QĐ 294 §3.5: never re-admitted.
READMISSION_EXCLUSIONS = frozenset({
    "abandoned_activities",
    "resigned_without_hardship",
    "serious_disunity",
    "corruption_conviction",
    "serious_crime_conviction",
})

# Biểu 2 occupation categories.
OCCUPATIONS = frozenset({
    "state_cadre",
    "party_front_mass_cadre",
    "commune_official",
    "public_service_employee",
    "non_public_service",
    "enterprise_worker",
    "farmer_forester_fisher",
    "army_police",
    "university_student",
    "high_school_pupil",
    "retired",
    "other",
})

PROFILE_FIELDS = frozenset({
    "full_name", "gender", "birth_date", "citizen_id", "ethnicity", "religion", "hometown", "address", "phone",
    "education", "qualification", "political_theory", "occupation", "youth_union",
})

# Legal bases ----------------------------------------------------------------------------------------------
# What a decision stands on when its client names nothing (ARCHITECTURE.md §10), chosen by the date the decision
# takes effect, so that a backdated fact carries the rules of its time (reference/domain-research.md §0). Each
# instrument is in force from its date until the next one's. The table starts with the Charter of 2011: an
# earlier decision gets no basis rather than a wrong one.
CHARTER = (dt.date(2011, 1, 19), "Điều lệ Đảng (2011)")
IMPLEMENTING_RULES = (
    (dt.date(2016, 7, 25), "Quy định 29-QĐ/TW (25/07/2016)"),
    (dt.date(2021, 7, 30), "Quy định 24-QĐ/TW (30/07/2021)"),
    (dt.date(2025, 1, 20), "Quy định 232-QĐ/TW (20/01/2025)"),
    (dt.date(2025, 7, 1), "Quy định 294-QĐ/TW (26/05/2025)"),
)
IMPLEMENTING_GUIDANCE = (
    (dt.date(2021, 9, 28), "Hướng dẫn 01-HD/TW (28/09/2021)"),
    (dt.date(2025, 6, 9), "Hướng dẫn 06-HD/TW (09/06/2025)"),
)
RATING_RULES = (
    (dt.date(2023, 10, 4), "Quy định 124-QĐ/TW (04/10/2023)"),
    (dt.date(2025, 8, 30), "Quy định 366-QĐ/TW (30/08/2025)"),
)
RATING_GUIDANCE = ((dt.date(2025, 10, 31), "Hướng dẫn 43-HD/BTCTW (31/10/2025)"),)


def legal_basis(on: dt.date, *, rating: bool = False) -> str | None:
    """The Charter and the implementing rules and guidance in force on `on` (for an annual rating, the rating
    rules instead): e.g. "Điều lệ Đảng (2011); Quy định 294-QĐ/TW (26/05/2025); Hướng dẫn 06-HD/TW (09/06/2025)".
    None before the Charter of 2011, which the table does not reach back past."""
    if on < CHARTER[0]:
        return None
    tables = (RATING_RULES, RATING_GUIDANCE) if rating else (IMPLEMENTING_RULES, IMPLEMENTING_GUIDANCE)
    in_force = [next((text for since, text in reversed(table) if since <= on), None) for table in tables]
    return "; ".join([CHARTER[1], *(text for text in in_force if text)])
