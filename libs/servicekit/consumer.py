"""The consumer: applies events to PostgreSQL with its progress in the same transaction.

Rules it keeps (ARCHITECTURE.md §9.2, 9.4, 9.5):
- an event is applied only when its version is the stream's last applied + 1; repeats are dropped and a
  gap holds the key back (the relay resends from a key's first unacknowledged row, and a replay from the
  start fills any hole), counted by the `consumer.held_at_gap` metric;
- `(topic id, partition, offset)` is stored only as a hint of where to resume; when the topic id changed
  (the broker lost its log) the consumer starts the partition again from the beginning;
- a handler that raises sends its event to the dead-letter topic with the error; that key's later events
  are parked behind it, other keys go on;
- each event's command id is counted, so a consistency token is satisfied only when every event of its
  command has been applied.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from opentelemetry.trace import SpanKind
from psycopg.types.json import Jsonb

from contracts.codec import Catalogue
from contracts.envelope import Envelope
from contracts.topics import dead_letter_topic
from servicekit import kafka as kafka_setup
from servicekit.database import connect
from servicekit.lease import Lease
from servicekit.telemetry import attached, context_from, meter, tracer

log = logging.getLogger("servicekit.consumer")


@dataclass(frozen=True)
class ConsumedEvent:
    topic: str
    partition: int
    offset: int
    envelope: Envelope
    source: str
    event_type: str
    schema_version: int
    data: dict[str, Any]
    data_json: str | None = None
    """`data` as the JSON text it came in, for a handler that stores it whole (no second serialization)."""

    # Kept once made: a batch asks each event for its stream and aggregate several times (about 2% of a projector's
    # time went to making them again).
    @functools.cached_property
    def stream_id(self) -> str:
        return f"{self.source}/{self.envelope.subject}"

    @property
    def version(self) -> int:
        return self.envelope.stream_version

    @functools.cached_property
    def aggregate_id(self) -> str:
        return self.envelope.subject


EventHandler = Callable[[psycopg.Connection, ConsumedEvent], None]
BatchHandler = Callable[[psycopg.Connection, list[ConsumedEvent]], None]


@dataclass(frozen=True)
class ConsumerSettings:
    name: str
    database_url: str
    schema: str
    bootstrap_servers: str
    topics: tuple[str, ...]
    lease_ttl_s: float = 10.0
    poll_timeout_ms: int = 100
    topic_check_interval_s: float = 1.0
    trace_events: bool = True
    """A consumer span for the events of each command in a batch; a rebuild of history does without."""
    flush_commits: bool = True
    """Wait for each commit to reach the disk. A consumer whose effects are only derived state (a projection)
    may answer False: a crash then loses its last few hundred milliseconds of commits, effects and stored
    progress together, and it applies those events again. Never for a consumer that appends events (a reaction):
    the relay may publish what the crash then takes back."""
    prepare_session: Callable[[psycopg.Connection], None] | None = None
    """Runs on every new database connection, outside any transaction: session state the handlers rely on
    (temporary work tables, settings) made once, where a rolled-back batch cannot take it away."""
    fetch_max_wait_ms: int | None = None
    """How long the broker may hold a fetch that finds nothing; None keeps the kit's short default (a
    projection users wait on). Every empty fetch costs CPU on both sides, so a consumer that mostly idles
    and that nobody waits on asks for a longer one."""
    catch_up_poll_records: int | None = None
    """Records per poll, so per transaction, while the consumer is behind (by `behind_from_records` or more, or
    by as yet unknown); None keeps the kit's 2,000. A projection that catches up from far behind (a bulk load, a
    rebuild) asks for more: the rows its batches rewrite (a member's, each time one of its events comes) are
    rewritten less often. Nearly caught up, it polls the kit's 2,000: beside a live load, 10,000 throughout gave
    44–52 ms p50 against 54–55 (A/B on fresh stacks at 400 commands/s), within the noise but no better."""


class PoisonMessage(Exception):
    """A record that cannot be decoded into an event."""


class RetryLater(Exception):
    """The event cannot apply yet: it depends on a fact of another key (another topic, even) that has not
    arrived. It waits, with its key's later events parked behind it, and is retried until it applies."""


@dataclass(frozen=True)
class _StoredRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class ReplayedRecordAt:
    """Where a partition stands, shaped as the last record read from it."""

    topic: str
    partition: int
    offset: int


def _first_offsets(records: Sequence[Any]) -> dict[tuple[str, int], int]:
    """The first offset of each (topic, partition) among a batch's records."""
    first: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        first[key] = min(first.get(key, record.offset), record.offset)
    return first


class EventConsumer:
    def __init__(
        self,
        settings: ConsumerSettings,
        handler: EventHandler,
        *,
        catalogues: Sequence[Catalogue] = (),
        on_applied: Callable[[list[ConsumedEvent]], None] | None = None,
        batch_handler: BatchHandler | None = None,
        when_caught_up: Callable[[psycopg.Connection], None] | None = None,
    ) -> None:
        self.settings = settings
        # Told, after each poll that brings nothing while no record waits, with the connection outside any
        # transaction: work a handler put off until the consumer had caught up (gateway.projections.CatchingUp)
        # cannot wait for a next batch that may never come.
        self._when_caught_up = when_caught_up
        self._handler = handler
        # A batch handler applies a poll's events in a few statements (a bulk load projects thousands per
        # second); it must leave the same state as applying them one by one, in order.
        self._batch_handler = batch_handler
        self._catalogues = {c.source: c for c in catalogues}
        self._on_applied = on_applied
        self._conn = self._connect()
        self.lease = Lease(self._conn, name=f"consumer:{settings.name}", ttl_s=settings.lease_ttl_s)
        self._consumer: KafkaConsumer | None = None
        self._producer: Any = None
        self._topic_ids: dict[str, str] = {}
        self._checked_at = 0.0
        self._tracer = tracer("servicekit.consumer")
        m = meter("servicekit.consumer")
        self._applied_counter = m.create_counter("consumer.applied", unit="{event}")
        self._gap_counter = m.create_counter("consumer.held_at_gap", unit="{event}")
        self._dead_counter = m.create_counter("consumer.dead_lettered", unit="{event}")
        m.create_observable_gauge("consumer.lag", callbacks=[self._observe_lag], unit="{record}")
        self.lag: dict[tuple[str, int], int] = {}
        self.applied_total = 0
        self.held_at_gap = 0
        self.resyncs = 0
        self.restarts = 0
        """How many times a stalled Kafka consumer was made again."""

    def _observe_lag(self, _options: Any) -> Any:
        from opentelemetry.metrics import Observation

        return [
            Observation(lag, {"consumer": self.settings.name, "topic": t, "partition": p})
            for (t, p), lag in list(self.lag.items())
        ]

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if not self._hold_lease():
                    stop.wait(min(1.0, self.settings.lease_ttl_s / 3))
                    continue
                self.poll_once()
            except psycopg.OperationalError:
                log.exception("database unavailable; retrying")
                stop.wait(1.0)
                self._reconnect_database()
            except KafkaError:
                log.warning("broker error; reconnecting", exc_info=True)
                self._close_kafka()
                stop.wait(0.5)
        self.close()

    def _hold_lease(self) -> bool:
        if self.lease.held:
            if self.lease.renew_if_due():
                return True
            self._close_kafka()
            return False
        return self.lease.acquire()

    def poll_once(self) -> int:
        """One poll and one transaction; returns how many events were applied."""
        consumer = self._ensure_consumer()
        if consumer is None:
            time.sleep(0.2)
            return 0
        self._check_topic_ids_if_due(consumer)
        batch = consumer.poll(timeout_ms=self.settings.poll_timeout_ms, max_records=self._poll_records())
        records = [r for part in batch.values() for r in part]
        if self._dead_letters_pending or time.monotonic() - self._retried_at > self.retry_interval_s:
            # Right after something was dead-lettered, else once a retry interval: read after every poll, the
            # (nearly always empty) dead letters were a round trip between each poll and the apply of its events.
            self._dead_letters_pending = False
            self._forward_dead_letters()
        if time.monotonic() - self._retried_at > self.retry_interval_s:
            self._retried_at = time.monotonic()
            self.applied_total += self.retry_waiting()
        if not records:
            self._measure_lag(consumer)
            self._fit_fetch_wait(consumer, brought_records=False)
            self._restart_if_stalled()
            if self._when_caught_up is not None and self.lag and self.total_lag() == 0:
                self._when_caught_up(self._conn)
            return 0
        self._records_at = time.monotonic()
        try:
            applied = self._apply(records)
        except BaseException:
            self._read_again(consumer, records)
            raise
        self._measure_lag(consumer)
        self._fit_fetch_wait(consumer, brought_records=True)
        return len(applied)

    def _poll_records(self) -> int | None:
        wanted = self.settings.catch_up_poll_records
        if wanted is None or (self.lag and self.total_lag() < self.behind_from_records):
            return None
        return wanted

    def _read_again(self, consumer: KafkaConsumer, records: list[Any]) -> None:
        """The batch's transaction did not commit (the database went away in the middle of it, say), or whether it
        did is unknown: its records are read again from the first of each partition, and the per-stream versions
        drop whatever did commit. Without this, the Kafka client's position stayed past them: a partition that got
        no new record (whose first offset would have shown stored progress behind) kept them unapplied, for good
        in a quiet system (seen after a PostgreSQL restart: 13 records of one partition)."""
        try:
            for (topic, partition), offset in _first_offsets(records).items():
                consumer.seek(TopicPartition(topic, partition), offset)
        except Exception:
            log.warning("could not seek back over an unapplied batch; the Kafka consumer is made again",
                        exc_info=True)
            self._close_kafka()

    behind_from_records = 200
    catch_up_fetch_wait_ms = 500
    idle_after_s = 1.0
    idle_fetch_wait_ms = 20
    """Tansu does not answer a waiting fetch when records arrive: it looks again within about half the wait
    (measured: a record produced during a 100 ms wait arrived 28 ms later at the median, 52 at most; during a
    20 ms wait, 5.4 / 9.6 ms; during a 5 ms one, 3.9 / 10.5 ms). Asking every 5 ms while nothing comes cost an
    idle consumer a fifth of a core (7.6% at 20 ms), and Tansu as much again."""

    shorten_after_polls = 100
    """Polls that brought records, in a row, after which a lengthened short wait is halved again."""
    _short_wait_ms = 0
    _polls_with_records = 0

    def _fit_fetch_wait(self, consumer: KafkaConsumer, *, brought_records: bool) -> None:
        """Tansu answers a fetch empty when reading its in-memory log outlasts the fetch's wait, and its reads
        slow down as the log grows. With the few milliseconds a live projection asks for, a consumer behind in a
        large log got nothing, for good (measured: 0 records in 20 s at 30,000 behind; with a 500 ms wait, 2,000 in
        0.6 s: the broker answers as soon as it has read them). Behind by `behind_from_records`, the consumer asks
        for the long wait; caught up, for its short one again, which keeps a new event's pickup quick; quiet for
        `idle_after_s`, for the idle wait, which costs the first event after a quiet spell a few milliseconds.

        On a log that had taken well over 100,000 live commands the same held a few records behind: a 5 ms wait brought
        nothing in 20 s, a 20 ms one the records in 0.4 s. So the short wait is fitted to the broker: a poll that
        brought nothing while the high watermark (which even an empty answer carries) showed records waiting
        doubles it, up to the poll's own timeout; `shorten_after_polls` polls in a row that brought records halve
        it again. On a young log the configured wait never fails and stays as it is: a long wait there costs
        latency, since Tansu looks at a waiting fetch again only within about half its wait."""
        fetcher_config: dict[str, Any] = consumer._fetcher.config
        configured = self.settings.fetch_max_wait_ms or kafka_setup.CONSUMER_SETTINGS["fetch_max_wait_ms"]
        short = max(configured, self._short_wait_ms)
        lag = self.total_lag()
        if brought_records:
            self._polls_with_records += 1
            if short > configured and self._polls_with_records >= self.shorten_after_polls:
                short = max(configured, short // 2)
                self._polls_with_records = 0
        elif 0 < lag < self.behind_from_records and fetcher_config.get("fetch_max_wait_ms") == short:
            short = min(max(configured, self.settings.poll_timeout_ms), short * 2)
            self._polls_with_records = 0
        self._short_wait_ms = short
        if lag >= self.behind_from_records:
            wanted = max(short, self.catch_up_fetch_wait_ms)
        elif time.monotonic() - max(self._records_at, self._consumer_made_at) >= self.idle_after_s:
            wanted = max(short, self.idle_fetch_wait_ms)
        else:
            wanted = short
        if fetcher_config.get("fetch_max_wait_ms") != wanted:
            fetcher_config["fetch_max_wait_ms"] = wanted

    stall_after_s = 15.0
    """Above the client's own request timeout (10 s): a broker that is only slow (Tansu's in-memory log answers
    more slowly as it fills) never looks stalled; at 2 s, new clients were made again and again beside a busy
    Tansu, each slower to start than the last."""
    _records_at = 0.0
    _consumer_made_at = 0.0

    def _restart_if_stalled(self) -> None:
        """A guard against the client-side stalls reported for kafka-python 3.0 (dpkp/kafka-python#3106, #3131):
        a consumer whose lag, measured `stall_after_s` after the last records came, is still above zero is made
        again from the stored offsets. (The stall seen here, 44,000 events behind, was Tansu answering short
        fetch waits empty: `_fit_fetch_wait` is its fix.)"""
        quiet_s = self._lag_measured_at - max(self._records_at, self._consumer_made_at)
        if self.total_lag() == 0 or quiet_s < self.stall_after_s:
            return
        log.warning("%d events behind and nothing fetched for %.0f s: the Kafka consumer is made again",
                    self.total_lag(), quiet_s)
        self.restarts += 1
        self._close_kafka()
        self.lag.clear()
        self._records_at = time.monotonic()

    def _apply(self, records: list[Any]) -> list[ConsumedEvent]:
        """Apply a poll's records in one transaction; on a handler error, redo them one by one."""
        try:
            try:
                with self._conn.transaction():
                    return self._apply_in_transaction(records, isolate=False)
            except _HandlerFailed:
                with self._conn.transaction():
                    return self._apply_in_transaction(records, isolate=True)
        except _Rewind as rewind:
            self._rewind(rewind.positions)
            return []

    def apply_replayed(self, records: Sequence[Any]) -> int:
        """Apply records replayed from an event store (servicekit.replay) by the same per-stream rule; they
        came from no partition, so they leave no resume hint."""
        self._replaying = True
        try:
            return len(self._apply(list(records)))
        finally:
            self._replaying = False

    def resume_at_topic_ends(self) -> bool:
        """Store the end of every partition, as it is now, as where to resume: a projection about to be rebuilt
        from the store will hold everything published before this moment. False when the broker is unreachable
        (the live projector then resumes from where it stands, and replays the topic if its id changed)."""
        try:
            consumer = self._ensure_consumer()
            if consumer is None:
                return False
            probe = kafka_setup.new_end_probe(self.settings.bootstrap_servers, client_id=f"{self.settings.name}-ends")
            try:
                ends = kafka_setup.partition_ends(probe, list(consumer.assignment()))
            finally:
                probe.close()
        except KafkaError:
            log.warning("broker unreachable: the rebuilt projection keeps no resume hints", exc_info=True)
            return False
        with self._conn.transaction():
            self._store_offsets([ReplayedRecordAt(tp.topic, tp.partition, end - 1) for tp, end in ends.items()])
        return True

    _replaying = False

    def _check_position(self, records: list[Any]) -> None:
        """Stored progress behind what we are about to apply means someone else wrote this consumer's tables
        (a rebuilt projection was swapped in): go back to the stored position instead of skipping events."""
        first = _first_offsets(records)
        keys = sorted(first)
        # Only the batch's partitions are locked: the processes of a rebuild, each with its own partitions, took
        # turns on every row of the consumer, and spent 30% of their time waiting for each other.
        stored = self._conn.execute(
            "SELECT topic, partition, topic_id, next_offset FROM consumer_offsets WHERE consumer = %s"
            " AND (topic, partition) IN (SELECT * FROM unnest(%b::text[], %b::int[])) FOR UPDATE",
            (self.settings.name, [k[0] for k in keys], [k[1] for k in keys])).fetchall()
        behind = {(t, p): off for t, p, tid, off in stored
                  if (t, p) in first and tid == self._topic_ids.get(t) and off < first[(t, p)]}
        if behind:
            raise _Rewind(behind)

    def _rewind(self, positions: dict[tuple[str, int], int]) -> None:
        log.warning("stored progress is behind this consumer's position; rewinding %s", positions)
        if self._consumer is None:
            return
        for (topic, partition), offset in positions.items():
            self._consumer.seek(TopicPartition(topic, partition), offset)

    def _apply_in_transaction(self, records: list[Any], *, isolate: bool) -> list[ConsumedEvent]:
        conn = self._conn
        if not self._replaying:
            self._check_position(records)
        decoded: list[tuple[Any, ConsumedEvent | None, str | None]] = []
        for record in records:
            try:
                decoded.append((record, self._decode(record), None))
            except PoisonMessage as exc:
                decoded.append((record, None, str(exc)))
        streams = sorted({e.stream_id for _, e, _ in decoded if e is not None})
        # Each stream's progress as read; the rows are neither created nor locked here. The statement that writes
        # the new progress checks that nobody moved it meanwhile (`_write_progress`): one consumer per partition
        # is the rule (leases, partition locks), so that check is nearly always true, and a row lock taken on
        # every stream of every batch cost more than the write itself in a bulk load.
        read: dict[str, tuple[int, int | None]] = {}
        if streams:
            # Each stream looked up by its key (the LIMIT keeps the planner from flattening the lookup into a join).
            # Asked for as `stream_id = ANY(...)` or as a join, a batch of ~5,900 streams of a `hanoi` load's 636,000
            # was planned as a scan of them all: 107 ms on three processes, or 546 ms hashing them, against 25 ms.
            for stream, version, poisoned in conn.execute(
                    "SELECT x.s, c.version, c.poisoned_at_version FROM unnest(%b::text[]) AS x(s)"
                    " CROSS JOIN LATERAL (SELECT version, poisoned_at_version FROM consumer_streams"
                    " WHERE consumer = %s AND stream_id = x.s LIMIT 1) AS c",
                    (streams, self.settings.name)).fetchall():
                read[stream] = (version, poisoned)
        progress = {stream: read.get(stream, (0, None)) for stream in streams}
        applied: list[ConsumedEvent] = []
        changed: set[str] = set()
        for record, event, decode_error in decoded:
            if event is None:
                self._dead_letter(record, None, decode_error or "undecodable")
                continue
            version, poisoned = progress[event.stream_id]
            if event.version <= version:
                continue
            if poisoned is not None:
                if event.version > poisoned:
                    self._park(event, record)
                    # Written back unchanged, under the same check: parked behind a version that another consumer
                    # released meanwhile, the event would wait for a release that has already happened.
                    changed.add(event.stream_id)
                continue
            if event.version != version + 1:
                self.held_at_gap += 1
                self._gap_counter.add(1, {"consumer": self.settings.name})
                continue
            if (isolate or self._batch_handler is None) and not self._run_handler(event, isolate=isolate):
                self._dead_letter(record, event, self._last_error, retryable=self._last_retryable)
                progress[event.stream_id] = (version, event.version)
                changed.add(event.stream_id)
                continue
            progress[event.stream_id] = (event.version, None)
            changed.add(event.stream_id)
            applied.append(event)
        if applied and not isolate and self._batch_handler is not None:
            self._run_batch(applied)
        try:
            with conn.pipeline():
                moved = self._write_progress(conn, {n: (read.get(n), progress[n]) for n in sorted(changed)})
                self._count_commands(applied)
                if not self._replaying:
                    self._store_offsets(records)
            if moved is not None and moved.rowcount != sum(1 for n in changed if n in read):
                raise _ProgressMoved
        except (_ProgressMoved, psycopg.errors.UniqueViolation):
            # Another consumer of this name applied some of these streams since they were read (a former holder of
            # the lease still finishing its batch): this transaction rolls back, and the batch is read again.
            if self._replaying:
                raise RuntimeError(f"another consumer named {self.settings.name} applied the same streams") from None
            log.warning("another consumer applied some of these streams meanwhile; reading the batch again")
            raise _Rewind(_first_offsets(records)) from None
        if applied:
            self.applied_total += len(applied)
            self._applied_counter.add(len(applied), {"consumer": self.settings.name})
            if self._on_applied is not None:
                self._on_applied(applied)
        return applied

    def _write_progress(self, conn: psycopg.Connection,
                        changes: dict[str, tuple[tuple[int, int | None] | None, tuple[int, int | None]]]) -> Any:
        """Each changed stream's progress (as read, as now): known streams updated only where the row still holds
        what was read, new ones inserted (a row someone else made meanwhile collides). Returns the update's cursor,
        whose row count says whether every known row was still as read; None when no known stream changed."""
        known = [(n, was, now) for n, (was, now) in changes.items() if was is not None]
        new = [(n, now) for n, (was, now) in changes.items() if was is None]
        if new:
            conn.execute(
                "INSERT INTO consumer_streams (consumer, stream_id, version, poisoned_at_version)"
                " SELECT %s, s, v, p FROM unnest(%b::text[], %b::int[], %b::int[]) AS x(s, v, p)",
                (self.settings.name, [n for n, _ in new], [now[0] for _, now in new], [now[1] for _, now in new]))
        if not known:
            return None
        # Each stream's row found by its key. Left to choose, the planner hashed every stream the consumer knows
        # (a `hanoi` load: ~400 ms for a batch of 5,400 among 490,000, 89 s of the load's PostgreSQL time; by key
        # 77 ms): it prices an index lookup as a read from disk, and the table is in memory. Only this statement
        # goes without hash and merge joins: the settings go back to their defaults right after it.
        conn.execute("SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)")
        moved = conn.execute(
            "UPDATE consumer_streams c SET version = x.v, poisoned_at_version = x.p"
            " FROM unnest(%b::text[], %b::int[], %b::int[], %b::int[], %b::int[]) AS x(s, v, p, rv, rp)"
            " WHERE c.consumer = %s AND c.stream_id = x.s"
            " AND c.version = x.rv AND c.poisoned_at_version IS NOT DISTINCT FROM x.rp",
            ([n for n, _, _ in known], [now[0] for _, _, now in known], [now[1] for _, _, now in known],
             [was[0] for _, was, _ in known], [was[1] for _, was, _ in known], self.settings.name),
            prepare=False,
        )
        conn.execute("RESET enable_hashjoin")
        conn.execute("RESET enable_mergejoin")
        return moved

    _last_error = ""
    _last_retryable = False
    _retried_at = 0.0
    retry_interval_s = 1.0

    def _run_batch(self, events: list[ConsumedEvent]) -> None:
        """The events of one command (one publish span) share one consumer span, a child of that publish span,
        covering the batch; not in a rebuild, whose events were traced when they happened. A span per event cost
        13% of a replay's CPU, and 7% of the projector's time in a demo load, where a bulk command carries
        thousands of events."""
        assert self._batch_handler is not None
        if not self.settings.trace_events:
            try:
                self._batch_handler(self._conn, events)
            except Exception as exc:
                raise _HandlerFailed from exc
            return
        by_parent: dict[tuple[str | None, str | None], list[ConsumedEvent]] = {}
        for event in events:
            by_parent.setdefault((event.envelope.traceparent, event.envelope.tracestate), []).append(event)
        spans = [self._tracer.start_span(
            f"{first.topic} process", context=context_from(*parent), kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.consumer.group.name": self.settings.name,
                        "party.event_type": first.event_type, "party.stream_id": first.stream_id,
                        "party.stream_version": first.version, "messaging.batch.message_count": len(group)})
            for parent, group in by_parent.items() for first in group[:1]]
        try:
            self._batch_handler(self._conn, events)
        except Exception as exc:
            raise _HandlerFailed from exc
        finally:
            for span in spans:
                span.end()

    def _call_handler(self, event: ConsumedEvent) -> None:
        if self._batch_handler is not None:
            self._batch_handler(self._conn, [event])
        else:
            self._handler(self._conn, event)

    def _run_handler(self, event: ConsumedEvent, *, isolate: bool) -> bool:
        parent = context_from(event.envelope.traceparent, event.envelope.tracestate)
        with attached(parent), self._tracer.start_as_current_span(
            f"{event.topic} process",
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.consumer.group.name": self.settings.name,
                        "party.event_type": event.event_type, "party.stream_id": event.stream_id,
                        "party.stream_version": event.version},
        ):
            if not isolate:
                try:
                    self._call_handler(event)
                except Exception as exc:
                    raise _HandlerFailed from exc
                return True
            self._last_retryable = False
            try:
                with self._conn.transaction():
                    self._call_handler(event)
                return True
            except RetryLater as exc:
                log.info("%s v%s waits: %s", event.stream_id, event.version, exc)
                self._last_error = f"RetryLater: {exc}"
                self._last_retryable = True
                return False
            except Exception as exc:
                log.exception("handler failed on %s v%s", event.stream_id, event.version)
                code = getattr(exc, "code", None)
                self._last_error = f"{type(exc).__name__}{f' [{code}]' if code else ''}: {exc}"
                return False

    def _decode(self, record: Any) -> ConsumedEvent:
        try:
            envelope = Envelope.from_headers(record.headers or [])
            source, event_type, schema_version = Catalogue.parse_ce_type(envelope.type)
            text = record.value.decode() if isinstance(record.value, bytes) else record.value
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("event data is not a JSON object")
            catalogue = self._catalogues.get(source)
            if catalogue is not None:
                catalogue.decode(event_type, data)
        except (ValueError, KeyError, TypeError) as exc:
            raise PoisonMessage(f"{type(exc).__name__}: {exc}") from exc
        return ConsumedEvent(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            envelope=envelope,
            source=source,
            event_type=event_type,
            schema_version=schema_version,
            data=data,
            data_json=text,
        )

    _dead_letters_pending = False

    def _dead_letter(self, record: Any, event: ConsumedEvent | None, error: str, *, retryable: bool = False
                     ) -> None:
        if not retryable:
            self._dead_counter.add(1, {"consumer": self.settings.name})
            self._dead_letters_pending = True
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or [])}
        self._conn.execute(
            "INSERT INTO consumer_dead_letters (consumer, topic, partition, \"offset\", stream_id, version,"
            " error, key, value, headers, retryable) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (self.settings.name, record.topic, record.partition, record.offset,
             event.stream_id if event else None, event.version if event else None, error,
             record.key, record.value, Jsonb(headers), retryable),
        )

    def retry_waiting(self) -> int:
        """Try again the events that waited for another key's fact; on success, release what was parked
        behind them, in version order. Returns how many events applied."""
        applied = 0
        rows = self._conn.execute(
            "SELECT id, topic, partition, \"offset\", key, value, headers, stream_id FROM consumer_dead_letters"
            " WHERE consumer = %s AND retryable ORDER BY id LIMIT 200", (self.settings.name,)).fetchall()
        for row_id, topic, partition, offset, key, value, headers, stream_id in rows:
            record = _StoredRecord(topic, partition, offset, key, value,
                                   [(k, str(v).encode()) for k, v in headers.items()])
            with self._conn.transaction():
                if not self._release(row_id, stream_id, record):
                    continue
                applied += 1 + self._release_parked(stream_id)
        if self._conn.execute(
                "UPDATE consumer_dead_letters SET retryable = false WHERE consumer = %s AND retryable"
                " AND recorded_at < now() - interval '1 day'", (self.settings.name,)).rowcount:
            self._dead_letters_pending = True
        return applied

    def _release(self, row_id: int, stream_id: str, record: Any) -> bool:
        event = self._decode(record)
        state = self._conn.execute(
            "SELECT version, poisoned_at_version FROM consumer_streams WHERE consumer = %s AND stream_id = %s"
            " FOR UPDATE", (self.settings.name, stream_id)).fetchone()
        if state is None or state[1] != event.version:
            return False
        if not self._run_handler(event, isolate=True):
            if not self._last_retryable:
                self._conn.execute("UPDATE consumer_dead_letters SET retryable = false, error = %s WHERE id = %s",
                                   (self._last_error, row_id))
            return False
        self._conn.execute("DELETE FROM consumer_dead_letters WHERE id = %s", (row_id,))
        self._conn.execute("UPDATE consumer_streams SET version = %s, poisoned_at_version = NULL"
                           " WHERE consumer = %s AND stream_id = %s", (event.version, self.settings.name, stream_id))
        self._count_commands([event])
        return True

    def _release_parked(self, stream_id: str) -> int:
        applied = 0
        parked = self._conn.execute(
            "SELECT id, version, topic, key, value, headers FROM consumer_parked WHERE consumer = %s"
            " AND stream_id = %s ORDER BY version", (self.settings.name, stream_id)).fetchall()
        for parked_id, version, topic, key, value, headers in parked:
            record = _StoredRecord(topic, 0, -1, key, value, [(k, str(v).encode()) for k, v in headers.items()])
            event = self._decode(record)
            self._conn.execute("DELETE FROM consumer_parked WHERE id = %s", (parked_id,))
            if not self._run_handler(event, isolate=True):
                self._dead_letter(record, event, self._last_error, retryable=self._last_retryable)
                self._conn.execute("UPDATE consumer_streams SET poisoned_at_version = %s WHERE consumer = %s"
                                   " AND stream_id = %s", (version, self.settings.name, stream_id))
                return applied
            self._conn.execute("UPDATE consumer_streams SET version = %s WHERE consumer = %s AND stream_id = %s",
                               (version, self.settings.name, stream_id))
            self._count_commands([event])
            applied += 1
        return applied

    def _park(self, event: ConsumedEvent, record: Any) -> None:
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or [])}
        self._conn.execute(
            "INSERT INTO consumer_parked (consumer, stream_id, version, topic, key, value, headers)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (self.settings.name, event.stream_id, event.version, record.topic, record.key, record.value,
             Jsonb(headers)),
        )

    def _count_commands(self, applied: list[ConsumedEvent]) -> None:
        if not applied:
            return
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for event in applied:
            entry = counts[event.envelope.command_id]
            entry[0] = event.envelope.command_event_count
            entry[1] += 1
        # In one order for every consumer: processes sharing a rebuild count a command's events side by side.
        ids = sorted(counts)
        self._conn.execute(
            "INSERT INTO consumer_commands (consumer, command_id, expected, applied)"
            " SELECT %s, c, e, a FROM unnest(%b::text[]::uuid[], %b::int[], %b::int[]) AS x(c, e, a)"
            " ON CONFLICT (consumer, command_id) DO UPDATE"
            " SET applied = consumer_commands.applied + EXCLUDED.applied",
            (self.settings.name, ids, [counts[i][0] for i in ids], [counts[i][1] for i in ids]),
        )

    def _store_offsets(self, records: list[Any]) -> None:
        last: dict[tuple[str, int], int] = {}
        for record in records:
            last[(record.topic, record.partition)] = max(last.get((record.topic, record.partition), -1),
                                                         record.offset)
        keys = sorted(last)
        self._conn.execute(
            "INSERT INTO consumer_offsets (consumer, topic, partition, topic_id, next_offset)"
            " SELECT %s, t, p, i, o FROM unnest(%b::text[], %b::int[], %b::text[], %b::bigint[]) AS x(t, p, i, o)"
            " ON CONFLICT (consumer, topic, partition) DO UPDATE"
            " SET topic_id = EXCLUDED.topic_id, next_offset = EXCLUDED.next_offset",
            (self.settings.name, [k[0] for k in keys], [k[1] for k in keys],
             [self._topic_ids.get(k[0], "") for k in keys], [last[k] + 1 for k in keys]),
        )

    share: tuple[int, int] | None = None
    """(index, count): this consumer reads only the partitions whose number is `index` modulo `count` (one of
    several processes rebuilding a projection side by side, gateway.rebuild); None: every partition."""

    def take_share(self, index: int, count: int) -> None:
        """Before the first poll: read only partitions `index`, `index + count`, ... of each topic."""
        if not 0 <= index < count:
            raise ValueError(f"share {index} of {count}")
        self.share = (index, count)

    def partition_counts(self) -> dict[str, int]:
        """How many partitions each consumed topic has (topics that do not exist yet are left out)."""
        return self._describe_topics()[1]

    def _describe_topics(self) -> tuple[dict[str, str], dict[str, int]]:
        admin = kafka_setup.new_admin(self.settings.bootstrap_servers, client_id=f"{self.settings.name}-admin")
        try:
            ids = kafka_setup.topic_ids(admin, list(self.settings.topics))
            partitions = {
                d["name"]: len(d["partitions"]) for d in admin.describe_topics(list(self.settings.topics))
                if d["name"] in ids
            }
        finally:
            admin.close()
        return ids, partitions

    def _ensure_consumer(self) -> KafkaConsumer | None:
        if self._consumer is not None:
            return self._consumer
        ids, partitions = self._describe_topics()
        if set(ids) != set(self.settings.topics):
            log.info("waiting for topics %s", sorted(set(self.settings.topics) - set(ids)))
            return None
        overrides = {} if self.settings.fetch_max_wait_ms is None else {
            "fetch_max_wait_ms": self.settings.fetch_max_wait_ms}
        consumer = kafka_setup.new_consumer(self.settings.bootstrap_servers, client_id=self.settings.name,
                                            **overrides)
        assignment = [TopicPartition(t, p) for t in self.settings.topics for p in range(partitions[t])
                      if self.share is None or p % self.share[1] == self.share[0]]
        consumer.assign(assignment)
        hints = {
            (t, p): (tid, off)
            for t, p, tid, off in self._conn.execute(
                "SELECT topic, partition, topic_id, next_offset FROM consumer_offsets WHERE consumer = %s",
                (self.settings.name,),
            ).fetchall()
        }
        for tp in assignment:
            hint = hints.get((tp.topic, tp.partition))
            if hint is not None and hint[0] == ids[tp.topic]:
                consumer.seek(tp, hint[1])
            else:
                consumer.seek_to_beginning(tp)
        self._topic_ids = ids
        self._checked_at = time.monotonic()
        self._consumer_made_at = time.monotonic()
        self._consumer = consumer
        return consumer

    def _check_topic_ids_if_due(self, consumer: KafkaConsumer) -> None:
        if time.monotonic() - self._checked_at < self.settings.topic_check_interval_s:
            return
        self._checked_at = time.monotonic()
        cluster = consumer._client.cluster
        cluster.request_update()
        current = {t: cluster.topic_id(t) for t in self.settings.topics}
        changed = [t for t, tid in current.items() if tid is not None and str(tid) != self._topic_ids.get(t)]
        if changed:
            log.warning("topic ids changed for %s (broker lost its log): replaying from the start", changed)
            self.resyncs += 1
            for t in changed:
                self._topic_ids[t] = str(current[t])
            for tp in consumer.assignment():
                if tp.topic in changed:
                    consumer.seek_to_beginning(tp)

    lag_interval_s = 0.25
    _lag_measured_at = 0.0
    ends_asked_interval_s = 5.0
    """How often the lag is measured by asking the broker for each partition's end rather than read from what its
    fetch responses said: only that notices records arriving while the Kafka client has stopped fetching (the
    stall `_restart_if_stalled` guards against)."""
    _ends_asked_at = 0.0
    ends_asked = 0

    def _measure_lag(self, consumer: KafkaConsumer) -> None:
        """At most every `lag_interval_s`, from the high watermark each fetch response carries (no round trip); from
        a ListOffsets request every `ends_asked_interval_s`, or while a partition has had no fetch response yet. Asked
        every time, the request held the poll loop up: it grows with the length of Tansu's in-memory log (62 ms
        after 100,000 commands had each published a batch of their own), and at 4 a second it was a third of an
        idle projector's time and delayed each pickup behind it."""
        now = time.monotonic()
        if now - self._lag_measured_at < self.lag_interval_s:
            return
        self._lag_measured_at = now
        try:
            assignment = list(consumer.assignment())
            ends: dict[TopicPartition, int | None] = {tp: consumer.highwater(tp) for tp in assignment}
            if None in ends.values() or now - self._ends_asked_at >= self.ends_asked_interval_s:
                self._ends_asked_at = now
                self.ends_asked += 1
                # Each is a lower bound of the end: Tansu answers ListOffsets with the start of a partition's last
                # record batch, and a high watermark is as old as its fetch.
                listed = consumer.end_offsets(assignment)
                ends = {tp: max(listed[tp], ends[tp] or 0) for tp in assignment}
            for tp in assignment:
                end = ends[tp]
                if end is not None:
                    self.lag[(tp.topic, tp.partition)] = max(0, end - consumer.position(tp))
        except KafkaError:
            pass

    def total_lag(self) -> int:
        return sum(self.lag.values())

    def _forward_dead_letters(self) -> None:
        rows = self._conn.execute(
            "SELECT id, topic, partition, \"offset\", error, key, value, headers FROM consumer_dead_letters"
            " WHERE consumer = %s AND NOT forwarded AND NOT retryable ORDER BY id LIMIT 100",
            (self.settings.name,),
        ).fetchall()
        if not rows:
            return
        if self._producer is None:
            self._producer = kafka_setup.new_producer(
                self.settings.bootstrap_servers, client_id=f"{self.settings.name}-dlq"
            )
            admin = kafka_setup.new_admin(self.settings.bootstrap_servers, client_id=f"{self.settings.name}-dlq")
            try:
                kafka_setup.ensure_topics(admin, {dead_letter_topic(self.settings.name): 1})
            finally:
                admin.close()
        for row_id, topic, partition, offset, error, key, value, headers in rows:
            dl_headers = [(k, str(v).encode()) for k, v in headers.items()] + [
                ("dlq_error", error.encode()),
                ("dlq_source", f"{topic}/{partition}/{offset}".encode()),
                ("dlq_consumer", self.settings.name.encode()),
            ]
            self._producer.send(dead_letter_topic(self.settings.name), key=key, value=value, headers=dl_headers)
            self._producer.flush(timeout=10)
            self._conn.execute("UPDATE consumer_dead_letters SET forwarded = true WHERE id = %s", (row_id,))

    def _close_kafka(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception:
                log.debug("closing consumer", exc_info=True)
            self._consumer = None
        if self._producer is not None:
            try:
                self._producer.close(timeout=0)
            except Exception:
                log.debug("closing producer", exc_info=True)
            self._producer = None

    def _connect(self) -> psycopg.Connection:
        conn = connect(self.settings.database_url, schema=self.settings.schema, autocommit=True)
        if not self.settings.flush_commits:
            conn.execute("SET synchronous_commit = off")
        if self.settings.prepare_session is not None:
            self.settings.prepare_session(conn)
        return conn

    def _reconnect_database(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._conn.close()
        self._conn = self._connect()
        self.lease._conn = self._conn

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.lease.release()
        self._close_kafka()
        self._conn.close()


class _HandlerFailed(Exception):
    pass


class _ProgressMoved(Exception):
    pass


class _Rewind(Exception):
    def __init__(self, positions: dict[tuple[str, int], int]) -> None:
        super().__init__(positions)
        self.positions = positions


def command_applied(conn: psycopg.Connection, *, consumer: str, command_id: str, event_count: int) -> bool:
    """Whether every event of a command has been applied by `consumer` (a consistency-token check)."""
    if event_count == 0:
        return True
    row = conn.execute(
        "SELECT applied >= expected FROM consumer_commands WHERE consumer = %s AND command_id = %s",
        (consumer, command_id),
    ).fetchone()
    return bool(row and row[0])
