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
