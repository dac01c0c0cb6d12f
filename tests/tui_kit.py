"""What the app's tests share: driving the real app with Textual's Pilot
against the real engine and a SQLite file, and reading what it shows."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot

from engine.engine import DirectiveEngine
from engine.executors.base import ExecutionResult, StepContext
from engine.models import DirectiveStatus, StepStatus
from tests.engine_kit import Script, ScriptExecutor, services, statuses
from tui.app import DirectiveApp
from tui.screens.directive import DirectiveScreen
from tui.screens.home import HomeScreen
from tui.screens.new_directive import NewDirectiveScreen
from tui.widgets.dag import DagView

SIZE = (100, 30)


async def until(pilot: Pilot[Any], check: Callable[[], Any], what: str, rounds: int = 2000) -> None:
    """Let the app and the engine run until `check()` holds (bounded), and
    the screens have finished handling what made it hold (`caught_up`)."""
    for _ in range(rounds):
        result = check()
        if hasattr(result, "__await__"):
            result = await result
        if result:
            await caught_up(pilot.app, what)
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def caught_up(app: Any, what: str = "the check", timeout: float = 30.0) -> None:
    """The app and every screen on its stack have handled every message
    sent to them so far. A screen handles an engine batch in steps: the DAG's
    boxes change at once, the approvals, the directive row, the header and
    the budgets after reads from the store; a modal composes its widgets
    after it is pushed. A check that holds on the first part (a box turned
    yellow, the modal is on top) is met before the rest: the approvals tab
    still read its old count, a query found no widget, no field had the
    focus yet. A callback queued behind those messages runs once they are
    done (a screen popped meanwhile is not waited for)."""
    if not app.is_running:
        return
    deadline = time.monotonic() + timeout
    # The app last: what the screens handled can ask it for more (a widget's
    # focus() is set by a callback on the app).
    for node in (*app.screen_stack, app):
        handled = asyncio.Event()
        if not node.call_later(handled.set):
            continue
        while not handled.is_set() and app.is_running and (node is app or node in app.screen_stack):
            if time.monotonic() > deadline:
                raise AssertionError(f"{type(node).__name__} still busy after {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(handled.wait(), 0.05)


class Notes:
    """Records the app's notifications (what a person would read)."""

    def __init__(self, app: DirectiveApp) -> None:
        self.messages: list[tuple[str, str]] = []
        original = app.notify

        def notify(message: str, *args: Any, severity: str = "information", **kwargs: Any) -> None:
            self.messages.append((severity, str(message)))
            original(message, *args, severity=severity, **kwargs)  # type: ignore[arg-type]

        app.notify = notify  # type: ignore[method-assign]

    def has(self, text: str, severity: str | None = None) -> bool:
        return any(text in m and (severity is None or s == severity) for s, m in self.messages)


def app_for(tmp_path: Path, script: Script, **kwargs: Any) -> DirectiveApp:
    return DirectiveApp(tmp_path / "tui.db", services=services(script), **kwargs)


class HeldExecutor(ScriptExecutor):
    """The script's executor, with a gate per step name: such a step starts,
    says so, and waits until the test opens its gate before it goes on, so a
    state that lasts only while it runs holds still until the test is done
    with it (a fixed delay could end first on a loaded machine)."""

    def __init__(self, script: Script, gates: dict[str, asyncio.Event]) -> None:
        super().__init__(script)
        self.gates = gates

    async def run(self, ctx: StepContext) -> ExecutionResult:
        gate = self.gates.get(ctx.step.name)
        if gate is not None:
            ctx.emit(f"{ctx.step.name} waits for its gate")
            await gate.wait()
        return await super().run(ctx)


def held_app(
    tmp_path: Path, script: Script, gates: dict[str, asyncio.Event], **kwargs: Any
) -> DirectiveApp:
    """`app_for`, with the steps named in `gates` held until the test opens them."""
    kit = services(script)
    kit.executor = lambda kind, llm: HeldExecutor(script, gates)
    return DirectiveApp(tmp_path / "tui.db", services=kit, **kwargs)


async def started(pilot: Pilot[Any], app: DirectiveApp, spec: Any) -> str:
    """Create and start a directive through the engine, open its screen."""
    await until(pilot, lambda: app.engine_ready, "the engine")
    assert app.engine is not None
    d = await app.engine.create_directive(spec)
    await app.engine.start_directive(d.id)
    app.open_directive_screen(d.id)
    await until(pilot, lambda: loaded(app), "the directive screen")
    return d.id


async def followed(pilot: Pilot[Any], app: DirectiveApp, directive_id: str) -> None:
    """Every event stored for the directive so far has reached its screen.
    The app rings, says what came of a command and posts the batch to the
    screens in one go, so whatever it does about those events is done too."""
    last = await engine(app).store.last_events(directive_id, 1)
    seq = last[-1].seq if last else 0

    def seen() -> bool:
        return any(
            isinstance(s, DirectiveScreen) and s.directive_id == directive_id and s.seen_seq >= seq
            for s in app.screen_stack
        )

    await until(pilot, seen, f"the screen to follow the events up to #{seq}")


def loaded(app: DirectiveApp) -> bool:
    """A directive's screen is on top, with its directive read (`until`
    then lets the rest of its load, the chain and the approvals, finish)."""
    screen = app.screen
    return isinstance(screen, DirectiveScreen) and screen.directive is not None


def engine(app: DirectiveApp) -> DirectiveEngine:
    assert app.engine is not None
    return app.engine


async def step_status(app: DirectiveApp, directive_id: str, name: str) -> str:
    return (await statuses(engine(app), directive_id))[name]


async def open_the_form(pilot: Any, app: DirectiveApp) -> None:
    await until(pilot, lambda: app.engine_ready, "the engine")
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, NewDirectiveScreen), "the form")


def footer_keys(screen: Any) -> list[str]:
    """The keys a screen's footer offers now."""
    return [
        key
        for key, active in screen.active_bindings.items()
        if active.enabled and active.binding.show and active.node is screen
    ]


def dag_of(app: DirectiveApp) -> DagView | None:
    """The DAG of the topmost directive screen."""
    for screen in reversed(app.screen_stack):
        if isinstance(screen, DirectiveScreen):
            dags = screen.query(DagView)
            return dags.first() if dags else None
    return None


def box(app: DirectiveApp, name: str) -> Any:
    """The step the DAG shows under `name`."""
    dag = dag_of(app)
    return next((s for s in dag.steps if s.name == name), None) if dag else None


def box_status(app: DirectiveApp, name: str) -> StepStatus | None:
    shown = box(app, name)
    return shown.status if shown else None


def awaiting(app: DirectiveApp, name: str) -> bool:
    """Step `name` shows ⚑ and its screen holds the step's approval, which
    the approval keys answer: the box turns on the step's event, and the
    approvals are read from the store after it."""
    shown = box(app, name)
    screen = app.screen
    return (
        shown is not None
        and shown.status is StepStatus.AWAITING_APPROVAL
        and isinstance(screen, DirectiveScreen)
        and any(a.step_id == shown.id for a in screen.approvals)
    )


def directive_status(app: DirectiveApp, did: str, status: DirectiveStatus) -> bool:
    """As the topmost screen showing the directive has it."""
    for screen in reversed(app.screen_stack):
        if isinstance(screen, DirectiveScreen) and screen.directive_id == did and screen.directive:
            return screen.directive.status is status
        if isinstance(screen, HomeScreen) and did in screen.directives:
            return screen.directives[did].status is status
    return False


def printed(renderable: Any) -> str:
    """A renderable as plain text, 200 columns wide."""
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def plain_text(widget: Any) -> str:
    """What a widget shows, as plain text."""
    rendered = widget.render()
    if hasattr(rendered, "plain"):
        return str(rendered.plain)
    return printed(rendered)


async def the_plan_dialog(pilot: Pilot[Any], app: DirectiveApp, spec: Any) -> None:
    """Start `spec` (a manual directive: its plan waits for a person) and
    open the plan's approval dialog with `a`."""
    from tui.modals.approval import ApprovalModal

    await started(pilot, app, spec)
    screen = app.screen
    await until(pilot, lambda: bool(screen.approvals), "the plan to approve")  # type: ignore[attr-defined]
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the plan dialog")
