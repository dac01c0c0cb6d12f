"""The git side of a directive in the app: each attempt's diff (`D`), the
result screen (`G`: checkpoints, final diff, fast-forward with `m`, reset
with `r`), driven from the keyboard against the real engine, real git
repositories and a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from engine.models import (
    Autonomy,
    Directive,
    DirectiveSpec,
    DirectiveStatus,
    ExecutorKind,
    Limits,
    PlannerKind,
    Step,
    StepSpec,
    VerifierConfig,
)
from tests.conftest import git
from tests.test_engine_worktrees import BASE, HALF, NO_LLM, OK, edit, three_to_reset
from tests.tui_kit import Notes, box_status, directive_status, footer_keys, loaded, started, until
from tui.app import DirectiveApp
from tui.modals.confirm import ConfirmModal
from tui.modals.diff import AttemptDiffs
from tui.screens.directive import DirectiveScreen
from tui.screens.help import HelpScreen
from tui.screens.result import ResultScreen
from tui.widgets.diff_log import DiffLog

SIZE = (120, 34)
HAS_TWO = {"name": "has-two", "command": "grep -q TWO a.txt"}


def left_then_right(
    repo: Path, left: str = "ONE\ntwo\nthree\n", right: str = "ALPHA\n"
) -> DirectiveSpec:
    """Two checked steps, `right` after `left`, each editing its own file:
    two checkpoints to look at and take."""
    return scripted(
        repo,
        [
            StepSpec(name="left", attempts=[edit("a.txt", left)]),
            StepSpec(name="right", attempts=[edit("b.txt", right)], depends_on=["left"]),
        ],
        [OK],
    )


async def completed_result(
    pilot: Pilot[Any], app: DirectiveApp, spec: DirectiveSpec
) -> tuple[str, ResultScreen]:
    """Start `spec`, let it complete, open its result screen."""
    did = await started(pilot, app, spec)
    await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion")
    return did, await open_result(pilot, app)


def scripted(repo: Path, steps: list[StepSpec], checks: list[dict[str, Any]]) -> DirectiveSpec:
    return DirectiveSpec(
        title="git result",
        goal="show attempts and the result",
        repo=repo,
        autonomy=Autonomy.GUARDRAILS,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SCRIPTED,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False, extra=checks),
        limits=Limits(max_parallel_steps=1),
        steps=steps,
    )


def directive_screen(app: DirectiveApp) -> DirectiveScreen:
    screen = next(s for s in reversed(app.screen_stack) if isinstance(s, DirectiveScreen))
    return screen


def shown(log: DiffLog) -> str:
    return "\n".join(log.shown)


async def open_result(pilot: Pilot[Any], app: DirectiveApp) -> ResultScreen:
    await pilot.press("G")
    await until(pilot, lambda: isinstance(app.screen, ResultScreen), "the result screen")
    screen = app.screen
    assert isinstance(screen, ResultScreen)
    await until(pilot, lambda: screen.result is not None, "the result read from git")
    return screen


async def settled_steps(app: DirectiveApp, did: str) -> dict[str, Step]:
    """Once the engine rests: the current chain's steps by name."""
    assert app.engine is not None
    await app.engine.wait_settled(did, timeout=30)
    chain = await app.engine.store.current_chain(did)
    assert chain is not None
    return {s.name: s for s in await app.engine.store.list_steps(chain.id)}


def tip(repo: Path, did: str) -> str:
    return git(repo, "rev-parse", f"directive/{did}/integration").strip()


async def test_attempt_diffs_latest_first_with_their_added_lines(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    spec = scripted(
        repo,
        # the first attempt fails the check (red), the second passes
        [StepSpec(name="edit-a", attempts=[edit("a.txt", "ONE\n"), edit("a.txt", "TWO\n")])],
        [HAS_TWO],
    )
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, spec)
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        await until(pilot, lambda: notes.has("press G"), "the result-ready notification")
        screen = directive_screen(app)
        screen.dag.focus_step(screen.dag.steps[0].id)
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, AttemptDiffs), "the diff modal")
        modal = app.screen
        assert isinstance(modal, AttemptDiffs)
        await until(pilot, lambda: modal.loaded, "the diffs read from git")
        text = shown(modal.query_one(DiffLog))
        assert text.index("Attempt #2") < text.index("Attempt #1")  # latest first
        second, first = text.split("Attempt #1")
        assert "+TWO" in second and "-one" in second and "@@" in second
        assert "+ONE" in first and "+TWO" not in first
        runs = sorted(modal.runs, key=lambda r: r.attempt)
        assert runs[1].commit_sha and runs[1].commit_sha[:10] in second
        assert "failed" in first or "succeeded" in first  # the run's status is shown
        await pilot.press("escape")
        assert isinstance(app.screen, DirectiveScreen)


async def test_result_screen_lists_checkpoints_and_fast_forwards_after_confirm(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    user_head = git(repo, "rev-parse", "HEAD").strip()
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did, screen = await completed_result(pilot, app, left_then_right(repo))
        assert screen.result is not None
        table = screen.query_one(DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        cps = await app.engine.checkpoints(did)  # type: ignore[union-attr]
        # the first row is where the directive started: your branch's commit
        assert [r[0] for r in rows] == [user_head[:12]] + [c.sha[:12] for c in cps]
        assert [r[2] for r in rows] == ["start: before any step", "left", "right"]
        assert [r[3] for r in rows] == ["", "1", "1"]
        # The title counts what it lists: the start point, then two checkpoints.
        assert screen.query_one("#result-checkpoints").border_title == "Checkpoints (start + 2)"
        text = shown(screen.query_one(DiffLog))
        assert "a.txt | 2 +-" in text.replace("  ", " ") or "a.txt |" in text  # the --stat
        assert "2 files changed" in text
        assert text.index("files changed") < text.index("+ONE")  # summary on top
        assert "+ALPHA" in text and "-alpha" in text
        assert git(repo, "rev-parse", "HEAD").strip() == user_head  # untouched so far

        # The keys are in the help and the palette: `m`, not `r` (it has ended).
        from tui.commands import screen_commands

        actions = {action for _, _, _, action in screen_commands(screen)}
        assert "merge" in actions and "reset" not in actions
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        help_text = " ".join(f"{k} {d}" for _, keys in app.screen.sections for k, d in keys)  # type: ignore[attr-defined]
        assert "m Fast-forward your branch" in help_text and "Reset" not in help_text
        await pilot.press("escape")

        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm modal")
        assert "main" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("n")  # cancelled: nothing moves
        await pilot.pause()
        assert git(repo, "rev-parse", "HEAD").strip() == user_head
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm modal")
        await pilot.press("y")
        await until(pilot, lambda: notes.has("now points at"), "the fast-forward")
        assert git(repo, "rev-parse", "main").strip() == tip(repo, did)
        assert (repo / "a.txt").read_text() == "ONE\ntwo\nthree\n"
        assert git(repo, "status", "--porcelain") == ""
        # Nothing left to take: no longer offered, and said so when pressed.
        await until(pilot, lambda: "already at" in screen.result.offer.reason, "the new offer")  # type: ignore[union-attr]
        await until(pilot, lambda: "m" not in footer_keys(screen), "m to leave the footer")
        await pilot.press("m")
        await until(pilot, lambda: notes.has("Cannot fast-forward", "warning"), "the refusal")
        assert isinstance(app.screen, ResultScreen)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DirectiveScreen), "back")
        commands = {title: action for title, _, _, action in screen_commands(app.screen)}
        assert commands["Diff of attempt"] == "attempt_diffs"
        assert commands["Result"] == "result_ended"  # G, as the ended directive's footer has it
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        help_text = " ".join(f"{k} {d}" for _, keys in app.screen.sections for k, d in keys)  # type: ignore[attr-defined]
        assert "D Diff of attempt" in help_text and "G Result" in help_text


async def test_an_ended_directive_offers_no_reset_and_says_why_in_a_sentence(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """Nothing runs again once a directive has ended: `r` (and enter on a
    row) is not offered, and pressed anyway it says so plainly, without
    asking to confirm what the engine would refuse."""
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did, screen = await completed_result(
            pilot, app, left_then_right(make_git_repo(BASE), "ONE\n")
        )
        assert footer_keys(screen) == ["escape", "m"]
        assert not screen.query_one("#result-checkpoints").border_subtitle  # "r / enter: reset to"
        await pilot.press("r")
        await until(pilot, lambda: notes.has("git result is completed: its steps will not run "
                    "again, so there is nothing to reset.", "warning"), "the refusal")  # fmt: skip
        await pilot.press("down", "enter")
        await until(pilot, lambda: sum("nothing to reset" in m for _, m in notes.messages) == 2,
                    "the refusal again")  # fmt: skip
        assert app.screen is screen  # no question asked
        assert not notes.has("has ended (completed)")  # the engine's refusal is never reached


async def test_reset_to_the_first_checkpoint_after_confirm_runs_later_steps_again(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    spec = scripted(repo, three_to_reset(), [HALF, OK])
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, spec)
        await until(pilot, lambda: box_status(app, "s3") == "awaiting_approval", "s3 waits")
        screen = await open_result(pilot, app)
        await until(pilot, lambda: len(screen.result.checkpoints) == 3, "start + two checkpoints")  # type: ignore[union-attr]
        await until(pilot, lambda: "r" in footer_keys(screen), "r, while it is active")
        first = screen.result.checkpoints[1]  # type: ignore[union-attr]
        assert screen.query_one(DataTable).cursor_row == 0  # the start point
        await pilot.press("down", "r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm modal")
        question = app.screen.question  # type: ignore[attr-defined]
        assert first.sha[:12] in question and "s2, s3" in question
        assert "later steps go back to pending" in question
        await pilot.press("y")
        await until(pilot, lambda: notes.has("to run again: s2, s3"), "the reset's answer")
        assert tip(repo, did) != ""  # the branch still exists
        # s2 runs again from the checkpoint, then s3 asks again
        steps = await settled_steps(app, did)
        assert steps["s2"].status.value == "passed" and steps["s2"].attempts == 2
        assert steps["s3"].status.value == "awaiting_approval" and steps["s3"].attempts == 2
        # the screen followed: the start and two checkpoints, the new s2 on top of the first
        await until(
            pilot,
            lambda: (
                screen.result is not None
                and len(screen.result.checkpoints) == 3
                and screen.result.checkpoints[2].attempt == 2
            ),
            "the new checkpoint",
        )


async def test_reset_to_where_the_directive_started_runs_every_step_again(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    user_head = git(repo, "rev-parse", "HEAD").strip()
    spec = scripted(
        repo,
        [
            StepSpec(name="s1", attempts=[edit("a.txt", "1\n")], verifiers=["ok"]),
            # yellow: waits for a person while we reset
            StepSpec(name="s2", attempts=[edit("b.txt", "2\n")], depends_on=["s1"]),
        ],
        [HALF, OK],
    )
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, spec)
        await until(pilot, lambda: box_status(app, "s2") == "awaiting_approval", "s2 waits")
        screen = await open_result(pilot, app)
        await until(pilot, lambda: len(screen.result.checkpoints) == 2, "start + a checkpoint")  # type: ignore[union-attr]
        await pilot.press("r")  # on the first row: the start point
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm modal")
        question = app.screen.question  # type: ignore[attr-defined]
        assert f"where it started ({user_head[:12]}, before any step)" in question
        assert "run again: s1, s2" in question
        await pilot.press("y")
        await until(pilot, lambda: notes.has("to run again: s1, s2"), "the reset's answer")
        steps = await settled_steps(app, did)
        assert steps["s1"].status.value == "passed" and steps["s1"].attempts == 2
        assert steps["s2"].status.value == "awaiting_approval" and steps["s2"].attempts == 2
        assert git(repo, "rev-parse", "HEAD").strip() == user_head  # your branch untouched


async def test_a_directive_without_git_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "a.txt").write_text("one\n")
    spec = scripted(folder, [StepSpec(name="edit-a", attempts=[edit("a.txt", "ONE\n")])], [OK])
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, spec)
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        await until(pilot, lambda: notes.has("Directive completed."), "a plain notification")
        assert not notes.has("press G")
        screen = directive_screen(app)
        screen.dag.focus_step(screen.dag.steps[0].id)
        await pilot.press("D")
        await until(pilot, lambda: notes.has("no git workspace", "warning"), "the diff refusal")
        assert isinstance(app.screen, DirectiveScreen)
        await pilot.press("G")
        await until(pilot, lambda: notes.has("no git workspace", "error"), "the result refusal")
        result = app.screen
        assert isinstance(result, ResultScreen)
        assert "no git workspace" in shown(result.query_one(DiffLog))
        await pilot.press("m")  # refused again, no modal, no crash
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ResultScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, DirectiveScreen)


async def test_a_diff_too_long_to_show_names_the_command_for_this_database(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """The cut diff's hint carries `--db`: without it the command would read
    the default database, where this directive is not."""
    long_file = "".join(f"line {i}\n" for i in range(3_100))
    spec = scripted(
        make_git_repo(BASE), [StepSpec(name="big", attempts=[edit("big.txt", long_file)])], [OK]
    )
    db = tmp_path / "my work.db"
    app = DirectiveApp(db, services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, spec)
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        screen = await open_result(pilot, app)
        text = shown(screen.query_one(DiffLog))
        assert text.endswith(f"the whole diff: directive-tui --db '{db}' diff {did}")


# -- a picture of the result screen --------------------------------------------

FIXED_ID = "d0result0001"
GIT_DATE = "2025-12-29T09:20:00 +0000"


def test_result_screen_snapshot(
    tmp_path: Path,
    make_git_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    snap_compare: Any,
) -> None:
    """Same SHAs on every run: fixed commit dates (git reads them from the
    environment the engine passes on), a fixed directive id (it is in merge
    messages), fixed contents and identities."""
    monkeypatch.setenv("GIT_AUTHOR_DATE", GIT_DATE)
    monkeypatch.setenv("GIT_COMMITTER_DATE", GIT_DATE)
    repo = make_git_repo(BASE)
    spec = left_then_right(repo, right="ALPHA\nbeta\n")
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)

    async def result(pilot: Pilot[Any]) -> None:
        notes = Notes(app)
        await until(pilot, lambda: app.engine_ready, "the engine")
        assert app.engine is not None
        await app.engine.store.write(lambda tx: tx.add_directive(Directive(id=FIXED_ID, spec=spec)))
        await app.engine.start_directive(FIXED_ID)
        app.open_directive_screen(FIXED_ID)
        await until(pilot, lambda: loaded(app), "the directive screen")
        await until(
            pilot, lambda: directive_status(app, FIXED_ID, DirectiveStatus.COMPLETED), "done"
        )
        # said by a worker that reads the checkpoints: cleared once it has spoken,
        # or it could still come up in the picture
        await until(pilot, lambda: notes.has("press G"), "the result-ready notification")
        await open_result(pilot, app)
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=result)
