"""The system as real processes on free ports (registry API + relay, gateway projector + API): e2e tests, benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from servicekit.devissuer import ensure_keys, mint
from servicekit.embedded.ports import free_port

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class RunningSystem:
    database_url: str
    bootstrap_servers: str
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> RunningSystem:
        ensure_keys(self.data_dir / "dev-issuer")
        self.ports = {"registry": free_port(), "gateway": free_port()}
        env = {**os.environ, "DATABASE_URL": self.database_url, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
               "PARTY_DATA_DIR": str(self.data_dir), "REGISTRY_PORT": str(self.ports["registry"]),
               "GATEWAY_PORT": str(self.ports["gateway"]), "RELAY_LEASE_TTL_S": "3", **self.extra_env}
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, argv in {
            "registry-api": ["-m", "registry", "api"],
            "registry-relay": ["-m", "registry", "relay"],
            "gateway-projector": ["-m", "gateway", "projector"],
            "gateway-api": ["-m", "gateway", "api"],
        }.items():
            log = (logs / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True)
        for service in ("registry", "gateway"):
            self._wait_live(service)
        return self

    def _wait_live(self, service: str, timeout_s: float = 60) -> None:
        self._wait_for(service, "/livez", timeout_s, f"{service} did not start")

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Until the gateway's /readyz answers 200: every event published so far is projected."""
        self._wait_for("gateway", "/readyz", timeout_s, "the gateway's projections did not catch up")

    def _wait_for(self, service: str, path: str, timeout_s: float, failure: str) -> None:
        deadline = time.monotonic() + timeout_s
        # One client for the whole wait: `httpx.get` makes a client, and with it an SSL context, on every call
        # (18 ms of CPU each, measured), which at ten polls a second took a fifth of a core from the system
        # being waited for.
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(f"{self.url(service)}{path}").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"{failure}; see {self.data_dir / 'logs'}")

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def token(self, role: str = "city-admin", unit: str | None = None) -> str:
        return mint(self.data_dir / "dev-issuer", role=role, unit=unit)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
