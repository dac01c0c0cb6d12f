"""Counts for a piece of text, and a Markdown report of them."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Stats:
    lines: int
    words: int
    characters: int
    top_words: list[tuple[str, int]]

    def to_dict(self) -> dict:
        return asdict(self)


def words_of(text: str) -> list[str]:
    """Lower-cased words, punctuation at either end stripped."""
    stripped = (w.strip(".,;:!?()[]{}\"'`*#-").lower() for w in text.split())
    return [w for w in stripped if w]


def count(text: str, top: int = 5) -> Stats:
    words = words_of(text)
    ranked = sorted(Counter(words).items(), key=lambda item: (-item[1], item[0]))
    return Stats(
        lines=len(text.splitlines()),
        words=len(words),
        characters=len(text),
        top_words=ranked[:top],
    )


def report(name: str, stats: dict) -> str:
    rows = "\n".join(f"| {word} | {n} |" for word, n in stats["top_words"])
    return (
        f"# {name}\n\n"
        f"{stats['lines']} lines, {stats['words']} words, {stats['characters']} characters.\n\n"
        "| word | count |\n|------|-------|\n"
        f"{rows}\n"
    )
