"""A reviewer's day with the directive screen: what it showed could not be
told apart (names cut alike, attempts mixed in one tail), an answer was
given without seeing what it approved, and colour alone said what needed a
person. Each test drives the real app and shows what was wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.models import DirectiveStatus
from tests.engine_kit import Script, chain_spec
from tests.tui_kit import (
    SIZE,
    app_for,
    dag_of,
    directive_status,
    started,
    until,
)
from tui.app import DirectiveApp


async def box_lines(pilot: Any, app: DirectiveApp, step_id: str) -> tuple[str, str]:
    """The name line and the status line of a step's box, as drawn."""
    dag = dag_of(app)
    assert dag is not None
    dag.focus_step(step_id)
    await pilot.pause()
    box = dag.geometry.boxes[dag.geometry.by_id[step_id]]
    y = box.y - int(dag.scroll_y)
    x = box.x - int(dag.scroll_x)
    name = dag.render_line(y + 1).text[x : x + 24]
    status = dag.render_line(y + 2).text[x : x + 24]
    return name, status


async def test_long_step_names_stay_distinguishable_in_the_dag(tmp_path: Path) -> None:
    """Eight steps `worker-with-a-long-name-1..8` all read
    `worker-with-a-long-…`: a name is cut in the middle, so its end (what
    tells them apart) stays."""
    names = [f"worker-with-a-long-name-{n}" for n in range(1, 9)]
    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [(n, []) for n in names]))
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completed"
        )
        dag = dag_of(app)
        assert dag is not None
        shown = [(await box_lines(pilot, app, s.id))[0] for s in dag.steps]
        assert len(set(shown)) == len(names), shown
        for step, line in zip(dag.steps, shown, strict=True):
            assert "…" in line
            assert line.strip(" │┃").endswith(step.name[-6:])
