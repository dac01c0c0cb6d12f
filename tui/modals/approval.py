"""The confirm modal behind `a`, `d` and `c`: the evaluation that asked for
a person (score, level, verifier results, flags), and the answer.

A step review confirms the one decision the key chose (a comment is
required to request changes: it becomes the rework instructions). An
escalation of a blocked step offers its own answers: retry, skip, replan, stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Footer, Input, Static

from engine.flags import flag_text
from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    Evaluation,
    Step,
    StepRun,
    StepStatus,
)
from engine.text import plural
from tui.modals.dialog import Dialog
from tui.modals.event_text import error_in_full
from tui.presentation import LEVEL_CSS, stop_question
from tui.widgets.looks import LOOK_CLASSES, Looks, show_error
from tui.widgets.step_detail import indented, verifier_lines

FILES_SHOWN = 12  # changed files listed by name; the rest are counted

D = ApprovalDecision


@dataclass(frozen=True)
class Answer:
    decision: ApprovalDecision
    comment: str | None = None


@dataclass(frozen=True)
class Choice:
    decision: ApprovalDecision
    label: str
    key: str
    variant: str


CHOICES: dict[ApprovalDecision, Choice] = {
    c.decision: c
    for c in (
        Choice(D.APPROVE, "Approve", "y", "success"),
        Choice(D.DENY, "Deny", "enter", "error"),  # typed in its reason field
        Choice(D.REQUEST_CHANGES, "Request changes", "enter", "warning"),
        Choice(D.RETRY, "Retry", "r", "primary"),
        Choice(D.SKIP, "Skip", "s", "default"),
        Choice(D.REPLAN, "Replan", "p", "warning"),
        Choice(D.STOP, "Stop", "x", "error"),
    )
}

TITLES = {
    D.APPROVE: "Approve {what}?",
    D.DENY: "Deny {what}?",
    D.REQUEST_CHANGES: "Request changes to {what}",
}
COMMENT_HINT = {
    D.REQUEST_CHANGES: "what to change (required: becomes the rework instructions)",
    D.DENY: "why (optional)",
}
# A plan has no rework: the comment is what the new plan is asked for.
PLAN_CHANGES_HINT = "what to change in the plan (required: the planner is asked for it)"
# An escalation's note has the focus, so its answers' keys are typed in it
# until Enter leads to the buttons: pressed at once, `r` wrote "r" in the
# note, under a button that says "Retry [r]". A retry hands the note to the
# step's next attempt (its rework instructions); 62 columns fit at 80.
ESCALATION_HINT = "note for the retried step (optional); enter, then {keys}"


def button_width(label: Text) -> int:
    """The cells a button takes to show `label` on one line: its text, the
    padding of a cell each side and the border's (`tall`) column each side."""
    return cell_len(label.plain) + 4


class EvaluationView(Looks, Static):
    COMPONENT_CLASSES = LOOK_CLASSES

    """Score, level, flags and verifier results of one evaluation. Its
    summary is left out when the text above (`said`: the request's own
    summary, which quotes it) has already said it."""

    def __init__(self, evaluation: Evaluation | None, said: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.evaluation = evaluation
        self.said = said

    def on_mount(self) -> None:
        self.update(self._render_evaluation())

    def _render_evaluation(self) -> RenderableType:
        ev = self.evaluation
        if ev is None:
            return Text("No evaluation behind this request.", style=self.look("look--muted"))
        head = Text("Evaluation  ")
        head.append(f"{ev.score:.2f} {ev.level.value}", self.look(f"level--{LEVEL_CSS[ev.level]}"))
        head.append("  passed" if ev.passed else "  not passed", self.look("look--muted"))
        parts: list[RenderableType] = [head]
        if ev.flags:
            parts.append(
                Text("⚠ " + ", ".join(map(flag_text, ev.flags)), style=self.look("sev--warning"))
            )
        if ev.summary and ev.summary not in self.said:
            parts.append(Text(ev.summary))
        parts.extend(verifier_lines(self, ev, tail_lines=6))
        return Group(*parts)


class ApprovalModal(Dialog[Answer | None]):
    BINDINGS = [
        Binding("y", "choose('y')", "Confirm"),
        Binding("r", "choose('r')", "Retry"),
        Binding("s", "choose('s')", "Skip"),
        Binding("p", "choose('p')", "Replan"),
        Binding("x", "choose('x')", "Stop"),
        Binding("D", "diff", "Diff"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        approval: ApprovalRequest,
        *,
        intent: ApprovalDecision,
        evaluation: Evaluation | None = None,
        step: Step | None = None,
        directive_title: str = "",
        runs: list[StepRun] | None = None,
        plan: list[Step] | None = None,
    ) -> None:
        super().__init__()
        self.approval = approval
        self.evaluation = evaluation
        self.step = step
        self.directive_title = directive_title
        self.runs = runs or []
        self.plan = plan or []
        # The attempt behind the request: the one evaluated, else the latest.
        wanted = evaluation.run_id if evaluation else None
        self.run = next((r for r in self.runs if r.id == wanted), None) or (
            max(self.runs, key=lambda r: r.attempt) if self.runs else None
        )
        escalation = approval.kind is ApprovalKind.ESCALATION
        self.choices = [CHOICES[o] for o in approval.options] if escalation else [CHOICES[intent]]
        self.intent = None if escalation else intent

    @property
    def what(self) -> str:
        if self.approval.kind is ApprovalKind.PLAN:
            return "the plan"
        return f"step {self.step.name}" if self.step else "this step"

    @property
    def comment_hint(self) -> str:
        if self.intent is None:
            *first, last = [c.key for c in self.choices]
            return ESCALATION_HINT.format(keys=f"{', '.join(first)} or {last}" if first else last)
        if self.approval.kind is ApprovalKind.PLAN and self.intent is D.REQUEST_CHANGES:
            return PLAN_CHANGES_HINT
        return COMMENT_HINT[self.intent]

    def compose(self) -> ComposeResult:
        a = self.approval
        if self.intent is None:
            failed = self.step is not None and self.step.status is StepStatus.FAILED
            title = f"{self.what.capitalize()} {'failed' if failed else 'is blocked'}: what now?"
        else:
            title = TITLES[self.intent].format(what=self.what)
        escalation = "dialog -escalation" if self.intent is None else "dialog"
        with Vertical(classes=escalation, id="approval-dialog"):
            yield Static(Text(title), classes="dialog-title")
            yield Static(Text(f"{self.directive_title} · approval {a.id}"), classes="dialog-sub")
            with VerticalScroll(id="approval-body"):
                yield Static(Text(a.summary), id="approval-summary")
                if escalation := self._error_in_full():
                    yield Static(Text(escalation), id="approval-error-in-full")
                if self.plan:
                    yield Static(self._plan_text(), id="approval-plan")
                if self.run is not None:
                    yield Static(self._files_text(), id="approval-files")
                # A plan has no evaluation: "No evaluation behind this
                # request" said what nobody would expect of one.
                if a.kind is not ApprovalKind.PLAN:
                    yield EvaluationView(self.evaluation, a.summary, id="approval-evaluation")
            # The answer (note, error, buttons) is docked at the foot of the
            # dialog (app.tcss): on a short screen what is above scrolls.
            with Vertical(id="approval-answer"):
                if self._has_note:
                    yield Input(placeholder=self.comment_hint, id="comment")
                yield Static("", id="approval-error", classes="error")
                with Horizontal(classes="dialog-buttons"):
                    for c in self.choices:
                        button = Button(
                            self._label(c, note_focused=self._has_note),
                            id=f"choice-{c.decision.value}",
                            variant=c.variant,  # type: ignore[arg-type]
                        )
                        # A button keeps the width of its first label (a
                        # new label does not lay it out again): "Retry" made
                        # "Retry [r]" wrap onto a hidden second line. Each is
                        # as wide as its label with its key from the start.
                        button.styles.width = button_width(self._label(c, note_focused=False))
                        yield button
                    yield Button(Text("Cancel [esc]"), id="cancel")
        yield Footer(compact=True)

    def _error_in_full(self) -> str:
        """An escalation's summary is cut at 300 characters, losing the end
        of a long error (where the attempt's files are kept): the attempt's
        error whole, as `enter` on the event in the log shows it."""
        if self.intent is not None:
            return ""
        return error_in_full(self.runs, self.approval.created_at, self.approval.summary)

    def _files_text(self) -> RenderableType:
        """What the attempt changed, so an answer is given knowing it (the
        diff is a key away)."""
        run = self.run
        assert run is not None
        files = run.modified_files
        count = plural(len(files), "file") if files else "no file"
        head = Text.assemble((f"Attempt #{run.attempt} changed {count}", "bold"))
        if self.has_diff:
            # With a note field the keys are typed in it: tab leads out of it.
            head.append("  (D: the diff" + (", from outside the note)" if self._has_note else ")"))
        names = files[:FILES_SHOWN]
        if len(files) > FILES_SHOWN:
            names.append(f"… and {len(files) - FILES_SHOWN} more (D shows them all)")
        return Group(head, indented(Text("\n".join(names)), 2)) if names else head

    def _plan_text(self) -> RenderableType:
        """Each step of the plan, with the command it will run: a shell
        step's command is what an approval lets loose."""
        parts: list[RenderableType] = [Text.assemble(("Steps", "bold"))]
        for step in self.plan:
            after = step.spec.depends_on
            deps = f"  after {', '.join(after)}" if after else ""
            line = Text.assemble((step.name, "bold"), f"  {step.spec.type}{deps}")
            if step.spec.command:
                line.append(f"\n  $ {step.spec.command}")
            parts.append(indented(line, 2))
        return Group(*parts)

    @property
    def has_diff(self) -> bool:
        return any(r.commit_sha for r in self.runs)

    @property
    def _has_note(self) -> bool:
        return self.intent in COMMENT_HINT or self.intent is None

    def _label(self, c: Choice, *, note_focused: bool) -> Text:
        """`Retry [r]`; while the note has the focus an escalation's keys
        are typed in it, so its buttons name no key (the note's placeholder
        says: enter, then r, s, p or x)."""
        if note_focused and c.key != "enter":
            return Text(c.label)
        return Text(f"{c.label} [{c.key}]")

    def _note_focused(self) -> bool:
        focused = self.focused
        return isinstance(focused, Input) and focused.id == "comment"

    def on_descendant_focus(self) -> None:
        self._follow_focus()

    def on_descendant_blur(self) -> None:
        self._follow_focus()

    def _follow_focus(self) -> None:
        note = self._note_focused()
        for c in self.choices:
            for button in self.query(f"#choice-{c.decision.value}").results(Button):
                button.label = self._label(c, note_focused=note)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers this approval's answers only (the screen behind
        keeps its own keys out of sight), and not while the note has the
        focus: those keys are typed in it."""
        if action in ("choose", "diff") and self._note_focused():
            return False
        if action == "choose":
            return any(c.key == parameters[0] for c in self.choices)
        if action == "diff":
            return self.has_diff
        return True

    def action_diff(self) -> None:
        """The attempts' diffs, over the dialog; closing them comes back here."""
        from tui.modals.diff import AttemptDiffs

        engine = getattr(self.app, "engine", None)
        if engine is None or not self.has_diff:
            return
        name = self.step.name if self.step else "the step"
        self.app.push_screen(AttemptDiffs(engine, name, self.runs))

    def on_mount(self) -> None:
        """The note first wherever there is one (changes, deny, an
        escalation): typing "try again" on an escalation's buttons retried at
        its first r, and a deny's reason denied at its first y. Enter sends
        a changes or deny note, and leads from an escalation's note to its
        answers."""
        if self.query("#comment"):
            self.query_one("#comment", Input).focus()
        else:
            self.query_one(f"#choice-{self.choices[0].decision.value}", Button).focus()
        # Focus scrolls a dialog taller than a short screen (80x24) to what
        # it focused, hiding the title's first line ("Deny step"): back to
        # the top, the answer being docked at the foot anyway.
        dialog = self.query_one("#approval-dialog")
        self.call_after_refresh(lambda: dialog.scroll_home(animate=False))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        button = event.button.id or ""
        if button == "cancel":
            self.dismiss(None)
        elif button.startswith("choice-"):
            self._answer(D(button.removeprefix("choice-")))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.intent is None:  # an escalation: Enter leads to the answers, picks none
            self.query_one(f"#choice-{self.choices[0].decision.value}", Button).focus()
            return
        self._answer(self.choices[0].decision)

    def action_choose(self, key: str) -> None:
        for c in self.choices:
            if c.key == key:
                self._answer(c.decision)
                return

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _answer(self, decision: ApprovalDecision) -> None:
        inputs = self.query("#comment").results(Input)
        comment = next((i.value.strip() for i in inputs), "") or None
        if decision is D.REQUEST_CHANGES and not comment:
            becomes = (
                "what the planner is asked to change"
                if self.approval.kind is ApprovalKind.PLAN
                else "the rework instructions"
            )
            show_error(
                self.query_one("#approval-error", Static),
                f"A comment is required: it becomes {becomes}.",
            )
            self.query_one("#comment", Input).focus()
            return
        if decision is D.STOP:  # for good, as `x` on a directive: asked first
            from tui.modals.confirm import ConfirmModal

            what = self.directive_title or "the directive"
            question = stop_question(what)

            def stop(yes: bool | None) -> None:
                if yes:
                    self.dismiss(Answer(decision, comment))

            self.app.push_screen(ConfirmModal(question, "Stop", danger=True), stop)
            return
        self.dismiss(Answer(decision, comment))
