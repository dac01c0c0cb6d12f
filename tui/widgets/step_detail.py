"""The focused step: description, attempts, evaluations, live output."""

from __future__ import annotations

import re
from collections import deque

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.breakers import duration
from engine.flags import flag_text
from engine.models import Evaluation, Step, StepRun, StepStatus
from tui.format import clock, money, tail
from tui.presentation import LEVEL_CSS, current_verdict, step_look
from tui.widgets.looks import LOOK_CLASSES, Looks

TAIL_LINES = 12  # live output lines kept per step, of its latest attempt
OUTPUT_TAIL_LINES = 4  # verifier output lines shown per result
PADDING = re.compile(r"(?<=\S) {3,}(?=\S)")  # a run of spaces between words
LIVE = {StepStatus.RUNNING, StepStatus.EVALUATING, StepStatus.READY, StepStatus.REWORK}


class StepDetail(Looks, VerticalScroll):
    COMPONENT_CLASSES = LOOK_CLASSES

    """Shows one step; `show` replaces it, `output` appends a live line."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.step: Step | None = None
        # (source, line): drawn with the theme's styles each time (a new
        # theme draws them again)
        self._tail: deque[tuple[str, str]] = deque(maxlen=TAIL_LINES)
        self._history: tuple[list[StepRun], list[Evaluation]] = ([], [])
        self._attempt = ""  # whose lines the tail holds
        self.ended = False  # the directive has ended: an undone step will not run
        # Held, not queried: a late update after the screen closed is harmless.
        self._body = Static(id="detail-body")
        self._tail_view = Static(id="detail-tail")

    def compose(self) -> ComposeResult:
        yield self._body
        yield self._tail_view

    def on_mount(self) -> None:
        self._body.update(Text("No step focused.", style=self.look("look--muted")))
        self.follow_theme()

    def restyle(self) -> None:
        """A new theme: the step again in its colours (the panel kept the
        old theme's until another step was focused)."""
        step = self.step
        if step is None:
            self._body.update(Text("No step focused.", style=self.look("look--muted")))
            return
        self._draw_body(step, *self._history)
        self._draw_tail()

    def show(
        self,
        step: Step | None,
        runs: list[StepRun],
        evaluations: list[Evaluation],
        output: list[tuple[str, str]],
        attempt: str = "",
    ) -> None:
        """`output`: the latest lines of the step's `attempt` ("attempt 2").
        The same step shown again (its cost, its status moved) keeps where
        the panel was scrolled to; another starts at its top."""
        same = step is not None and self.step is not None and self.step.id == step.id
        self.step = step
        self._attempt = attempt
        body = self._body
        if step is None:
            body.update(Text("No step focused.", style=self.look("look--muted")))
            self._tail.clear()
            self._draw_tail()
            return
        self._history = (runs, evaluations)
        self._draw_body(step, runs, evaluations)
        self._tail.clear()
        self._tail.extend(output[-TAIL_LINES:])
        self._draw_tail()
        if not same:
            self.scroll_home(animate=False)

    def output(self, source: str, line: str) -> None:
        """A live line: shown, and followed while the step is at work."""
        self._tail.append((source, line))
        self._draw_tail()
        if self.step is not None and self.step.status in LIVE:
            self.scroll_end(animate=False)

    # -- pieces ---------------------------------------------------------------

    def _draw_body(self, step: Step, runs: list[StepRun], evaluations: list[Evaluation]) -> None:
        self._body.update(
            Group(*self._header(step), *self._runs(runs), *self._evaluations(evaluations))
        )

    def _heading(self, text: str) -> Text:
        return Text(f"\n{text}", style=self.look("look--key"))

    def _header(self, step: Step) -> list[RenderableType]:
        look = step_look(step, ended=self.ended)
        head = Text.assemble((step.name, self.look("look--title")), f"  {step.type}")
        status = Text.assemble((f"{look.icon} {look.label}", self.look(f"look--{look.css}")))
        # short enough for the narrow panel: the score as the DAG box shows it
        # (the current verdict only: a step running again showed its last one)
        if (
            step.confidence is not None
            and step.level is not None
            and current_verdict(step, ended=self.ended)
        ):
            status.append(f"  {step.confidence:.2f} ")
            status.append(step.level.value, self.look(f"level--{LEVEL_CSS[step.level]}"))
        if step.rework_count:
            status.append(f"  ↻ {step.rework_count} rework", self.look("look--rework"))
        status.append(f"  attempts {step.attempts}", self.look("look--muted"))
        out: list[RenderableType] = [head, status]
        if step.carried_from:
            out.append(
                Text(
                    "kept by a replan: its attempts are from the chain before",
                    style=self.look("look--muted"),
                )
            )
        if step.spec.description:
            out.append(Text(step.spec.description))
        if step.spec.command:  # what a shell step runs: the thing to check when it hangs
            out.append(Text(f"$ {step.spec.command}", style=self.look("look--muted")))
        if step.rework_instructions:
            out += [self._heading("Rework instructions"), Text(step.rework_instructions)]
        return out

    def _runs(self, runs: list[StepRun]) -> list[RenderableType]:
        if not runs:
            return []
        heading = self._heading("Attempts")
        if any(run.commit_sha for run in runs):
            heading.append("  D: diffs · G: result", self.look("look--muted"))
        out: list[RenderableType] = [heading]
        css = {"succeeded": "look--passed", "failed": "look--failed", "running": "look--running"}
        for run in runs:
            line = Text(f"#{run.attempt} {run.executor} ")
            line.append(run.status, self.look(css.get(run.status, "look--muted")))
            line.append(f"  {money(run.cost_usd)}", self.look("look--muted"))
            if run.commit_sha:
                line.append(f"  {run.commit_sha[:10]}", self.look("look--muted"))
            line.append(f"  {_timing(run)}", self.look("look--muted"))
            out.append(line)
            # A failed command's error starts with its summary ("command
            # exited with 1" then "command exited with 1: boom ..."): once.
            if run.summary and not (run.error or "").startswith(run.summary):
                out.append(indented(Text(run.summary), 2))
            if run.error:
                out.append(indented(Text(run.error, style=self.look("sev--error")), 2))
            if run.modified_files:
                files = "files: " + ", ".join(run.modified_files)
                out.append(indented(Text(files, style=self.look("look--muted")), 2))
        return out

    def _evaluations(self, evaluations: list[Evaluation]) -> list[RenderableType]:
        if not evaluations:
            return []
        out: list[RenderableType] = [self._heading("Evaluations")]
        for number, ev in enumerate(evaluations, start=1):
            line = Text(f"#{number} ")
            line.append(
                f"{ev.score:.2f} {ev.level.value}", self.look(f"level--{LEVEL_CSS[ev.level]}")
            )
            if ev.flags:
                line.append("  ⚠ " + ", ".join(map(flag_text, ev.flags)), self.look("sev--warning"))
            out.append(line)
            if ev.summary:
                out.append(indented(Text(ev.summary, style=self.look("look--muted")), 2))
            out.extend(verifier_lines(self, ev))
        return out

    def _line(self, source: str, line: str) -> Text:
        # Padding inside a line (pytest pads its progress to 80 columns before
        # "[100%]") would push the end of it out of this narrow panel.
        line = PADDING.sub("  ", line.rstrip())
        return Text.assemble(
            (f"{source}: ", self.look("look--muted")), line, no_wrap=True, overflow="ellipsis"
        )

    def _draw_tail(self) -> None:
        tail_widget = self._tail_view
        if not self._tail or self.step is None:
            tail_widget.update("")
            tail_widget.display = False
            return
        tail_widget.display = True
        heading = self._heading("Live output")
        if self._attempt:
            heading.append(f" · {self._attempt}", self.look("look--muted"))
        tail_widget.update(Group(heading, *(self._line(s, line) for s, line in self._tail)))


def _timing(run: StepRun) -> str:
    """When a running attempt started (a command that hangs said nothing
    else), how long a finished one took."""
    if run.finished_at is None:
        return f"since {clock(run.started_at)}"
    return f"took {duration(run.finished_at - run.started_at)}"


def indented(text: Text, by: int) -> Padding:
    """Text whose wrapped lines keep its indent, where leading spaces would
    indent only the first."""
    return Padding(text, (0, 0, 0, by))


def verifier_lines(
    widget: Looks, ev: Evaluation, tail_lines: int = OUTPUT_TAIL_LINES
) -> list[RenderableType]:
    """One line per verifier result (name, score, pass/fail, gating) and the
    tail of its output: shared by the step panel and the approval modal."""
    out: list[RenderableType] = []
    for r in ev.results:
        mark, css = ("✔", "look--passed") if r.passed else ("✖", "look--failed")
        line = Text.assemble((f"  {mark} ", widget.look(css)), (r.name, widget.look("look--title")))
        line.append(f"  {r.score:.2f}")
        line.append("  pass" if r.passed else "  fail", widget.look(css))
        if r.gating:
            line.append("  gating", widget.look("look--muted"))
        if r.timed_out:
            line.append("  timed out", widget.look("sev--error"))
        out.append(line)
        text = tail(r.output_tail or r.summary, tail_lines)
        if text:
            out.append(indented(Text(text, style=widget.look("look--muted")), 4))
    return out
