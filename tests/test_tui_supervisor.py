"""A day of supervising several directives from home: the keys act on what
the focused pane shows, a queue of approvals is worked down in place, a
dialog follows an answer given elsewhere, and the screens say what the
command line says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.models import ApprovalDecision, DirectiveSpec, DirectiveStatus
from tests.engine_kit import Script, chain_spec
from tests.tui_kit import (
    SIZE,
    Notes,
    app_for,
    engine,
    footer_keys,
    loaded,
    until,
)
from tui.app import DirectiveApp
from tui.modals.approval import ApprovalModal
from tui.modals.confirm import ConfirmModal
from tui.screens.directive import DirectiveScreen
from tui.screens.home import HomeScreen
from tui.widgets.approvals import ApprovalsPanel
from tui.widgets.directive_table import DirectiveTable


def titled(spec: DirectiveSpec, title: str) -> DirectiveSpec:
    return spec.model_copy(update={"title": title})


def home_of(app: DirectiveApp) -> HomeScreen:
    home = app.screen_stack[0] if isinstance(app.screen_stack[0], HomeScreen) else app.screen
    assert isinstance(home, HomeScreen)
    return home


async def directives_on_home(
    pilot: Any, app: DirectiveApp, tmp_path: Path, steps: dict[str, list[str]]
) -> dict[str, str]:
    """Directives titled by the keys of `steps`, each with those independent
    steps, created and started in that order; their ids by title, once home
    shows every one of them settled."""
    await until(pilot, lambda: app.engine_ready, "the engine")
    ids: dict[str, str] = {}
    for title, names in steps.items():
        d = await engine(app).create_directive(
            titled(chain_spec(tmp_path, [(n, []) for n in names]), title)
        )
        await engine(app).start_directive(d.id)
        ids[title] = d.id
    return ids


def panel_of(app: DirectiveApp) -> ApprovalsPanel:
    return home_of(app).query_one(ApprovalsPanel)


def table_of(app: DirectiveApp) -> DirectiveTable:
    return home_of(app).query_one(DirectiveTable)


async def test_home_keys_act_on_the_directive_of_the_focused_pane(tmp_path: Path) -> None:
    """With the approvals panel focused on B's request and A selected in the
    table, `x` asked "Stop A?" and `o` opened A; with a directive that has
    no approval selected, `a` opened another directive's. The directive
    acted on is the focused pane's: the highlighted request's in the
    approvals panel, the selected row's in the table, whose `a` answers its
    own oldest request or says it has none."""
    app = app_for(tmp_path, Script(scores={"a1": [0.6], "b1": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        ids = await directives_on_home(
            pilot, app, tmp_path, {"A": ["a1"], "B": ["b1"], "C": ["c1"]}
        )
        home = home_of(app)
        await until(pilot, lambda: len(panel_of(app).approvals) == 2, "A's and B's requests")
        await until(
            pilot,
            lambda: home.directives[ids["C"]].status is DirectiveStatus.COMPLETED,
            "C completed",
        )
        table, panel = table_of(app), panel_of(app)
        table.select(ids["A"])
        panel.focus()
        b_row = [a.directive_id for a in panel.approvals].index(ids["B"])
        panel.move_cursor(row=b_row)
        await until(pilot, lambda: home.selected and home.selected.id == ids["B"], "B in hand")
        assert table.selected_id == ids["A"]  # the table's row, out of focus, is not it

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        assert "Stop B for good?" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is home, "home again")

        await pilot.press("o")
        await until(pilot, lambda: loaded(app), "a directive screen")
        assert isinstance(app.screen, DirectiveScreen) and app.screen.directive_id == ids["B"]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is home, "home again")

        # The table: C has no approval; `a` is not offered, and says so.
        table.focus()
        table.select(ids["C"])
        await until(pilot, lambda: "a" not in footer_keys(home), "no a for C")
        await pilot.press("a")
        await until(pilot, lambda: notes.has("No pending approval for C."), "the refusal")
        assert app.screen is home
        # A's row: its own request, not the oldest of all.
        table.select(ids["B"])
        await until(pilot, lambda: "a" in footer_keys(home), "a for B")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "B's request")
        assert app.screen.approval.directive_id == ids["B"]  # type: ignore[attr-defined]
        await pilot.press("escape")


async def test_answering_from_the_panel_keeps_the_cursor_where_it_was(tmp_path: Path) -> None:
    """After an answer the cursor jumped back to the first request: it
    stays on its row, where the next one moved up, so a person works down
    the queue. `home` and `end` go to the first and last row of the home
    tables (DataTable bound them to scrolling sideways: they did nothing)."""
    names = ["r1", "r2", "r3"]
    app = app_for(tmp_path, Script(scores={n: [0.6] for n in names}))
    async with app.run_test(size=SIZE) as pilot:
        ids = await directives_on_home(
            pilot, app, tmp_path, {"A": ["r1"], "B": ["r2"], "C": ["r3"]}
        )
        await until(pilot, lambda: len(panel_of(app).approvals) == 3, "three requests")
        panel, table = panel_of(app), table_of(app)

        table.focus()
        await pilot.press("end")
        assert table.selected_id == ids["C"]
        await pilot.press("home")
        assert table.selected_id == ids["A"]

        panel.focus()
        await pilot.press("end")
        assert panel.cursor_row == 2
        await pilot.press("home")
        assert panel.cursor_row == 0
        await pilot.press("down")
        second, third = panel.approvals[1], panel.approvals[2]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the second request")
        assert app.screen.approval.id == second.id  # type: ignore[attr-defined]
        await pilot.press("y")
        await until(pilot, lambda: len(panel.approvals) == 2, "the answer on home")
        assert panel.cursor_row == 1
        assert panel.selected is not None and panel.selected.id == third.id
        # At the foot of the queue it stays on the last row.
        await pilot.press("a", "y")
        await until(pilot, lambda: len(panel.approvals) == 1, "the last answer on home")
        assert panel.cursor_row == 0


async def test_an_open_dialog_closes_when_its_request_is_answered_elsewhere(
    tmp_path: Path,
) -> None:
    """`directive-tui approve ID` in another terminal left the dialog open,
    and its key then said "already answered". It closes, saying how the
    request was answered; one closed unanswered (a stop) says that."""
    app = app_for(tmp_path, Script(scores={"a1": [0.6], "b1": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await directives_on_home(pilot, app, tmp_path, {"A": ["a1"], "B": ["b1"]})
        home = home_of(app)
        await until(pilot, lambda: len(panel_of(app).approvals) == 2, "two requests")
        panel_of(app).focus()
        await pilot.press("home", "a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        first = app.screen.approval  # type: ignore[attr-defined]
        await engine(app).resolve_approval(first.id, ApprovalDecision.APPROVE)
        await until(pilot, lambda: app.screen is home, "the dialog closed")
        assert notes.has("answered elsewhere: approved")

        await pilot.press("home", "a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the other dialog")
        other = app.screen.approval  # type: ignore[attr-defined]
        assert other.id != first.id
        await engine(app).stop_directive(other.directive_id)
        await until(pilot, lambda: app.screen is home, "the dialog closed")
        assert notes.has("closed unanswered")


def _columns_fit(table: DirectiveTable) -> bool:
    """Every column, the last header ("Approvals") included, in the view."""
    width = sum(column.get_render_width(table) for column in table.columns.values())
    return width <= table.scrollable_content_region.width


async def test_home_at_80_columns_with_more_directives_than_fit(tmp_path: Path) -> None:
    """The title column's room forgot the vertical scrollbar the rows
    needed: the header read "Approval" and a horizontal scrollbar came. And
    a directive completed with a skipped step read "3/3" where `list` says
    "3/3 steps (1 skipped)": home says it too, in full where it fits and
    "3/3»1" (» marks a skip in the DAG) where that would push the table
    past 80 columns."""
    app = app_for(tmp_path, Script(fail={"s2": "exit 1"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        skipping = await engine(app).create_directive(
            titled(chain_spec(tmp_path, [("s1", []), ("s2", []), ("s3", [])]), "a skip")
        )
        await engine(app).start_directive(skipping.id)
        home = home_of(app)
        await until(pilot, lambda: len(panel_of(app).approvals) == 1, "the escalation")
        await engine(app).resolve_approval(panel_of(app).approvals[0].id, ApprovalDecision.SKIP)
        for n in range(20):
            await engine(app).create_directive(
                titled(chain_spec(tmp_path, [("only", [])]), f"a directive with a long title {n}")
            )
        await until(
            pilot,
            lambda: (
                len(home.directives) == 21
                and home.directives[skipping.id].status is DirectiveStatus.COMPLETED
            ),
            "every row, the skip completed",
        )
        table = table_of(app)
        await until(pilot, lambda: table.show_vertical_scrollbar, "a vertical scrollbar")
        assert _columns_fit(table)

        assert not table.show_horizontal_scrollbar
        # Short at 80 columns (the DAG's mark for a skip), in full where it fits.
        assert table.get_cell(skipping.id, "progress").plain == "3/3»1"
        await pilot.resize_terminal(120, 30)
        await until(
            pilot,
            lambda: table.get_cell(skipping.id, "progress").plain == "3/3 (1 skipped)",
            "the skip in full",
        )
        assert not table.show_horizontal_scrollbar


async def test_home_at_80_columns_when_the_rows_outgrow_the_pane(tmp_path: Path) -> None:
    """The title's room was worked out before the vertical scrollbar the
    new row needed came (its coming sends no resize): with the row that
    outgrew the pane the last header read "Approval" above a horizontal
    scrollbar, until some later row laid the table out again."""
    app = app_for(tmp_path, Script())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        home, table = home_of(app), table_of(app)
        for n in range(20):
            await engine(app).create_directive(
                titled(chain_spec(tmp_path, [("only", [])]), f"a directive with a long title {n}")
            )
            await until(pilot, lambda n=n: len(home.directives) == n + 1, f"row {n + 1}")
            if table.show_vertical_scrollbar:
                break
        assert table.show_vertical_scrollbar
        assert _columns_fit(table)
        assert not table.show_horizontal_scrollbar


async def test_a_new_directive_is_selected_and_focused_on_home(tmp_path: Path) -> None:
    """Made with the approvals panel focused, `enter` then answered a
    request instead of opening the directive just made: the table has the
    focus, on its row."""
    from tests.tui_kit import open_the_form

    app = app_for(tmp_path, Script(scores={"a1": [0.6]}))
    async with app.run_test(size=(100, 40)) as pilot:
        await directives_on_home(pilot, app, tmp_path, {"A": ["a1"]})
        home = home_of(app)
        await until(pilot, lambda: len(panel_of(app).approvals) == 1, "A's request")
        panel_of(app).focus()
        await open_the_form(pilot, app)
        form = app.screen
        for name, value in {"title": "Tidy", "goal": "Tidy up", "repo": str(tmp_path)}.items():
            form.query_one(f"#field-{name}").value = value  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is home, "back home")
        made = next(d for d in await engine(app).store.list_directives() if d.title == "Tidy")
        await until(pilot, lambda: home.focused is table_of(app), "the table focused")
        assert table_of(app).selected_id == made.id
        await pilot.press("enter")
        await until(pilot, lambda: loaded(app), "a directive screen")
        assert app.screen.directive_id == made.id  # type: ignore[attr-defined]


async def test_the_limits_dialog_offers_every_limit_the_command_sets(tmp_path: Path) -> None:
    """`L` offered four of the six limits `directive-tui limits` sets: the
    rework cycles and the steps at once could be changed only there."""
    from textual.widgets import Input

    from tui.cli.limits import LIMIT_OPTIONS
    from tui.modals.limits import LimitsModal

    app = app_for(tmp_path, Script())
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        d = await engine(app).create_directive(chain_spec(tmp_path, [("only", [])]))
        app.open_directive_screen(d.id)
        await until(pilot, lambda: loaded(app), "the directive screen")
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LimitsModal), "the limits dialog")
        modal = app.screen
        fields = [i.id.removeprefix("limit-") for i in modal.query(Input) if i.id]
        assert fields == [name for name, _, _ in LIMIT_OPTIONS]
        modal.query_one("#limit-max_rework_cycles", Input).value = "5"
        modal.query_one("#limit-max_parallel_steps", Input).value = "1"
        modal.query_one("#limit-max_parallel_steps", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, LimitsModal), "saved")

        async def saved() -> bool:
            limits = (await engine(app).store.get_directive(d.id)).spec.limits
            return limits.max_rework_cycles == 5 and limits.max_parallel_steps == 1

        await until(pilot, saved, "the two limits saved")


async def test_home_names_its_database(tmp_path: Path) -> None:
    """A person who forgot DIRECTIVE_TUI_DB saw an empty home and no hint
    of which database it was: the title names the file, and the empty home
    its whole path."""
    from textual.widgets import Static

    from tests.tui_kit import plain_text

    app = DirectiveApp(tmp_path / "elsewhere.db", services=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        home = home_of(app)
        await until(pilot, lambda: home.query_one("#home-empty").display, "the empty home")
        assert "elsewhere.db" in plain_text(home.query_one("#home-title", Static))
        empty = " ".join(plain_text(home.query_one("#home-empty", Static)).split())
        assert f"No directives in {tmp_path / 'elsewhere.db'} yet" in empty
        # its demo command fills this database, not the default one
        assert f"or run `directive-tui --db {tmp_path / 'elsewhere.db'} demo`." in empty
