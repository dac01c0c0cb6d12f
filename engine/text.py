"""Text for people: cut to fit a record (the cut is marked, so a path or
a sentence cut short is never read as whole), and counted nouns."""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """`text`, or its first `limit - 1` characters and "…" when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plural(count: int, noun: str) -> str:
    """`1 commit`, `2 commits`, `0 commits`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
