"""The chain as a DAG: one line-API widget, however many steps.

Geometry is computed once per chain (`DagGeometry`); each canvas line is
drawn in tiles of 128 columns, cached as `Strip`s and joined and cropped to
the viewport on scroll. A step's status change redraws only the tiles its
box covers and refreshes only the box's region of the screen; the focused
step's edges are an overlay applied to shown lines, so moving the focus
redraws two boxes. 2,000 steps stay as cheap as 20.
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
from tui.presentation import LEVEL_CSS, current_verdict, step_look
from tui.widgets.dag_geometry import BOX_H, BOX_W, Box, DagGeometry, edge_char
from tui.widgets.looks import LOOK_CLASSES, Looks

BORDERS = {  # (top-left, top-right, bottom-left, bottom-right, horizontal, vertical)
    False: ("╭", "╮", "╰", "╯", "─", "│"),
    True: ("┏", "┓", "┗", "┛", "━", "┃"),
}
INNER = BOX_W - 4  # text width inside "│ " and " │"
UNREVERSED = Style(reverse=False)
TILE = 128  # columns per cached piece of a line: cost stays flat however wide the chain


def fit(text: str, width: int) -> str:
    """Pad or cut `text` to exactly `width` cells, with an ellipsis when cut."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def fit_name(name: str, width: int) -> str:
    """Pad `name` to `width` cells, or cut it in the middle: steps named
    alike (`worker-with-a-long-name-1` .. `-8`) differ at the end, which a
    cut at the end took from every one of them."""
    if cell_len(name) <= width:
        return set_cell_size(name, width)
    if width < 8:  # too narrow for both ends to mean anything
        return fit(name, width)
    keep_end = (width - 1) // 2
    head = set_cell_size(name, width - 1 - keep_end)
    end = name[-keep_end:]
    while cell_len(end) > keep_end:  # wide characters
        end = end[1:]
    return set_cell_size(head + "…" + end, width)


def level_score(step: Step, room: int, *, ended: bool = False) -> str:
    """The score with its level, not by colour alone: `yellow 0.50` where
    it fits beside the status, else `Y 0.50`; nothing where it is not the
    step's current verdict (`current_verdict`)."""
    if step.confidence is None or not current_verdict(step, ended=ended):
        return ""
    score = f"{step.confidence:.2f}"
    if step.level is None:
        return score
    word = step.level.value
    return (
        f"{word} {score}"
        if cell_len(word) + 1 + len(score) <= room
        else f"{word[0].upper()} {score}"
    )


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

    HELP_TITLE = "The chain (DAG)"

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
        self._tiles: dict[tuple[int, int], Strip] = {}
        self._styles: dict[str, Style] = {}
        self._focus: int | None = None
        self._hot: dict[int, list[int]] = {}
        self._ended = False  # the directive has ended: undone steps will not run

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
    def cached_tiles(self) -> set[tuple[int, int]]:
        """(line, tile) pieces drawn and kept: lets tests see what a change redrew."""
        return set(self._tiles)

    def set_steps(self, steps: Iterable[Step]) -> None:
        """A new chain (or a reload): geometry once, every tile drawn afresh.
        The focus stays on the same step id, or the same name, when it can."""
        old = self.focused_step
        self._steps = list(steps)
        self._geom = DagGeometry.build(self._steps)
        self._tiles.clear()
        self._focus = None
        if old is not None:
            self._focus = self._geom.by_id.get(old.id)
            if self._focus is None:
                self._focus = next(
                    (i for i, s in enumerate(self._steps) if s.name == old.name), None
                )
        if self._focus is None and self._steps:
            self._focus = 0
        self._hot = self._hot_cells(self._focus)
        self.virtual_size = Size(self._geom.width, self._geom.height)
        self.refresh()
        self._announce()

    def set_ended(self, ended: bool) -> None:
        """The directive ended (or not): its undone steps read "not run"."""
        if ended != self._ended:
            self._ended = ended
            self._tiles.clear()
            self.refresh()

    def update_step(self, step: Step) -> None:
        """One step changed: redraw only the tiles and region of its box."""
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
        inside = self._geom.box_line(y)
        if inside is None:
            return
        for index in self._geom.boxes_between(inside[0], x, x + 1):
            self._move_focus(index, scroll=False)
            return

    def _move_focus(self, index: int, *, scroll: bool = True) -> None:
        """Only the two boxes are redrawn; the highlighted edges are an
        overlay applied when a line is shown, so no edge line is redrawn."""
        old = self._focus
        if old == index:
            return
        self._focus = index
        lines = set(self._hot)
        self._hot = self._hot_cells(index)
        lines |= set(self._hot)
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

    def _hot_cells(self, index: int | None) -> dict[int, list[int]]:
        return {y: sorted(xs) for y, xs in self._geom.hot_cells(index).items()}

    # -- invalidation ---------------------------------------------------------

    def _redraw_box(self, box: Box) -> None:
        first, last = box.x // TILE, (box.x + BOX_W - 1) // TILE
        for y in range(box.y, box.y + BOX_H):
            for tile in range(first, last + 1):
                self._tiles.pop((y, tile), None)
        sx, sy = self.scroll_offset
        self.refresh(Region(box.x - sx, box.y - sy, BOX_W, BOX_H))

    def refresh_lines_at(self, lines: Iterable[int]) -> None:
        sy = self.scroll_offset.y
        width, height = self.size
        for y in lines:
            if 0 <= y - sy < height:
                self.refresh(Region(0, y - sy, width, 1))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.__dict__.get("_styles", {}).clear()
        self.__dict__.get("_tiles", {}).clear()

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
        width = self.size.width
        base = self._style()
        if not self._steps:
            text = self.empty_text if y == 1 else ""
            return Strip([Segment("  " + text, self._style("dag--empty"))]).crop_extend(
                0, width, base
            )
        line = sy + y
        first, last = sx // TILE, (sx + width - 1) // TILE
        strip = Strip.join(self._tile(line, t) for t in range(first, last + 1))
        strip = strip.crop_extend(sx - first * TILE, sx - first * TILE + width, base)
        hot = self._hot.get(line)
        return self._overlay(strip, hot, sx, width) if hot else strip

    def _overlay(self, strip: Strip, hot: list[int], sx: int, width: int) -> Strip:
        """Restyle the cells of the focused step's edges on a shown line."""
        cells = [x - sx for x in hot if sx <= x < sx + width]
        if not cells:
            return strip
        cuts = sorted({c for x in cells for c in (x, x + 1)} | {width})
        pieces = strip.divide(cuts)
        hot_style = self._style("dag--edge-hot")
        wanted = set(cells)
        segments: list[Segment] = []
        at = 0
        for piece, end in zip(pieces, cuts, strict=False):
            if at in wanted:
                segments.extend(Segment(seg.text, hot_style) for seg in piece)
            else:
                segments.extend(piece)
            at = end
        return Strip(segments, width)

    def _tile(self, y: int, tile: int) -> Strip:
        key = (y, tile)
        strip = self._tiles.get(key)
        if strip is None:
            strip = self._tiles[key] = self._draw_tile(y, tile)
        return strip

    def _draw_tile(self, y: int, tile: int) -> Strip:
        """Columns [tile*TILE, (tile+1)*TILE) of canvas line y."""
        geom = self._geom
        x0, x1 = tile * TILE, (tile + 1) * TILE
        pieces: list[tuple[int, str, Style]] = []
        inside = geom.box_line(y)
        if inside is not None:
            row, k = inside
            for index in geom.boxes_between(row, x0, x1):
                pieces.extend(self._box_piece(geom.boxes[index], k))
        xs = geom.edges_between(y, x0, x1)
        if xs:
            cells = geom.edge_cells[y]
            edge = self._style("dag--edge")
            pieces.extend((x, edge_char(cells[x]), edge) for x in xs)
        pieces.sort(key=lambda p: p[0])
        base = self._style()
        start = min(pieces[0][0], x0) if pieces else x0
        segments: list[Segment] = []
        at = start
        for x, text, style in pieces:
            if x > at:
                segments.append(Segment(" " * (x - at), base))
            segments.append(Segment(text, style))
            at = x + cell_len(text)
        strip = Strip(segments, at - start)
        return strip.crop_extend(x0 - start, x1 - start, base).simplify()

    def _box_piece(self, box: Box, k: int) -> list[tuple[int, str, Style]]:
        step = self._steps[box.index]
        look = step_look(step, ended=self._ended)
        focused = box.index == self._focus
        tl, tr, bl, br, h, v = BORDERS[focused]
        names = (f"look--{look.css}", "dag--focus") if focused else (f"look--{look.css}",)
        # A look may be reversed (NO_COLOR, for what needs a person): its
        # status line is, the frame around it is not.
        border = self._style(*names) + UNREVERSED
        x = box.x
        if k == 0:
            label = f" {step.type} "
            return [
                (x, tl + h, border),
                (x + 2, label, self._style(*names, "dag--type") + UNREVERSED),
                (x + 2 + len(label), h * (BOX_W - 3 - len(label)) + tr, border),
            ]
        if k == 3:
            return [(x, bl + h * (BOX_W - 2) + br, border)]
        if k == 1:
            count = f" ↻{step.rework_count}" if step.rework_count else ""
            return [
                (x, v + " ", border),
                (x + 2, fit_name(step.name, INNER - len(count)), self._style("dag--name")),
                (x + 2 + INNER - len(count), count, self._style("dag--count")),
                (x + BOX_W - 2, " " + v, border),
            ]
        status = f"{look.icon} {look.label}"
        score = level_score(step, INNER - cell_len(status) - 1, ended=self._ended)
        level = self._style(f"level--{LEVEL_CSS[step.level]}") if step.level else self._style()
        return [
            (x, v + " ", border),
            (x + 2, fit(status, INNER - len(score)), self._style(f"look--{look.css}")),
            (x + 2 + INNER - len(score), score, level),
            (x + BOX_W - 2, " " + v, border),
        ]
