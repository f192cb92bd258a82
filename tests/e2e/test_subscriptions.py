"""Subscriptions over graphql-transport-ws reach clients of every gateway process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import websockets

from servicekit.embedded.ports import free_port
from servicekit.embedded.system import RunningSystem
from tests.e2e.test_gateway_graphql import clients, enrol, establish

ROOT = Path(__file__).resolve().parents[2]


def second_gateway(system: RunningSystem) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": system.database_url, "KAFKA_BOOTSTRAP_SERVERS": system.bootstrap_servers,
           "PARTY_DATA_DIR": str(system.data_dir), "GATEWAY_PORT": str(port),
           "REGISTRY_PORT": str(system.ports["registry"])}
    process = subprocess.Popen([sys.executable, "-m", "gateway", "api"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        import time

        time.sleep(0.1)
    return process, port


async def listen(port: int, token: str, unit_id: str, ready: asyncio.Event) -> dict[str, object]:
    async with websockets.connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($u: ID!) { memberChanges(unitId: $u) { memberId change toUnitId } }",
            "variables": {"u": unit_id}}}))
        await asyncio.sleep(0.5)
        ready.set()
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        assert message["type"] == "next", message
        return message["payload"]["data"]["memberChanges"]  # type: ignore[no-any-return]


def test_both_gateway_processes_deliver_a_member_joining_the_subtree(system: RunningSystem) -> None:
    admin = clients(system)
    city = establish(admin, "city_committee", None, on="1930-02-03")
    ward = establish(admin, "commune_committee", city["id"])
    cell = establish(admin, "grassroots_cell", ward["id"])
    process, port = second_gateway(system)
    try:
        async def scenario() -> list[dict[str, object]]:
            ready_a, ready_b = asyncio.Event(), asyncio.Event()
            token = system.token()
            first = asyncio.create_task(listen(system.ports["gateway"], token, ward["id"], ready_a))
            second = asyncio.create_task(listen(port, token, ward["id"], ready_b))
            await ready_a.wait()
            await ready_b.wait()
            member = await asyncio.to_thread(enrol, admin, cell["id"], "Bùi Thị Lan")
            results = await asyncio.gather(first, second)
            assert all(r["memberId"] == member for r in results)
            return list(results)

        results = asyncio.run(scenario())
        assert [r["change"] for r in results] == ["JOINED", "JOINED"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
