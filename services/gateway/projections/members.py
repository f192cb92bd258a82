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

from gateway.projections import figures
from gateway.projections.base import Projection, copy_rows, record_facts, upsert_rows
from gateway.projections.history import Fact, effective_on, member_intervals, member_transitions, recorded_day
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
-- Biểu 2's new members: the period's admissions and re-admissions alone, not every enrolment with its JSON read.
CREATE INDEX IF NOT EXISTS member_facts_admissions ON member_facts (effective_on)
    WHERE event_type = 'MemberReadmitted' OR (event_type = 'MemberEnrolled' AND data->>'source' = 'admission');

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
-- Most events (a rating, a card, a badge) rewrite a member's row without touching an indexed column: with room on
-- its page the new version stays there (a HOT update) and none of its indexes is written.
) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS members_in_unit ON members (unit_id, status);
CREATE INDEX IF NOT EXISTS members_hosted ON members (host_unit_id) WHERE host_unit_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS members_search ON members USING gin (search_name gin_trgm_ops);
-- The first page of a large subtree in name order: read in order, not sorted from the whole subtree.
CREATE INDEX IF NOT EXISTS members_by_name ON members (search_name, member_id);
CREATE INDEX IF NOT EXISTS members_probation ON members (probation_ends_on) WHERE status = 'probationary';
-- A flag's members under a large subtree: found through the few flagged rows, not the whole table (the exempted
-- members under Hanoi's root among 10 provinces: 454 -> 87 ms; those on the screening list 431 -> 18 ms).
CREATE INDEX IF NOT EXISTS members_exempted ON members (unit_id) WHERE exempted;
CREATE INDEX IF NOT EXISTS members_on_screening_list ON members (unit_id) WHERE on_screening_list;

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
    dimension text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    count integer NOT NULL,
    PRIMARY KEY (unit_id, dimension, value)
) WITH (fillfactor = 70);
-- A subtree's members by status, summed over its units without reading their other dimensions.
CREATE INDEX IF NOT EXISTS unit_member_counts_by_status ON unit_member_counts (unit_id, value) INCLUDE (count)
    WHERE dimension = 'status';
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
    apply_member_events(conn, [event])


RECORD_ONLY_EVENTS = frozenset({"AnnualRatingRecorded", "PartyBadgeAwarded", "PartyCardIssued",
                                "MemberPlacedOnScreeningList"})
"""Events that change a member's record and nothing that is counted, listed or announced: no unit, status, flag,
interval or profile field. Most of a register's history (a rating a year, badges, cards)."""


def apply_member_events(conn: psycopg.Connection, events: list[ConsumedEvent]) -> None:
    """A batch in five statements or so: facts, current rows, counts, intervals, each for all members at once.
    Members whose events in the batch are all RECORD_ONLY_EVENTS are updated in place, column by column, without
    reading their rows back (`_update_records`)."""
    facts = [(event, effective_on(event.event_type, event.data, recorded_day(event.envelope.time)))
             for event in events]
    record_facts(conn, table="member_facts", key="member_id", facts=facts)
    not_record_only = {event.aggregate_id for event in events if event.event_type not in RECORD_ONLY_EVENTS}
    if len(not_record_only) < len({event.aggregate_id for event in events}):
        _update_records(conn, [event for event in events if event.aggregate_id not in not_record_only])
        facts = [(event, effective) for event, effective in facts if event.aggregate_id in not_record_only]
        events = [event for event, _ in facts]
        if not events:
            return
    member_ids = list(dict.fromkeys(event.aggregate_id for event in events))
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        found = cur.execute(f"SELECT {', '.join(COLUMNS)} FROM members WHERE member_id = ANY(%b::text[]::uuid[])",
                            (member_ids,)).fetchall()
    before: dict[str, dict[str, Any] | None] = dict.fromkeys(member_ids)
    for row in found:
        before[str(row["member_id"])] = {
            k: (str(v) if k in ("member_id", "unit_id", "host_unit_id") and v is not None else v)
            for k, v in row.items()}
    current = dict(before)
    moved: set[str] = set()
    announce = ANNOUNCE_CHANGES.get()
    notices: list[str] = []
    for event, effective in facts:
        member_id = event.aggregate_id
        old = current[member_id]
        new = apply(old, event.event_type, event.data, event.version)
        current[member_id] = new
        if event.event_type in INTERVAL_EVENTS:
            moved.add(member_id)
        if announce and (change := membership_change(old, new)) is not None:
            notices.append(json.dumps({
                "member_id": member_id, "change": change, "from_unit_id": old and str(old["unit_id"]),
                "to_unit_id": str(new["unit_id"]), "effective_on": effective.isoformat(), "version": event.version}))
    counted = sorted(moved | {e.aggregate_id for e in events if e.event_type == "MemberProfileUpdated"})
    with figures.member_change(conn, counted):
        upsert_rows(conn, "members", "member_id", COLUMNS,
                    [_copyable(row) for row in current.values() if row is not None])
        if moved:
            _rewrite_intervals_of(conn, sorted(moved))
    if not figures.DEFERRED.get():
        added: Counter[tuple[str, str, str]] = Counter()
        removed: Counter[tuple[str, str, str]] = Counter()
        for member_id, latest in current.items():
            was, now = contribution(before[member_id]), contribution(latest)
            added.update(now - was)
            removed.update(was - now)
        _apply_counts(conn, added, removed)
    if notices:
        # Delivered at commit to every gateway process (each LISTENs), whichever projector applied it.
        conn.execute("SELECT pg_notify(%s, n) FROM unnest(%b::text[]) AS n", (MEMBER_CHANGES_CHANNEL, notices))


def _update_records(conn: psycopg.Connection, events: list[ConsumedEvent]) -> None:
    """RECORD_ONLY_EVENTS applied in place: per member, the ratings added, the badges added, the last card, the
    screening flag and the version, in one UPDATE; the row's other columns stay as they are. Leaves what `apply`
    leaves event by event (the property test compares both with it)."""
    changes: dict[str, dict[str, Any]] = {}
    for event in events:
        change = changes.setdefault(event.aggregate_id, {"ratings": {}, "badges": set(), "card": None,
                                                          "listed": False, "version": 0})
        data = event.data
        match event.event_type:
            case "AnnualRatingRecorded":
                change["ratings"][str(data["year"])] = data["level"]
            case "PartyBadgeAwarded":
                change["badges"].add(int(data["years"]))
            case "PartyCardIssued":
                change["card"] = (data["card_number"], data.get("generation"))
            case "MemberPlacedOnScreeningList":
                change["listed"] = True
        change["version"] = event.version
    ids = list(changes)
    rows = [changes[member_id] for member_id in ids]
    updated = conn.execute(
        "UPDATE members m SET ratings = m.ratings || x.ratings::jsonb,"
        " badges = CASE WHEN x.badges = '{}' THEN m.badges"
        "  ELSE ARRAY(SELECT DISTINCT b FROM unnest(m.badges || x.badges::int[]) AS b ORDER BY b) END,"
        " card_number = CASE WHEN x.carded THEN x.card_number ELSE m.card_number END,"
        " card_generation = CASE WHEN x.carded THEN x.card_generation ELSE m.card_generation END,"
        " on_screening_list = m.on_screening_list OR x.listed, version = x.version"
        " FROM unnest(%b::text[]::uuid[], %b::text[], %b::text[], %b::bool[], %b::text[], %b::int[], %b::bool[],"
        " %b::int[]) AS x(member_id, ratings, badges, carded, card_number, card_generation, listed, version)"
        " WHERE m.member_id = x.member_id",
        (ids, [json.dumps(r["ratings"], ensure_ascii=False) for r in rows],
         ["{" + ",".join(map(str, sorted(r["badges"]))) + "}" for r in rows],
         [r["card"] is not None for r in rows], [r["card"][0] if r["card"] else None for r in rows],
         [r["card"][1] if r["card"] else None for r in rows], [r["listed"] for r in rows],
         [r["version"] for r in rows]),
        prepare=False)
    if updated.rowcount != len(ids):
        raise ValueError(f"{events[0].event_type} before MemberEnrolled")


INTERVAL_EVENTS = frozenset({"MemberEnrolled", "MemberUnitChanged", "MemberRecognizedAsOfficial", "MemberLeftParty",
                             "MemberDied", "MemberTransferredOut", "MemberReadmitted"})


def _rewrite_intervals_of(conn: psycopg.Connection, member_ids: list[str]) -> None:
    by_member: dict[str, list[Fact]] = {member_id: [] for member_id in member_ids}
    for r in conn.execute("SELECT member_id::text, effective_on, seq, event_type, data FROM member_facts"
                          " WHERE member_id = ANY(%b::text[]::uuid[])", (member_ids,)).fetchall():
        by_member[r[0]].append(Fact(r[1], r[2], r[3], r[4]))
    intervals = {member_id: member_intervals(member_facts) for member_id, member_facts in by_member.items()}
    conn.execute("DELETE FROM member_intervals WHERE member_id = ANY(%b::text[]::uuid[])", (member_ids,))
    copy_rows(conn, "member_intervals", ("member_id", "valid_from", "valid_to", "unit_id", "status"),
              ((member_id, i.valid_from, i.valid_to, i.unit_id, i.status)
               for member_id, rows in intervals.items() for i in rows))
    conn.execute("DELETE FROM member_transitions WHERE member_id = ANY(%b::text[]::uuid[])", (member_ids,))
    copy_rows(conn, "member_transitions", ("member_id", "day", "from_unit", "to_unit", "entry", "exit"),
              ((member_id, t.day, t.from_unit, t.to_unit, t.entry, t.exit)
               for member_id, rows in intervals.items() for t in member_transitions(rows, by_member[member_id])))


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


def _copyable(row: dict[str, Any]) -> list[Any]:
    """A row as COPY takes it; the badges as an array literal, which psycopg's list dumper would build far more
    slowly, column by column."""
    values = [row[c] for c in COLUMNS]
    values[_RATINGS] = Jsonb(values[_RATINGS])
    values[_BADGES] = "{" + ",".join(str(b) for b in values[_BADGES]) + "}"
    return values


_RATINGS, _BADGES = COLUMNS.index("ratings"), COLUMNS.index("badges")


def _apply_counts(conn: psycopg.Connection, added: Counter[tuple[str, str, str]],
                  removed: Counter[tuple[str, str, str]]) -> None:
    delta = Counter(added)
    delta.subtract(removed)
    changes = [(u, d, v, n) for (u, d, v), n in delta.items() if n]
    if not changes:
        return
    conn.execute(
        "INSERT INTO unit_member_counts (unit_id, dimension, value, count)"
        " SELECT u, d, v, n FROM unnest(%b::text[]::uuid[], %b::text[], %b::text[], %b::int[]) AS x(u, d, v, n)"
        " ON CONFLICT (unit_id, dimension, value) DO UPDATE SET count = unit_member_counts.count + EXCLUDED.count",
        ([c[0] for c in changes], [c[1] for c in changes], [c[2] for c in changes], [c[3] for c in changes]))


def unit_counts(conn: psycopg.Connection) -> Counter[tuple[str, str, str]]:
    """The per-unit counts recounted from the member rows (in a transaction: a server-side cursor reads them)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    with conn.cursor(name="unit_counts", row_factory=psycopg.rows.dict_row) as cur:
        cur.itersize = 10_000
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM members WHERE status = ANY(%s)", (list(ACTIVE),))
        for row in cur:
            row["unit_id"] = str(row["unit_id"])
            row["host_unit_id"] = str(row["host_unit_id"]) if row["host_unit_id"] else None
            counts.update(contribution(row))
    return counts


def recount_unit_counts(conn: psycopg.Connection) -> None:
    """The per-unit counts written afresh from the member rows, as a rebuild does once it has applied the
    history with figures.DEFERRED set."""
    conn.execute("DELETE FROM unit_member_counts")
    copy_rows(conn, "unit_member_counts", ("unit_id", "dimension", "value", "count"),
              ((u, d, v, n) for (u, d, v), n in sorted(unit_counts(conn).items()) if n))


PROJECTION = Projection(
    name="members",
    ddl=DDL,
    handlers={("registry", t): apply_member_event for t in MEMBER_EVENTS},
    apply_many=apply_member_events,
)
