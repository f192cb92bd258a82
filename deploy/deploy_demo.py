"""The demo data `make up` loads on first start, through the registry's own HTTP API."""

from __future__ import annotations

from pathlib import Path

import httpx

from servicekit.devissuer import mint

SKELETON_UNITS = [
    ("HN", "Đảng bộ Thành phố Hà Nội", "city_committee", None, "1930-02-03"),
    ("00004", "Đảng bộ phường Ba Đình", "commune_committee", "HN", "2025-07-01"),
    ("00008", "Đảng bộ phường Ngọc Hà", "commune_committee", "HN", "2025-07-01"),
    ("00025", "Đảng bộ phường Giảng Võ", "commune_committee", "HN", "2025-07-01"),
    ("KCQD", "Đảng bộ các cơ quan Đảng Thành phố", "sector_committee", "HN", "2025-07-01"),
]


def load_skeleton_demo(registry_url: str, data_dir: Path) -> None:
    token = mint(data_dir / "dev-issuer", role="city-admin", unit=None, subject="demo-loader")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=registry_url, headers=headers, timeout=30) as client:
        for index, (code, name, kind, parent, established_on) in enumerate(SKELETON_UNITS, start=1):
            body = {"code": code, "name": name, "kind": kind, "established_on": established_on,
                    "decision_ref": "demo"}
            if parent:
                body["parent_code"] = parent
            response = client.post("/units", json=body, headers={"Idempotency-Key": f"demo-unit-{code}"})
            if response.status_code not in (200, 201, 409):
                raise RuntimeError(f"unit {code}: {response.status_code} {response.text}")
            print(f"demo: unit {index}/{len(SKELETON_UNITS)} {code}", flush=True)
