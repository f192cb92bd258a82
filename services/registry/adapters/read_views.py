"""The registry's own read views, kept in the same transaction as the events (an inline projection):
the current tree and who sits in which cell, for decisions that span aggregates."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import psycopg

from registry.domain.errors import DomainError
from registry.domain.policy import CARD_SERIALS
from servicekit.events import StoredEvent

DDL = """
CREATE TABLE IF NOT EXISTS unit_view (
    unit_id uuid PRIMARY KEY,
    code text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    parent_id uuid,
    status text NOT NULL,
    established_on date NOT NULL
);
CREATE INDEX IF NOT EXISTS unit_view_children ON unit_view (parent_id) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS unit_view_code ON unit_view (code) WHERE status = 'active';

CREATE TABLE IF NOT EXISTS member_view (
    member_id uuid PRIMARY KEY,
    citizen_id text NOT NULL,
    unit_id uuid NOT NULL,
    status text NOT NULL
);
CREATE INDEX IF NOT EXISTS member_view_in_unit ON member_view (unit_id) WHERE status IN ('official', 'probationary');

-- Card numbers: the register's provincial code (01 for Hanoi) and six digits handed out in order, never reused.
-- No MAXVALUE: a sequence at its end fails the whole transaction, and a command must be refused cleanly instead
-- (next_card_numbers checks the six digits). Altered only where an older definition had one: an ALTER locks.
CREATE SEQUENCE IF NOT EXISTS card_numbers MINVALUE 1 NO CYCLE;
DO $$ BEGIN
    IF (SELECT seqmax FROM pg_sequence WHERE seqrelid = 'card_numbers'::regclass) < 9223372036854775807 THEN
        ALTER SEQUENCE card_numbers NO MAXVALUE;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS imports (
    import_id uuid PRIMARY KEY,
    file_name text NOT NULL,
    file_sha256 text NOT NULL,
    status text NOT NULL,
    total integer NOT NULL DEFAULT 0,
    accepted integer NOT NULL DEFAULT 0,
    rejected integer NOT NULL DEFAULT 0,
    written integer NOT NULL DEFAULT 0,
    skipped integer NOT NULL DEFAULT 0,
    errors jsonb NOT NULL DEFAULT '[]',
    actor text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- The unit whose subtree the import was submitted in (its actor's scope; NULL: the whole register): its rows may
-- enrol members only into cells of that subtree, and only actors over it read its report. And what its writes
-- stand on (NULL: the policy table's basis of the day they are written). Added only where missing: an ALTER locks.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                   AND table_name = 'imports' AND column_name = 'scope_unit_id') THEN
        ALTER TABLE imports ADD COLUMN scope_unit_id uuid, ADD COLUMN legal_basis text;
    END IF;
END $$;
"""

_STATUS_AFTER = {
    "MemberRecognizedAsOfficial": "official",
    "MemberLeftParty": "left",
    "MemberDied": "deceased",
    "MemberTransferredOut": "transferred_out",
    "MemberReadmitted": "probationary",
}


class PostgresRegistryViews:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def active_children(self, unit_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT unit_id::text FROM unit_view WHERE parent_id = %s AND status = 'active' ORDER BY code",
            (unit_id,)).fetchall()
        return [r[0] for r in rows]

    def active_members(self, unit_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT member_id::text FROM member_view WHERE unit_id = %s AND status IN ('official', 'probationary')"
            " ORDER BY member_id", (unit_id,)).fetchall()
        return [r[0] for r in rows]

    def ancestors(self, unit_id: str) -> list[str]:
        return [r[0] for r in self._lineage(unit_id)[1:]]

    def ancestor_codes(self, unit_id: str) -> list[str]:
        return [r[1] for r in self._lineage(unit_id)]

    def _lineage(self, unit_id: str) -> list[tuple[str, str]]:
        rows = self._conn.execute(
            "WITH RECURSIVE up(unit_id, code, parent_id, depth) AS ("
            " SELECT unit_id, code, parent_id, 0 FROM unit_view WHERE unit_id = %s"
            " UNION ALL SELECT u.unit_id, u.code, u.parent_id, up.depth + 1 FROM unit_view u"
            " JOIN up ON u.unit_id = up.parent_id WHERE up.depth < 64)"
            " SELECT unit_id::text, code FROM up ORDER BY depth", (unit_id,)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def next_card_number(self, card_code: str) -> str:
        [number] = self.next_card_numbers(1, card_code)
        return number

    def next_card_numbers(self, count: int, card_code: str) -> list[str]:
        # Looked at before drawing, so that a refused batch does not use up the numbers left (a sequence is not
        # rolled back); drawn numbers are checked again for a batch that drew beside this one.
        last, called = self._conn.execute("SELECT last_value, is_called FROM card_numbers").fetchone() or (0, False)
        if int(last) + (1 if called else 0) + count - 1 > CARD_SERIALS:
            raise self._exhausted(card_code)
        rows = self._conn.execute("SELECT nextval('card_numbers') FROM generate_series(1, %s)", (count,)).fetchall()
        if rows and max(int(r[0]) for r in rows) > CARD_SERIALS:
            raise self._exhausted(card_code)
        return [f"{card_code}{int(r[0]):06d}" for r in rows]

    @staticmethod
    def _exhausted(card_code: str) -> DomainError:
        return DomainError(f"the register's card numbers ({card_code}000001 to {card_code}{CARD_SERIALS}) are all"
                           " allocated", code="card-range-exhausted")

    def unit_id_by_code(self, code: str) -> str | None:
        row = self._conn.execute(
            "SELECT unit_id::text FROM unit_view WHERE code = %s AND status = 'active'", (code,)).fetchone()
        return None if row is None else str(row[0])


def project_inline(tx: Any, stored: list[StoredEvent]) -> None:
    """Apply appended events to the views, batched by kind (an import or a merge writes thousands)."""
    conn: psycopg.Connection = tx.conn
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in stored:
        by_type[event.type].append(event.data)
    if rows := by_type.get("OrganizationUnitEstablished"):
        conn.execute(
            "INSERT INTO unit_view (unit_id, code, name, kind, parent_id, status, established_on)"
            " SELECT i, c, n, k, p, 'active', e::date FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[],"
            " %b::uuid[], %b::text[]) AS x(i, c, n, k, p, e)",
            ([r["unit_id"] for r in rows], [r["code"] for r in rows], [r["name"] for r in rows],
             [r["kind"] for r in rows], [r["parent_id"] for r in rows], [r["established_on"] for r in rows]))
    for r in by_type.get("OrganizationUnitRenamed", []):
        conn.execute("UPDATE unit_view SET name = %s WHERE unit_id = %s", (r["name"], r["unit_id"]))
    if rows := by_type.get("OrganizationUnitReattached"):
        conn.execute(
            "UPDATE unit_view u SET parent_id = x.p FROM unnest(%b::text[]::uuid[], %b::text[]::uuid[]) AS x(i, p)"
            " WHERE u.unit_id = x.i", ([r["unit_id"] for r in rows], [r["parent_id"] for r in rows]))
    for r in by_type.get("OrganizationUnitDissolved", []):
        conn.execute("UPDATE unit_view SET status = %s WHERE unit_id = %s",
                     ({"merged": "merged", "split": "split"}.get(r["reason"], "dissolved"), r["unit_id"]))
    if rows := by_type.get("MemberEnrolled"):
        conn.execute(
            "INSERT INTO member_view (member_id, citizen_id, unit_id, status)"
            " SELECT i, c, u, s FROM unnest(%b::uuid[], %b::text[], %b::uuid[], %b::text[]) AS x(i, c, u, s)",
            ([r["member_id"] for r in rows], [r["citizen_id"] for r in rows], [r["unit_id"] for r in rows],
             [r["status"] for r in rows]))
        if carried := [int(r["card_number"][2:]) for r in rows if r.get("card_number")]:
            # Cards brought in by an import are held; allocation continues above them, never reusing one.
            conn.execute("SELECT setval('card_numbers', %s) WHERE %s > (SELECT last_value FROM card_numbers)",
                         (max(carried), max(carried)))
    if rows := by_type.get("MemberUnitChanged"):
        conn.execute(
            "UPDATE member_view m SET unit_id = x.u FROM unnest(%b::uuid[], %b::uuid[]) AS x(i, u)"
            " WHERE m.member_id = x.i", ([r["member_id"] for r in rows], [r["to_unit_id"] for r in rows]))
    for event_type, status in _STATUS_AFTER.items():
        if rows := by_type.get(event_type):
            conn.execute("UPDATE member_view SET status = %s WHERE member_id = ANY(%b::text[]::uuid[])",
                         (status, [r["member_id"] for r in rows]))
    for r in by_type.get("MemberReadmitted", []):
        conn.execute("UPDATE member_view SET unit_id = %s WHERE member_id = %s", (r["unit_id"], r["member_id"]))
    for r in by_type.get("MemberProfileUpdated", []):
        if "citizen_id" in r["changes"]:
            conn.execute("UPDATE member_view SET citizen_id = %s WHERE member_id = %s",
                         (r["changes"]["citizen_id"], r["member_id"]))
