"""Members: the current record, the membership intervals behind every as-of question, the timeline, and
per-unit counts kept incrementally (subtree roll-ups sum them over the tree)."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
from collections import Counter
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gateway.projections.base import Projection, record_fact
from gateway.projections.history import Fact, effective_on, member_intervals
from gateway.projections.text import fold
from servicekit.consumer import ConsumedEvent

DDL = """
CREATE TABLE IF NOT EXISTS member_facts (
    member_id uuid NOT NULL,
    seq integer NOT NULL,
    effective_on date NOT NULL,
    event_type text NOT NULL,
    data jsonb NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor text,
    PRIMARY KEY (member_id, seq)
);
CREATE INDEX IF NOT EXISTS member_facts_by_day ON member_facts (effective_on, event_type);

CREATE TABLE IF NOT EXISTS members (
    member_id uuid PRIMARY KEY,
    full_name text NOT NULL,
    search_name text NOT NULL,
    gender text NOT NULL,
    birth_date date NOT NULL,
    citizen_id text NOT NULL,
    unit_id uuid NOT NULL,
    host_unit_id uuid,
    status text NOT NULL,
    source text NOT NULL,
    exempted boolean NOT NULL DEFAULT false,
    on_screening_list boolean NOT NULL DEFAULT false,
    admitted_on date NOT NULL,
    official_on date,
    probation_ends_on date,
    member_since date,
    card_number text,
    card_generation integer,
    badges integer[] NOT NULL DEFAULT '{}',
    ratings jsonb NOT NULL DEFAULT '{}',
    interruption_days integer NOT NULL DEFAULT 0,
    ethnicity text,
    religion text,
    education text,
    qualification text,
    political_theory text,
    occupation text,
    hometown text,
    address text,
    phone text,
    youth_union boolean,
    left_on date,
    leave_reason text,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS members_in_unit ON members (unit_id, status);
CREATE INDEX IF NOT EXISTS members_hosted ON members (host_unit_id) WHERE host_unit_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS members_search ON members USING gin (search_name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS members_probation ON members (probation_ends_on) WHERE status = 'probationary';

-- [valid_from, valid_to): where a member counted and with which status.
CREATE TABLE IF NOT EXISTS member_intervals (
    member_id uuid NOT NULL,
    valid_from date NOT NULL,
    valid_to date NOT NULL,
    unit_id uuid NOT NULL,
    status text NOT NULL,
    PRIMARY KEY (member_id, valid_from)
);
CREATE INDEX IF NOT EXISTS member_intervals_in_unit ON member_intervals (unit_id, valid_from, valid_to);

-- Direct members of each unit by dimension; a subtree's numbers are the sum over its units.
CREATE TABLE IF NOT EXISTS unit_member_counts (
    unit_id uuid NOT NULL,
    dimension text NOT NULL,
    value text NOT NULL,
    count integer NOT NULL,
    PRIMARY KEY (unit_id, dimension, value)
);
"""

MEMBER_EVENTS = (
    "MemberEnrolled", "MemberProfileUpdated", "MemberUnitChanged", "MemberTemporaryHostChanged",
    "MemberRecognizedAsOfficial", "PartyCardIssued", "PartyBadgeAwarded", "AnnualRatingRecorded", "MemberExempted",
    "MemberExemptionEnded", "MemberPlacedOnScreeningList", "MemberLeftParty", "MemberDied", "MemberTransferredOut",
    "MemberReadmitted",
)

COLUMNS = ("member_id", "full_name", "search_name", "gender", "birth_date", "citizen_id", "unit_id", "host_unit_id",
           "status", "source", "exempted", "on_screening_list", "admitted_on", "official_on", "probation_ends_on",
           "member_since", "card_number", "card_generation", "badges", "ratings", "interruption_days", "ethnicity",
           "religion", "education", "qualification", "political_theory", "occupation", "hometown", "address", "phone",
           "youth_union", "left_on", "leave_reason", "version")
PROFILE = ("ethnicity", "religion", "education", "qualification", "political_theory", "occupation", "hometown",
           "address", "phone", "youth_union")
ACTIVE = ("official", "probationary")


def admission_era(admitted_on: dt.date) -> str:
    """Biểu 3 eras: before 19/8/1945; 1945–1954; 1954–1975; after 1975."""
    if admitted_on < dt.date(1945, 8, 19):
        return "before_1945"
    if admitted_on < dt.date(1954, 7, 21):
        return "1945_1954"
    if admitted_on < dt.date(1975, 4, 30):
        return "1954_1975"
    return "after_1975"


def apply(row: dict[str, Any] | None, event_type: str, data: dict[str, Any], version: int) -> dict[str, Any]:
    """The member row after one event (pure: given the row and an event, the next row)."""
    if event_type == "MemberEnrolled":
        profile = data.get("profile") or {}
        interruptions = data.get("interruptions") or []
        return {
            "member_id": data["member_id"], "full_name": data["full_name"], "search_name": fold(data["full_name"]),
            "gender": data["gender"], "birth_date": dt.date.fromisoformat(data["birth_date"]),
            "citizen_id": data["citizen_id"], "unit_id": data["unit_id"], "host_unit_id": None,
            "status": data["status"], "source": data["source"], "exempted": False, "on_screening_list": False,
            "admitted_on": dt.date.fromisoformat(data["admitted_on"]),
            "official_on": _day(data.get("official_on")), "probation_ends_on": _day(data.get("probation_ends_on")),
            "member_since": _day(data.get("member_since")), "card_number": data.get("card_number"),
            "card_generation": 1 if data.get("card_number") else None, "badges": [], "ratings": {},
            "interruption_days": sum((dt.date.fromisoformat(i["end"]) - dt.date.fromisoformat(i["start"])).days
                                     for i in interruptions),
            **{k: profile.get(k) for k in PROFILE}, "left_on": None, "leave_reason": None, "version": version,
        }
    if row is None:
        raise ValueError(f"{event_type} before MemberEnrolled")
    row = {**row, "version": version}
    match event_type:
        case "MemberProfileUpdated":
            changes = data["changes"]
            for key, value in changes.items():
                if key == "birth_date":
                    row[key] = dt.date.fromisoformat(value)
                elif key in row:
                    row[key] = value
            if "full_name" in changes:
                row["search_name"] = fold(changes["full_name"])
        case "MemberUnitChanged":
            row["unit_id"] = data["to_unit_id"]
            if row["host_unit_id"] == data["to_unit_id"]:
                row["host_unit_id"] = None
        case "MemberTemporaryHostChanged":
            row["host_unit_id"] = data["host_unit_id"]
        case "MemberRecognizedAsOfficial":
            row["status"], row["official_on"] = "official", dt.date.fromisoformat(data["official_on"])
        case "PartyCardIssued":
            row["card_number"], row["card_generation"] = data["card_number"], data.get("generation")
        case "PartyBadgeAwarded":
            row["badges"] = sorted({*row["badges"], data["years"]})
        case "AnnualRatingRecorded":
            row["ratings"] = {**row["ratings"], str(data["year"]): data["level"]}
        case "MemberExempted":
            row["exempted"] = True
        case "MemberExemptionEnded":
            row["exempted"] = False
        case "MemberPlacedOnScreeningList":
            row["on_screening_list"] = True
        case "MemberLeftParty":
            row.update(status="left", left_on=dt.date.fromisoformat(data["decided_on"]), leave_reason=data["reason"],
                       exempted=False, host_unit_id=None)
        case "MemberDied":
            row.update(status="deceased", left_on=dt.date.fromisoformat(data["died_on"]), leave_reason="deceased",
                       host_unit_id=None)
        case "MemberTransferredOut":
            row.update(status="transferred_out", left_on=dt.date.fromisoformat(data["effective_on"]),
                       leave_reason="transferred_out", host_unit_id=None)
        case "MemberReadmitted":
            gap = (dt.date.fromisoformat(data["readmitted_on"]) - row["left_on"]).days if row["left_on"] else 0
            row.update(status="probationary", unit_id=data["unit_id"], left_on=None, leave_reason=None,
                       official_on=None, on_screening_list=False, card_number=None, card_generation=None,
                       probation_ends_on=dt.date.fromisoformat(data["probation_ends_on"]),
                       interruption_days=row["interruption_days"] + gap, source="readmitted")
    return row


def contribution(row: dict[str, Any] | None) -> Counter[tuple[str, str, str]]:
    """What one member adds to the per-unit counts: (unit, dimension, value) -> 1."""
    counts: Counter[tuple[str, str, str]] = Counter()
    if row is None or row["status"] not in ACTIVE:
        return counts
    unit = str(row["unit_id"])
    for dimension, value in (
        ("status", row["status"]), ("gender", row["gender"]), ("ethnicity", row["ethnicity"] or "unknown"),
        ("religion", row["religion"] or "none"), ("education", row["education"] or "unknown"),
        ("occupation", row["occupation"] or "unknown"), ("admission_era", admission_era(row["admitted_on"])),
    ):
        counts[(unit, dimension, value)] += 1
    if row["exempted"]:
        counts[(unit, "flag", "exempted")] += 1
    if row["host_unit_id"]:
        counts[(unit, "flag", "temporarily_away")] += 1
        counts[(str(row["host_unit_id"]), "flag", "hosted")] += 1
    return counts


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def apply_member_event(conn: psycopg.Connection, event: ConsumedEvent) -> None:
    member_id = event.aggregate_id
    recorded = dt.datetime.fromisoformat(event.envelope.time)
    effective = effective_on(event.event_type, event.data, recorded.date())
    record_fact(conn, table="member_facts", key="member_id", event=event, effective_on=effective)
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        old = cur.execute(f"SELECT {', '.join(COLUMNS)} FROM members WHERE member_id = %s", (member_id,)).fetchone()
    if old is not None:
        old = {k: (str(v) if k in ("member_id", "unit_id", "host_unit_id") and v is not None else v)
               for k, v in old.items()}
    new = apply(old, event.event_type, event.data, event.version)
    _upsert(conn, new)
    _apply_counts(conn, contribution(new) - contribution(old), contribution(old) - contribution(new))
    if event.event_type in ("MemberEnrolled", "MemberUnitChanged", "MemberRecognizedAsOfficial", "MemberLeftParty",
                            "MemberDied", "MemberTransferredOut", "MemberReadmitted"):
        _rewrite_intervals(conn, member_id)
    change = membership_change(old, new)
    if change is not None and ANNOUNCE_CHANGES.get():
        # Delivered at commit to every gateway process (each LISTENs), whichever projector applied it.
        conn.execute("SELECT pg_notify(%s, %s)", (MEMBER_CHANGES_CHANNEL, json.dumps(
            {"member_id": member_id, "change": change, "from_unit_id": old and str(old["unit_id"]),
             "to_unit_id": str(new["unit_id"]), "effective_on": effective.isoformat(), "version": event.version})))


MEMBER_CHANGES_CHANNEL = "gateway_member_changes"
# Only the live projector announces changes; a rebuild or a test consumer applies history silently.
ANNOUNCE_CHANGES: contextvars.ContextVar[bool] = contextvars.ContextVar("announce_changes", default=False)


def membership_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """joined, left or moved: what a subscriber to a subtree is told about."""
    was = old is not None and old["status"] in ACTIVE
    now = new["status"] in ACTIVE
    if now and not was:
        return "joined"
    if was and not now:
        return "left"
    if was and now and old is not None and str(old["unit_id"]) != str(new["unit_id"]):
        return "moved"
    return None


def _upsert(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    values = [Jsonb(row[c]) if c == "ratings" else row[c] for c in COLUMNS]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "member_id")
    conn.execute(f"INSERT INTO members ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
                 f" ON CONFLICT (member_id) DO UPDATE SET {updates}", values)


def _apply_counts(conn: psycopg.Connection, added: Counter[tuple[str, str, str]],
                  removed: Counter[tuple[str, str, str]]) -> None:
    delta = Counter(added)
    delta.subtract(removed)
    changes = [(u, d, v, n) for (u, d, v), n in delta.items() if n]
    if not changes:
        return
    conn.execute(
        "INSERT INTO unit_member_counts (unit_id, dimension, value, count)"
        " SELECT u, d, v, n FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::int[]) AS x(u, d, v, n)"
        " ON CONFLICT (unit_id, dimension, value) DO UPDATE SET count = unit_member_counts.count + EXCLUDED.count",
        ([c[0] for c in changes], [c[1] for c in changes], [c[2] for c in changes], [c[3] for c in changes]))


def _rewrite_intervals(conn: psycopg.Connection, member_id: str) -> None:
    facts = [Fact(r[0], r[1], r[2], r[3]) for r in conn.execute(
        "SELECT effective_on, seq, event_type, data FROM member_facts WHERE member_id = %s", (member_id,)).fetchall()]
    intervals = member_intervals(facts)
    conn.execute("DELETE FROM member_intervals WHERE member_id = %s", (member_id,))
    if intervals:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO member_intervals (member_id, valid_from, valid_to, unit_id, status)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(member_id, i.valid_from, i.valid_to, i.unit_id, i.status) for i in intervals])


PROJECTION = Projection(
    name="members",
    ddl=DDL,
    handlers={("registry", t): apply_member_event for t in MEMBER_EVENTS},
)
