"""Golden samples keep every published event version decoding; generated documents match the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contracts import docs
from contracts.codec import Catalogue, ContractDecodeError, to_json
from contracts.envelope import Envelope

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[2]
CASES = [(catalogue, name) for catalogue in docs.CATALOGUES.values() for name in catalogue.names()]


@pytest.mark.parametrize(("catalogue", "name"), CASES, ids=[n for _, n in CASES])
def test_every_event_type_has_a_golden_sample_that_decodes_and_round_trips(catalogue: Catalogue, name: str) -> None:
    sample_path = GOLDEN / f"{catalogue.source}_v1" / f"{name}.json"
    assert sample_path.exists(), f"add a golden sample for {name}"
    sample = json.loads(sample_path.read_text())
    encoded = to_json(catalogue.decode(name, sample))
    # Contracts change additively: an old sample still decodes, and nothing it said is lost.
    assert {key: encoded[key] for key in sample} == sample


def test_a_sample_missing_a_required_field_is_refused() -> None:
    from contracts import registry_v1

    sample = json.loads((GOLDEN / "registry_v1" / "OrganizationUnitEstablished.json").read_text())
    del sample["code"]
    with pytest.raises(ContractDecodeError, match="code"):
        registry_v1.CATALOGUE.decode("OrganizationUnitEstablished", sample)
    with pytest.raises(ContractDecodeError):
        registry_v1.CATALOGUE.decode("OrganizationUnitEstablished", {**sample, "code": "x", "kind": "galaxy"})


def test_cloudevents_headers_round_trip() -> None:
    envelope = Envelope(id="e", source="/party/registry", type="vn.party.registry.OrganizationUnitEstablished.v1",
                        subject="u", time="2026-01-01T00:00:00+00:00", stream_version=3, correlation_id="c",
                        causation_id="k", actor="a", command_id="m", command_event_count=2,
                        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    headers = envelope.to_headers()
    assert ("ce_specversion", b"1.0") in headers and ("content-type", b"application/json") in headers
    assert Envelope.from_headers(headers) == envelope
    assert Catalogue.parse_ce_type(envelope.type) == ("registry", "OrganizationUnitEstablished", 1)


def test_the_committed_documents_match_the_code() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "docs/export.py"), "--check"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
