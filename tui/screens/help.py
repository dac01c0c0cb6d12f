"""`?`: every key of the screen it was opened on, the app's, and the
widgets' (the DAG's arrows), gathered from the bindings themselves so the
list can never drift from what the keys do.

Each section lists the keys our own classes bind: the focus, scrolling and
cursor keys every Textual screen, table and scroll view inherits are a line
under "Everywhere", not repeated per pane."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual.actions import parse
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.modals.dialog import Dialog

Section = tuple[str, list[tuple[str, str]]]

# Keys that are not bindings of ours but that a person needs to know.
GENERAL: list[tuple[str, str]] = [
    ("tab / shift+tab", "Move between panes"),
    ("arrows / pgup / pgdn", "Move or scroll in the focused pane (home / end: to its ends)"),
    ("ctrl+p", "Command palette: every action by name"),
]
# Textual's own binding for the palette: said above, in words.
SAID_IN_GENERAL = {"command_palette"}


def _ours(node: DOMNode) -> set[str]:
    """The actions the node's own classes bind (ours, not Textual's: its
    focus, copy and scrolling keys are said once, in GENERAL)."""
    actions: set[str] = set()
    for cls in type(node).__mro__:
        if cls.__module__.startswith("tui."):
            for b in cls.__dict__.get("BINDINGS", []):
                actions.add(b.action if isinstance(b, Binding) else b[1])
    return actions


def _keys_of(node: DOMNode, display: Callable[[Binding], str]) -> list[tuple[str, str]]:
    """(keys, description) per action that applies now (the node's
    `check_action`: `p` is listed as Pause or as Resume, Stop not on a
    stopped directive), in binding order; several keys bound to one action
    ("up,k") are shown together."""
    grouped: dict[str, tuple[list[str], str]] = {}
    ours = _ours(node)
    for bindings in node._bindings.key_to_bindings.values():  # noqa: SLF001
        for b in bindings:
            if not b.description or b.action in SAID_IN_GENERAL or not _applies(node, b.action):
                continue
            if b.action not in ours:
                continue
            keys, _ = grouped.setdefault(b.action, ([], b.description))
            shown = display(b)
            if shown not in keys:
                keys.append(shown)
    # One line per key and meaning: `G` is bound twice (shown in the footer
    # once the directive ended, and always working), and listed once.
    lines = [(" / ".join(keys), description) for keys, description in grouped.values()]
    return list(dict.fromkeys(lines))


def _applies(node: DOMNode, action: str) -> bool:
    _, name, parameters = parse(action)
    return node.check_action(name, parameters) is not False


def help_sections(screen: Screen[object]) -> list[Section]:
    """Sections for `screen`: its own keys, its widgets' (by class, once
    each, only ours), then the app's."""
    app = screen.app
    display = app.get_key_display
    sections: list[Section] = [("This screen", _keys_of(screen, display))]
    classes: set[type] = set()
    for widget in screen.query("*"):
        kind = type(widget)
        if kind in classes or not kind.__module__.startswith("tui."):
            continue
        classes.add(kind)
        keys = _keys_of(widget, display)
        if keys:
            sections.append((getattr(kind, "HELP_TITLE", kind.__name__), keys))
    sections.append(("Everywhere", [*_keys_of(app, display), *GENERAL]))
    return [s for s in sections if s[1]]


class HelpScreen(Dialog[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, sections: list[Section]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-dialog"):
            yield Static("Keys", classes="dialog-title")
            with VerticalScroll(id="help-body"):
                yield Static(self._table())
            yield Static("esc closes", classes="dialog-sub")
        yield Footer(compact=True)

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold", no_wrap=True)
        table.add_column()
        for title, keys in self.sections:
            table.add_row(Text(title, style="bold underline"), "")
            for key, description in keys:
                table.add_row(key, description)
            table.add_row("", "")
        return table

    def action_close(self) -> None:
        self.dismiss(None)
