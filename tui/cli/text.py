"""The commands' printed text: one line per entry, counted nouns, cut titles."""

from __future__ import annotations


def one_line(text: str) -> str:
    """tui.format's, imported when first needed (it brings in rich, and
    `--help` must not wait for it)."""
    from tui.format import one_line as made_one_line

    return made_one_line(text)


def shorten(text: str, width: int) -> str:
    """`text` on one line of at most `width` characters, cut with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"
