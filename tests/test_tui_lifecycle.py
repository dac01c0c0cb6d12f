"""A directive's later life in the app: a paused one says why above its
budgets, an ended one offers `G` for its result in the footer (listed once
in help and the palette), and from home a draft or an ended one can be
deleted (the `delete` key, asked first, and asked again when its result is
on its branch only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.engine import EngineServices
from engine.models import DirectiveStatus, StepStatus
from tests.engine_kit import Script, chain_spec
from tests.test_delete import spec as writing_spec
from tests.tui_kit import (
    Notes,
    app_for,
    box_status,
    directive_status,
    engine,
    footer_keys,
    held_app,
    loaded,
    started,
    until,
)
from tui.app import DirectiveApp
from tui.modals.confirm import ConfirmModal
from tui.screens.help import help_sections
from tui.screens.home import HomeScreen

SIZE = (100, 30)


async def test_an_ended_directive_is_deleted_from_home_after_asking(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("only", [])]))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "end")
        await pilot.press("escape")
        home = app.screen
        assert isinstance(home, HomeScreen)
        await until(pilot, lambda: "delete" in footer_keys(home), "the delete key")

        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        assert "Delete test directive for good?" in app.screen.question
        await pilot.press("y")
        await until(pilot, lambda: not home.directives, "the row to go")
        assert await engine(app).store.list_directives() == []
        assert notes.has(f"deleted 'test directive' ({did})")


async def test_a_running_directive_is_not_offered_for_deletion(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        await pilot.press("escape")
        home = app.screen
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.ACTIVE), "active")
        assert "delete" not in footer_keys(home)
        await pilot.press("delete")
        await until(pilot, lambda: notes.has("test directive is active: stop it first to delete it."),
                    "the refusal")  # fmt: skip
        assert [d.id for d in await engine(app).store.list_directives()] == [did]


async def test_a_result_on_its_branch_only_is_asked_about_again(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    app = DirectiveApp(tmp_path / "tui.db", services=EngineServices(llm_provider=lambda s: None))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, writing_spec(make_git_repo()))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "end")
        await pilot.press("escape")
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the first question")
        await pilot.press("y")
        await until(
            pilot,
            lambda: isinstance(app.screen, ConfirmModal) and "anyway" in app.screen.question,
            "the second question",
        )
        assert f"is on branch directive/{did}/integration and nowhere else" in app.screen.question
        await pilot.press("escape")  # kept
        await pilot.pause(0.2)
        assert [d.id for d in await engine(app).store.list_directives()] == [did]

        await pilot.press("delete", "y")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal) and "anyway" in
                    app.screen.question, "asked again")  # fmt: skip
        await pilot.press("y")
        await until(pilot, lambda: notes.has(f"removed branch directive/{did}/integration"), "gone")
        assert await engine(app).store.list_directives() == []


async def test_an_ended_directive_s_footer_offers_its_result(tmp_path: Path) -> None:
    gate = asyncio.Event()  # the step runs until the footer has been read
    app = held_app(tmp_path, Script(), {"only": gate})
    async with app.run_test(size=(80, 24)) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("only", [])]))
        await until(pilot, lambda: box_status(app, "only") == StepStatus.RUNNING, "running")
        assert "G" not in footer_keys(app.screen)  # running: G works, the footer has no room
        gate.set()
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "end")
        await until(pilot, lambda: "G" in footer_keys(app.screen), "G in the footer")
        listed = [keys for keys, what in help_sections(app.screen)[0][1] if what == "Result"]
        assert listed == ["G"]  # bound twice, listed once
        assert loaded(app)


async def test_the_palette_lists_an_ended_directive_s_result_once(tmp_path: Path) -> None:
    from tui.commands import screen_commands

    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("only", [])]))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "end")
        titles = [title for title, _, _, _ in screen_commands(app.screen)]
        assert titles.count("Result") == 1


async def test_a_paused_directive_says_why_above_its_budgets(tmp_path: Path) -> None:
    from tui.widgets.budgets import BudgetBars

    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        await engine(app).pause_directive(did, reason="paused for the night")
        bars = app.screen.query_one(BudgetBars)
        await until(pilot, lambda: bars.has_class("-paused"), "the banner")
        _, banner = bars.render().renderables  # type: ignore[attr-defined]
        assert banner.plain == "‖ paused for the night  p resume"
        await engine(app).resume_directive(did)
        await until(pilot, lambda: not bars.has_class("-paused"), "the banner to go")


async def test_home_offers_no_directive_keys_with_no_directive(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        home = app.screen
        assert isinstance(home, HomeScreen)
        assert footer_keys(home) == ["n", "q"]


async def test_a_failed_step_s_escalation_says_it_failed(tmp_path: Path) -> None:
    from tui.modals.approval import ApprovalModal

    app = app_for(tmp_path, Script(fail={"build": "exit 3"}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        # `a` answers what the screen holds: the escalation once it has read it
        await until(pilot, lambda: app.screen.approvals, "the escalation on screen")  # type: ignore[attr-defined]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the escalation dialog")
        assert str(app.screen.query_one(".dialog-title").render()) == (
            "Step build failed: what now?"
        )


async def test_a_confirmation_s_footer_names_its_keys_as_its_buttons_do(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        footer = {
            key: active.binding.description
            for key, active in app.screen.active_bindings.items()
            if active.binding.show and active.node is app.screen
        }
        assert footer == {"y": "Confirm", "escape": "Cancel", "n": "Cancel"}
        await pilot.press("escape")


async def test_a_directive_deleted_by_another_process_leaves_the_app(tmp_path: Path) -> None:
    """No event says so (its log goes with it): its own screen closes,
    saying why, and home drops its row, rather than an error on the next
    look at it."""
    import asyncio

    from tests.test_two_processes import ENV, PY, ROOT

    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        keep = await started(pilot, app, chain_spec(tmp_path, [("only", [])]))
        await until(pilot, lambda: directive_status(app, keep, DirectiveStatus.COMPLETED), "end")
        await pilot.press("escape")
        did = await started(pilot, app, chain_spec(tmp_path, [("only", [])]))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "end")
        shown = app.screen

        proc = await asyncio.create_subprocess_exec(
            PY, "-m", "tui.cli", "--db", str(tmp_path / "tui.db"), "delete", did,
            cwd=ROOT, env=ENV, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await proc.wait() == 0

        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "its screen to close")
        assert shown not in app.screen_stack
        assert notes.has("'test directive' was deleted", "warning")
        home = app.screen
        assert isinstance(home, HomeScreen)
        await until(pilot, lambda: list(home.directives) == [keep], "its row to go")
        assert not notes.has("no directive with id")
        assert not [m for s, m in notes.messages if s == "error"]

        app.open_directive_screen(did)  # a row read just before it went: no traceback
        await until(pilot, lambda: notes.messages.count(("warning", f"{did} was deleted")) == 1,
                    "said")  # fmt: skip
        await until(pilot, lambda: app.screen is home, "back home")


async def test_resume_from_the_command_line_resumes_the_directive_it_opens(
    tmp_path: Path,
) -> None:
    """`directive-tui resume ID` without --headless: the app opens on the
    directive and resumes it, as the headless run would."""
    first = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with first.run_test(size=SIZE) as pilot:
        did = await started(pilot, first, chain_spec(tmp_path, [("slow", [])]))
        await engine(first).pause_directive(did, reason="paused for the night")
        await until(pilot, lambda: directive_status(first, did, DirectiveStatus.PAUSED), "pause")

    app = app_for(tmp_path, Script(), open_directive=did[:6], resume=True)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "end")
        # said as the app follows the events; the completion was read from the store
        await until(pilot, lambda: notes.has("resumed: test directive"), "the resume, said")


async def test_resume_of_an_ended_directive_says_there_is_nothing_to_resume(
    tmp_path: Path,
) -> None:
    first = app_for(tmp_path, Script())
    async with first.run_test(size=SIZE) as pilot:
        did = await started(pilot, first, chain_spec(tmp_path, [("only", [])]))
        await until(pilot, lambda: directive_status(first, did, DirectiveStatus.COMPLETED), "end")

    app = app_for(tmp_path, Script(), open_directive=did, resume=True)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: loaded(app), "the directive screen")
        await until(pilot, lambda: notes.has("nothing to resume"), "the word")
        assert notes.has("test directive has ended (completed): nothing to resume")


async def test_time_that_stands_while_a_person_is_awaited_is_marked(tmp_path: Path) -> None:
    """The clock stops while only a person can move the directive: the time
    stopped moving on screen with nothing saying why."""
    from tests.tui_kit import plain_text
    from tui.presentation import CLOCK_STANDS
    from tui.widgets.budgets import BudgetBars

    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        bars = app.screen.query_one(BudgetBars)
        await until(pilot, lambda: CLOCK_STANDS.strip() in plain_text(bars), "the mark")
        (review,) = await engine(app).store.pending_approvals(did)
        await engine(app).resolve_approval(review.id, "approve")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "end")
        assert CLOCK_STANDS.strip() not in plain_text(bars)


@pytest.mark.parametrize("width", [80, 100, 120, 200])
async def test_approvals_of_two_directives_of_one_title_name_their_ids(
    tmp_path: Path, width: int
) -> None:
    """Home's table told them apart by a short id; the approvals under it
    showed the same title twice."""
    from tui.widgets.approvals import ApprovalsPanel

    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=(width, 30)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        ids = []
        for _ in range(2):
            d = await engine(app).create_directive(chain_spec(tmp_path, [("build", [])]))
            await engine(app).start_directive(d.id)
            ids.append(d.id)
        panel = app.screen.query_one(ApprovalsPanel)
        await until(
            pilot, lambda: len(panel.approvals) == panel.row_count == 2, "both approvals' rows"
        )
        cells = [panel.get_row_at(row)[2] for row in range(2)]
        room = list(panel.columns.values())[2].width
        assert all(cell.cell_len <= room for cell in cells)  # nothing cropped away
        shown = {cell.plain for cell in cells}
        # the whole id at every width, the title cut before it if need be
        assert {cell[-6:] for cell in shown} == {did[:6] for did in ids}
        assert all(cell.startswith(("test directive ", "test d")) for cell in shown)


async def test_home_at_80_columns_still_fits_when_the_clock_mark_goes(tmp_path: Path) -> None:
    """Paused, the row lost its ⏸ and the table outgrew its pane: a cut
    'Approval' header and a horizontal scrollbar."""
    from tui.widgets.directive_table import DirectiveTable

    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=(80, 24)) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.ACTIVE), "active")
        await pilot.press("escape")
        table = app.screen.query_one(DirectiveTable)
        await until(pilot, lambda: "⏸" in str(table._rows), "the mark")  # noqa: SLF001
        assert table.max_scroll_x == 0
        await engine(app).pause_directive(did)
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.PAUSED), "paused")
        await until(pilot, lambda: "⏸" not in str(table._rows), "the mark to go")  # noqa: SLF001
        await pilot.pause()  # laid out again
        assert table.max_scroll_x == 0
