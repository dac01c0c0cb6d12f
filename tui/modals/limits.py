"""Edit a directive's circuit-breaker limits (then the screen resumes it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label, Static

from engine.models import Directive, Limits
from tui.modals.dialog import Dialog
from tui.widgets.budgets import tripped_breaker
from tui.widgets.looks import show_error


@dataclass(frozen=True)
class LimitField:
    name: str  # the Limits field
    label: str
    kind: type  # float or int
    optional: bool  # "none" means no limit


# Every limit `directive-tui limits` sets (tui/cli/limits.py LIMIT_OPTIONS),
# in its order, named in the words of its help ("replans", "steps running
# at once"; the new-directive form says "Max replans" too).
LIMIT_FIELDS: tuple[LimitField, ...] = (
    LimitField("max_cost_usd", "Max cost (USD)", float, True),
    LimitField("max_wall_time_minutes", "Max wall time (minutes)", float, True),
    LimitField("max_rework_cycles", "Max rework cycles", int, False),
    LimitField("max_chain_regenerations", "Max replans", int, False),
    LimitField("max_parallel_steps", "Max steps at once", int, False),
    LimitField("max_failed_steps", "Max failed steps", int, False),
)
NO_LIMIT = {"none", "off", "no", "-", "false", "inf", "infinity"}  # as `limits` takes it


def shown(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def parse_limit(field: LimitField, text: str) -> Any:
    """The typed value of one field, or ValueError with a message naming it."""
    text = text.strip()
    if field.optional and text.lower() in NO_LIMIT:
        return None
    try:
        return field.kind(text)
    except ValueError:
        kind = "a number" if field.kind is float else "a whole number"
        extra = ' or "none"' if field.optional else ""
        raise ValueError(f"{field.label}: {text!r} is not {kind}{extra}") from None


# pydantic's bound errors in a person's words: the bound, with thousands
# separators (`at most 525,600`, where pydantic says `less than or equal to 525600`).
BOUND_WORDS = {
    "greater_than": ("gt", "more than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than_equal": ("le", "at most"),
}


def bound_problem(err: Any, field: LimitField | None) -> str:
    if err["type"] not in BOUND_WORDS:
        return str(err["msg"])
    key, words = BOUND_WORDS[err["type"]]
    bound = err["ctx"][key]
    shown = f"{bound:,.0f}" if float(bound).is_integer() else f"{bound:,g}"
    off = ', or "none"' if field and field.optional and key == "le" else ""
    return f"{words} {shown}{off}"


def limit_changes(current: Limits, texts: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(changed fields, errors by field name): validated as a whole `Limits`.
    A field not in `texts` is left as it is."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in LIMIT_FIELDS:
        if field.name not in texts:  # not given: left as it is
            continue
        try:
            values[field.name] = parse_limit(field, texts[field.name])
        except ValueError as exc:
            errors[field.name] = str(exc)
    if errors:
        return {}, errors
    try:
        limits = Limits.model_validate({**current.model_dump(), **values})
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            field = next((f for f in LIMIT_FIELDS if f.name == name), None)
            label = field.label if field else name
            errors[name] = f"{label}: {bound_problem(err, field)}"
        return {}, errors
    # As validated: what is stored and what the event says.
    changes = {k: getattr(limits, k) for k in values if getattr(current, k) != getattr(limits, k)}
    return changes, {}


class LimitsModal(Dialog[dict[str, Any] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, directive: Directive, focus_field: str | None = None) -> None:
        super().__init__()
        self.directive = directive
        self.focus_field = focus_field

    def compose(self) -> ComposeResult:
        limits = self.directive.spec.limits
        with Vertical(classes="dialog", id="limits-dialog"):
            yield Static(f"Limits of {self.directive.title}", classes="dialog-title")
            for field in LIMIT_FIELDS:
                with Horizontal(classes="form-row"):
                    yield Label(field.label, classes="form-label")
                    yield Input(shown(getattr(limits, field.name)), id=f"limit-{field.name}")
                yield Static("", id=f"error-{field.name}", classes="error")
            with Horizontal(classes="dialog-buttons"):
                # Saving resumes only a directive a breaker paused (screens/base.py).
                save = "Save and resume" if tripped_breaker(self.directive) else "Save"
                yield Button(Text(f"{save} [enter]"), id="save", variant="primary")
                yield Button(Text("Cancel [esc]"), id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.focus_field:
            self.query_one(f"#limit-{self.focus_field}", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self._save()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._save()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _save(self) -> None:
        texts = {f.name: self.query_one(f"#limit-{f.name}", Input).value for f in LIMIT_FIELDS}
        changes, errors = limit_changes(self.directive.spec.limits, texts)
        for field in LIMIT_FIELDS:
            show_error(self.query_one(f"#error-{field.name}", Static), errors.get(field.name, ""))
        if not errors:
            self.dismiss(changes)
            return
        # The first mistake, in view (on a short screen the fields scroll
        # under the buttons) and with the cursor in its field.
        first = next(f for f in LIMIT_FIELDS if f.name in errors)
        field = self.query_one(f"#limit-{first.name}", Input)
        field.focus(scroll_visible=False)
        # Its row at the top, its error under it (with six fields at 80x24,
        # scrolling the error into view from the last field left it a row
        # under the dialog's border).
        dialog = self.query_one("#limits-dialog")
        row = field.parent

        def show_first() -> None:
            # A scroll still gliding to the field focused before (Textual
            # animates focus scrolling) would carry the view off it again.
            self.app.animator.force_stop_animation(dialog, "scroll_y")
            if row is not None:
                dialog.scroll_to_widget(row, top=True, animate=False)

        self.call_after_refresh(show_first)
