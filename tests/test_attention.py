"""The app rings the terminal bell when a person is needed: an approval to
answer, a directive that paused or ended by itself. What the person did
themselves rings nothing, and `--no-bell` silences it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.events import ApprovalRequired, DirectiveStatusChanged
from engine.models import Actor
from tests.engine_kit import Script, chain_spec
from tests.tui_kit import SIZE, app_for, engine, followed, started, until
from tui.app import DirectiveApp
from tui.attention import calls_for_a_person


def moved(new_status: str, actor: Actor = Actor.SYSTEM) -> DirectiveStatusChanged:
    return DirectiveStatusChanged(
        directive_id="d", old_status="active", new_status=new_status, actor=actor
    )


@pytest.mark.parametrize(
    ("event", "rings"),
    [
        (
            ApprovalRequired(directive_id="d", approval_id="a", kind="step_review", summary="s"),
            True,
        ),
        (moved("paused"), True),  # a breaker, or the repository folder went
        (moved("completed"), True),
        (moved("failed"), True),
        (moved("paused", Actor.USER), False),
        (moved("stopped", Actor.USER), False),
        (moved("active"), False),
    ],
)
def test_what_calls_for_a_person(event: Any, rings: bool) -> None:
    assert calls_for_a_person(event) is rings


class Bells:
    def __init__(self, app: DirectiveApp) -> None:
        self.count = 0

        def bell() -> None:
            self.count += 1

        app.bell = bell  # type: ignore[method-assign]


async def test_the_bell_rings_for_an_approval_but_not_for_the_person_s_own_pause(
    tmp_path: Path,
) -> None:
    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        bells = Bells(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("build", []), ("ship", ["build"])]))
        await until(pilot, lambda: bells.count == 1, "the bell for the yellow step")
        await engine(app).pause_directive(did)
        await engine(app).resume_directive(did)
        await followed(pilot, app, did)  # the app has seen the pause and the resume
        assert bells.count == 1
        events = await engine(app).store.list_events(did)
        paused = [e for e in events if getattr(e, "new_status", None) == "paused"]
        assert [e.actor for e in paused] == [Actor.USER]


async def test_no_bell_when_switched_off(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script(scores={"build": [0.6]}), bell=False)
    async with app.run_test(size=SIZE) as pilot:
        bells = Bells(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(
            pilot, lambda: engine(app).store.pending_approvals(did), "the yellow step's approval"
        )
        await followed(pilot, app, did)  # the app has seen the approval's event
        assert bells.count == 0
