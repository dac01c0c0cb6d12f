"""Every allowed and every refused status change, for both machines, both
in the tables and through the store (where a refusal changes nothing)."""

from __future__ import annotations

import itertools

import pytest

from engine.models import Directive, DirectiveSpec, DirectiveStatus, StepStatus
from engine.store import Store
from engine.transitions import (
    DIRECTIVE_TRANSITIONS,
    STEP_TRANSITIONS,
    InvalidTransition,
    check_directive,
    check_step,
    reachable_step_statuses,
)

STEP_PAIRS = list(itertools.product(StepStatus, StepStatus))
DIRECTIVE_PAIRS = list(itertools.product(DirectiveStatus, DirectiveStatus))


@pytest.mark.parametrize(("current", "target"), STEP_PAIRS, ids=lambda s: s.value)
def test_step_transition_table(current: StepStatus, target: StepStatus) -> None:
    if target in STEP_TRANSITIONS[current]:
        check_step("s", current, target)
    else:
        with pytest.raises(InvalidTransition) as err:
            check_step("s", current, target)
        assert f"from '{current.value}' to '{target.value}'" in str(err.value)


@pytest.mark.parametrize(("current", "target"), DIRECTIVE_PAIRS, ids=lambda s: s.value)
def test_directive_transition_table(current: DirectiveStatus, target: DirectiveStatus) -> None:
    if target in DIRECTIVE_TRANSITIONS[current]:
        check_directive("d", current, target)
    else:
        with pytest.raises(InvalidTransition, match=f"from '{current.value}' to '{target.value}'"):
            check_directive("d", current, target)


def test_the_design_moves_are_allowed() -> None:
    S = StepStatus
    path = [S.PENDING, S.READY, S.RUNNING, S.EVALUATING, S.AWAITING_APPROVAL, S.REWORK,
            S.RUNNING, S.EVALUATING, S.PASSED]  # fmt: skip
    for a, b in itertools.pairwise(path):
        check_step("s", a, b)
    for a, b in [(S.REWORK, S.BLOCKED), (S.BLOCKED, S.READY), (S.FAILED, S.READY),
                 (S.PENDING, S.SKIPPED), (S.AWAITING_APPROVAL, S.BLOCKED), (S.RUNNING, S.FAILED)]:  # fmt: skip
        check_step("s", a, b)


def test_terminal_steps_and_directives_go_nowhere() -> None:
    assert STEP_TRANSITIONS[StepStatus.SKIPPED] == frozenset()
    assert STEP_TRANSITIONS[StepStatus.SUPERSEDED] == frozenset()
    for status in (DirectiveStatus.COMPLETED, DirectiveStatus.FAILED, DirectiveStatus.STOPPED):
        assert DIRECTIVE_TRANSITIONS[status] == frozenset()


def test_every_step_status_is_reachable_from_pending() -> None:
    assert reachable_step_statuses() == frozenset(StepStatus)


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c, t in DIRECTIVE_PAIRS if t not in DIRECTIVE_TRANSITIONS[c] and c is not t][:12],
    ids=lambda s: s.value,
)
async def test_refused_directive_move_through_the_store_changes_nothing(
    store: Store, tmp_path, current: DirectiveStatus, target: DirectiveStatus
) -> None:
    d = Directive(spec=DirectiveSpec(title="t", goal="g", repo=tmp_path), status=current)
    await store.write(lambda tx: tx.add_directive(d))
    before = await store.get_directive(d.id)
    with pytest.raises(InvalidTransition):
        await store.write(lambda tx: tx.directive_status(d.id, target))
    after = await store.get_directive(d.id)
    assert after == before
    assert await store.list_events(d.id) == []


async def test_a_refused_move_rolls_back_the_whole_transaction(store: Store, tmp_path) -> None:
    d = Directive(spec=DirectiveSpec(title="t", goal="g", repo=tmp_path))
    await store.write(lambda tx: tx.add_directive(d))

    def two_moves(tx) -> None:
        tx.directive_status(d.id, DirectiveStatus.PLANNING)  # allowed
        tx.directive_status(d.id, DirectiveStatus.COMPLETED)  # refused: planning -> completed

    with pytest.raises(InvalidTransition):
        await store.write(two_moves)
    assert (await store.get_directive(d.id)).status is DirectiveStatus.DRAFT
    assert await store.list_events(d.id) == []
