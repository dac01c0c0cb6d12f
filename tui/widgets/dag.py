"""The chain as a DAG: one line-API widget, however many steps.

Geometry is computed once per chain (`DagGeometry`); each canvas line is
drawn once into a cached `Strip` and cropped to the viewport on scroll. A
step's status change redraws only the lines its box covers, and only the
box's region of the screen is refreshed, so 2,000 steps stay as cheap as 20.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size, Spacing
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.models import Step
from tui.presentation import LEVEL_CSS, STEP_LOOK
from tui.widgets.dag_geometry import BOX_H, BOX_W, Box, DagGeometry, edge_char
from tui.widgets.looks import LOOK_CLASSES, Looks

BORDERS = {  # (top-left, top-right, bottom-left, bottom-right, horizontal, vertical)
    False: ("╭", "╮", "╰", "╯", "─", "│"),
    True: ("┏", "┓", "┗", "┛", "━", "┃"),
}
INNER = BOX_W - 4  # text width inside "│ " and " │"


def fit(text: str, width: int) -> str:
    """Pad or cut `text` to exactly `width` cells, with an ellipsis when cut."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


class DagView(Looks, ScrollView, can_focus=True):
    """Boxes for steps, lines for dependencies; arrows or hjkl move the focus."""

    COMPONENT_CLASSES = LOOK_CLASSES | {
        "dag--edge",
        "dag--edge-hot",
        "dag--focus",
        "dag--name",
        "dag--type",
        "dag--count",
        "dag--empty",
    }

    BINDINGS = [
        Binding("up,k", "move('up')", "Step up", show=False),
        Binding("down,j", "move('down')", "Step down", show=False),
        Binding("left,h", "move('left')", "Step left", show=False),
        Binding("right,l", "move('right')", "Step right", show=False),
        Binding("home", "first", "First step", show=False),
        Binding("end", "last", "Last step", show=False),
    ]

    class Focused(Message):
        """The focused step changed (None: the chain is empty)."""

        def __init__(self, dag: DagView, step: Step | None) -> None:
            super().__init__()
            self.dag = dag
            self.step = step

    empty_text: var[str] = var("no chain yet")

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._steps: list[Step] = []
        self._geom = DagGeometry.build([])
        self._lines: dict[int, Strip] = {}
        self._styles: dict[str, Style] = {}
        self._focus: int | None = None
        self._hot: dict[int, set[int]] = {}

    # -- data ---------------------------------------------------------------

    @property
    def steps(self) -> Sequence[Step]:
        return self._steps

    @property
    def geometry(self) -> DagGeometry:
        return self._geom

    @property
    def focused_step(self) -> Step | None:
        return None if self._focus is None else self._steps[self._focus]

    @property
    def cached_lines(self) -> set[int]:
        """Canvas lines drawn and kept: lets tests see what a change redrew."""
        return set(self._lines)

    def set_steps(self, steps: Iterable[Step]) -> None:
        """A new chain (or a reload): geometry once, every line drawn afresh.
        The focus stays on the same step id, or the same name, when it can."""
        old = self.focused_step
        self._steps = list(steps)
        self._geom = DagGeometry.build(self._steps)
        self._lines.clear()
        self._focus = None
        if old is not None:
            self._focus = self._geom.by_id.get(old.id)
            if self._focus is None:
                self._focus = next(
                    (i for i, s in enumerate(self._steps) if s.name == old.name), None
                )
        if self._focus is None and self._steps:
            self._focus = 0
        self._hot = self._geom.hot_cells(self._focus)
        self.virtual_size = Size(self._geom.width, self._geom.height)
        self.refresh()
        self._announce()

    def update_step(self, step: Step) -> None:
        """One step changed: redraw only the lines and region of its box."""
        index = self._geom.by_id.get(step.id)
        if index is None:
            return
        self._steps[index] = step
        self._redraw_box(self._geom.boxes[index])
        if index == self._focus:
            self._announce()

    def focus_step(self, step_id: str, *, scroll: bool = True) -> bool:
        index = self._geom.by_id.get(step_id)
        if index is None:
            return False
        self._move_focus(index, scroll=scroll)
        return True

    # -- keys and mouse -----------------------------------------------------

    def action_move(self, direction: str) -> None:
        if self._focus is None:
            return
        target = self._geom.neighbour(self._focus, direction)
        if target is not None:
            self._move_focus(target)

    def action_first(self) -> None:
        if self._steps:
            self._move_focus(0)

    def action_last(self) -> None:
        if self._steps:
            self._move_focus(len(self._steps) - 1)

    def on_click(self, event: Click) -> None:
        x, y = event.x + int(self.scroll_x), event.y + int(self.scroll_y)
        for box in self._geom.boxes:
            if box.region.contains(x, y):
                self._move_focus(box.index, scroll=False)
                return

    def _move_focus(self, index: int, *, scroll: bool = True) -> None:
        old = self._focus
        if old == index:
            return
        self._focus = index
        lines = self._geom.edge_lines(index)
        if old is not None:
            lines |= self._geom.edge_lines(old)
        self._hot = self._geom.hot_cells(index)
        for y in lines:
            self._lines.pop(y, None)
        self.refresh_lines_at(lines)
        if old is not None:
            self._redraw_box(self._geom.boxes[old])
        box = self._geom.boxes[index]
        self._redraw_box(box)
        if scroll:
            self.scroll_to_region(
                box.region, spacing=Spacing(1, 2, 1, 2), animate=False, force=True
            )
        self._announce()

    def _announce(self) -> None:
        self.post_message(self.Focused(self, self.focused_step))

    # -- invalidation ---------------------------------------------------------

    def _redraw_box(self, box: Box) -> None:
        for y in range(box.y, box.y + BOX_H):
            self._lines.pop(y, None)
        sx, sy = self.scroll_offset
        self.refresh(Region(box.x - sx, box.y - sy, BOX_W, BOX_H))

    def refresh_lines_at(self, lines: Iterable[int]) -> None:
        sy = self.scroll_offset.y
        width = self.size.width
        for y in lines:
            if 0 <= y - sy < self.size.height:
                self.refresh(Region(0, y - sy, width, 1))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.__dict__.get("_styles", {}).clear()
        self.__dict__.get("_lines", {}).clear()

    # -- drawing ------------------------------------------------------------

    def _style(self, *names: str) -> Style:
        key = " ".join(names)
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            for name in names:
                style += self.get_component_rich_style(name, partial=True)
            self._styles[key] = style
        return style

    def render_line(self, y: int) -> Strip:
        sx, sy = self.scroll_offset
        base = self.rich_style
        if not self._steps:
            text = self.empty_text if y == 1 else ""
            return Strip([Segment("  " + text, self._style("dag--empty"))]).crop_extend(
                0, self.size.width, base
            )
        line = self._lines.get(sy + y)
        if line is None:
            line = self._lines[sy + y] = self._draw_line(sy + y)
        return line.crop_extend(sx, sx + self.size.width, base)

    def _draw_line(self, y: int) -> Strip:
        geom = self._geom
        pieces: list[tuple[int, str, Style]] = []
        inside = geom.box_line(y)
        if inside is not None:
            row, k = inside
            for index in geom.rows.get(row, ()):
                pieces.extend(self._box_piece(geom.boxes[index], k))
        cells = geom.edge_cells.get(y)
        if cells:
            hot = self._hot.get(y, ())
            edge, edge_hot = self._style("dag--edge"), self._style("dag--edge-hot")
            pieces.extend(
                (x, edge_char(mask), edge_hot if x in hot else edge) for x, mask in cells.items()
            )
        pieces.sort(key=lambda p: p[0])
        base = self.rich_style
        segments: list[Segment] = []
        at = 0
        for x, text, style in pieces:
            if x > at:
                segments.append(Segment(" " * (x - at), base))
            segments.append(Segment(text, style))
            at = x + cell_len(text)
        if at < geom.width:
            segments.append(Segment(" " * (geom.width - at), base))
        return Strip(segments, max(at, geom.width)).simplify()

    def _box_piece(self, box: Box, k: int) -> list[tuple[int, str, Style]]:
        step = self._steps[box.index]
        look = STEP_LOOK[step.status]
        focused = box.index == self._focus
        tl, tr, bl, br, h, v = BORDERS[focused]
        names = (f"look--{look.css}", "dag--focus") if focused else (f"look--{look.css}",)
        border = self._style(*names)
        x = box.x
        if k == 0:
            label = f" {step.type} "
            return [
                (x, tl + h, border),
                (x + 2, label, self._style(*names, "dag--type")),
                (x + 2 + len(label), h * (BOX_W - 3 - len(label)) + tr, border),
            ]
        if k == 3:
            return [(x, bl + h * (BOX_W - 2) + br, border)]
        if k == 1:
            count = f" ↻{step.rework_count}" if step.rework_count else ""
            return [
                (x, v + " ", border),
                (x + 2, fit(step.name, INNER - len(count)), self._style("dag--name")),
                (x + 2 + INNER - len(count), count, self._style("dag--count")),
                (x + BOX_W - 2, " " + v, border),
            ]
        score = "" if step.confidence is None else f"{step.confidence:.2f}"
        level = self._style(f"level--{LEVEL_CSS[step.level]}") if step.level else self.rich_style
        status = f"{look.icon} {look.label}"
        return [
            (x, v + " ", border),
            (x + 2, fit(status, INNER - len(score)), self._style(f"look--{look.css}")),
            (x + 2 + INNER - len(score), score, level),
            (x + BOX_W - 2, " " + v, border),
        ]
