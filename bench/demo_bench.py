"""Demo-scale figures: a whole demo register loaded end to end (store, relay, projections), the 2025 reform
replayed as registry decisions, a projection rebuild against batched upserts of the same rows, and the peak
memory of every process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class DemoLoad:
    scale: str
    events: int
    store_seconds: float
    end_to_end_seconds: float
    reform_seconds: float
    reform_steps: int
    reform_events: int
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


def fresh_database(database_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return make_conninfo(database_url, dbname=name)


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def load_demo(system: Any, scale: str) -> DemoLoad:
    """The loader runs in this process (as `python -m demo` would); the system's relay and projector follow."""
    import resource

    from demo.loader import STATE_CACHE, DemoLoader
    from demo.plan import SCALES, DemoPlan
    from registry.main import build
    from servicekit.settings import ServiceSettings

    settings = ServiceSettings(DATABASE_URL=system.database_url, KAFKA_BOOTSTRAP_SERVERS=system.bootstrap_servers,
                               PARTY_DATA_DIR=str(system.data_dir))
    plan = DemoPlan(SCALES[scale], seed=2015)
    steps = list(plan.steps())
    registry = build(settings, max_pool=4, state_cache=STATE_CACHE)
    marker = Path(system.data_dir) / "demo-loading"
    marker.write_text(f"bench: loading {scale}")
    try:
        started = time.monotonic()
        report = DemoLoader(registry, plan).run(steps)
        store_seconds = time.monotonic() - started
    finally:
        registry.close()
    marker.unlink()
    system.wait_ready(timeout_s=3600)
    end_to_end = time.monotonic() - started
    load = DemoLoad(scale, report.events, store_seconds, end_to_end, report.reform_seconds, report.reform_steps,
                    report.reform_events)
    load.peak_rss_mb = {name: peak_rss_mb(p.pid) for name, p in system.processes.items()}
    load.peak_rss_mb["demo loader (bench process)"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return load


def rebuild_events_per_second(system: Any) -> tuple[float, int]:
    """`python -m gateway rebuild`: fresh projections from the topic, side by side, then swapped in."""
    env = {**os.environ, "DATABASE_URL": system.database_url, "KAFKA_BOOTSTRAP_SERVERS": system.bootstrap_servers,
           "PARTY_DATA_DIR": str(system.data_dir), "LOG_LEVEL": "WARNING"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gateway", "rebuild"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=3600, check=True)
    seconds = time.monotonic() - started
    found = re.search(r"rebuilt from ([\d,]+) events", done.stdout)
    if found is None:
        raise RuntimeError(f"rebuild said: {done.stdout[-500:]} {done.stderr[-500:]}")
    events = int(found.group(1).replace(",", ""))
    return events / seconds, events


def upsert_floor(database_url: str, rows: int, batch: int = 2_000) -> float:
    """Batched upserts of event-sized rows (key, version, date, type, JSON) into a scratch table: what a
    projection that did nothing but store each event would cost."""
    import datetime as dt

    from psycopg.types.json import Jsonb

    payload = {"member_id": str(uuid.uuid4()), "year": 2025, "level": "hoan_thanh_tot", "effective_on": "2025-12-31"}
    with psycopg.connect(database_url, autocommit=True) as conn:
        table = f"upsert_floor_{uuid.uuid4().hex[:6]}"
        conn.execute(f"CREATE TABLE {table} (k uuid, seq int, day date, kind text, data jsonb, PRIMARY KEY (k, seq))")
        keys = [uuid.uuid4() for _ in range(max(1, rows // 5))]
        started = time.monotonic()
        for start in range(0, rows, batch):
            count = min(batch, rows - start)
            with conn.transaction():
                conn.execute(
                    f"INSERT INTO {table} SELECT * FROM unnest(%s::uuid[], %s::int[], %s::date[], %s::text[],"
                    " %s::jsonb[]) ON CONFLICT (k, seq) DO UPDATE SET data = EXCLUDED.data",
                    ([keys[(start + i) % len(keys)] for i in range(count)], [start + i for i in range(count)],
                     [dt.date(2025, 12, 31)] * count, ["AnnualRatingRecorded"] * count, [Jsonb(payload)] * count))
        seconds = time.monotonic() - started
        conn.execute(f"DROP TABLE {table}")
    return rows / seconds
