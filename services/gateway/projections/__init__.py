"""Read models, one module each; `PROJECTIONS` lists them and the projector applies them all."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql

from gateway.projections import figures, members, units
from gateway.projections.base import ApplyMany, Projection, create_stage
from servicekit.consumer import ConsumedEvent

# The pre-aggregated statistics are kept by the units and members projections, in the same transactions.
FIGURES = Projection(name="figures", ddl=figures.DDL, handlers={})
PROJECTIONS: tuple[Projection, ...] = (FIGURES, units.PROJECTION, members.PROJECTION)


def prepare_session(conn: psycopg.Connection) -> None:
    """A projector connection's temporary work tables and settings, made once (servicekit.consumer runs this on
    every new connection, outside any transaction)."""
    figures.prepare_session(conn)
    for table in ("units", "members"):
        create_stage(conn, table)


def analyze_tables(conn: psycopg.Connection, *, only: Callable[[str], bool] | None = None,
                   excluding: Callable[[str], bool] | None = None) -> None:
    """Statistics for the tables of the connection's schema (`only` those it holds true, or every one but those
    `excluding` holds true), taken right after a bulk write rather than whenever autovacuum comes by (up to a minute
    later). Statements that the API prepared on stale statistics kept their plans: after a `small` load the city's
    statistics took 80–94 ms in the running API against 9 ms from a fresh connection, for minutes."""
    tables = [r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1").fetchall()]
    for table in tables:
        if (only is None or only(table)) and not (excluding is not None and excluding(table)):
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def count_deferred(sums: psycopg.Connection, counts: psycopg.Connection, *, beside: figures.Connect | None = None
                   ) -> None:
    """What the projections leave alone while figures.DEFERRED is set (a rebuild), counted from their rows, and every
    table analysed, on connections side by side: the statistics' ancestry and running sums on `sums` (with
    `beside`, counted by connections of their own, figures.recount_sums), the per-unit counts and the other tables'
    statistics on `counts`. `sums` commits the ancestry when `beside` is given; otherwise neither commits. One at a
    time they took 4.9 s at `small`, the running sums' statements 3.4 s of it on one core, the per-unit counts
    (Python, mostly) and the analysis 1.2 s more."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="count-units") as pool:
        counting_units = pool.submit(_count_units_and_analyze, counts)
        try:
            figures.recount(sums, beside=beside)
            analyze_tables(sums, only=figures.recounted)
        finally:
            counting_units.result()


def _count_units_and_analyze(conn: psycopg.Connection) -> None:
    members.recount_unit_counts(conn)
    analyze_tables(conn, excluding=figures.recounted)


log = logging.getLogger("gateway.projections")

# Events behind the topics' ends from which the live projector leaves the running sums alone (and no fewer than
# half the register's members: a recount costs about as much as keeping the sums through that many events), and to
# which it must come back before it counts them again (the hysteresis keeps a load that ebbs and flows from
# recounting often). Measured at `small`: the demo load's projections finish 36 s after its store without, 19 s with.
CATCH_UP_FROM = 20_000
CATCH_UP_UNTIL = 2_000


class CatchingUp:
    """The live projector's batches. Far behind the topics (a bulk load, a long outage), it leaves the statistics'
    running sums alone and counts them once it has caught up: kept through every batch they held it to ~1,900
    events/s, against ~4,800 without. With `beside`, a batch that comes within `until_events` of the end leaves
    the count to the pause that usually follows (the end of a load), where two connections make it side by side;
    if records keep coming, the next batch counts them in its own transaction, on its own connection. Meanwhile
    `statistics_pending` holds a row and the statistics are refused (gateway.api.statistics); members, units and
    their counts stay current."""

    def __init__(self, apply_many: ApplyMany, behind: Callable[[], int], *, from_events: int = CATCH_UP_FROM,
                 until_events: int = CATCH_UP_UNTIL, beside: figures.Connect | None = None) -> None:
        """`beside`: connections that count the sums side by side once the projector has caught up between
        polls, when every row they read is committed (figures.recount_sums)."""
        self._apply_many = apply_many
        self._behind = behind
        self._beside = beside
        self.from_events, self.until_events = from_events, until_events
        self._deferring: bool | None = None
        """None: not known (at start, and after a recount, whose transaction may yet roll back): read the table."""
        self._near_the_end = False
        """A batch has come within `until_events` of the end since the last count."""

    def __call__(self, conn: psycopg.Connection, events: list[ConsumedEvent]) -> None:
        behind = self._behind()
        if self._deferring is None:
            self._deferring = figures.sums_pending(conn)
        # The estimate is read only when far enough behind for it to matter: a statement fewer per live batch.
        if not self._deferring and behind >= self.from_events and behind >= figures.members_estimate(conn) // 2:
            log.info("%d events behind: the statistics' running sums wait until the projector has caught up", behind)
            self._deferring = True
        if not self._deferring:
            self._apply_many(conn, events)
            return
        # Every deferred batch says so in its own transaction: one that rolls back takes only its own mark.
        figures.mark_sums_pending(conn)
        token = figures.SUMS_DEFERRED.set(True)
        try:
            self._apply_many(conn, events)
        finally:
            figures.SUMS_DEFERRED.reset(token)
        if behind <= self.until_events:
            if self._beside is not None and not self._near_the_end:
                self._near_the_end = True
                return
            # In this batch's transaction, whose rows no other connection sees yet: counted on this one alone.
            self._recount(conn)

    def when_caught_up(self, conn: psycopg.Connection) -> None:
        """The consumer has caught up (a poll brought nothing, no record waits): counts the running sums if they
        still wait. The batch that caught up may have started further behind than `until_events` (the lag is
        measured before it, and a batch may be as large as a poll), and no batch may follow it."""
        if self._deferring is False:
            return
        with conn.transaction():
            if self._deferring is None:
                self._deferring = figures.sums_pending(conn)
            if self._deferring:
                self._recount(conn, beside=self._beside)

    def _recount(self, conn: psycopg.Connection, *, beside: figures.Connect | None = None) -> None:
        started = time.monotonic()
        figures.recount_sums(conn, beside=beside)
        analyze_tables(conn)
        log.info("caught up: the statistics' running sums counted (%s) and the tables analysed in %.1f s",
                 "on two connections" if beside is not None else "on one", time.monotonic() - started)
        self._deferring = None
        self._near_the_end = False
