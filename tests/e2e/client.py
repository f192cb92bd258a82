"""A thin client for the running system: REST commands, GraphQL queries, eventual reads with a deadline."""

from __future__ import annotations

import time
from typing import Any

import httpx


class Client:
    def __init__(self, *, registry_url: str, gateway_url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.registry = httpx.Client(base_url=registry_url, headers=headers, timeout=30)
        self.gateway = httpx.Client(base_url=gateway_url, headers=headers, timeout=30)

    def establish_unit(self, **body: Any) -> httpx.Response:
        return self.registry.post("/units", json=body)

    def graphql(self, query: str, **variables: Any) -> httpx.Response:
        return self.gateway.post("/graphql", json={"query": query, "variables": variables})

    def eventually(self, query: str, *, until: Any, timeout_s: float = 30, **variables: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.graphql(query, **variables)
            body: dict[str, Any] = response.json()
            if response.status_code == 200 and until(body.get("data") or {}):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"not visible after {timeout_s}s: {body}")
            time.sleep(0.05)
