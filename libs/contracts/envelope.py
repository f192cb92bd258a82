"""CloudEvents 1.0 binary-mode headers carried on every Kafka record (ARCHITECTURE.md §3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SPEC_VERSION = "1.0"
# A tuple, not `bytes | bytearray`: the union was built again for each of a record's fourteen headers (half of
# reading them, and a consumer reads every record's).
_BYTES = (bytes, bytearray)
CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: str
    subject: str
    time: str
    stream_version: int
    correlation_id: str
    causation_id: str
    actor: str
    command_id: str
    command_event_count: int
    traceparent: str | None = None
    tracestate: str | None = None

    def to_headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_subject", self.subject),
            ("ce_time", self.time),
            ("content-type", CONTENT_TYPE),
            ("ce_streamversion", str(self.stream_version)),
            ("ce_correlationid", self.correlation_id),
            ("ce_causationid", self.causation_id),
            ("ce_actor", self.actor),
            ("ce_commandid", self.command_id),
            ("ce_commandeventcount", str(self.command_event_count)),
        ]
        if self.traceparent:
            headers.append(("traceparent", self.traceparent))
        if self.tracestate:
            headers.append(("tracestate", self.tracestate))
        return [(k, v.encode()) for k, v in headers]

    @classmethod
    def from_headers(cls, headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes]) -> Envelope:
        items = headers.items() if isinstance(headers, Mapping) else headers
        h = {k: (v.decode() if isinstance(v, _BYTES) else str(v)) for k, v in items}
        try:
            return cls(
                id=h["ce_id"],
                source=h["ce_source"],
                type=h["ce_type"],
                subject=h["ce_subject"],
                time=h["ce_time"],
                stream_version=int(h["ce_streamversion"]),
                correlation_id=h.get("ce_correlationid", h["ce_id"]),
                causation_id=h.get("ce_causationid", h["ce_id"]),
                actor=h.get("ce_actor", "unknown"),
                command_id=h.get("ce_commandid", h["ce_id"]),
                command_event_count=int(h.get("ce_commandeventcount", "1")),
                traceparent=h.get("traceparent"),
                tracestate=h.get("tracestate"),
            )
        except KeyError as missing:
            raise ValueError(f"CloudEvents header {missing.args[0]} is missing") from None
