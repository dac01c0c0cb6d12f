"""What a newcomer ran into on a first walk through the app, on a small
repository of their own: headers cut short, words that named the wrong
thing, keys a dialog showed but did not take, a step hanging with nothing
to say how long."""

from __future__ import annotations

from pathlib import Path

from tests.engine_kit import Script, chain_spec
from tests.test_tui_app import app_for, engine, until


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
