"""Where every box and edge of a chain sits on the DAG's virtual canvas.

Computed once per chain from the stored `layer`/`row` of each step, so the
picture is the same on every reload and drawing a line is a lookup:
boxes by box-row, edge cells by line (sparse, as connection masks that are
turned into box-drawing characters when the line is drawn).

Edges are routed orthogonally through the gaps: out of the dependency's
right side, down or up the gap column after its layer, and into the
dependent's left side with an arrow. An edge that skips layers runs along
the empty line just above its target's row, where no box ever sits.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from textual.geometry import Region

from engine.models import Step

BOX_W = 24  # box width, borders included
BOX_H = 4  # top border, name, status, bottom border
GAP_X = 6  # columns between layers: edges turn in the middle one
GAP_Y = 1  # empty line between rows: long edges run along it
TOP = 1  # a free line above the first row, for edges into row 0
LEFT = 1
LAYER_PITCH = BOX_W + GAP_X
ROW_PITCH = BOX_H + GAP_Y
PORT = 1  # the box line edges leave and enter by (the name line)

# Connection masks: which neighbours an edge cell joins.
UP, DOWN, LEFT_, RIGHT, ARROW = 1, 2, 4, 8, 16

EDGE_CHARS: dict[int, str] = {
    LEFT_ | RIGHT: "─",
    LEFT_: "─",
    RIGHT: "─",
    UP | DOWN: "│",
    UP: "│",
    DOWN: "│",
    DOWN | RIGHT: "╭",
    DOWN | LEFT_: "╮",
    UP | RIGHT: "╰",
    UP | LEFT_: "╯",
    UP | DOWN | RIGHT: "├",
    UP | DOWN | LEFT_: "┤",
    LEFT_ | RIGHT | DOWN: "┬",
    LEFT_ | RIGHT | UP: "┴",
    UP | DOWN | LEFT_ | RIGHT: "┼",
}
ARROW_CHAR = "▶"


def edge_char(mask: int) -> str:
    if mask & ARROW:
        return ARROW_CHAR
    return EDGE_CHARS.get(mask, "┼")


@dataclass(frozen=True)
class Box:
    index: int
    step_id: str
    layer: int
    row: int
    x: int
    y: int

    @property
    def region(self) -> Region:
        return Region(self.x, self.y, BOX_W, BOX_H)


Point = tuple[int, int]


@dataclass
class Edge:
    source: int  # box index of the dependency
    target: int  # box index of the dependent
    points: list[Point]  # corners of the polyline, first to last cell

    def cells(self) -> Iterable[Point]:
        for (x0, y0), (x1, y1) in zip(self.points, self.points[1:], strict=False):
            if y0 == y1:
                step = 1 if x1 >= x0 else -1
                for x in range(x0, x1 + step, step):
                    yield x, y0
            else:
                step = 1 if y1 >= y0 else -1
                for y in range(y0, y1 + step, step):
                    yield x0, y


@dataclass
class DagGeometry:
    boxes: list[Box]
    edges: list[Edge]
    width: int
    height: int
    by_id: dict[str, int] = field(default_factory=dict)
    rows: dict[int, list[int]] = field(default_factory=dict)  # box row -> boxes by x
    layers: dict[int, list[int]] = field(default_factory=dict)  # layer -> boxes by row
    edge_cells: dict[int, dict[int, int]] = field(default_factory=dict)  # y -> x -> mask
    edges_of: dict[int, list[int]] = field(default_factory=dict)  # box -> its edges
    edge_xs: dict[int, list[int]] = field(default_factory=dict)  # y -> sorted xs of edge cells
    row_xs: dict[int, list[int]] = field(default_factory=dict)  # box row -> sorted box xs

    @classmethod
    def build(cls, steps: Sequence[Step]) -> DagGeometry:
        boxes = [
            Box(
                index=i,
                step_id=s.id,
                layer=s.layer,
                row=s.row,
                x=LEFT + s.layer * LAYER_PITCH,
                y=TOP + s.row * ROW_PITCH,
            )
            for i, s in enumerate(steps)
        ]
        by_id = {b.step_id: b.index for b in boxes}
        edges = [
            Edge(by_id[dep], by_id[s.id], _route(boxes[by_id[dep]], boxes[by_id[s.id]]))
            for s in steps
            for dep in dict.fromkeys(s.depends_on)
            if dep in by_id
        ]
        width = max((b.x + BOX_W for b in boxes), default=0) + LEFT
        height = max((b.y + BOX_H for b in boxes), default=0) + GAP_Y
        geom = cls(boxes, edges, width, height, by_id)
        for b in sorted(boxes, key=lambda b: (b.row, b.x)):
            geom.rows.setdefault(b.row, []).append(b.index)
        for b in sorted(boxes, key=lambda b: (b.layer, b.row)):
            geom.layers.setdefault(b.layer, []).append(b.index)
        for number, edge in enumerate(edges):
            geom.edges_of.setdefault(edge.source, []).append(number)
            geom.edges_of.setdefault(edge.target, []).append(number)
            _draw(geom.edge_cells, edge)
        geom.edge_xs = {y: sorted(cells) for y, cells in geom.edge_cells.items()}
        geom.row_xs = {row: [boxes[i].x for i in ids] for row, ids in geom.rows.items()}
        return geom

    # -- lookups used while drawing ------------------------------------------

    def box_line(self, y: int) -> tuple[int, int] | None:
        """(box row, line inside the box) for a canvas line that crosses boxes."""
        if y < TOP:
            return None
        row, inside = divmod(y - TOP, ROW_PITCH)
        return (row, inside) if inside < BOX_H else None

    def boxes_between(self, row: int, x0: int, x1: int) -> list[int]:
        """Boxes of a row that overlap columns [x0, x1)."""
        xs = self.row_xs.get(row)
        if not xs:
            return []
        first = bisect_left(xs, x0 - BOX_W + 1)
        last = bisect_left(xs, x1)
        return self.rows[row][first:last]

    def edges_between(self, y: int, x0: int, x1: int) -> list[int]:
        """Columns of edge cells on line y within [x0, x1)."""
        xs = self.edge_xs.get(y)
        if not xs:
            return []
        return xs[bisect_left(xs, x0) : bisect_left(xs, x1)]

    def hot_cells(self, box: int | None) -> dict[int, set[int]]:
        """y -> xs of the edges into and out of `box` (drawn highlighted)."""
        hot: dict[int, set[int]] = {}
        if box is None:
            return hot
        for number in self.edges_of.get(box, ()):
            for x, y in self.edges[number].cells():
                hot.setdefault(y, set()).add(x)
        return hot

    # -- moving the focus ---------------------------------------------------

    def neighbour(self, box: int, direction: str) -> int | None:
        """The box the focus moves to: up/down within the layer, left/right to
        the nearest row of the previous/next non-empty layer."""
        b = self.boxes[box]
        if direction in ("up", "down"):
            column = self.layers[b.layer]
            at = column.index(box) + (-1 if direction == "up" else 1)
            return column[at] if 0 <= at < len(column) else None
        layers = sorted(self.layers)
        at = layers.index(b.layer) + (-1 if direction == "left" else 1)
        if not 0 <= at < len(layers):
            return None
        return min(self.layers[layers[at]], key=lambda i: (abs(self.boxes[i].row - b.row), i))


def _route(src: Box, dst: Box) -> list[Point]:
    """Corners of the path from `src`'s right side to the cell before `dst`."""
    start = (src.x + BOX_W, src.y + PORT)
    turn_x = src.x + BOX_W + GAP_X // 2
    end = (dst.x - 1, dst.y + PORT)
    if dst.layer == src.layer + 1:
        return [start, (turn_x, start[1]), (turn_x, end[1]), end]
    channel = dst.y - GAP_Y  # the empty line above the target's row
    last_turn = dst.x - GAP_X + GAP_X // 2
    return [
        start,
        (turn_x, start[1]),
        (turn_x, channel),
        (last_turn, channel),
        (last_turn, end[1]),
        end,
    ]


def _draw(cells: dict[int, dict[int, int]], edge: Edge) -> None:
    """Add the edge's connection bits to the sparse canvas."""
    points = _dedupe(edge.points)
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if y0 == y1:
            lo, hi = sorted((x0, x1))
            for x in range(lo, hi + 1):
                mask = (LEFT_ if x > lo else 0) | (RIGHT if x < hi else 0)
                line = cells.setdefault(y0, {})
                line[x] = line.get(x, 0) | mask
        else:
            lo, hi = sorted((y0, y1))
            for y in range(lo, hi + 1):
                mask = (UP if y > lo else 0) | (DOWN if y < hi else 0)
                line = cells.setdefault(y, {})
                line[x0] = line.get(x0, 0) | mask
    x, y = points[-1]
    cells.setdefault(y, {})[x] = cells[y].get(x, 0) | ARROW
    x, y = points[0]
    cells[y][x] |= LEFT_  # joins the source box's border


def _dedupe(points: list[Point]) -> list[Point]:
    out = [points[0]]
    for p in points[1:]:
        if p != out[-1]:
            out.append(p)
    return out if len(out) > 1 else [points[0], points[0]]
