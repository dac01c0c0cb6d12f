"""One line on top of the directive screen: status, title, progress."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from engine.models import Directive, Step, StepStatus
from tui.presentation import DIRECTIVE_LOOK
from tui.widgets.looks import LOOK_CLASSES, Looks

DONE = {StepStatus.PASSED, StepStatus.SKIPPED}


class DirectiveHeader(Looks, Static):
    COMPONENT_CLASSES = LOOK_CLASSES
    _shown: Text | None = None
    _args: tuple[Directive, Sequence[Step], int, str] | None = None

    def on_mount(self) -> None:
        self.follow_theme()

    def restyle(self) -> None:
        """A new theme: the line again, in its colours (the title's stayed
        in the old theme's, unreadable on a light one)."""
        if self._args is not None:
            self._shown = None
            self.show(*self._args)

    def show(self, d: Directive, steps: Sequence[Step], waiting: int, note: str = "") -> None:
        """`note`: who runs the engine, when this app only watches."""
        self._args = (d, steps, waiting, note)
        look = DIRECTIVE_LOOK[d.status]
        done = sum(1 for s in steps if s.status in DONE)
        skipped = sum(1 for s in steps if s.status is StepStatus.SKIPPED)
        # Skipped steps count as done (their dependents ran): say how many.
        progress = f"  {done}/{len(steps)} steps" if steps else "  no chain yet"
        if skipped:
            progress += f" ({skipped} skipped)"
        line = Text.assemble(
            (f" {look.icon} {look.label} ", self.look(f"look--{look.css}")),
            " ",
            (d.title, self.look("look--title")),
            no_wrap=True,
            overflow="ellipsis",
        )
        if waiting:  # before the rest: what a person is needed for stays on a narrow screen
            line.append(f"  ⚑ {waiting} awaiting you", self.look("look--awaiting"))
        if note:  # next: keys sent from here are carried out by another process
            line.append(f"  {note}", self.look("look--key"))
        line.append(progress, self.look("look--muted"))
        line.append(f"  {d.spec.autonomy.value} · {d.id}", self.look("look--muted"))
        if line != self._shown:  # shown once per event batch: most change nothing
            self._shown = line
            # Always one line (app.tcss): a new text never needs the layout
            # of the whole screen that `update` does by default.
            self.update(line, layout=False)
