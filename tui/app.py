"""`DirectiveApp`: the terminal front end of the directive engine.

The engine runs in the app's own asyncio loop. The first frame shows the
home screen at once; the database opens, and the engine recovers, in a
worker right after. One worker follows the event bus: it waits for an
event, takes everything else already queued, and hands the batch to each
engine screen. No screen polls the database (the engine notices other
processes' writes by a cheap `data_version` check). The engine's module is
imported by that worker too: nothing on screen needs it sooner.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine.approvals import UNATTENDED
from engine.bus import EventBus, Subscription
from engine.events import ApprovalRequired, DirectiveStatusChanged, EngineEvent
from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    Directive,
    DirectiveStatus,
)
from engine.store import Store, StoreError
from engine.transitions import DIRECTIVE_TERMINAL, InvalidTransition
from tui.applicable import directive_refusal, missing_api_key
from tui.attention import calls_for_a_person
from tui.commands import DirectiveCommands
from tui.format import headline
from tui.messages import EngineBatch, EngineReady
from tui.modals.confirm import ConfirmModal
from tui.presentation import DECISION_DONE
from tui.screens.base import EngineScreen
from tui.screens.home import HomeScreen

if TYPE_CHECKING:
    from engine.engine import DirectiveEngine, EngineServices

AUTO_DELAY_S = 1.0  # long enough to see the yellow step wait
TOAST_WIDTH = 60  # Textual's Toast: `width: 60; max-width: 50%` of its rack,
TOAST_RACK_SCROLLBAR = 2  # which scrolls (`overflow-y: scroll`) with a bar this wide,
TOAST_FRAME = 3  # less its `border-left` and `padding: 1 1`


T = TypeVar("T")


def command_errors() -> tuple[type[Exception], ...]:
    """What a refused command raises (an `except` clause evaluates this only
    when something was raised, by then the engine is imported)."""
    from engine.engine import EngineError

    return (EngineError, InvalidTransition, StoreError, ValueError)


class DirectiveApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "directive-tui"
    COMMANDS = App.COMMANDS | {DirectiveCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Keys"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),  # from dialogs too
    ]

    def __init__(
        self,
        db_path: Path,
        *,
        services: EngineServices | None = None,
        open_directive: str | None = None,
        resume: bool = False,
        start_file: Path | None = None,
        demo: bool = False,
        auto_approve: bool = False,
        clock: Callable[[], float] = time.time,
        auto_delay_s: float = AUTO_DELAY_S,
        demo_root: Path | None = None,
        bell: bool = True,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.services = services
        self.open_directive = open_directive
        self.resume = resume  # `directive-tui resume ID`: start or resume what it opens
        self.start_file = start_file
        self.demo = demo
        self.auto_approve = auto_approve
        self.clock = clock
        self.auto_delay_s = auto_delay_s
        self.bell_for_attention = bell  # ring when a person is needed (tui/attention.py)
        self.store: Store | None = None
        self.bus: EventBus | None = None
        self.engine: DirectiveEngine | None = None
        self.engine_ready = False
        self.demo_root = demo_root  # where the demo's repository goes (default: a new temp dir)
        self.demo_repo: Path | None = None
        self.demo_repository: Path | None = None  # the demo's git repository (in demo_repo)
        self.boot_error: str | None = None
        self._answered: set[str] = set()
        # Pause, resume and stop one at a time: a key pressed twice acts once.
        self.directive_command = asyncio.Lock()
        # Directives started or resumed from here whose outcome is not said
        # yet: id -> (title, whether it was paused before).
        self._sent: dict[str, tuple[str, bool]] = {}

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Textual's own, but its "Keys" (a side panel of bindings, the
        refusing ones among them): the palette lists `?` as Keys already,
        and two entries of one name did different things."""
        for command in super().get_system_commands(screen):
            if command.title != "Keys":
                yield command

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """The palette's Screenshot: Textual saves in ~/Downloads and, where
        there is none, said only "Failed to save screenshot". Saved in
        ~/Downloads when it exists, else in the current folder (the toast
        names the file)."""
        if path is None:
            downloads = Path.home() / "Downloads"
            path = str(downloads if downloads.is_dir() else Path.cwd())
        return super().deliver_screenshot(filename, path, time_format)

    # -- start and stop -----------------------------------------------------

    async def action_quit(self) -> None:
        """Quitting interrupts the steps this app runs (they start over next
        time): with any running, ask first."""
        running = await self.engine.running_steps() if self.engine else []
        if not running:
            self.exit()
            return
        shown = ", ".join(running[:3]) + (
            f" and {len(running) - 3} more" if len(running) > 3 else ""
        )
        one = len(running) == 1
        question = (
            f"{len(running)} step{'' if one else 's'} running here ({shown}): quit anyway?"
            f" {'It is' if one else 'They are'} interrupted and {'runs' if one else 'run'}"
            " again from the start when directive-tui runs this database again."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmModal(question, "Quit", danger=True), answered)

    def on_mount(self) -> None:
        self.push_screen(HomeScreen())
        self.call_after_refresh(lambda: self.run_worker(self._boot(), name="boot", group="engine"))

    async def _boot(self) -> None:
        try:
            self.store = await Store.open(self.db_path)
        except (StoreError, OSError) as exc:
            self.boot_error = str(exc)
            self.notify(f"Cannot open {self.db_path}: {exc}", severity="error", timeout=30)
            return
        from engine.engine import DirectiveEngine

        self.bus = EventBus()
        self.engine = DirectiveEngine(self.store, self.bus, self.services)
        subscription = self.bus.subscribe()  # before recovery: its events count too
        self.engine.on_role_change = self._role_changed
        self.engine.on_directives_gone = self._directives_gone
        await self.engine.start(label="directive-tui app", watch_if_held=True)
        if self.engine.watching:
            self._role_changed(self.engine.watching)
        self.run_worker(self._follow(subscription), name="events", group="engine")
        self.engine_ready = True
        # What start-up built lives as long as the app: out of the collector's
        # way, so a burst of events does not pay for full collections of it
        # (benchmarks/bench_screen.py: the longest pause 49 -> 15 ms).
        gc.freeze()
        for screen in self.screen_stack:
            if isinstance(screen, EngineScreen):
                screen.post_message(EngineReady())
        await self._first_directive()

    async def _first_directive(self) -> None:
        """What the command line asked for: a file to run, the demo, or a
        directive to open."""
        assert self.engine is not None
        directive_id: str | None = None
        if self.start_file is not None:
            from engine.directive_file import DirectiveFileError, load_directive_file

            try:
                spec = load_directive_file(self.start_file)
            except (DirectiveFileError, OSError) as exc:
                self.notify(
                    str(exc), title="Cannot run the directive file", severity="error", timeout=30
                )
                return
            directive = await self.engine.create_directive(spec)
            directive_id = directive.id
            await self.start_or_resume(directive, starting=True)  # says how planning went
        elif self.demo:
            directive_id = await self._start_demo()
        elif self.open_directive is not None:
            try:
                opened = await self.engine.store.find_directive(self.open_directive)
            except StoreError as exc:
                self.notify(str(exc), severity="error")
            else:
                directive_id = opened.id
                if self.resume:
                    await self._resume_opened(opened)
        if directive_id is not None:
            self.open_directive_screen(directive_id)

    async def _resume_opened(self, d: Directive) -> None:
        """What `resume ID --headless` does, with the screen: a draft starts,
        a paused directive resumes; one still running (left by a run that
        ended) goes on by itself; one that has ended is said so."""
        if d.status is DirectiveStatus.DRAFT:
            await self.start_or_resume(d, starting=True)
        elif d.status is DirectiveStatus.PAUSED:
            await self.start_or_resume(d, starting=False)
        elif d.status in DIRECTIVE_TERMINAL:
            self.notify(f"{d.title} has ended ({d.status.value}): nothing to resume")

    async def _start_demo(self) -> str | None:
        assert self.engine is not None
        try:
            from engine.demo import prepare_demo  # type: ignore[attr-defined]
        except ImportError:
            self.notify("The demo is not part of this build.", severity="error")
            return None
        self.demo_repo = self.demo_root or Path(tempfile.mkdtemp(prefix="directive-demo-"))
        try:
            spec = await prepare_demo(self.demo_repo)
        except Exception as exc:  # DemoError: this machine cannot run it (no git, no pytest)
            self.notify(f"The demo cannot run here: {exc}", severity="error", timeout=30)
            return None
        directive = await self.engine.create_directive(spec)
        await self.engine.record_note(directive.id, f"demo repository: {spec.repo}")
        await self.engine.start_directive(directive.id)
        self.demo_repository = Path(spec.repo)
        self.notify(
            f"Demo repository: {spec.repo} (on the home screen's title, and printed when you quit)",
            timeout=15,
        )
        for screen in self.screen_stack:
            if isinstance(screen, HomeScreen):
                screen.show_title()
        return directive.id

    def _role_changed(self, watching: str | None) -> None:
        """Say whether this app runs the directives or watches another engine."""
        if watching:
            self.notify(
                f"Another engine runs this database: {watching}. This app watches; "
                "what you start, answer or stop here is carried out by that engine, "
                "and this app takes over when it stops.",
                title="Watching",
                severity="warning",
                timeout=15,
            )
        else:
            self.notify("This app now runs the directives of this database.", title="Running")
        if not self.engine_ready:
            return  # the first load, right after start, shows it
        for screen in self.screen_stack:
            if isinstance(screen, EngineScreen):
                screen.post_message(EngineReady())

    def _directives_gone(self, directive_ids: list[str]) -> None:
        """Another process deleted them (no event says so: their log went
        with them): the screens read again; a deleted directive's own screen
        finds it gone and closes."""
        for directive_id in directive_ids:
            self.forget_sent(directive_id)
        for screen in self.screen_stack:
            if isinstance(screen, EngineScreen):
                screen.post_message(EngineReady())

    @property
    def farewell(self) -> str | None:
        """What the command line prints once the app has closed."""
        if self.demo_repository is None:
            return None
        return f"The demo's repository: {self.demo_repository}"

    @property
    def role_note(self) -> str:
        """A few words for title lines: empty while this app runs the engine."""
        if self.engine is None or not self.engine.watching:
            return ""
        return f"watching · run by {self.engine.watching}"

    async def on_unmount(self) -> None:
        if self.engine is not None:
            await self.engine.close()
        if self.store is not None:
            await self.store.close()

    # -- following the engine -------------------------------------------------

    async def _follow(self, subscription: Subscription) -> None:
        while True:
            first = await subscription.get()
            batch: list[EngineEvent] = [first, *subscription.drain()]
            lagged, subscription.lagged = subscription.lagged, False
            for screen in self.screen_stack:
                if isinstance(screen, EngineScreen):
                    screen.post_message(EngineBatch(batch, lagged))
            if self.bell_for_attention and any(map(calls_for_a_person, batch)):
                self.bell()
            if lagged:  # the moves were lost: the screens re-read and show where it is
                self._sent.clear()
            elif self._sent:
                self._say_what_came_of(batch)
            if self.auto_approve:
                for event in batch:
                    if isinstance(event, ApprovalRequired):
                        self.run_worker(self._auto_answer(event), group="auto")

    async def _auto_answer(self, event: ApprovalRequired) -> None:
        await asyncio.sleep(self.auto_delay_s)
        decision = UNATTENDED[ApprovalKind(event.kind)]
        await self.answer_approval(event.approval_id, decision, "answered by --auto", quiet=True)

    # -- commands ---------------------------------------------------------------

    async def command_value(self, work: Awaitable[T]) -> T | None:
        """An engine command's answer, or None when it was refused (the
        refusal becomes an error notification)."""
        try:
            return await work
        except command_errors() as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return None

    async def run_command(self, work: Awaitable[object], done: str | None = None) -> bool:
        """Await an engine command; whether it was accepted (`done` is said
        if so)."""

        async def accepted() -> bool:
            await work
            return True

        if await self.command_value(accepted()) is None:
            return False
        if done:
            self.notify(done)
        return True

    async def start_or_resume(self, d: Directive, *, starting: bool) -> bool:
        """Start or resume `d`; whether the engine took the command. What came
        of it is said once the engine has moved the directive
        (`_say_what_came_of`): resuming a directive with no plan plans it
        first, and a plan that fails again pauses it again at once."""
        assert self.engine is not None
        if starting:
            missing = missing_api_key(self.engine.services, d.spec, d.title)
            if missing is not None:
                self.notify(missing, title="Not started", severity="error", timeout=15)
                return False
        self._sent[d.id] = (d.title, d.status is DirectiveStatus.PAUSED)
        command = self.engine.start_directive if starting else self.engine.resume_directive
        if await self.run_command(command(d.id)):
            return True
        self.forget_sent(d.id)
        return False

    def forget_sent(self, directive_id: str) -> None:
        """Say nothing more about a start or resume (paused or stopped since
        by a person here, who is told that)."""
        self._sent.pop(directive_id, None)

    def _say_what_came_of(self, batch: list[EngineEvent]) -> None:
        """Follow a directive started or resumed from here to where it
        settles (active, or paused again), and say that."""
        for e in batch:
            if not isinstance(e, DirectiveStatusChanged) or e.directive_id not in self._sent:
                continue
            title, was_paused = self._sent[e.directive_id]
            old, new = DirectiveStatus(e.old_status), DirectiveStatus(e.new_status)
            if new is DirectiveStatus.PLANNING:  # accepted; the plan is still to come
                if was_paused:
                    self.notify(f"planning again: {title}…")
                else:
                    self.notify(f"started: {title}, planning…")
                continue
            del self._sent[e.directive_id]
            if new is DirectiveStatus.ACTIVE:
                planned = old is DirectiveStatus.PLANNING
                self.notify(f"planned: {title}" if planned else f"resumed: {title}")
            elif new is DirectiveStatus.PAUSED:  # the plan could not be made (again)
                again = " again" if was_paused else ""
                self.notify(
                    f"{title} is paused{again}: {e.reason or 'no reason given'}",
                    severity="error",
                    timeout=15,
                )

    def already_resolved(self, approval: ApprovalRequest) -> str:
        if approval.decision is ApprovalDecision.SUPERSEDED:
            why = f" ({approval.comment})" if approval.comment else ""
            return f"Approval {approval.id} was closed unanswered{why}: nothing to answer."
        how = approval.decision.value if approval.decision else approval.status.value
        return f"Approval {approval.id} was already answered ({how}): nothing changed."

    async def answer_approval(
        self,
        approval_id: str,
        decision: ApprovalDecision,
        comment: str | None = None,
        *,
        quiet: bool = False,
    ) -> bool:
        """Answer once. A second answer is refused by the engine and said so."""
        assert self.engine is not None
        try:
            current = await self.engine.store.get_approval(approval_id)
            if not current.pending:
                if not quiet:
                    self.notify(self.already_resolved(current), severity="warning")
                return False
            if decision is ApprovalDecision.REPLAN:  # as `r` does: no breaker tripped
                d = await self.engine.store.get_directive(current.directive_id)
                refusal = directive_refusal(d, "replan")
                if refusal is not None:
                    self.notify(refusal, severity="warning")
                    return False
            await self.engine.resolve_approval(approval_id, decision, comment)
        except _already_resolved() as exc:
            if not quiet:
                self.notify(f"{exc}: nothing changed.", severity="warning")
            return False
        except command_errors() as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return False
        # One line of a toast (the whole of it is in the log): cut at 72
        # characters it still took 2-3 lines at 80 columns.
        done = f"{DECISION_DONE[decision].capitalize()}: "
        said = headline(current.summary, max(self.toast_room() - len(done), 12))
        self.notify(done + said, timeout=4, markup=False)
        return True

    def toast_room(self) -> int:
        """The cells of one line of a toast's text at this screen's width:
        Textual's Toast is 60 columns wide, at most half its rack (the screen
        less the rack's scrollbar), less its left border and its padding
        (36 at 80 columns, 57 from 122)."""
        rack = self.size.width - TOAST_RACK_SCROLLBAR
        return min(TOAST_WIDTH, rack // 2) - TOAST_FRAME

    # -- navigation -------------------------------------------------------------

    def open_directive_screen(self, directive_id: str) -> None:
        from tui.screens.directive import DirectiveScreen

        self.push_screen(DirectiveScreen(directive_id))

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen, help_sections

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_sections(self.screen)))


def main(argv: list[str] | None = None) -> None:
    """`python -m tui.app`: the app without the full command line (which is
    `directive-tui`, in tui/cli/)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tui.app")
    parser.add_argument("--db", type=Path, default=Path("directive-tui.db"), help="database file")
    parser.add_argument("--run", type=Path, help="create and start a directive from this file")
    parser.add_argument("--open", dest="open_directive", help="open this directive (id or prefix)")
    parser.add_argument("--demo", action="store_true", help="run the offline demo")
    parser.add_argument("--auto", action="store_true", help="answer approvals by themselves")
    args = parser.parse_args(argv)
    DirectiveApp(
        args.db,
        open_directive=args.open_directive,
        start_file=args.run,
        demo=args.demo,
        auto_approve=args.auto,
    ).run()


if __name__ == "__main__":
    main()


def _already_resolved() -> type[Exception]:
    from engine.engine import ApprovalAlreadyResolved

    return ApprovalAlreadyResolved
