"""The `national` scale (`python bench/run.py --national [N]`): about 5.5 million members over 34 provinces, or
the first N provinces of it.

The in-memory broker cannot hold the ~28 million events of the whole country in 24 GiB, so this run takes the
broker-loss path of ARCHITECTURE.md §3 on purpose: each province goes into its own register's store through the
registry's own append path (events and outbox; no relay runs, as while a broker is away), then the gateway's
projections are built from the stores (`python -m gateway rebuild --from-store`), and the reads of the `hanoi` run
are measured against a gateway API over them.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]


def national(provinces: int, *, samples: int, print_results: Callable[[str, list[Any], dict[str, float]], None],
             figure: Callable[..., Any]) -> int:
    import queries_bench
    from demo_bench import peak_rss_mb, upsert_floor
    from registry_bench import copy_floor, roll_rows

    from demo.loader import ProgressBar, load_national
    from demo.national import NationalPlan
    from servicekit.devissuer import ensure_keys, mint
    from servicekit.embedded.broker import EmbeddedBroker
    from servicekit.embedded.ports import free_port
    from servicekit.embedded.postgres import EmbeddedPostgres
    from servicekit.settings import ServiceSettings

    work = Path(tempfile.mkdtemp(prefix="party-national-"))
    postgres = EmbeddedPostgres(work / "postgres", keep_data=False).start()
    broker = EmbeddedBroker(log_path=work / "broker.log").start()
    api: subprocess.Popen[bytes] | None = None
    figures: list[Any] = []
    try:
        url = postgres.url
        copied = copy_floor(url, roll_rows(100_000, ["C1"]))
        settings = ServiceSettings(DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
                                   PARTY_DATA_DIR=str(work))
        plan = NationalPlan(seed=2015, only=provinces)
        names = ", ".join(p.short_name for p in plan.provinces)
        print(f"loading {len(plan.provinces)} province(s), each into its register's store: {names}",
              file=sys.stderr)
        bar = ProgressBar(plan.estimated_weight())
        started = time.monotonic()
        try:
            report = load_national(settings, plan, on_progress=bar.advance)
        finally:
            bar.close()
        store_seconds = time.monotonic() - started
        members = 0
        with psycopg.connect(url, autocommit=True) as conn:
            for schema in plan.store_schemas():
                row = conn.execute(f"SELECT count(*) FROM {schema}.member_view WHERE status IN"
                                   " ('official', 'probationary')").fetchone()
                members += int(row[0]) if row else 0
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        figures.append(figure(f"national, {len(plan.provinces)} provinces ({members:,} members today): "
                              f"{report.events:,} events into the store in {store_seconds:.0f} s",
                              report.events / store_seconds, "events/s", "COPY of roll rows", copied))

        print("building the projections from the store ...", file=sys.stderr, flush=True)
        env = {**os.environ, "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
               "PARTY_DATA_DIR": str(work), "LOG_LEVEL": "WARNING",
               "REGISTRY_STORE_SCHEMA": ",".join(plan.store_schemas())}
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "gateway", "rebuild", "--from-store"], cwd=ROOT, env=env,
                       check=True, timeout=6 * 3600)
        rebuild_seconds = time.monotonic() - started
        rebuild_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        floor_rows = min(report.events, 1_000_000)
        figures.append(figure(f"projections built from the store ({report.events:,} events in {rebuild_seconds:.0f} s)",
                              report.events / rebuild_seconds, "events/s", "batched upserts of as many rows",
                              upsert_floor(url, floor_rows)))

        ensure_keys(work / "dev-issuer")
        port = free_port()
        log = (work / "gateway-api.log").open("ab")
        api = subprocess.Popen([sys.executable, "-m", "gateway", "api"], cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT, env={**env, "GATEWAY_PORT": str(port)},
                               start_new_session=True)
        gateway = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{gateway}/livez", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway API did not start; see {work / 'gateway-api.log'}")
            time.sleep(0.2)
        print("measuring reads ...", file=sys.stderr, flush=True)
        token = mint(work / "dev-issuer", role="city-admin", unit=None)
        for latency in queries_bench.run(gateway, url, token, samples):
            for label, q in (("p50", 0.5), ("p99", 0.99)):
                figures.append(figure(f"{latency.name} (national), {label}",
                                      queries_bench.percentile(latency.graphql_ms, q), "ms",
                                      f"its SQL in-process, {label}", queries_bench.percentile(latency.sql_ms, q),
                                      higher_is_better=False))
        memory = {"demo loader (this process, one province's plan at a time)":
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "gateway rebuild from the store": rebuild_rss, "gateway API": peak_rss_mb(api.pid)}
        print(f"database size: {size[0] / 2**30 if size else 0:.1f} GiB", file=sys.stderr)
    finally:
        if api is not None:
            api.terminate()
            api.wait(30)
        broker.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_results(f"the national demo, {provinces} province(s)", figures, memory)
    return 0
