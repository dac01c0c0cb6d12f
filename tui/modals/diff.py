"""`D` on a step: the diff of each of its attempts (latest first), read from
git in a worker once the modal is on screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Static

from engine.models import StepRun
from engine.text import plural
from tui.modals.dialog import Dialog
from tui.widgets.diff_log import DiffLog

if TYPE_CHECKING:
    from engine.engine import DirectiveEngine

RUN_CSS = {"succeeded": "look--passed", "failed": "look--failed", "running": "look--running"}


def short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


class AttemptDiffs(Dialog[None]):
    BINDINGS = [Binding("escape,q,D", "close", "Close")]

    def __init__(self, engine: DirectiveEngine, step_name: str, runs: list[StepRun]) -> None:
        super().__init__()
        self.engine = engine
        self.step_name = step_name
        self.runs = sorted(runs, key=lambda r: r.attempt, reverse=True)
        self.loaded = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="diff-dialog"):
            count = plural(len(self.runs), "attempt")
            yield Static(f"Diffs of {self.step_name} ({count})", classes="dialog-title")
            yield DiffLog(id="diff-log")
            yield Static("Loading…", id="diff-status", classes="dialog-sub")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(DiffLog).focus()
        # The first frame shows the dialog; git is asked after it.
        self.call_after_refresh(self.load_diffs)

    @work(exclusive=True, group="diffs")
    async def load_diffs(self) -> None:
        from engine.engine import EngineError

        log = self.query_one(DiffLog)
        for number, run in enumerate(self.runs):
            if number:
                log.add(Text(""))
            title = Text(f"Attempt #{run.attempt}", style=log.look("diff--heading"))
            title.append(f"  {run.executor}  ")
            title.append(run.status, log.look(RUN_CSS.get(run.status, "look--muted")))
            title.append(f"  {short(run.commit_sha)}", log.look("look--muted"))
            log.add(title)
            if not run.commit_sha:
                why = "still running" if run.status == "running" else "nothing was committed"
                log.note(f"no commit: {why}")
                continue
            try:
                diff = await self.engine.run_diff(run)
            except EngineError as exc:
                log.note(str(exc), "sev--error")
                self.notify(str(exc), severity="error", timeout=8)
                continue
            if not self.is_attached:  # closed while git was busy
                return
            log.diff(diff, more=f"git diff {short(run.base_sha)} {short(run.commit_sha)}")
        self.loaded = True
        self.query_one("#diff-status", Static).update("esc closes · ↑ ↓ pgup pgdn scroll")

    def action_close(self) -> None:
        self.dismiss(None)
