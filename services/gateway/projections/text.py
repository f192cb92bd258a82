"""Accent-insensitive text for search: "Nguyễn Văn An" and "nguyen van an" fold to the same string."""

from __future__ import annotations

import functools
import unicodedata


@functools.lru_cache(maxsize=65536)
def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return " ".join("".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower().split())
