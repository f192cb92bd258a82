"""A service's event store replayed into a consumer: projections rebuilt from the source of truth when the broker
cannot give the history back (it lost its log, or cannot hold it: an in-memory broker and tens of millions of
events; ARCHITECTURE.md §3).

The store is read as the relay would publish it, one envelope per event, in (transaction id, position) order and
only below the oldest running transaction, so a transaction that commits late is never skipped (the "gap" trap
of `reference/tech-anchors.md`). The consumer applies the records by its usual per-stream rule, so a replay next
to the live topic never applies an event twice.

A replay is complete relative to a moment: `mark()` notes the store's next transaction id, and `pages(until=)`
goes on until every transaction older than that has finished and been read. Whatever the relay published before
the mark is then in the replay, which is what lets a rebuilt projection resume the topic at its end offsets of
that moment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from servicekit.database import connect
from servicekit.pgstore import commit_order_page
from servicekit.relay import envelope_of

_COLUMNS = ("xid::text::bigint, position, stream_id, version, event_id, event_type, schema_version, data::text,"
            " metadata, recorded_at")
_PAGE = commit_order_page(_COLUMNS)
_PAGE_OF_A_SHARE = commit_order_page(_COLUMNS, of_a_share=True)


@dataclass(frozen=True)
class ReplayedRecord:
    """Shaped as a Kafka record, so a consumer decodes it exactly as what the relay publishes; the offset is the
    event's position in its store, the partition -1 (it never came from a partition)."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class StoreReplay:
    """`page_size`: a page is one transaction of the consumer that applies it; as many records as a rebuild's poll
    from the topic (at `small`, 13.7–14.5 s with 10,000 against 14.5–14.7 s with 5,000)."""

    def __init__(self, database_url: str, *, schema: str, service: str, topic: str, page_size: int = 10_000) -> None:
        self.database_url = database_url
        self.schema = schema
        self.service = service
        self.topic = topic
        self.page_size = page_size
        self.read = 0
        self.last_position = 0

    def mark(self) -> int:
        """The store's next transaction id: every transaction that committed before now is older."""
        with connect(self.database_url, schema=self.schema, autocommit=True) as conn:
            row = conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()
        assert row is not None
        return int(row[0])

    def newest_position(self) -> int:
        with connect(self.database_url, schema=self.schema, autocommit=True) as conn:
            row = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        return int(row[0]) if row else 0

    def pages(self, *, until: int = 0, wait_s: float = 0.2, timeout_s: float = 600,
              share: tuple[int, int] | None = None) -> Iterator[list[ReplayedRecord]]:
        """Pages of records in store order, until a page comes back empty with every transaction older than
        `until` finished. `share` (index, count): only the streams of that share (each stream whole in one), for
        processes replaying one store side by side."""
        if share is not None and not 0 <= share[0] < share[1]:
            raise ValueError(f"share {share[0]} of {share[1]}")
        xid, position = 0, 0
        with connect(self.database_url, schema=self.schema, autocommit=True) as conn:
            waited_since: float | None = None
            while True:
                if share is None:
                    rows = conn.execute(_PAGE, (str(xid), position, self.page_size)).fetchall()
                else:
                    rows = conn.execute(_PAGE_OF_A_SHARE,
                                        (str(xid), position, share[1], share[0], self.page_size)).fetchall()
                if rows:
                    waited_since = None
                    xid, position = rows[-1][0], rows[-1][1]
                    self.read += len(rows)
                    self.last_position = max(self.last_position, max(r[1] for r in rows))
                    yield [self._record(row) for row in rows]
                    continue
                horizon = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
                if horizon is not None and int(horizon[0]) >= until:
                    return
                waited_since = waited_since or time.monotonic()
                if time.monotonic() - waited_since > timeout_s:
                    raise TimeoutError(f"a transaction older than {until} is still running in {self.schema}")
                time.sleep(wait_s)

    def _record(self, row: tuple[object, ...]) -> ReplayedRecord:
        _, position, stream, version, event_id, event_type, schema_version, data, metadata, recorded_at = row
        assert isinstance(stream, str) and isinstance(data, str) and isinstance(metadata, dict)
        envelope = envelope_of(self.service, stream, int(str(version)), event_id, str(event_type),
                               int(str(schema_version)), metadata, recorded_at,
                               traceparent=metadata.get("traceparent"), tracestate=metadata.get("tracestate"))
        return ReplayedRecord(self.topic, -1, int(str(position)), envelope.subject.encode(), data.encode(),
                              envelope.to_headers())
