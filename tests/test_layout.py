"""DAG layout: layers by longest path, rows ordered to cut crossings."""

from __future__ import annotations

import random
from itertools import combinations

import pytest

from engine.layout import count_crossings, layout_chain
from engine.models import StepSpec
from engine.planner import ChainValidationError


def s(name: str, *deps: str) -> StepSpec:
    return StepSpec(name=name, depends_on=list(deps))


def random_chain(seed: int, size: int, max_deps: int = 3) -> list[StepSpec]:
    """A random DAG in shuffled file order (dependencies may come later)."""
    rng = random.Random(seed)
    steps = [
        s(f"s{i}", *sorted({f"s{rng.randrange(i)}" for _ in range(rng.randint(0, max_deps))}))
        if i
        else s("s0")
        for i in range(size)
    ]
    rng.shuffle(steps)
    return steps


def file_order_positions(steps: list[StepSpec]) -> dict[str, tuple[int, int]]:
    """Same layers, rows in file order: the picture without the sweeps."""
    layers = {name: layer for name, (layer, _) in layout_chain(steps).items()}
    rows: dict[int, int] = {}
    out = {}
    for step in steps:
        layer = layers[step.name]
        out[step.name] = (layer, rows.get(layer, 0))
        rows[layer] = rows.get(layer, 0) + 1
    return out


def brute_crossings(steps: list[StepSpec], pos: dict[str, tuple[int, int]]) -> int:
    edges = [(d, st.name) for st in steps for d in dict.fromkeys(st.depends_on)]
    return sum(
        1
        for (a, b), (c, d) in combinations(edges, 2)
        if pos[a][0] == pos[c][0]
        and pos[b][0] == pos[d][0]
        and (pos[a][1] - pos[c][1]) * (pos[b][1] - pos[d][1]) < 0
    )


def test_layers_are_longest_paths_from_a_root():
    steps = [s("a"), s("b", "a"), s("c", "b"), s("d", "a", "c"), s("e")]
    layers = {name: layer for name, (layer, _) in layout_chain(steps).items()}
    assert layers == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}


@pytest.mark.parametrize("seed", range(20))
def test_every_edge_goes_to_a_higher_layer(seed):
    steps = random_chain(seed, 60)
    pos = layout_chain(steps)
    for step in steps:
        for dep in step.depends_on:
            assert pos[dep][0] < pos[step.name][0]


@pytest.mark.parametrize("seed", range(20))
def test_rows_fill_each_layer_from_zero(seed):
    pos = layout_chain(random_chain(seed, 60))
    by_layer: dict[int, list[int]] = {}
    for layer, row in pos.values():
        by_layer.setdefault(layer, []).append(row)
    for rows in by_layer.values():
        assert sorted(rows) == list(range(len(rows)))


def test_same_input_same_output():
    steps = random_chain(7, 200)
    first = layout_chain(steps)
    assert layout_chain([st.model_copy() for st in steps]) == first
    assert list(first) == [st.name for st in steps]  # keys in file order


def test_single_step_and_independent_steps_keep_file_order():
    assert layout_chain([s("only")]) == {"only": (0, 0)}
    assert layout_chain([s("b"), s("a"), s("c")]) == {"b": (0, 0), "a": (0, 1), "c": (0, 2)}


def test_ordering_untangles_a_crossed_case():
    # Roots a, b, c; their dependents listed in the opposite order: every
    # pair of edges crosses in file order.
    steps = [s("a"), s("b"), s("c"), s("x", "c"), s("y", "b"), s("z", "a")]
    assert count_crossings(steps, file_order_positions(steps)) == 3
    pos = layout_chain(steps)
    assert count_crossings(steps, pos) == 0
    assert [name for name in ("x", "y", "z") if pos[name][1] == 0] == ["z"]


def test_ordering_reduces_crossings_on_a_layered_case():
    # Three layers wired in a criss-cross: the sweeps must beat file order.
    steps = [
        s("a"), s("b"), s("c"), s("d"),
        s("p", "d"), s("q", "a", "c"), s("r", "b"), s("t", "a"),
        s("u", "t", "r"), s("v", "p"), s("w", "q"),
    ]  # fmt: skip
    before = count_crossings(steps, file_order_positions(steps))
    after = count_crossings(steps, layout_chain(steps))
    assert after < before


@pytest.mark.parametrize("seed", range(10))
def test_never_worse_than_file_order(seed):
    steps = random_chain(seed, 80)
    assert count_crossings(steps, layout_chain(steps)) <= count_crossings(
        steps, file_order_positions(steps)
    )


@pytest.mark.parametrize("seed", range(10))
def test_count_crossings_matches_brute_force(seed):
    steps = random_chain(seed, 40)
    for pos in (layout_chain(steps), file_order_positions(steps)):
        assert count_crossings(steps, pos) == brute_crossings(steps, pos)


def test_edges_sharing_an_end_do_not_cross():
    steps = [s("a"), s("b"), s("x", "a", "b"), s("y", "a")]
    pos = {"a": (0, 0), "b": (0, 1), "x": (1, 0), "y": (1, 1)}
    assert count_crossings(steps, pos) == 1  # b->x and a->y; a->x, a->y share a


def test_two_thousand_steps():
    steps = random_chain(3, 2000)
    pos = layout_chain(steps)
    assert len(pos) == 2000
    assert count_crossings(steps, pos) < count_crossings(steps, file_order_positions(steps))


def test_cyclic_chain_is_refused():
    with pytest.raises(ChainValidationError, match="cycle"):
        layout_chain([s("a", "b"), s("b", "a")])
