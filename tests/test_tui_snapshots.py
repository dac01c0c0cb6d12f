"""Pictures of the screen (pytest-textual-snapshot): the home screen, a
directive mid-run with every confidence colour, the approval modal, the
help screen, and the DAG with every step status.

The state is seeded with fixed ids and timestamps (tests/tui_seed.py), the
clock is frozen and the time zone is UTC, so every run draws the same
picture. Update after a deliberate change with `--snapshot-update`, and
look at the new SVGs before committing them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input

from engine.models import ConfidenceLevel, Step, StepSpec, StepStatus
from tests.tui_seed import ACTIVE_ID, NOW, holding_services, seed
from tui.app import DirectiveApp
from tui.screens.directive import DirectiveScreen
from tui.screens.home import HomeScreen
from tui.widgets.dag import DagView
from tui.widgets.event_log import EventLog

TCSS = Path(__file__).resolve().parent.parent / "tui" / "app.tcss"


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """UTC and a clock that does not move (what the engine stamps events with)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(time, "time", lambda: NOW)
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def seeded(tmp_path: Path, frozen: None) -> Path:
    db = tmp_path / "seeded.db"
    asyncio.run(seed(db))
    return db


@pytest.fixture
def snap(snap_compare: Any) -> Any:
    """`snap_compare` with every text field's cursor held still: Textual
    blinks it on a wall-clock timer, so which phase a picture caught was a
    race (one cell in reverse video or not, failing now and then)."""

    def compare(app: App[Any], *, run_before: Any = None, **kwargs: Any) -> bool:
        async def before(pilot: Pilot[Any]) -> None:
            if run_before is not None:
                await run_before(pilot)
            for screen in pilot.app.screen_stack:
                for field in screen.query(Input):
                    field.cursor_blink = False  # stops the timer, the cursor drawn
            await pilot.pause()

        return bool(snap_compare(app, run_before=before, **kwargs))

    return compare


def seeded_app(db: Path, **kwargs: Any) -> DirectiveApp:
    return DirectiveApp(db, services=holding_services(), clock=lambda: NOW, **kwargs)


async def settle(pilot: Pilot[Any], check: Any, rounds: int = 2000) -> None:
    for _ in range(rounds):
        if check():
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError("the screen did not reach the expected state")


def _mid_run(app: DirectiveApp) -> bool:
    """The engine has put its two slots to work and the screen shows it."""
    screen = app.screen
    if not isinstance(screen, DirectiveScreen) or screen.directive is None:
        return False
    shown = {s.name: s.status for s in screen.dag.steps}
    return (
        shown.get("write-tests") is StepStatus.EVALUATING
        and shown.get("implement-json") is StepStatus.RUNNING
        and screen.query_one("#detail").step is not None  # type: ignore[attr-defined]
    )


async def _open_mid_run(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, DirectiveApp)
    await settle(pilot, lambda: _mid_run(app))
    screen = app.screen
    assert isinstance(screen, DirectiveScreen)
    screen.dag.focus_step("s03implement")  # implement-cli: yellow, awaiting approval
    await settle(pilot, lambda: _detail_is(screen, "implement-cli"))
    log = screen.query_one(EventLog)
    await settle(pilot, lambda: log.lines and log.scroll_y == log.max_scroll_y)


def _detail_is(screen: DirectiveScreen, name: str) -> bool:
    step = screen.query_one("#detail").step  # type: ignore[attr-defined]
    return step is not None and step.name == name


async def _home_listed(pilot: Pilot[Any]) -> None:
    """Home shows the four seeded directives."""
    app = pilot.app
    await settle(
        pilot, lambda: isinstance(app.screen, HomeScreen) and len(app.screen.directives) == 4
    )


def test_home(seeded: Path, snap: Any) -> None:
    assert snap(seeded_app(seeded), terminal_size=(100, 24), run_before=_home_listed)


def test_home_80x24_keeps_the_approvals_column(seeded: Path, snap: Any) -> None:
    """The titles give way: "⚑ 2" and the time stay on an 80-column screen."""
    assert snap(seeded_app(seeded), terminal_size=(80, 24), run_before=_home_listed)


def test_directive_mid_run(seeded: Path, snap: Any) -> None:
    app = seeded_app(seeded, open_directive=ACTIVE_ID)
    assert snap(app, terminal_size=(130, 36), run_before=_open_mid_run)


def test_directive_mid_run_80x24(seeded: Path, snap: Any) -> None:
    app = seeded_app(seeded, open_directive=ACTIVE_ID)

    async def mid_run(pilot: Pilot[Any]) -> None:
        await _open_mid_run(pilot)
        assert app.screen.query_one(EventLog).outer_size.height == 7  # its least

    assert snap(app, terminal_size=(80, 24), run_before=mid_run)


def test_directive_200x60_gives_the_event_log_a_share_of_the_height(
    seeded: Path, snap: Any
) -> None:
    """On a large terminal the event log stayed 7 rows under a mostly empty
    DAG: it takes a quarter of the height (at least 7 rows, as at 80x24)."""
    app = seeded_app(seeded, open_directive=ACTIVE_ID)

    async def mid_run(pilot: Pilot[Any]) -> None:
        await _open_mid_run(pilot)
        assert app.screen.query_one(EventLog).outer_size.height >= 14  # was 7

    assert snap(app, terminal_size=(200, 60), run_before=mid_run)


def test_approval_modal(seeded: Path, snap: Any) -> None:
    app = seeded_app(seeded, open_directive=ACTIVE_ID)

    async def modal(pilot: Pilot[Any]) -> None:
        await _open_mid_run(pilot)
        await pilot.press("a")
        await settle(pilot, lambda: type(app.screen).__name__ == "ApprovalModal")

    assert snap(app, terminal_size=(100, 32), run_before=modal)


def test_approval_modal_80x24_keeps_its_buttons_on_screen(seeded: Path, snap: Any) -> None:
    app = seeded_app(seeded, open_directive=ACTIVE_ID)

    async def modal(pilot: Pilot[Any]) -> None:
        await _open_mid_run(pilot)
        await pilot.press("a")
        await settle(pilot, lambda: type(app.screen).__name__ == "ApprovalModal")
        button = app.screen.query_one("#choice-approve")
        assert button.region.bottom <= 24 and button.region.height > 0, button.region

    assert snap(app, terminal_size=(80, 24), run_before=modal)


def _seen(widget: Any) -> bool:
    """Shown on the screen at its middle: not clipped by its dialog."""
    x, y = widget.region.center
    return bool(widget.region.area) and widget.screen.get_widget_at(x, y)[0] is widget


def test_request_changes_80x24_keeps_its_buttons_under_its_error(seeded: Path, snap: Any) -> None:
    """Enter with no comment shows "A comment is required…": at 80x24 the
    line pushed Request changes / Cancel out of the dialog. The evaluation
    scrolls; the comment, the error and the buttons stay."""
    app = seeded_app(seeded, open_directive=ACTIVE_ID)

    async def modal(pilot: Pilot[Any]) -> None:
        await _open_mid_run(pilot)
        await pilot.press("c")
        await settle(pilot, lambda: type(app.screen).__name__ == "ApprovalModal")
        await pilot.press("enter")
        error = app.screen.query_one("#approval-error")
        await settle(pilot, lambda: error.display)
        parts = (
            ".dialog-title",
            "#comment",
            "#approval-error",
            "#choice-request_changes",
            "#cancel",
        )
        for part in parts:
            assert _seen(app.screen.query_one(part)), part

    assert snap(app, terminal_size=(80, 24), run_before=modal)


def test_help(seeded: Path, snap: Any) -> None:
    app = seeded_app(seeded, open_directive=ACTIVE_ID)

    async def help_screen(pilot: Pilot[Any]) -> None:
        await _open_mid_run(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: type(app.screen).__name__ == "HelpScreen")

    assert snap(app, terminal_size=(100, 36), run_before=help_screen)


# -- the DAG alone: every status, focus and edges ---------------------------

STATUS_ROWS: list[tuple[StepStatus, float | None, ConfidenceLevel | None, int]] = [
    (StepStatus.PENDING, None, None, 0),
    (StepStatus.READY, None, None, 0),
    (StepStatus.RUNNING, None, None, 0),
    (StepStatus.EVALUATING, None, None, 0),
    (StepStatus.AWAITING_APPROVAL, 0.64, ConfidenceLevel.YELLOW, 0),
    (StepStatus.REWORK, 0.35, ConfidenceLevel.RED, 2),
    (StepStatus.PASSED, 0.93, ConfidenceLevel.GREEN, 0),
    (StepStatus.BLOCKED, 0.12, ConfidenceLevel.RED, 3),
    (StepStatus.FAILED, None, None, 0),
    (StepStatus.SKIPPED, None, None, 0),
    (StepStatus.SUPERSEDED, 0.4, ConfidenceLevel.RED, 1),
]


def status_steps() -> list[Step]:
    """A root, then one step per status in two layers (so edges fan out and
    one skips a layer)."""
    root = Step(id="root", chain_id="c", directive_id="d", name="plan", layer=0, row=0,
                spec=StepSpec(name="plan", type="design"), status=StepStatus.PASSED,
                confidence=1.0, level=ConfidenceLevel.GREEN)  # fmt: skip
    steps = [root]
    for number, (status, score, level, rework) in enumerate(STATUS_ROWS):
        name = status.value.replace("_", "-")
        layer, row = (1, number) if number < 6 else (2, number - 6)
        steps.append(
            Step(
                id=f"s{number}",
                chain_id="c",
                directive_id="d",
                name=name,
                layer=layer,
                row=row,
                spec=StepSpec(name=name, type="implement"),
                status=status,
                confidence=score,
                level=level,
                rework_count=rework,
                depends_on=["root"],
            )  # fmt: skip
        )
    return steps


class DagOnly(App[None]):
    CSS_PATH = str(TCSS)

    def compose(self) -> ComposeResult:
        yield DagView(id="dag")

    def on_mount(self) -> None:
        dag = self.query_one(DagView)
        dag.set_steps(status_steps())
        dag.focus()


def test_dag_every_status(snap: Any) -> None:
    assert snap(DagOnly(), terminal_size=(96, 32), press=["right", "down"])
