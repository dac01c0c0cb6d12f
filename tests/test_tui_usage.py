"""What a person at the keyboard ran into: keys that did nothing or said
the wrong thing, text cut off without a sign, and a start the app could
tell would fail at its first step."""

from __future__ import annotations

from pathlib import Path

from engine.models import StepStatus
from tests.engine_kit import Script, chain_spec
from tests.test_tui_app import SIZE, _box_status, app_for, started, until
from tui.modals.approval import ApprovalModal
from tui.screens.directive import DirectiveScreen


async def test_enter_on_the_approvals_panel_of_a_directive_answers_the_row(
    tmp_path: Path,
) -> None:
    """As on home: the panel's rows are approvals, and Enter opens the one
    highlighted (it did nothing on a directive's screen)."""
    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: _box_status(app, "build") == StepStatus.AWAITING_APPROVAL, "⚑")
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(pilot, lambda: screen.approvals, "the approval on screen")
        await pilot.press("2", "enter")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the approval modal")
        modal = app.screen
        assert isinstance(modal, ApprovalModal)
        assert modal.approval.id == screen.approvals[0].id
