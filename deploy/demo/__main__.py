"""`python -m demo [--scale small|hanoi|tiny|national] [--seed N] [--provinces N]`: load the demo register into a
running system (`national` streams 34 provinces, one at a time; `--provinces N` stops after the first N).

It finds the system through DATABASE_URL (or the `.data/stack.env` that `make up` writes), appends through
the registry's command path, waits until the relay has published everything, and leaves the gateway's
`/readyz` to turn 200 once the projections have caught up. Run it again after an interruption: it resumes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

from demo.national import NATIONAL, NationalPlan
from demo.plan import SCALES, DemoPlan

ROOT = Path(__file__).resolve().parents[2]
MARKER = "demo-loading"
LOADED = "demo-loaded"


def stack_environment(data_dir: Path) -> None:
    """Take DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS from the running `make up` unless they are set."""
    env_file = data_dir / "stack.env"
    if not env_file.exists():
        return
    for line in env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        if key and value and key not in os.environ:
            os.environ[key] = value


def wait_for_relay(registry: object, *, timeout_s: float = 1800) -> None:
    """Until the outbox is empty: everything appended is then on the topic."""
    pool = registry.pool  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM outbox").fetchone()
        if row is not None and row[0] == 0:
            return
        sys.stderr.write(f"\rdemo: waiting for the relay, {row[0] if row else '?':,} events still to publish   ")
        sys.stderr.flush()
        time.sleep(1)
    raise TimeoutError("the relay did not drain the outbox")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=[*sorted(SCALES), NATIONAL.name],
                        default=os.environ.get("DEMO_SCALE", "small"))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("DEMO_SEED", "2015")))
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("PARTY_DATA_DIR", ROOT / ".data")))
    parser.add_argument("--provinces", type=int, help="national: only the first N provinces")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the relay to publish everything")
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    os.environ.setdefault("PARTY_DATA_DIR", str(data_dir))
    stack_environment(data_dir)
    if "DATABASE_URL" not in os.environ:
        print("demo: no running system found (start it with `make up`, or set DATABASE_URL)", file=sys.stderr)
        return 2
    os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "unused-by-the-loader")

    from demo.loader import STATE_CACHE, DemoLoader, ProgressBar, planned_day
    from registry.main import build
    from servicekit.jsonlog import setup_logging
    from servicekit.runner import load_settings

    setup_logging("demo", "WARNING")
    marker = data_dir / MARKER
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"loading the {args.scale} demo (seed {args.seed})")
    print(f"demo: planning the {args.scale} register (seed {args.seed}) ...", file=sys.stderr, flush=True)
    if args.scale == NATIONAL.name:
        return national(args.seed, args.provinces, marker)
    registry = build(load_settings(), max_pool=4, state_cache=STATE_CACHE)
    try:
        day = planned_day(registry, args.scale, args.seed, dt.date.today())
        if day != dt.date.today():
            print(f"demo: going on with the load planned on {day.isoformat()} (its history runs to that day)",
                  file=sys.stderr, flush=True)
        plan = DemoPlan(SCALES[args.scale], seed=args.seed, today=day)
        steps = list(plan.steps())
    except BaseException:
        registry.close()
        raise
    bar = ProgressBar(sum(step.weight for step in steps))

    def progress(weight: int, label: str) -> None:
        bar.advance(weight, label)
        marker.write_text(f"loading the {args.scale} demo: {bar.done / bar.total:.0%} ({label})")

    try:
        try:
            report = DemoLoader(registry, plan, on_progress=progress).run(steps)
        except Exception as exc:
            marker.write_text(f"the {args.scale} demo load failed at {bar.done / bar.total:.0%}: "
                              f"{type(exc).__name__}: {exc}; run it again to resume")
            raise
        bar.close()
        print(f"demo: {report.events:,} events in {report.steps} steps ({report.skipped} already done) in "
              f"{report.seconds:.1f} s", file=sys.stderr, flush=True)
        if report.reform_steps:
            print(f"  the 2025 decision set: {report.reform_steps} decisions in {report.reform_seconds:.1f} s",
                  file=sys.stderr)
        for action, seconds in sorted(report.by_action.items(), key=lambda item: -item[1]):
            print(f"  {action:<10} {report.events_by_action.get(action, 0):>10,} events {seconds:8.1f} s",
                  file=sys.stderr)
        if not args.no_wait:
            wait_for_relay(registry)
            sys.stderr.write("\n")
    finally:
        registry.close()
    marker.unlink(missing_ok=True)
    (data_dir / LOADED).write_text(f"{args.scale} {args.seed} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    print("demo: loaded; the gateway's /readyz turns 200 once its projections have caught up", file=sys.stderr)
    return 0


def national(seed: int, provinces: int | None, marker: Path) -> int:
    """Every province into its own register's store. Nothing relays them (each provincial register would run its
    own relay): the gateway builds its projections from the stores."""
    from demo.loader import ProgressBar, load_national
    from servicekit.runner import load_settings

    plan = NationalPlan(seed=seed, only=provinces)
    bar = ProgressBar(plan.estimated_weight())
    report = load_national(load_settings(), plan, on_progress=bar.advance)
    bar.close()
    marker.unlink(missing_ok=True)
    print(f"demo: {report.events:,} events in {report.steps} steps ({report.skipped} already done) in "
          f"{report.seconds:.1f} s, into {len(plan.provinces)} stores. Project them with\n"
          f"  REGISTRY_STORE_SCHEMA={','.join(plan.store_schemas())} python -m gateway rebuild --from-store",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
