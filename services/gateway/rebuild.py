"""`python -m gateway rebuild [--from-store] [--workers N]`: build fresh projections side by side, then swap them in.

From the topic (the default), the fresh projections read every partition from offset zero. From the store (the
broker-loss path: the broker lost its log, or cannot hold it), they read the registry's event store instead
(servicekit.replay), after noting where each partition ends; that becomes their resume hint.

Several processes may apply the history side by side (`workers`), each owning a share of it: from the topic, a share
of the partitions; from the stores, a share of the streams (servicekit.replay). With the statistics and counts
deferred, a projection's rows belong to one stream, and a stream's events are all in one partition (and one
share of a store), so the shares touch disjoint rows. Python's decoding and the projections' own work, not
PostgreSQL, bound a single process (measured at `small`: 10 s of the process's CPU against 5 s of PostgreSQL's in a
15 s catch-up). From the topic, one process then reads what the shares left, with every partition, before
counting: what arrived meanwhile and whatever waits to be retried.

The fresh projections leave the statistics' ancestry, running sums and per-unit counts alone while they apply the
history, and count them once before the swap (gateway.projections.count_deferred).

The live projections keep serving (and the live projector keeps applying) until the swap. The swap renames
the schemas in one transaction; the live projector then finds stored progress behind its own position and
rewinds to it (servicekit.consumer), so the events that arrived after the rebuild caught up are applied too;
per-stream versions drop what both had applied.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.sharedctypes import Synchronized

import psycopg
from psycopg import sql

from gateway.projections import count_deferred, figures
from servicekit import collector
from servicekit.consumer import EventConsumer
from servicekit.database import CONSUMER_SCHEMA_DDL, connect, migrate
from servicekit.replay import StoreReplay
from servicekit.settings import ServiceSettings

Progress = Callable[[int, int], None]
"""Told (applied, behind) as a rebuild goes."""
CatchUp = Callable[[EventConsumer, Progress | None, tuple[int, int] | None], None]
"""Applies the history, or a share (index, count) of it, to a consumer's schema."""


def rebuild(settings: ServiceSettings, *, live_schema: str, make_consumer: Callable[[str], EventConsumer],
            ddl: list[str], progress: Progress | None = None, timeout_s: float = 3600,
            from_store: Sequence[StoreReplay] = (), workers: int = 1) -> int:
    """Returns how many events the fresh projections applied before the swap."""
    fresh = f"{live_schema}_next"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(fresh)))
    migrate(settings.database_url, schema=fresh, ddl=[CONSUMER_SCHEMA_DDL, *ddl])
    consumer = make_consumer(fresh)
    if not consumer.lease.acquire():
        raise RuntimeError("another rebuild is running")
    deferred = figures.DEFERRED.set(True)
    applied_by_shares = 0
    deadline = time.monotonic() + timeout_s
    try:
        if from_store:
            shares = max(1, workers)
            catch_up = _replaying_the_stores(consumer, from_store, deadline)
        else:
            shares = min([workers, *consumer.partition_counts().values()])
            catch_up = _catching_up_with_the_topic(deadline)
        if shares > 1:
            applied_by_shares = _in_shares(consumer, make_consumer, fresh, shares, catch_up, progress, deadline)
        else:
            catch_up(consumer, progress, None)
        if not from_store:
            # What the shares left, with every partition: what arrived meanwhile, what waits to be retried.
            _catch_up_with_the_topic(consumer, progress, deadline, applied_before=applied_by_shares)
    finally:
        figures.DEFERRED.reset(deferred)
        consumer.close()
    if progress is not None:
        sys.stderr.write("\ncounting the statistics ...")
        sys.stderr.flush()
    # Analysed before the swap, too: the live API's first plans after it are made on these statistics.
    with connect(settings.database_url, schema=fresh) as sums, connect(settings.database_url, schema=fresh) as counts:
        count_deferred(sums, counts, beside=lambda: connect(settings.database_url, schema=fresh))
        sums.commit()
        counts.commit()
    stamp = time.strftime("%Y%m%d%H%M%S")
    retired = f"{live_schema}_retired_{stamp}"
    with psycopg.connect(settings.database_url, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('party-migrate'))")
        live = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (live_schema,)).fetchone()
        if live is not None:  # a first build (a fresh database) has nothing to retire
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(live_schema),
                                                                         sql.Identifier(retired)))
        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(fresh),
                                                                     sql.Identifier(live_schema)))
        conn.commit()
    if live is not None:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(retired)))
    return applied_by_shares + consumer.applied_total


def _catch_up_with_the_topic(consumer: EventConsumer, progress: Progress | None, deadline: float, *,
                             applied_before: int = 0) -> None:
    idle_polls = 0
    while idle_polls < 3:
        applied = consumer.poll_once()
        lag = consumer.total_lag()
        if progress is not None:
            progress(applied_before + consumer.applied_total, lag)
        idle_polls = idle_polls + 1 if applied == 0 and lag == 0 and consumer.lag else 0
        if time.monotonic() > deadline:
            raise TimeoutError("the rebuild did not catch up")


def _catching_up_with_the_topic(deadline: float) -> CatchUp:
    def catch_up(consumer: EventConsumer, progress: Progress | None, share: tuple[int, int] | None) -> None:
        if share is not None:
            consumer.take_share(*share)
        _catch_up_with_the_topic(consumer, progress, deadline)

    return catch_up


def _replaying_the_stores(consumer: EventConsumer, replays: Sequence[StoreReplay], deadline: float) -> CatchUp:
    # The topic's ends first, then each store's mark: whatever was published before the ends committed before
    # the marks, so the replays hold it and the live projector may resume at the ends.
    consumer.resume_at_topic_ends()
    marks = [replay.mark() for replay in replays]
    newest = [replay.newest_position() for replay in replays]

    def catch_up(consumer: EventConsumer, progress: Progress | None, share: tuple[int, int] | None) -> None:
        shares = share[1] if share is not None else 1
        for index, (replay, until) in enumerate(zip(replays, marks, strict=True)):
            for page in replay.pages(until=until, timeout_s=max(1.0, deadline - time.monotonic()), share=share):
                consumer.apply_replayed(page)
                if progress is not None:
                    # A share reads about its part of what is left.
                    left = max(0, newest[index] - replay.last_position) + sum(newest[index + 1:])
                    progress(consumer.applied_total, left // shares)

    return catch_up


def _in_shares(consumer: EventConsumer, make_consumer: Callable[[str], EventConsumer], schema: str, shares: int,
               catch_up: CatchUp, progress: Progress | None, deadline: float) -> int:
    """`shares` forked processes, each applying its share of the history; this one holds the lease meanwhile.
    Returns how many events they applied."""
    context = multiprocessing.get_context("fork")
    applied = [context.Value("q", 0) for _ in range(shares)]
    behind = [context.Value("q", 0) for _ in range(shares)]
    processes = [context.Process(target=_share, name=f"rebuild-share-{index}",
                                 args=(make_consumer, schema, catch_up, (index, shares), applied[index],
                                       behind[index]))
                 for index in range(shares)]
    for process in processes:
        process.start()
    try:
        while any(p.exitcode is None for p in processes):
            _stop_if_one_failed(processes)
            if time.monotonic() > deadline:
                raise TimeoutError("the rebuild did not catch up")
            if progress is not None:
                progress(sum(a.value for a in applied), sum(b.value for b in behind))
            if not consumer.lease.renew_if_due():
                raise RuntimeError("the rebuild's lease was lost: another rebuild has taken over")
            for process in processes:
                process.join(timeout=0.2 / shares)
        _stop_if_one_failed(processes)
    finally:
        for process in processes:
            if process.exitcode is None:
                process.terminate()
                process.join()
    return sum(a.value for a in applied)


def _stop_if_one_failed(processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    failed = [p.name for p in processes if p.exitcode not in (None, 0)]
    if failed:
        raise RuntimeError(f"the rebuild stopped: {', '.join(failed)} failed (its error is above)")


def _share(make_consumer: Callable[[str], EventConsumer], schema: str, catch_up: CatchUp, share: tuple[int, int],
           applied: Synchronized[int], behind: Synchronized[int]) -> None:
    collector.settle_after_start()
    figures.DEFERRED.set(True)
    consumer = make_consumer(schema)
    try:
        def report(done: int, lag: int) -> None:
            applied.value, behind.value = done, lag

        catch_up(consumer, report, share)
    finally:
        consumer.close()


class RebuildProgress:
    def __init__(self) -> None:
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, applied: int, lag: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        rate = applied / max(now - self._started, 1e-6)
        total = applied + lag
        filled = int(30 * applied / total) if total else 30
        sys.stderr.write(f"\rrebuilding [{'#' * filled}{'-' * (30 - filled)}] {applied:,} events, {lag:,} behind,"
                         f" {rate:,.0f} events/s ")
        sys.stderr.flush()



