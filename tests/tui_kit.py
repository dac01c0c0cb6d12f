"""What the app's tests share: driving the real app with Textual's Pilot
against the real engine and a SQLite file, and reading what it shows."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot

from engine.engine import DirectiveEngine
from engine.models import DirectiveStatus, StepStatus
from tests.engine_kit import Script, services, statuses
from tui.app import DirectiveApp
from tui.screens.directive import DirectiveScreen
from tui.screens.home import HomeScreen
from tui.screens.new_directive import NewDirectiveScreen
from tui.widgets.dag import DagView

SIZE = (100, 30)


async def until(pilot: Pilot[Any], check: Callable[[], Any], what: str, rounds: int = 2000) -> None:
    """Let the app and the engine run until `check()` holds (bounded)."""
    for _ in range(rounds):
        result = check()
        if hasattr(result, "__await__"):
            result = await result
        if result:
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


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


async def started(pilot: Pilot[Any], app: DirectiveApp, spec: Any) -> str:
    """Create and start a directive through the engine, open its screen."""
    await until(pilot, lambda: app.engine_ready, "the engine")
    assert app.engine is not None
    d = await app.engine.create_directive(spec)
    await app.engine.start_directive(d.id)
    app.open_directive_screen(d.id)
    await until(pilot, lambda: loaded(app), "the directive screen")
    return d.id


def loaded(app: DirectiveApp) -> bool:
    """A directive's screen is on top, with its directive read."""
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
