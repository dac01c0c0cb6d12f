"""Where each step of a chain sits in the DAG picture: (layer, row).

A layer is the longest path from a root, so every edge points from a lower
layer to a higher one. Inside a layer, steps are ordered to cut edge
crossings with a few barycenter sweeps (Sugiyama's heuristic, without dummy
nodes so that 2,000 steps with long edges stay cheap). Everything is
deterministic, ties fall back to file order, so the same chain always gets
the same picture and the store can keep it across reloads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from engine.models import StepSpec
from engine.planner import topological_order

Position = tuple[int, int]  # (layer, row)

# Down-and-up sweep pairs, at most; crossings rarely improve after a few, the
# best ordering seen is kept, and a pair that gains nothing ends the search.
SWEEPS = 4


def _edges(steps: Sequence[StepSpec]) -> list[tuple[str, str]]:
    """(dependency, step) pairs, each once, in file order."""
    return [(dep, s.name) for s in steps for dep in dict.fromkeys(s.depends_on)]


def _layers(steps: Sequence[StepSpec]) -> dict[str, int]:
    deps = {s.name: s.depends_on for s in steps}
    layer: dict[str, int] = {}
    for name in topological_order(steps):
        layer[name] = 1 + max((layer[d] for d in deps[name]), default=-1)
    return layer


def layers_line(steps: Sequence[StepSpec]) -> str:
    """A valid plan in one line, layer by layer: steps that run side by side
    joined by commas, "->" to the next layer ("a -> b, c -> d")."""
    layer = _layers(steps)
    rows: dict[int, list[str]] = {}
    for s in steps:
        rows.setdefault(layer[s.name], []).append(s.name)
    return " -> ".join(", ".join(names) for _, names in sorted(rows.items()))


def _crossings(edges: Iterable[tuple[str, str]], positions: Mapping[str, Position]) -> int:
    """Pairs of edges between the same two layers whose ends swap order.

    Edges sharing an end do not cross. Counted per layer pair by inversions
    (a Fenwick tree), O(E log E)."""
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for u, v in edges:
        (lu, ru), (lv, rv) = positions[u], positions[v]
        groups.setdefault((lu, lv), []).append((ru, rv))
    total = 0
    for pairs in groups.values():
        pairs.sort()
        size = max(rv for _, rv in pairs) + 1
        tree = [0] * (size + 1)
        seen = 0
        # Process by source row; a batch with the same source row is added
        # after it is counted, so edges sharing a source never count.
        start = 0
        while start < len(pairs):
            end = start
            while end < len(pairs) and pairs[end][0] == pairs[start][0]:
                end += 1
            for _, rv in pairs[start:end]:
                at_most = 0  # earlier edges ending at row <= rv
                i = rv + 1
                while i > 0:
                    at_most += tree[i]
                    i -= i & -i
                total += seen - at_most
            for _, rv in pairs[start:end]:
                i = rv + 1
                while i <= size:
                    tree[i] += 1
                    i += i & -i
                seen += 1
            start = end
    return total


def count_crossings(steps: Sequence[StepSpec], positions: Mapping[str, Position]) -> int:
    """Edge crossings of `steps` drawn at `positions` (see `_crossings`)."""
    return _crossings(_edges(steps), positions)


def _sweep(
    layers: list[list[str]],
    neighbours: Mapping[str, list[str]],
    order: Iterable[int],
    pos: dict[str, float],
) -> None:
    """Reorder each layer in `order` by the mean position of each step's
    neighbours (positions normalised to [0, 1] so layers of different sizes
    compare). A step with no such neighbour keeps its place."""
    for k in order:
        layer = layers[k]

        def key(name: str) -> tuple[float, float]:
            around = [pos[m] for m in neighbours[name]]
            return (sum(around) / len(around) if around else pos[name], pos[name])

        layer.sort(key=key)
        for row, name in enumerate(layer):
            pos[name] = (row + 0.5) / len(layer)


def _positions(layer_of: Mapping[str, int], layers: list[list[str]]) -> dict[str, Position]:
    return {name: (layer_of[name], row) for nodes in layers for row, name in enumerate(nodes)}


def layout_chain(steps: Sequence[StepSpec]) -> dict[str, Position]:
    """name -> (layer, row) for a valid chain (ChainValidationError otherwise)."""
    layer_of = _layers(steps)
    layers: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for s in steps:
        layers[layer_of[s.name]].append(s.name)
    edges = _edges(steps)
    preds: dict[str, list[str]] = {s.name: [] for s in steps}
    succs: dict[str, list[str]] = {s.name: [] for s in steps}
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    pos = {name: (row + 0.5) / len(nodes) for nodes in layers for row, name in enumerate(nodes)}

    best = _positions(layer_of, layers)
    best_crossings = _crossings(edges, best)
    for _ in range(SWEEPS):
        if best_crossings == 0:
            break
        before = best_crossings
        for neighbours, order in (
            (preds, range(1, len(layers))),  # down: follow dependencies
            (succs, range(len(layers) - 2, -1, -1)),  # up: follow dependents
        ):
            _sweep(layers, neighbours, order, pos)
            candidate = _positions(layer_of, layers)
            crossings = _crossings(edges, candidate)
            if crossings < best_crossings:
                best, best_crossings = candidate, crossings
        if best_crossings == before:
            break  # a whole pair of sweeps gained nothing (dense layers: nothing will)
    return {s.name: best[s.name] for s in steps}
