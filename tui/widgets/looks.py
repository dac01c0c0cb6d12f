"""A mixin that gives a widget the shared status colours as Rich styles.

The colours are component classes (`look--running`, `level--green`,
`sev--error` ...) styled once in `app.tcss`, so every widget that draws a
status reads the same palette and a theme change reaches all of them.
"""

from __future__ import annotations

from rich.style import Style
from textual.widget import Widget

from tui.presentation import DIRECTIVE_LOOK, LEVEL_CSS, SEVERITY_CSS, STEP_LOOK

LOOK_CLASSES: set[str] = {
    *(f"look--{look.css}" for look in (*STEP_LOOK.values(), *DIRECTIVE_LOOK.values())),
    *(f"level--{css}" for css in LEVEL_CSS.values()),
    *(f"sev--{css}" for css in SEVERITY_CSS.values()),
    "look--muted",
    "look--key",
    "look--title",
}


class Looks:
    """Mixin, listed before the widget class (Textual follows the first
    base for CSS); the widget declares `COMPONENT_CLASSES = LOOK_CLASSES`."""

    def look(self, name: str) -> Style:
        cache = self.__dict__.setdefault("_look_cache", {})
        style = cache.get(name)
        if style is None:
            widget: Widget = self  # type: ignore[assignment]
            style = cache[name] = widget.get_component_rich_style(name, partial=True)
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()  # type: ignore[misc]
        self.__dict__.get("_look_cache", {}).clear()

    def follow_theme(self) -> None:
        """Call once mounted: `restyle` runs after each theme change. A
        widget that keeps what it drew (a Text built with the old theme's
        styles) kept the old colours until it was next given something to
        show; the styles above are read again by then."""
        widget: Widget = self  # type: ignore[assignment]
        widget.app.theme_changed_signal.subscribe(widget, lambda _theme: self.restyle())

    def restyle(self) -> None:
        """Draw what is shown again, with the current theme's styles."""


def show_error(widget: object, text: str) -> None:
    """Fill an inline `.error` line, shown only while it says something."""
    widget.update(text)  # type: ignore[attr-defined]
    widget.display = bool(text)  # type: ignore[attr-defined]
