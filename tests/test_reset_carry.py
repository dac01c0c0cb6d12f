"""A reset drops checkpoints; a step it leaves alone may hold a carried
commit (the start of its next attempt) built on top of them. That carry is
dropped too, or the next attempt would bring the dropped work back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.models import ApprovalDecision, StepSpec
from engine.store import Store
from tests.conftest import git
from tests.test_engine_worktrees import BASE, OK, edit, integration, run_to_rest, scripted

RED = {"name": "red", "command": "exit 1"}


async def test_a_carry_built_on_a_dropped_checkpoint_is_dropped(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    steps = [
        StepSpec(name="first", attempts=[edit("a.txt", "FIRST\n")], verifiers=["ok"]),
        # Not after `first` in the chain, but started after it merged (one
        # step at a time): red twice, so blocked, carrying its attempt.
        StepSpec(
            name="second",
            attempts=[edit("b.txt", "2\n"), edit("b.txt", "22\n"), edit("b.txt", "222\n")],
            verifiers=["red"],
        ),
    ]
    spec = scripted(
        repo, steps, [OK, RED], limits={"max_rework_cycles": 1}, workspace={"carry_rework": True}
    )
    spec = spec.model_copy(
        update={"limits": spec.limits.model_copy(update={"max_parallel_steps": 1})}
    )
    engine, did, _ = await run_to_rest(store, spec)
    second = next(s for s in await engine.store.list_steps((await store.current_chain(did)).id)
                  if s.name == "second")  # fmt: skip
    assert second.status.value == "blocked" and second.carry_sha
    assert git(repo, "show", f"{second.carry_sha}:a.txt") == "FIRST\n"  # built on `first`

    rerun = await engine.reset_to_checkpoint(did, 0)

    assert rerun == ["first"]
    second = await store.get_step(second.id)
    assert second.status.value == "blocked" and second.carry_sha is None
    notices = [e.message for e in await store.list_events(did) if e.type == "notice"]
    assert any(n.startswith("step second starts its next attempt afresh") for n in notices)
    assert integration(repo, did, "a.txt") == "one\ntwo\nthree\n"
    (escalation,) = [a for a in await store.pending_approvals(did) if a.step_id == second.id]
    await engine.resolve_approval(escalation.id, ApprovalDecision.STOP)
    await engine.close()


async def test_a_reset_leaves_a_skipped_step_downstream_skipped(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """A reset upstream of a step a person skipped failed on it ('cannot
    move from skipped to pending') after git had moved: the branch was back
    at the start while the steps still said passed and waiting."""
    from engine.models import ApprovalKind, ScriptedAttempt, StepStatus
    from tests.test_engine_worktrees import HALF

    repo = make_git_repo(BASE)
    steps = [
        StepSpec(name="s1", attempts=[edit("a.txt", "1\n")], verifiers=["ok"]),
        StepSpec(name="s2", attempts=[ScriptedAttempt(fail="boom")], depends_on=["s1"]),
        StepSpec(name="s3", attempts=[edit("c.txt", "3\n")] * 2, depends_on=["s1"],
                 verifiers=["half"]),
    ]  # fmt: skip
    engine, did, _ = await run_to_rest(store, scripted(repo, steps, [OK, HALF]))
    try:
        (escalation,) = [
            a for a in await store.pending_approvals(did) if a.kind is ApprovalKind.ESCALATION
        ]
        await engine.resolve_approval(escalation.id, ApprovalDecision.SKIP)
        await engine.wait_settled(did, timeout=30)

        rerun = await engine.reset_to_checkpoint(did, 0)

        assert rerun == ["s1", "s3"]
        chain = await store.current_chain(did)
        status = {s.name: s.status for s in await store.list_steps(chain.id)}
        assert status["s2"] is StepStatus.SKIPPED
        assert integration(repo, did, "a.txt") == "one\ntwo\nthree\n"
        await engine.wait_settled(did, timeout=30)
        status = {s.name: s.status for s in await store.list_steps(chain.id)}
        assert status["s1"] is StepStatus.PASSED and status["s2"] is StepStatus.SKIPPED
    finally:
        await engine.close()


async def test_a_step_a_reset_runs_again_starts_without_its_old_instructions(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """The carry was dropped but not the comment of the review that asked
    for changes: the rerun from scratch was told to fix what it never did."""
    from engine.models import ApprovalKind
    from tests.test_engine_worktrees import HALF

    repo = make_git_repo(BASE)
    steps = [
        StepSpec(name="s1", attempts=[edit("a.txt", "1\n")] * 3, verifiers=["half"]),
        StepSpec(name="s2", attempts=[edit("b.txt", "2\n")], verifiers=["half"], depends_on=["s1"]),
    ]
    engine, did, _ = await run_to_rest(store, scripted(repo, steps, [HALF]))
    try:
        (review,) = await store.pending_approvals(did)
        await engine.resolve_approval(review.id, ApprovalDecision.REQUEST_CHANGES, "shorter")
        await engine.wait_settled(did, timeout=30)
        (review,) = await store.pending_approvals(did)
        assert review.kind is ApprovalKind.STEP_REVIEW
        await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)
        await engine.wait_settled(did, timeout=30)
        step, _ = await store.list_steps((await store.current_chain(did)).id)
        assert step.status.value == "passed" and step.rework_instructions

        await engine.pause_directive(did)  # nothing runs s1 again before it is read
        assert await engine.reset_to_checkpoint(did, 0) == ["s1", "s2"]
        step = await store.get_step(step.id)
        assert (step.status.value, step.rework_instructions) == ("pending", None)
    finally:
        await engine.close()


@pytest.mark.parametrize("then", ["restart", "retry"])
async def test_a_reset_cut_off_after_git_moved_is_finished_not_lost(
    store: Store, make_git_repo: Callable[..., Path], then: str
) -> None:
    """A reset moved the branch and dropped the checkpoints, then its
    database write was cut off (a kill, a database busy: exit 75): the steps
    still read passed with their work gone, and the retry the exit code asks
    for said 'to run again: nothing'. The checkpoints now stay until the
    database has the reset, so a restart finishes it and a retry redoes it."""
    from engine.bus import EventBus
    from engine.engine import DirectiveEngine
    from engine.models import StepStatus
    from engine.worktrees import Workspace
    from tests.test_engine_worktrees import HALF, NO_LLM

    repo = make_git_repo(BASE)
    steps = [
        StepSpec(name="s1", attempts=[edit("a.txt", "1\n")] * 2, verifiers=["ok"]),
        StepSpec(name="s2", attempts=[edit("b.txt", "2\n")] * 2, verifiers=["ok"],
                 depends_on=["s1"]),
        StepSpec(name="s3", attempts=[edit("c.txt", "3\n")] * 2, verifiers=["half"],
                 depends_on=["s2"]),
    ]  # fmt: skip
    engine, did, _ = await run_to_rest(store, scripted(repo, steps, [OK, HALF]))
    await engine.pause_directive(did)
    await engine.close()
    work = store.path.parent / f"{store.path.stem}-work"
    ws = await Workspace.open(repo, did, work)
    assert ws is not None
    await ws.move_back(1)  # the git half, then the cut

    if then == "retry":  # as the command line does: an engine that runs nothing
        command = DirectiveEngine(store, EventBus(), NO_LLM, drives=False)
        try:
            assert await command.reset_to_checkpoint(did, 1) == ["s2", "s3"]
        finally:
            await command.close()
    engine = DirectiveEngine(store, EventBus(), NO_LLM)
    await engine.start()
    try:
        chain = await store.current_chain(did)
        status = {s.name: s.status for s in await store.list_steps(chain.id)}
        assert status == {"s1": StepStatus.PASSED, "s2": StepStatus.PENDING,
                          "s3": StepStatus.PENDING}  # fmt: skip
        assert [c.step_slug for c in await engine.checkpoints(did)] == ["s1"]
        await engine.resume_directive(did)
        await engine.wait_settled(did, timeout=30)
        assert integration(repo, did, "b.txt") == "2\n"  # s2 ran again: its work is back
    finally:
        await engine.close()
