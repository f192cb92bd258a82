"""Writes the public documents generated from code: event JSON Schemas, AsyncAPI, OpenAPI, GraphQL SDL.

`python docs/export.py` rewrites them; `--check` fails when a committed document is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def documents() -> dict[Path, str]:
    from contracts import docs
    from gateway.api.schema import schema
    from registry.main import openapi_document

    def dump(value: Any) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"

    out = {ROOT / "docs/events/asyncapi.json": dump(docs.asyncapi())}
    for name, schema_doc in docs.json_schemas().items():
        out[ROOT / "docs/events/schemas" / name] = dump(schema_doc)
    out[ROOT / "docs/openapi/registry.json"] = dump(openapi_document())
    out[ROOT / "services/gateway/schema.graphql"] = schema.as_str() + "\n"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for path, text in documents().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run `make docs`):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
