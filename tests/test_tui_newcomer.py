"""What a newcomer ran into on a first walk through the app, on a small
repository of their own: headers cut short, words that named the wrong
thing, keys a dialog showed but did not take, a step hanging with nothing
to say how long."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.widgets import Static

from engine.models import ApprovalDecision, Autonomy, StepSpec, StepStatus
from tests.engine_kit import Script, chain_spec
from tests.tui_kit import Notes, app_for, box_status, engine, footer_keys, printed, started, until
from tui.screens.result import ENDED


async def test_home_keeps_whole_headers_over_narrow_cells(tmp_path: Path) -> None:
    """One directive whose cells ("2/2", "–") are narrower than their
    headers: after a rebuild the table showed "Ste" and "A" for Steps and
    Approvals, with room to spare at the right."""
    from tui.widgets.directive_table import DirectiveTable

    app = app_for(tmp_path, Script())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        spec = chain_spec(tmp_path, [("build", [])]).model_copy(
            update={"title": "tally: discounts and VAT on invoices"}
        )
        await engine(app).create_directive(spec)
        table = app.screen.query_one(DirectiveTable)
        await until(pilot, lambda: len(table.rows) == 1, "the row")
        await pilot.pause()
        header = table.render_line(0).text
        for label in ("Directive", "Status", "Steps", "Cost / limit", "Time", "Approvals"):
            assert label in header
        assert table.max_scroll_x == 0


async def test_a_failed_steps_request_is_named_decide_not_blocked(tmp_path: Path) -> None:
    """A step whose command failed is `failed`, not blocked, yet its request
    read "blocked" in the approvals panel: it is named by what it asks, as
    the footer names `a` on it ("Decide")."""
    from tui.widgets.approvals import ApprovalsPanel

    app = app_for(tmp_path, Script(fail={"build": "command exited with 3"}))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: box_status(app, "build") == StepStatus.FAILED, "failed")
        await pilot.press("2")
        panel = app.screen.query_one(ApprovalsPanel)
        await until(pilot, lambda: panel.approvals, "the request")
        assert panel.get_row_at(0)[1].plain == "decide"
        assert "a" in footer_keys(app.screen)


async def test_an_escalations_note_says_how_to_reach_its_answer_keys(tmp_path: Path) -> None:
    """The note has the focus, so `r` right away wrote "r" in it beside a
    button reading "Retry [r]" (and retried with the note "r" at the next
    Enter). The note's placeholder says the way: Enter, then a key."""
    from textual.widgets import Input

    from tui.modals.approval import ApprovalModal

    app = app_for(tmp_path, Script(fail={"build": "command exited with 3"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: box_status(app, "build") == StepStatus.FAILED, "failed")
        await until(pilot, lambda: "a" in footer_keys(app.screen), "the Decide key")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        modal = app.screen
        assert isinstance(modal, ApprovalModal)
        note = modal.query_one("#comment", Input)
        assert note.placeholder == "note for the retried step (optional); enter, then r, s, p or x"
        await pilot.press("enter", "r")
        await until(pilot, lambda: app.screen is not modal, "the answer")
        answered = await engine(app).store.get_approval(modal.approval.id)
        assert (answered.decision, answered.comment) == (ApprovalDecision.RETRY, None)


async def test_the_step_panel_shows_a_commands_line_and_how_long_it_has_run() -> None:
    """A shell step running `sleep 600` showed "#1 shell running $0.00" and
    nothing else: not what it runs, nor since when (its timeout is half an
    hour by default). The command is under the description; a running
    attempt says since when, a finished one how long it took."""
    from textual.app import App, ComposeResult

    from engine.models import Step, StepRun, StepSpec
    from tui.format import clock
    from tui.widgets.step_detail import StepDetail

    class DetailOnly(App[None]):
        def compose(self) -> ComposeResult:
            yield StepDetail()

    app = DetailOnly()
    async with app.run_test(size=(60, 20)) as pilot:
        detail = app.query_one(StepDetail)
        spec = StepSpec(name="hangs", type="shell", command="sleep 600")
        step = Step(chain_id="c", directive_id="d", name="hangs", spec=spec,
                    status=StepStatus.RUNNING, attempts=2)  # fmt: skip
        runs = [
            StepRun(step_id=step.id, directive_id="d", attempt=1, executor="shell",
                    status="failed", started_at=1000.0, finished_at=1095.0),
            StepRun(step_id=step.id, directive_id="d", attempt=2, executor="shell",
                    started_at=2000.0),
        ]  # fmt: skip
        detail.show(step, runs, [], [])
        await pilot.pause()
        shown = printed(detail.query_one("#detail-body", Static).content)
        assert "$ sleep 600" in shown
        assert "#1 shell failed  $0.00  took 1m35s" in shown
        assert f"#2 shell running  $0.00  since {clock(2000.0)}" in shown


async def test_the_result_screen_follows_a_fast_forward_refused_by_a_dirty_tree(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """An uncommitted edit in your checkout refuses `m`, and the app said
    so, but the line above the checkpoints still read "m: fast-forward
    main ..." and the footer kept `m` until the screen was opened again.
    The diff of a completed directive is its final diff."""
    from tests.test_engine_worktrees import BASE, NO_LLM
    from tests.test_tui_git import completed_result, left_then_right
    from tui.app import DirectiveApp

    repo = make_git_repo(BASE)
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=(120, 34)) as pilot:
        notes = Notes(app)
        _, screen = await completed_result(pilot, app, left_then_right(repo))
        assert screen.query_one("#result-diff").border_title == "Final diff"
        offer = screen.query_one("#result-offer", Static)
        assert str(offer.content).startswith(" m: fast-forward main")
        assert "m" in footer_keys(screen)
        (repo / "a.txt").write_text("my own edit\n")
        await pilot.press("m")
        await until(pilot, lambda: notes.has("uncommitted changes", "warning"), "the refusal")
        await until(pilot, lambda: "uncommitted" in str(offer.content), "the line to follow")
        await until(pilot, lambda: "m" not in footer_keys(screen), "m to leave the footer")


async def test_the_result_of_a_running_directive_is_its_diff_so_far(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """ "Final diff" headed the result of a directive still at work (here
    waiting for its plan to be approved): the steps to come change it."""
    from tests.test_engine_worktrees import BASE, NO_LLM, OK, edit
    from tests.test_tui_git import open_result, scripted
    from tui.app import DirectiveApp
    from tui.screens.directive import DirectiveScreen

    repo = make_git_repo(BASE)
    spec = scripted(repo, [StepSpec(name="left", attempts=[edit("a.txt", "ONE\n")])], [OK])
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=(120, 34)) as pilot:
        await started(pilot, app, spec.model_copy(update={"autonomy": Autonomy.MANUAL}))
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(pilot, lambda: screen.approvals, "the plan to approve")
        result = await open_result(pilot, app)
        assert result.result is not None and result.result.directive.status not in ENDED
        assert result.query_one("#result-diff").border_title == "Diff so far"


async def test_an_evaluations_flags_are_shown_in_words() -> None:
    """ "⚠ for_a_person" and "⚠ tests_modified: ..." are the engine's names
    for programs; a person reads what they mean. A flag with no words yet
    is shown as it is."""
    from textual.app import App, ComposeResult

    from engine.models import ConfidenceLevel, Evaluation, Step
    from tui.widgets.step_detail import StepDetail

    class DetailOnly(App[None]):
        def compose(self) -> ComposeResult:
            yield StepDetail()

    app = DetailOnly()
    async with app.run_test(size=(100, 20)) as pilot:
        detail = app.query_one(StepDetail)
        step = Step(chain_id="c", directive_id="d", name="add-vat",
                    spec=StepSpec(name="add-vat"), status=StepStatus.AWAITING_APPROVAL)  # fmt: skip
        flags = ["tests_modified: tests/test_vat.py", "for_a_person", "brand_new_flag"]
        evaluation = Evaluation(directive_id="d", step_id=step.id, score=0.0,
                                level=ConfidenceLevel.YELLOW, passed=False, flags=flags)  # fmt: skip
        detail.show(step, [], [evaluation], [])
        await pilot.pause()
        shown = printed(detail.query_one("#detail-body", Static).content)
        assert "⚠ tests changed: tests/test_vat.py, for a person to decide, brand_new_flag" in shown
