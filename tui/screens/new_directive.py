"""Create a directive: from a TOML file, or from a short form.

The form's planners (template, anthropic) describe steps in words, with no
command and no scripted edits, so it offers the executors that work from
words: an agent (the Anthropic API) or Claude Code. Shell and scripted steps
go in a directive file, which can say what each step runs.

Nothing is saved until the input is valid; each problem is shown under the
field it belongs to (or under the file path, as the file loader words it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Footer, Input, Label, Select, Static

from engine.models import Autonomy, DirectiveSpec, ExecutorKind, Limits, PlannerKind
from tui.applicable import missing_api_key
from tui.modals.dialog import Dialog
from tui.modals.limits import LimitField, parse_limit
from tui.widgets.looks import show_error


@dataclass(frozen=True)
class FormField:
    name: str  # the DirectiveSpec field (or limits.<name>)
    label: str
    placeholder: str = ""


TEXT_FIELDS: tuple[FormField, ...] = (
    FormField("title", "Title", "Add a --json flag"),
    FormField("goal", "Goal", "What should be true when it is done"),
    FormField("repo", "Repository", "path to the git repository"),
)
CHOICE_FIELDS: dict[str, tuple[str, list[str], str]] = {
    "autonomy": ("Autonomy", [a.value for a in Autonomy], Autonomy.GUARDRAILS.value),
    "planner": (
        "Planner",
        [p.value for p in PlannerKind if p is not PlannerKind.EXPLICIT],
        "template",
    ),
    "executor": (
        "Executor",
        [ExecutorKind.AGENT.value, ExecutorKind.CLAUDE_CODE.value],
        ExecutorKind.AGENT.value,
    ),
}
EXECUTOR_NOTE = (
    "An agent carries out the planned steps. Steps that run shell commands or "
    "scripted edits are written in a directive file: give its path in From file."
)
LIMIT_FORM: tuple[LimitField, ...] = (
    LimitField("max_cost_usd", "Max cost (USD)", float, True),
    LimitField("max_wall_time_minutes", "Max minutes", float, True),
    LimitField("max_rework_cycles", "Max rework cycles", int, False),
    LimitField("max_chain_regenerations", "Max replans", int, False),
)
DEFAULT_LIMITS = Limits()


def spec_from_form(
    texts: dict[str, str], choices: dict[str, str], base_dir: Path
) -> tuple[DirectiveSpec | None, dict[str, str]]:
    """(spec, {}) or (None, errors by field name). The repository must be
    an existing folder: a directive for a missing one could never run."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {k: texts.get(k, "").strip() for k in ("title", "goal")}
    data.update(choices)
    repo_text = texts.get("repo", "").strip()
    if not repo_text:
        errors["repo"] = "Repository: required"
    else:
        repo = (base_dir / Path(repo_text).expanduser()).resolve()
        if not repo.is_dir():
            errors["repo"] = f"Repository: no folder at {repo}"
        data["repo"] = repo
    limits: dict[str, Any] = {}
    for field in LIMIT_FORM:
        text = texts.get(field.name, "").strip()
        if not text:
            continue
        try:
            limits[field.name] = parse_limit(field, text)
        except ValueError as exc:
            errors[field.name] = str(exc)
    data["limits"] = {**DEFAULT_LIMITS.model_dump(), **limits}
    try:
        spec = DirectiveSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            name = loc[-1] if loc and loc[0] == "limits" else (loc[0] if loc else "title")
            label = _label(name)
            errors.setdefault(name, f"{label}: {_message(err)}")
        return None, errors
    return (None, errors) if errors else (spec, {})


def _label(name: str) -> str:
    for f in TEXT_FIELDS:
        if f.name == name:
            return f.label
    for f in LIMIT_FORM:
        if f.name == name:
            return f.label
    return CHOICE_FIELDS.get(name, (name,))[0]


def _message(err: Any) -> str:
    if err["type"] == "string_too_short":
        return "required"
    return str(err["msg"])


class NewDirectiveScreen(Dialog[str | None]):
    """Dismissed with the new directive's id, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "create(False)", "Create"),
        Binding("ctrl+r", "create(True)", "Create and start"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="new-dialog"):
            yield Static("New directive", classes="dialog-title")
            with VerticalScroll(id="new-form"):
                with Horizontal(classes="form-row"):
                    yield Label("From file", classes="form-label")
                    yield Input(placeholder="directive.toml (or fill in the form)", id="field-file")
                yield Static("", id="error-file", classes="error")
                for f in TEXT_FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(f.label, classes="form-label")
                        yield Input(placeholder=f.placeholder, id=f"field-{f.name}")
                    yield Static("", id=f"error-{f.name}", classes="error")
                for name, (label, options, default) in CHOICE_FIELDS.items():
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="form-label")
                        yield Select(
                            [(o, o) for o in options],
                            value=default,
                            allow_blank=False,
                            id=f"field-{name}",
                        )
                    if name == "executor":
                        yield Static(EXECUTOR_NOTE, classes="form-note")
                        yield Static("", id="error-executor", classes="error")
                for f in LIMIT_FORM:
                    with Horizontal(classes="form-row"):
                        yield Label(f.label, classes="form-label")
                        default = getattr(DEFAULT_LIMITS, f.name)
                        yield Input(placeholder=f"{default:g}", id=f"field-{f.name}")
                    yield Static("", id=f"error-{f.name}", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(Text("Create [ctrl+s]"), id="create", variant="primary")
                yield Button(
                    Text("Create and start [ctrl+r]"), id="create-start", variant="success"
                )
                yield Button(Text("Cancel [esc]"), id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#field-file", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.run_worker(self.create(event.button.id == "create-start"), exclusive=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.run_worker(self.create(False), exclusive=True)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_create(self, start: bool) -> None:
        self.run_worker(self.create(start), exclusive=True)

    def _show_errors(self, errors: dict[str, str]) -> None:
        shown: list[Static] = []
        for err in self.query(".error").results(Static):
            name = (err.id or "").removeprefix("error-")
            show_error(err, errors.get(name, ""))
            if name in errors:
                shown.append(err)
        if shown:  # the form scrolls: a problem below the fold was never seen
            self.call_after_refresh(shown[0].scroll_visible, animate=False)

    def _spec(self) -> tuple[DirectiveSpec | None, dict[str, str]]:
        from engine.directive_file import DirectiveFileError, load_directive_file

        path = self.query_one("#field-file", Input).value.strip()
        if path:
            try:
                return load_directive_file(Path(path).expanduser()), {}
            except DirectiveFileError as exc:
                return None, {"file": str(exc)}
            except OSError as exc:
                return None, {"file": f"{path}: {exc.strerror or exc}"}
        texts = {
            name: self.query_one(f"#field-{name}", Input).value
            for name in [*(f.name for f in TEXT_FIELDS), *(f.name for f in LIMIT_FORM)]
        }
        choices = {
            name: str(self.query_one(f"#field-{name}", Select).value) for name in CHOICE_FIELDS
        }
        return spec_from_form(texts, choices, Path.cwd())

    async def create(self, start: bool) -> None:
        spec, errors = self._spec()
        engine = self.app.engine  # type: ignore[attr-defined]
        if spec is not None and start:  # as `directive-tui run`: refused before it is saved
            missing = missing_api_key(engine.services, spec, spec.title)
            if missing is not None:
                where = "file" if self.query_one("#field-file", Input).value.strip() else "executor"
                errors = {where: f"{missing}. Create [ctrl+s] saves it without starting it."}
                spec = None
        self._show_errors(errors)
        if spec is None:
            return
        directive = await engine.create_directive(spec)
        self.notify(f"created: {directive.title}")
        if start:
            await self.app.start_or_resume(directive, starting=True)  # type: ignore[attr-defined]
        self.dismiss(directive.id)
