"""What handlers need to read beyond the aggregates they load: the current tree and who sits where.

The PostgreSQL implementation (adapters/read_views.py) keeps these tables in the same transaction as the
events (an inline projection), so a decision never reads a stale tree.
"""

from __future__ import annotations

from typing import Protocol


class RegistryViews(Protocol):
    def active_children(self, unit_id: str) -> list[str]: ...

    def active_members(self, unit_id: str) -> list[str]: ...

    def ancestors(self, unit_id: str) -> list[str]:
        """Parent, grandparent, ... up to the root (nearest first)."""
        ...

    def ancestor_codes(self, unit_id: str) -> list[str]:
        """Codes of the unit itself and every ancestor."""
        ...

    def next_card_number(self, card_code: str) -> str: ...

    def next_card_numbers(self, count: int, card_code: str) -> list[str]:
        """Candidates from the allocated range, in one round trip (a bulk exchange of cards)."""
        ...
