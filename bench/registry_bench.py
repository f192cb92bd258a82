"""Registry figures: bulk import rows/s against a COPY floor, and a 100-unit / 10,000-member merge."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from registry import main as registry_main
from registry.domain.commands import EnrolMember, EstablishUnit, MergeUnits
from servicekit.commands import CommandContext, Outcome
from servicekit.settings import ServiceSettings

HEADER = ["full_name", "gender", "birth_date", "citizen_id", "ethnicity", "occupation", "cell_code", "status",
          "admitted_on", "official_on"]


def roll_rows(count: int, cell_codes: list[str], seed: int = 11) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        birth = dt.date(rng.randint(1950, 2000), rng.randint(1, 12), rng.randint(1, 28))
        admitted = min(dt.date(birth.year + 19 + rng.randint(0, 20), rng.randint(1, 12), rng.randint(1, 28)),
                       dt.date(2024, 1, 1))
        rows.append([f"Nguyễn Văn {i}", rng.choice(["male", "female"]), birth.isoformat(), f"{10**11 + i:012d}",
                     "Kinh", "public_service_employee", rng.choice(cell_codes), "official", admitted.isoformat(),
                     (admitted + dt.timedelta(days=366)).isoformat()])
    return rows


def copy_floor(database_url: str, rows: list[list[str]]) -> float:
    """COPY of the same rows into a plain table with the same columns: the bulk-load floor."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        table = f"bench_copy_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE TABLE {table} (full_name text, gender text, birth_date date, citizen_id text UNIQUE,"
                     " ethnicity text, occupation text, cell_code text, status text, admitted_on date,"
                     " official_on date)")
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        elapsed = time.perf_counter() - started
        conn.execute(f"DROP TABLE {table}")
    return len(rows) / elapsed


def _settings(database_url: str, data_dir: Path) -> ServiceSettings:
    return ServiceSettings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS="unused", PARTY_DATA_DIR=data_dir)


def import_throughput(database_url: str, members: int, cells: int) -> tuple[float, float]:
    """(import rows/s end to end: validate + write, COPY floor rows/s) for the same roll."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    registry = registry_main.build(_settings(database_url, data_dir), schema=f"bench_import_{uuid.uuid4().hex[:6]}",
                                   max_pool=4)
    try:
        codes = _cells(registry, cells)
        rows = roll_rows(members, codes)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(rows)
        content = out.getvalue().encode()
        import_id = registry.imports.submit(file_name="bench.csv", content=content, actor="bench", scope_unit_id=None,
                                            legal_basis=None)
        started = time.perf_counter()
        report = registry.imports.run(import_id)
        elapsed = time.perf_counter() - started
        if report.status != "completed" or report.written != members:
            raise RuntimeError(f"import failed: {report.as_json()}")
        return members / elapsed, copy_floor(database_url, rows)
    finally:
        registry.close()


def _cells(registry: registry_main.Registry, count: int) -> list[str]:
    bus, commands = registry.bus, registry.commands
    context = CommandContext(actor="bench")
    city, ward = str(uuid.uuid4()), str(uuid.uuid4())
    bus.execute(context, commands.establish_unit(EstablishUnit(city, f"C{city[:8]}", "Thành ủy", "city_committee",
                                                               None, dt.date(1930, 2, 3))))
    bus.execute(context, commands.establish_unit(EstablishUnit(ward, f"W{ward[:8]}", "Phường", "commune_committee",
                                                               city, dt.date(1945, 1, 1))))
    codes = []
    for _ in range(count):
        cell = str(uuid.uuid4())
        code = f"CB{cell[:10]}"
        bus.execute(context, commands.establish_unit(EstablishUnit(cell, code, "Chi bộ", "grassroots_cell", ward,
                                                                   dt.date(1950, 1, 1))))
        codes.append(code)
    return codes


def reorganization_seconds(database_url: str, units: int, members_per_unit: int) -> tuple[float, int]:
    """(seconds, events written) for one merge of `units` cells holding units*members_per_unit members."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-reorg-"))
    registry = registry_main.build(_settings(database_url, data_dir), schema=f"bench_reorg_{uuid.uuid4().hex[:6]}",
                                   max_pool=4)
    try:
        codes = _cells(registry, units + 1)
        with registry.pool.connection() as conn:
            ids = dict(conn.execute("SELECT code, unit_id::text FROM unit_view WHERE code = ANY(%s)",
                                    (codes,)).fetchall())
        context = CommandContext(actor="bench")
        rows = [(ids[code], i) for i, code in enumerate(codes[1:]) for _ in range(members_per_unit)]
        chunk = 2_000
        for start in range(0, len(rows), chunk):
            def enrol_chunk(uow, part=rows[start:start + chunk], offset=start):  # type: ignore[no-untyped-def]
                for n, (unit_id, _) in enumerate(part):
                    registry.commands.enrol_member(EnrolMember(
                        member_id=str(uuid.uuid4()), full_name="Trần Văn Bình", gender="male",
                        birth_date=dt.date(1970, 1, 1), citizen_id=f"{2 * 10**11 + offset + n:012d}", unit_id=unit_id,
                        status="official", admitted_on=dt.date(1995, 1, 1), source="existing"))(uow)
                return Outcome("bench", "bench-x")
            bus_result = registry.bus.execute(context, enrol_chunk)
            del bus_result
        command = MergeUnits(source_ids=tuple(ids[c] for c in codes[1:]), target_id=ids[codes[0]], new_target=None,
                             new_target_id=None, effective_on=dt.date(2025, 7, 1), decision_ref="bench")
        started = time.perf_counter()
        result = registry.bus.execute(context, registry.commands.merge_units(command))
        elapsed = time.perf_counter() - started
        if result.details["members_moved"] != units * members_per_unit:
            raise RuntimeError(f"merge moved {result.details['members_moved']}")
        return elapsed, result.event_count
    finally:
        registry.close()
