"""The embedded supervisor behind `make up`: PostgreSQL, the broker and every service process.

It restarts any child that dies (with backoff; a restarted broker is a broker loss that relays and
consumers detect), prints the URLs at once, loads the demo data on first start, and on Ctrl-C or SIGTERM
stops every child it started. Children die with it even if it is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from servicekit.devissuer import ensure_keys
from servicekit.embedded.broker import EmbeddedBroker
from servicekit.embedded.postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DEMO_SCALE = os.environ.get("DEMO_SCALE", "small")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff_s: float = field(default=0.5)
    restartable: bool = True
    console: bool = False
    """Its progress (stderr) goes to the terminal as well as its log."""

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                        stderr=None if self.console else subprocess.STDOUT, cwd=ROOT,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()

    def stop(self, timeout_s: float = 8.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def ports_from_env() -> dict[str, int]:
    return {
        "gateway": int(os.environ.get("GATEWAY_PORT", 8000)),
        "registry": int(os.environ.get("REGISTRY_PORT", 8101)),
        "admissions": int(os.environ.get("ADMISSIONS_PORT", 8102)),
        "transfers": int(os.environ.get("TRANSFERS_PORT", 8103)),
    }


def up(data_dir: Path, *, load_demo: bool) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    postgres: EmbeddedPostgres | None = None
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        print("starting PostgreSQL (data in .data/postgres) ...", flush=True)
        postgres = EmbeddedPostgres(data_dir / "postgres", keep_data=True).start()
        database_url = postgres.url
    broker: EmbeddedBroker | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = EmbeddedBroker(port=int(os.environ.get("BROKER_PORT", 0)), log_path=logs / "broker.log").start()
        bootstrap = broker.bootstrap_servers
    ensure_keys(data_dir / "dev-issuer")
    # `make demo`, `make token` and ad-hoc scripts find the running stack here.
    (data_dir / "stack.env").write_text(f"DATABASE_URL={database_url}\nKAFKA_BOOTSTRAP_SERVERS={bootstrap}\n")
    demo_pending = load_demo and not (data_dir / "demo-loaded").exists()
    if demo_pending:
        # Until the demo is loaded and published the gateway's /readyz answers 503 (it reads this marker).
        (data_dir / "demo-loading").write_text(f"the {DEMO_SCALE} demo is about to load")

    ports = ports_from_env()
    env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "PARTY_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
           **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()}}
    children = [
        Child("registry-api", [PYTHON, "-m", "registry", "api"], env, logs / "registry-api.log", ports["registry"]),
        Child("registry-relay", [PYTHON, "-m", "registry", "relay"], env, logs / "registry-relay.log"),
        Child("registry-reactions", [PYTHON, "-m", "registry", "reactions"], env, logs / "registry-reactions.log"),
        Child("admissions-api", [PYTHON, "-m", "admissions", "api"], env, logs / "admissions-api.log",
              ports["admissions"]),
        Child("admissions-relay", [PYTHON, "-m", "admissions", "relay"], env, logs / "admissions-relay.log"),
        Child("transfers-api", [PYTHON, "-m", "transfers", "api"], env, logs / "transfers-api.log",
              ports["transfers"]),
        Child("transfers-relay", [PYTHON, "-m", "transfers", "relay"], env, logs / "transfers-relay.log"),
        Child("gateway-projector", [PYTHON, "-m", "gateway", "projector"], env, logs / "gateway-projector.log"),
        Child("gateway-api", [PYTHON, "-m", "gateway", "api"], env, logs / "gateway-api.log", ports["gateway"]),
    ]
    for child in children:
        child.start()
    print(
        "\nThe party register is starting:\n"
        f"  GraphQL (GraphiQL in a browser)  http://127.0.0.1:{ports['gateway']}/graphql\n"
        f"  registry API docs                http://127.0.0.1:{ports['registry']}/docs\n"
        f"  admissions API docs              http://127.0.0.1:{ports['admissions']}/docs\n"
        f"  transfers API docs               http://127.0.0.1:{ports['transfers']}/docs\n"
        f"  gateway readiness                http://127.0.0.1:{ports['gateway']}/readyz\n"
        f"  broker                           {bootstrap}\n"
        f"  logs                             {logs}\n"
        "  a token: make token ROLE=city-admin\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
    if demo_pending:
        children.append(Child("demo-load", [PYTHON, "-m", "demo", "--scale", DEMO_SCALE, "--data-dir", str(data_dir)],
                              env, logs / "demo-load.log", restartable=False, console=True))
        children[-1].start()
        print(f"loading the {DEMO_SCALE} demo register in the background (progress below; log: "
              f"{logs / 'demo-load.log'}); /readyz turns 200 when it is projected\n", flush=True)
    try:
        while not stop.wait(0.5):
            if broker is not None and not broker.alive():
                print("broker died; starting a new one (relays will republish from the stores)", flush=True)
                broker.start()
            for child in children:
                if child.process is not None and child.process.poll() is not None:
                    code = child.process.returncode
                    if not child.restartable:
                        if code != 0:
                            print(f"{child.name} failed with {code} (log: {child.log_path}); `make up` again "
                                  "resumes it", flush=True)
                        child.process = None
                        continue
                    if time.monotonic() - child.started_at > 30:
                        child.backoff_s = 0.5
                    print(f"{child.name} exited with {code}; restarting in {child.backoff_s:.1f}s "
                          f"(log: {child.log_path})", flush=True)
                    stop.wait(child.backoff_s)
                    child.backoff_s = min(child.backoff_s * 2, 30.0)
                    child.restarts += 1
                    if not stop.is_set():
                        child.start()
    finally:
        print("\nstopping ...", flush=True)
        for child in reversed(children):
            child.stop()
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        print("stopped.", flush=True)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data")
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    raise SystemExit(up(args.data_dir.resolve(), load_demo=not args.no_demo))


if __name__ == "__main__":
    main()
