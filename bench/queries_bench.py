"""GraphQL reads over HTTP against the same SQL run directly in this process (the floor).

Each GraphQL query is timed end to end (HTTP, token check, GraphQL, scope checks, SQL) over one keep-alive
connection; its floor runs the read models' own statements through psycopg with no HTTP, GraphQL or
authorization, in the same process.
`python bench/queries_bench.py DATA_DIR` measures a running `make up` (its `stack.env` and ports)."""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from psycopg_pool import AsyncConnectionPool

STATISTICS = """query($id: ID!) { statistics(unitId: $id) {
  bieu1 { opening { thisPeriod samePeriodLastYear } closing { thisPeriod } totalIncrease { thisPeriod }
          totalDecrease { thisPeriod } increases { category figure { thisPeriod } } }
  bieu2 { dimension value figure { thisPeriod } } bieu3 { dimension value figure { thisPeriod } }
  bieu5 { category figure { thisPeriod } } } }"""
MEMBERS = """query($id: ID!, $search: String) {
  members(unitId: $id, status: [OFFICIAL], search: $search, first: 20) {
    totalCount edges { node { id fullName birthDate status unit { code name } } } } }"""
MEMBER = """query($id: ID!) { member(id: $id) { fullName status admittedOn unit { code name }
  card { number generation } history { effectiveOn type } } }"""


@dataclass
class Latency:
    name: str
    graphql_ms: list[float]
    sql_ms: list[float]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _time_side_by_side(samples: int, *calls: Callable[[], Awaitable[Any]]) -> list[list[float]]:
    """Each call's latencies, taken in turns (one of each, then again): a machine whose speed drifts during the
    run (this one has slower and faster phases) then moves a query and its floor together, not one of them."""
    for call in calls:
        await call()  # warm the caches and the pool
    out: list[list[float]] = [[] for _ in calls]
    for _ in range(samples):
        for call, latencies in zip(calls, out, strict=True):
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)
    return out


async def measure(gateway_url: str, database_url: str, token: str, samples: int, *, ward_code: str = "00004"
                  ) -> list[Latency]:
    from loadgen import KeepAliveClient

    from gateway.read_models import ReadModels, Scope, vietnam_today
    from gateway.statistics import forms, year_earlier, year_to_date

    pool = AsyncConnectionPool(database_url, min_size=1, max_size=8, open=False,
                               kwargs={"autocommit": True, "options": "-c search_path=gateway,public"})
    await pool.open()
    address = urlsplit(gateway_url)
    client = KeepAliveClient(address.hostname or "127.0.0.1", address.port or 80, token)
    try:
        async def graphql(query: str, **variables: Any) -> dict[str, Any]:
            status, body = await client.post_json("/graphql", {"query": query, "variables": variables})
            if status != 200 or not isinstance(body, dict) or "errors" in body:
                raise RuntimeError(f"{query[:40]}: HTTP {status} {body}")
            return body["data"]  # type: ignore[no-any-return]

        models = ReadModels(pool)
        city = await models.unit_by_code("HN")
        ward = await models.unit_by_code(ward_code)
        if city is None or ward is None:
            raise RuntimeError("load the demo first: no unit HN or ward " + ward_code)
        page = await models.member_page(scope=Scope(None), unit_id=ward.id, include_descendants=True,
                                        statuses=["official"], flags=[], search=None, day=None, order="NAME",
                                        first=1, after=None)
        member_id = page.rows[0]["member_id"]
        today = vietnam_today()
        period = year_to_date(today)

        def statistics_sql(root: uuid.UUID) -> Callable[[], Awaitable[Any]]:
            async def run() -> None:
                await forms(pool, root, period, year_earlier(period))
            return run

        def members_sql(search: str | None) -> Callable[[], Awaitable[Any]]:
            async def run() -> None:
                await models.member_page(scope=Scope(None), unit_id=city.id, include_descendants=True,
                                         statuses=["official"], flags=[], search=search, day=None, order="NAME",
                                         first=20, after=None)
            return run

        async def one_round_trip() -> None:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")

        async def member_sql() -> None:
            # What the query reads: the member with its cell, then its history.
            await models.members_with_units([uuid.UUID(str(member_id))])
            await models.member_history(uuid.UUID(str(member_id)))

        cases: list[tuple[str, Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = [
            ("statistics, city root", lambda: graphql(STATISTICS, id=str(city.id)), statistics_sql(city.id)),
            (f"statistics, one ward ({ward.code})", lambda: graphql(STATISTICS, id=str(ward.id)),
             statistics_sql(ward.id)),
            ("members, city root, official, first 20", lambda: graphql(MEMBERS, id=str(city.id)),
             members_sql(None)),
            ("members, city root, official, search 'nguyen van'",
             lambda: graphql(MEMBERS, id=str(city.id), search="nguyen van"), members_sql("nguyen van")),
            ("a member with its history", lambda: graphql(MEMBER, id=str(member_id)), member_sql),
            # What the HTTP and GraphQL layers cost a query with nothing to read: the part of every query above
            # that no SQL can make smaller.
            ("`{ __typename }` (no data read)", lambda: graphql("{ __typename }"), one_round_trip),
        ]
        results = []
        for name, over_graphql, over_sql in cases:
            graphql_ms, sql_ms = await _time_side_by_side(samples, over_graphql, over_sql)
            results.append(Latency(name, graphql_ms, sql_ms))
    finally:
        await client.close()
    await pool.close()
    return results


def run(gateway_url: str, database_url: str, token: str, samples: int) -> list[Latency]:
    return asyncio.run(measure(gateway_url, database_url, token, samples))


def main() -> int:
    """Against a running `make up`: DATA_DIR [SAMPLES]."""
    import os

    from servicekit.devissuer import mint

    data_dir = Path(sys.argv[1])
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    env = dict(line.split("=", 1) for line in (data_dir / "stack.env").read_text().split())
    port = os.environ.get("GATEWAY_PORT", "8000")
    token = mint(data_dir / "dev-issuer", role="city-admin", unit=None)
    print(f"as of {dt.date.today()}, {samples} samples each")
    print("| query | GraphQL p50 | GraphQL p99 | raw SQL p50 | raw SQL p99 | ratio (p50) |")
    print("|---|---|---|---|---|---|")
    for latency in run(f"http://127.0.0.1:{port}", env["DATABASE_URL"], token, samples):
        g50, s50 = statistics.median(latency.graphql_ms), statistics.median(latency.sql_ms)
        print(f"| {latency.name} | {g50:.1f} ms | {percentile(latency.graphql_ms, 0.99):.1f} ms | {s50:.1f} ms"
              f" | {percentile(latency.sql_ms, 0.99):.1f} ms | {s50 / g50:.2f} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
