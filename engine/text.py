"""Text cut to fit a record: the cut is marked, so a path or a sentence
cut short is never read as whole."""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """`text`, or its first `limit - 1` characters and "…" when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
