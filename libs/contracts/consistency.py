"""Consistency tokens: a command's id and how many events it wrote, so a reader can wait for all of them."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class ConsistencyToken:
    command_id: uuid.UUID
    event_count: int

    def encode(self) -> str:
        raw = f"{self.command_id}:{self.event_count}".encode()
        return "ct1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> ConsistencyToken:
        if not token.startswith("ct1."):
            raise ValueError("not a consistency token")
        body = token[4:]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
            command, count = raw.split(":")
            return cls(uuid.UUID(command), int(count))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("not a consistency token") from exc
