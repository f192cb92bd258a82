"""Runs an import: validate the whole file, then write it in chunks, recording status and progress.

Chunks commit separately (one huge transaction would hold back the xmin horizon and stall every relay);
an interrupted import resumes by running again, since members already written are matched by citizen id.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from registry.adapters.read_views import PostgresRegistryViews
from registry.adapters.roll_files import UnreadableFile, read_rows
from registry.application.handlers import CARD_NUMBER_SCOPE, CITIZEN_ID_SCOPE, UNIT, RegistryCommands, today
from registry.application.imports import RowError, map_header, validate_rows
from registry.domain import units
from registry.domain.errors import DomainError
from registry.domain.policy import legal_basis
from servicekit.commands import CommandBus, CommandContext
from servicekit.pgstore import PostgresTransaction

log = logging.getLogger("registry.imports")

CHUNK = 5_000
PARALLEL_FROM_ROWS = 20_000
MAX_REPORTED_ERRORS = 10_000


@dataclass(frozen=True)
class ImportReport:
    import_id: str
    status: str
    total: int
    accepted: int
    rejected: int
    written: int
    skipped: int
    errors: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WorkerJob:
    """One worker's share of a large import: a contiguous slice of the rows, validated then written by it.
    The rows follow over the worker's pipe: as a spawn argument they were written to the child while it was
    still importing, so `start()` blocked for its whole start-up and the workers started one after another."""

    import_id: str
    actor: str
    database_url: str
    schema: str
    topic: str
    data_dir: str
    header: list[Any]
    first_row: int
    cells: dict[str, Any]
    card_code: str
    outside: frozenset[str]
    """Codes of the cells outside the import's subtree."""
    legal_basis: str | None


class ImportRunner:
    def __init__(self, *, pool: ConnectionPool, bus: CommandBus, commands: RegistryCommands, files_dir: Path,
                 workers: int = 1, worker_entry: Callable[[Any, WorkerJob], None] | None = None,
                 job_settings: dict[str, str] | None = None) -> None:
        self.pool = pool
        self.bus = bus
        self.commands = commands
        self.files_dir = files_dir
        self.workers = workers
        self.worker_entry = worker_entry
        self.job_settings = job_settings or {}

    def submit(self, *, file_name: str, content: bytes, actor: str, scope_unit_id: str | None,
               legal_basis: str | None) -> str:
        """Store the file and queue the import; returns its id. `scope_unit_id`: the unit whose subtree's cells its
        rows may enrol members into (the submitting actor's), None for the whole register; `legal_basis`: what its
        writes stand on, None for the policy table's basis of the day they are written."""
        import_id = str(uuid.uuid4())
        self.files_dir.mkdir(parents=True, exist_ok=True)
        suffix = ".xlsx" if content.startswith(b"PK\x03\x04") else ".csv"
        (self.files_dir / f"{import_id}{suffix}").write_bytes(content)
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO imports (import_id, file_name, file_sha256, status, actor, scope_unit_id, legal_basis)"
                " VALUES (%s, %s, %s, 'queued', %s, %s, %s)",
                (import_id, file_name[:300], hashlib.sha256(content).hexdigest(), actor, scope_unit_id, legal_basis))
        return import_id

    def start_in_background(self, import_id: str) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(import_id,), name=f"import-{import_id}", daemon=True)
        thread.start()
        return thread

    def resume_unfinished(self) -> list[str]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT import_id::text FROM imports WHERE status IN ('queued', 'running')"
                                " ORDER BY created_at").fetchall()
        for (import_id,) in rows:
            self.start_in_background(import_id)
        return [r[0] for r in rows]

    def file_of(self, import_id: str) -> Path:
        for suffix in (".xlsx", ".csv"):
            path = self.files_dir / f"{import_id}{suffix}"
            if path.exists():
                return path
        raise FileNotFoundError(import_id)

    def report(self, import_id: str) -> ImportReport | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT status, total, accepted, rejected, written, skipped, errors FROM imports WHERE import_id = %s",
                (import_id,)).fetchone()
        if row is None:
            return None
        return ImportReport(import_id, row[0], row[1], row[2], row[3], row[4], row[5], row[6])

    def visible_to(self, import_id: str, *, unit_code: str | None) -> bool:
        """Whether an actor scoped to the unit coded `unit_code` (None: the whole register) may read the import's
        report: the import was submitted in that unit's subtree."""
        if unit_code is None:
            return True
        with self.pool.connection() as conn:
            scope, _ = self._settings_of(conn, import_id)
            views = PostgresRegistryViews(conn)
            actor_unit = views.unit_id_by_code(unit_code)
            return scope is not None and actor_unit is not None and (
                scope == actor_unit or actor_unit in views.ancestors(scope))

    @staticmethod
    def _settings_of(conn: Any, import_id: str) -> tuple[str | None, str | None]:
        """The import's scope (a unit id, None: the whole register) and legal basis."""
        row = conn.execute("SELECT scope_unit_id::text, legal_basis FROM imports WHERE import_id = %s",
                           (import_id,)).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    def run(self, import_id: str, *, progress: Callable[[str, int, int], None] | None = None) -> ImportReport:
        """Run (or resume) an import; a second runner of the same import waits its turn on a lock."""
        with self.pool.connection() as guard:
            guard.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"import-{import_id}",))
            try:
                current = self.report(import_id)
                if current is not None and current.status in ("completed", "rejected"):
                    return current
                return self._run_locked(import_id, progress)
            finally:
                guard.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"import-{import_id}",))

    def _run_locked(self, import_id: str, progress: Callable[[str, int, int], None] | None) -> ImportReport:
        actor = self._update(import_id, status="running")
        with self.pool.connection() as conn:
            scope, basis = self._settings_of(conn, import_id)
        try:
            path = self.file_of(import_id)
            if self.workers > 1 and self.worker_entry is not None:
                rows = list(read_rows(path))
                if len(rows) - 1 >= PARALLEL_FROM_ROWS:
                    return self._run_parallel(import_id, actor, rows, progress, scope=scope, legal_basis=basis)
            validated = self._validate(path, lambda done: progress and progress("validating", done, 0),
                                       scope=scope)
        except (UnreadableFile, FileNotFoundError, UnicodeDecodeError) as exc:
            self._finish(import_id, "rejected", errors=[RowError(1, "file", "file-unreadable", str(exc))])
            return self._report_or_fail(import_id)
        if validated.errors:
            rejected_rows = len({e.row for e in validated.errors if e.row > 1})
            self._finish(import_id, "rejected", total=validated.total, accepted=0, rejected=rejected_rows,
                         errors=validated.errors)
            return self._report_or_fail(import_id)
        self._update(import_id, total=validated.total, accepted=len(validated.rows))
        written = skipped = 0
        rows = validated.rows
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            try:
                result = self.bus.execute(
                    CommandContext(actor=actor, correlation_id=uuid.UUID(import_id),
                                   legal_basis=basis or legal_basis(today())),
                    self.commands.import_chunk(import_id, chunk))
            except DomainError as exc:
                return self._stopped_while_writing(import_id, chunk[0].row, exc, written, skipped)
            written += int(result.details["written"])
            skipped += int(result.details["skipped"])
            self._update(import_id, written=written, skipped=skipped)
            if progress:
                progress("writing", start + len(chunk), len(rows))
        self._finish(import_id, "completed", written=written, skipped=skipped)
        return self._report_or_fail(import_id)

    def _run_parallel(self, import_id: str, actor: str, rows: list[Any],
                      progress: Callable[[str, int, int], None] | None, *, scope: str | None,
                      legal_basis: str | None) -> ImportReport:
        """Validate and write slices of a large file in worker processes; still nothing is written unless every
        row of every slice is valid (the workers wait for the go after validating)."""
        import multiprocessing

        header, body = rows[0], rows[1:]
        columns, header_errors = map_header(header)
        if header_errors:
            self._finish(import_id, "rejected", errors=header_errors)
            return self._report_or_fail(import_id)
        code_column = next(i for i, key in columns.items() if key == "cell_code")
        codes = sorted({str(r[code_column]).strip() for r in body if code_column < len(r) and r[code_column]})
        with self.pool.connection() as conn:
            cells = cell_states(conn, codes)
            in_scope = scope_check(conn, scope)
            outside = frozenset(code for code, cell in cells.items() if not in_scope(cell))
        size = -(-len(body) // self.workers)
        context = multiprocessing.get_context("spawn")
        workers = []
        parts = []
        for index in range(self.workers):
            part = body[index * size:(index + 1) * size]
            if not part:
                continue
            here, there = context.Pipe()
            job = WorkerJob(import_id=import_id, actor=actor, header=list(header), first_row=2 + index * size,
                            cells=cells, outside=outside, legal_basis=legal_basis, **self.job_settings)
            process = context.Process(target=self.worker_entry, args=(there, job), daemon=True)
            process.start()
            workers.append((process, here))
            parts.append(part)
        try:
            try:
                for (_, pipe), part in zip(workers, parts, strict=True):
                    pipe.send(part)
                del parts
                validated = [_validation_report(pipe.recv()) for _, pipe in workers]
            except (_WorkerFailed, BrokenPipeError, EOFError) as exc:
                # A worker that cannot reach the database (or dies) has written nothing, and neither has any
                # other: nothing is written before every slice is validated.
                for _, pipe in workers:
                    with contextlib.suppress(OSError):
                        pipe.send("stop")
                self._finish(import_id, "rejected", errors=[RowError(
                    0, "file", "worker-failed", f"an import worker stopped before validating its rows: {exc}")])
                return self._report_or_fail(import_id)
            errors: list[RowError] = []
            citizens: dict[str, int] = {}
            cards: dict[str, int] = {}
            accepted = 0
            for found, citizen_rows, card_rows, ok in validated:
                errors += [RowError(*e) for e in found]
                accepted += ok
                for row, citizen in citizen_rows:
                    if citizen in citizens:
                        errors.append(RowError(row, "citizen_id", "citizen-id-repeated",
                                               f"also on row {citizens[citizen]}"))
                    citizens.setdefault(citizen, row)
                for row, card in card_rows:
                    if card in cards:
                        errors.append(RowError(row, "card_number", "card-number-repeated",
                                               f"also on row {cards[card]}"))
                    cards.setdefault(card, row)
            if progress:
                progress("validating", len(body), len(body))
            if errors:
                for _, pipe in workers:
                    pipe.send("stop")
                errors.sort(key=lambda e: e.row)
                self._finish(import_id, "rejected", total=len(body), accepted=0,
                             rejected=len({e.row for e in errors}), errors=errors)
                return self._report_or_fail(import_id)
            self._update(import_id, total=len(body), accepted=accepted)
            for _, pipe in workers:
                pipe.send("write")
            totals = [[0, 0, 0] for _ in workers]
            running = set(range(len(workers)))
            while running:
                for index in list(running):
                    pipe = workers[index][1]
                    if not pipe.poll(0.05):
                        continue
                    kind, written, skipped, done = pipe.recv()
                    if kind == "failed":
                        self._finish(import_id, "rejected", errors=[RowError(0, "file", "write-failed", str(written))],
                                     written=sum(t[0] for t in totals), skipped=sum(t[1] for t in totals))
                        return self._report_or_fail(import_id)
                    totals[index] = [written, skipped, done]
                    if kind == "done":
                        running.discard(index)
                    self._update(import_id, written=sum(t[0] for t in totals), skipped=sum(t[1] for t in totals))
                    if progress:
                        progress("writing", sum(t[2] for t in totals), accepted)
            written, skipped = sum(t[0] for t in totals), sum(t[1] for t in totals)
            self._finish(import_id, "completed", written=written, skipped=skipped)
            return self._report_or_fail(import_id)
        finally:
            for process, _ in workers:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()

    def _stopped_while_writing(self, import_id: str, first_row: int, exc: DomainError, written: int,
                               skipped: int) -> ImportReport:
        """A rule that only the write could see (a card number taken meanwhile) stops the import; the chunks
        before it stay written, and running the same file again resumes after them."""
        error = RowError(first_row, exc.field or "file", exc.code, f"writing stopped at the chunk from this row: {exc}")
        self._finish(import_id, "rejected", errors=[error], written=written, skipped=skipped)
        return self._report_or_fail(import_id)

    def _validate(self, path: Path, progress: Callable[[int], Any], *, scope: str | None) -> Any:
        with self.pool.connection() as conn:
            tx = PostgresTransaction(conn, topic="", channel="")

            def cells(codes: Sequence[str]) -> dict[str, units.Unit]:
                return cell_states(conn, codes)

            return validate_rows(
                read_rows(path), cell_for_code=cells,
                card_holders=lambda values: tx.holders(scope=CARD_NUMBER_SCOPE, values=values),
                citizen_holders=lambda values: tx.holders(scope=CITIZEN_ID_SCOPE, values=values),
                today=today(), progress=progress, card_code=self.commands.card_code,
                in_scope=scope_check(conn, scope))

    def _update(self, import_id: str, **fields: Any) -> str:
        assignments = ", ".join(f"{k} = %s" for k in fields)
        with self.pool.connection() as conn:
            row = conn.execute(f"UPDATE imports SET {assignments} WHERE import_id = %s RETURNING actor",
                               (*fields.values(), import_id)).fetchone()
        if row is None:
            raise KeyError(import_id)
        return str(row[0])

    def _finish(self, import_id: str, status: str, *, errors: list[RowError] | None = None, **fields: Any) -> None:
        reported = [e.as_json() for e in (errors or [])[:MAX_REPORTED_ERRORS]]
        self._update(import_id, status=status, errors=Jsonb(reported), **fields)
        with self.pool.connection() as conn:
            conn.execute("UPDATE imports SET finished_at = now() WHERE import_id = %s", (import_id,))

    def _report_or_fail(self, import_id: str) -> ImportReport:
        report = self.report(import_id)
        assert report is not None
        return report


class _WorkerFailed(Exception):
    """An import worker reported a failure instead of its validation."""


def _validation_report(message: tuple[Any, ...]) -> tuple[Any, ...]:
    """A worker's (errors, citizen ids, card numbers, accepted count), or _WorkerFailed with its reason."""
    if message[0] == "failed":
        raise _WorkerFailed(message[1])
    return message[1:]


def scope_check(conn: Any, scope: str | None) -> Callable[[units.Unit], bool]:
    """Whether a cell lies in the subtree of the unit `scope` (every cell does when it is None)."""
    if scope is None:
        return lambda cell: True
    views = PostgresRegistryViews(conn)
    return lambda cell: cell.unit_id == scope or scope in views.ancestors(cell.unit_id)


def cell_states(conn: Any, codes: Sequence[str]) -> dict[str, units.Unit]:
    """The current state of the active units with these codes."""
    views = PostgresRegistryViews(conn)
    tx = PostgresTransaction(conn, topic="", channel="")
    ids = {code: views.unit_id_by_code(code) for code in codes}
    found = {c: i for c, i in ids.items() if i}
    histories = tx.read_streams([f"unit-{i}" for i in found.values()])
    result = {}
    for code, unit_id in found.items():
        state = UNIT.initial
        for event in histories[f"unit-{unit_id}"]:
            state = UNIT.evolve(state, event)
        result[code] = state
    return result


def run_worker_slice(pipe: Any, job: WorkerJob, bus: CommandBus, commands: RegistryCommands, conn: Any) -> None:
    """A worker's two phases: validate its slice and report; on the go, write it in chunks and report.

    The slice's rows, and then its validated commands, live until the worker ends: frozen out of the garbage
    collector, they are not walked again by every full collection (a write phase 15% shorter)."""
    job_rows = pipe.recv()
    gc.freeze()
    tx = PostgresTransaction(conn, topic="", channel="")
    validated = validate_rows(
        [job.header, *job_rows], cell_for_code=lambda codes: {c: job.cells[c] for c in codes if c in job.cells},
        card_holders=lambda values: tx.holders(scope=CARD_NUMBER_SCOPE, values=values),
        citizen_holders=lambda values: tx.holders(scope=CITIZEN_ID_SCOPE, values=values), today=today(),
        card_code=commands.card_code, in_scope=lambda cell: cell.code not in job.outside)
    del job_rows
    shift = job.first_row - 2
    rows = [replace(r, row=r.row + shift) for r in validated.rows]
    errors = [(e.row + shift, e.field, e.code, e.message) for e in validated.errors]
    pipe.send(("validated", errors, [(r.row, r.command.citizen_id) for r in rows],
               [(r.row, r.command.card_number) for r in rows if r.command.card_number], len(rows)))
    if pipe.recv() != "write":
        return
    gc.freeze()
    written = skipped = done = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        result = bus.execute(CommandContext(actor=job.actor, correlation_id=uuid.UUID(job.import_id),
                                            legal_basis=job.legal_basis or legal_basis(today())),
                             commands.import_chunk(job.import_id, chunk))
        written += int(result.details["written"])
        skipped += int(result.details["skipped"])
        done += len(chunk)
        pipe.send(("progress", written, skipped, done))
    pipe.send(("done", written, skipped, done))


class ProgressBar:
    """A one-line progress bar on stderr for the command line."""

    def __init__(self) -> None:
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.2 and done != total:
            return
        self._last = now
        rate = done / max(now - self._started, 1e-6)
        if total:
            filled = int(30 * done / total)
            bar = "#" * filled + "-" * (30 - filled)
            sys.stderr.write(f"\r{phase:<10} [{bar}] {done:>9,}/{total:,} rows  {rate:,.0f} rows/s ")
        else:
            sys.stderr.write(f"\r{phase:<10} {done:>9,} rows  {rate:,.0f} rows/s ")
        sys.stderr.flush()


def import_from_command_line(runner: ImportRunner, path: Path, *, actor: str) -> int:
    import_id = runner.submit(file_name=path.name, content=path.read_bytes(), actor=actor, scope_unit_id=None,
                              legal_basis=None)
    report = runner.run(import_id, progress=ProgressBar())
    sys.stderr.write("\n")
    print(json.dumps({**report.as_json(), "errors": report.errors[:50]}, ensure_ascii=False, indent=2))
    if report.status == "rejected":
        for error in report.errors[:50]:
            sys.stderr.write(f"row {error['row']}, {error['field']}: {error['code']} — {error['message']}\n")
        return 1
    return 0
