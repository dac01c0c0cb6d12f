"""Regressions a reviewer found after a day of changes: what a screen
showed that it should not have (a key hint cut off, an old score, the
old theme's colours, a cut error) and what it said differently from the
command line or from another key. Each test drives the real app."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.models import StepStatus
from tests.engine_kit import Script, chain_spec
from tests.tui_kit import app_for, box_status, started, until
from tui.app import DirectiveApp


def screen_text(app: DirectiveApp) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_escalation_buttons_name_their_keys_in_full_once_the_note_is_left(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """After `enter` left the note the buttons read `Retry     Skip [s]
    Replan    Stop [x]`: a button kept the width of its first label
    ("Retry"), and "Retry [r]" wrapped onto a hidden second line; at 80
    columns "Cancel [esc]" was cut too. Every label shows whole."""
    from textual.widgets import Button

    from tui.modals.approval import ApprovalModal

    app = app_for(tmp_path, Script(fail={"build": "exit 1"}))
    async with app.run_test(size=size) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: box_status(app, "build") == StepStatus.FAILED, "failed")
        screen = app.screen
        await until(pilot, lambda: bool(screen.approvals), "the escalation")  # type: ignore[attr-defined]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        modal = app.screen
        shown = screen_text(app)
        for label in ("Retry", "Skip", "Replan", "Stop", "Cancel [esc]"):
            assert label in shown, label
        await pilot.press("enter")
        await until(
            pilot,
            lambda: str(modal.query_one("#choice-retry", Button).label) == "Retry [r]",
            "the keys named",
        )
        await pilot.pause()
        shown = screen_text(app)
        for label in ("Retry [r]", "Skip [s]", "Replan [p]", "Stop [x]", "Cancel [esc]"):
            assert label in shown, label
