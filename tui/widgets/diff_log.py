"""A scrollable, coloured `git diff`: added lines green, removed red, hunk
headers cyan, file headers bold. Long diffs are cut with a note saying how
to see the rest; the colours are component classes styled in app.tcss."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import RichLog

from tui.widgets.looks import LOOK_CLASSES, Looks

DIFF_MAX_LINES = 3_000  # lines of one diff shown before the cut
DIFF_MAX_LINE_CHARS = 400  # a minified file's one line does not fill the screen
DIFF_CLASSES = {"diff--added", "diff--removed", "diff--hunk", "diff--file", "diff--heading"}


class DiffLog(Looks, RichLog):
    COMPONENT_CLASSES = LOOK_CLASSES | DIFF_CLASSES

    def __init__(self, **kwargs: object) -> None:
        super().__init__(wrap=False, markup=False, auto_scroll=False, **kwargs)  # type: ignore[arg-type]
        self.shown: list[str] = []  # plain text of what was written (for tests and search)

    def add(self, text: Text) -> None:
        self.shown.append(text.plain)
        self.write(text, scroll_end=False)

    def heading(self, text: str, detail: str = "") -> None:
        line = Text(text, style=self.look("diff--heading"), no_wrap=True, overflow="ellipsis")
        if detail:
            line.append(f"  {detail}", self.look("look--muted"))
        self.add(line)

    def note(self, text: str, css: str = "look--muted") -> None:
        self.add(Text(text, style=self.look(css)))

    def stat(self, stat: str) -> None:
        if stat.strip():
            self.add(stat_text(self, stat))

    def diff(self, diff: str, *, more: str = "", max_lines: int = DIFF_MAX_LINES) -> None:
        """Write `diff` coloured; past `max_lines`, a note with `more` (how
        to see the whole of it)."""
        lines = diff.splitlines()
        if not lines:
            self.note("(no changes)")
            return
        self.add(colour_diff(self, lines[:max_lines]))
        if len(lines) > max_lines:
            cut = len(lines) - max_lines
            self.note(
                f"… {cut} more lines not shown ({len(lines)} in all)"
                + (f"; the whole diff: {more}" if more else ""),
                "sev--warning",
            )


def line_css(line: str) -> str | None:
    """The component class of one diff line, or None for context lines."""
    if line.startswith(("+++", "---", "diff --git", "index ", "new file", "deleted file")):
        return "diff--file"
    if line.startswith("@@"):
        return "diff--hunk"
    if line.startswith("+"):
        return "diff--added"
    if line.startswith("-"):
        return "diff--removed"
    return None


def colour_diff(widget: Looks, lines: list[str]) -> Text:
    """One Text for many lines (one write, not one per line)."""
    styles: dict[str, Style] = {}
    out = Text(no_wrap=True, overflow="ellipsis")
    for number, line in enumerate(lines):
        if number:
            out.append("\n")
        if len(line) > DIFF_MAX_LINE_CHARS:
            line = line[:DIFF_MAX_LINE_CHARS] + " …"
        css = line_css(line)
        if css is None:
            out.append(line)
        else:
            style = styles.get(css)
            if style is None:
                style = styles[css] = widget.look(css)
            out.append(line, style)
    return out


def stat_text(widget: Looks, stat: str) -> Text:
    """`git diff --stat`: the +++ and --- bars coloured."""
    out = Text(no_wrap=True, overflow="ellipsis")
    added, removed = widget.look("diff--added"), widget.look("diff--removed")
    for number, line in enumerate(stat.splitlines()):
        if number:
            out.append("\n")
        name, bar, graph = line.rpartition("|")
        if not bar:
            out.append(line, widget.look("look--muted"))
            continue
        out.append(name + bar)
        for ch in graph:
            out.append(ch, added if ch == "+" else removed if ch == "-" else Style())
    return out
