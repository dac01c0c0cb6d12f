"""The DAG widget: geometry from stored layer/row, edge characters, focus
moves, and that a status change redraws only the lines of its box (what
keeps 2,000 steps cheap)."""

from __future__ import annotations

from textual.app import App, ComposeResult

from engine.models import Step, StepSpec, StepStatus
from tui.widgets.dag import TILE, DagView
from tui.widgets.dag_geometry import BOX_H, BOX_W, LAYER_PITCH, ROW_PITCH, DagGeometry


def step(
    name: str, layer: int, row: int, deps: list[str] = (), status: StepStatus = StepStatus.PENDING
) -> Step:  # type: ignore[assignment]
    return Step(id=name, chain_id="c", directive_id="d", name=name, layer=layer, row=row,
                spec=StepSpec(name=name), depends_on=list(deps), status=status)  # fmt: skip


def diamond() -> list[Step]:
    return [
        step("a", 0, 0),
        step("b", 1, 0, ["a"]),
        step("c", 1, 1, ["a"]),
        step("d", 2, 0, ["b", "c"]),
    ]


def canvas(geom: DagGeometry) -> list[str]:
    """The edges alone, as text (boxes left blank)."""
    from tui.widgets.dag_geometry import edge_char

    rows = [[" "] * geom.width for _ in range(geom.height)]
    for y, cells in geom.edge_cells.items():
        for x, mask in cells.items():
            rows[y][x] = edge_char(mask)
    return ["".join(r).rstrip() for r in rows]


def test_boxes_sit_at_their_stored_layer_and_row() -> None:
    geom = DagGeometry.build(diamond())
    a, b, c, d = geom.boxes
    assert (b.x - a.x, c.y - b.y) == (LAYER_PITCH, ROW_PITCH)
    assert d.x == a.x + 2 * LAYER_PITCH and d.y == a.y
    assert geom.width >= d.x + BOX_W and geom.height >= c.y + BOX_H


def test_edges_join_right_side_to_left_side_with_an_arrow() -> None:
    geom = DagGeometry.build(diamond())
    a, b, c, _ = geom.boxes
    text = canvas(geom)
    port = a.y + 1
    # a's stub, the fork down to c, and an arrow before b and before c
    assert text[port][a.x + BOX_W : b.x] == "───┬─▶"
    assert text[c.y + 1][b.x - 1] == "▶"
    assert text[c.y + 1][a.x + BOX_W + 3] == "╰"


def test_an_edge_that_skips_a_layer_runs_above_its_target_row() -> None:
    steps = [step("a", 0, 1), step("b", 1, 1, ["a"]), step("c", 2, 0, ["a", "b"])]
    geom = DagGeometry.build(steps)
    a, _, c = geom.boxes
    channel = c.y - 1
    cells = geom.edge_cells[channel]
    # the long edge crosses layer 1 on the empty line above row 0, never a box
    assert all(x in cells for x in range(a.x + BOX_W + 3, c.x - 3))
    for box in geom.boxes:
        for y in range(box.y, box.y + BOX_H):
            assert not any(box.x <= x < box.x + BOX_W for x in geom.edge_cells.get(y, {}))


def test_neighbours_for_arrow_keys() -> None:
    geom = DagGeometry.build(diamond())
    assert geom.neighbour(0, "right") == 1
    assert geom.neighbour(1, "down") == 2
    assert geom.neighbour(2, "up") == 1
    assert geom.neighbour(2, "right") == 3
    assert geom.neighbour(0, "left") is None
    assert geom.neighbour(3, "right") is None


class DagApp(App[None]):
    def __init__(self, steps: list[Step]) -> None:
        super().__init__()
        self.steps = steps

    def compose(self) -> ComposeResult:
        yield DagView()

    def on_mount(self) -> None:
        dag = self.query_one(DagView)
        dag.set_steps(self.steps)
        dag.focus()


def big_chain(layers: int = 200, width: int = 10) -> list[Step]:
    """2,000 steps: each depends on two of the previous layer."""
    steps = []
    for layer in range(layers):
        for row in range(width):
            deps = (
                [] if layer == 0 else [f"s{layer - 1}-{row}", f"s{layer - 1}-{(row + 3) % width}"]
            )
            steps.append(step(f"s{layer}-{row}", layer, row, deps))
    return steps


async def test_two_thousand_steps_redraw_only_the_changed_box() -> None:
    steps = big_chain()
    assert len(steps) == 2000
    app = DagApp(steps)
    async with app.run_test(size=(100, 30)) as pilot:
        dag = app.query_one(DagView)
        await pilot.pause()
        drawn = dag.cached_tiles
        assert drawn and max(y for y, _ in drawn) < 30  # only what the viewport needed
        assert max(t for _, t in drawn) * TILE < 100  # ... and only its columns
        target = steps[3]  # s0-3: on screen, layer 0 row 3
        box = dag.geometry.boxes[dag.geometry.by_id[target.id]]
        dag.update_step(target.model_copy(update={"status": StepStatus.RUNNING}))
        assert dag.cached_tiles == {(y, t) for y, t in drawn if not box.y <= y < box.y + BOX_H}
        await pilot.pause()
        assert "running" in dag.render_line(box.y + 2 - int(dag.scroll_y)).text
        # moving far away scrolls there and draws only the lines it shows
        for _ in range(40):
            await pilot.press("right")
        focused = dag.focused_step
        assert focused is not None and focused.name == "s40-0"
        await pilot.pause()
        assert dag.scroll_x > 0
        reach = (int(dag.scroll_x) + dag.size.width) // TILE
        assert max(t for _, t in dag.cached_tiles) <= reach  # nothing past what was shown


async def test_mouse_click_focuses_a_box() -> None:
    app = DagApp(diamond())
    async with app.run_test(size=(120, 20)) as pilot:
        dag = app.query_one(DagView)
        c = dag.geometry.boxes[2]
        await pilot.click(DagView, offset=(c.x + 3, c.y + 1))
        assert dag.focused_step is not None and dag.focused_step.name == "c"
