"""Steps in isolated git worktrees, through the whole engine: parallel
merges, conflicts sent to rework, no leaks between attempts, no orphans
after a crash, and the user's checkout untouched until they ask."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineError, EngineServices, Outcome
from engine.models import (
    Autonomy,
    DirectiveSpec,
    ExecutorKind,
    FileEdit,
    Limits,
    PlannerKind,
    ScriptedAttempt,
    StepSpec,
    StepStatus,
    VerifierConfig,
    WorkspaceConfig,
)
from engine.store import Store
from tests.conftest import git

BASE = {"a.txt": "one\ntwo\nthree\n", "b.txt": "alpha\n", "README.md": "hi\n"}
NO_LLM = EngineServices(llm_provider=lambda s: None)
OK = {"name": "ok", "command": "true"}
# A ruff-like failure: half a score, a yellow step that waits for a person.
HALF = {"name": "half", "command": "echo 'Found 10 errors'; exit 1", "parser": "ruff"}


def edit(path: str, content: str) -> ScriptedAttempt:
    return ScriptedAttempt(edits=[FileEdit(path=path, content=content)])


def three_to_reset() -> list[StepSpec]:
    """s1 and s2 pass (checked by OK), s3 is yellow (HALF) and waits for a
    person: two checkpoints to reset to while the directive is still live."""
    return [
        StepSpec(name="s1", attempts=[edit("a.txt", "1\n")], verifiers=["ok"]),
        StepSpec(name="s2", attempts=[edit("b.txt", "2\n")], depends_on=["s1"], verifiers=["ok"]),
        StepSpec(name="s3", attempts=[edit("c.txt", "3\n")], depends_on=["s2"]),
    ]


def scripted(
    repo: Path, steps: list[StepSpec], checks: list[dict] | None = None, **kw
) -> DirectiveSpec:
    return DirectiveSpec(
        title="worktrees",
        goal="isolate attempts",
        repo=repo,
        autonomy=kw.pop("autonomy", Autonomy.GUARDRAILS),
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SCRIPTED,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False, extra=checks or []),
        limits=Limits(max_parallel_steps=2, **kw.pop("limits", {})),
        steps=steps,
        **kw,
    )


async def run_to_rest(store: Store, spec: DirectiveSpec) -> tuple[DirectiveEngine, str, Outcome]:
    engine = DirectiveEngine(store, EventBus(), NO_LLM)
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    return engine, d.id, await engine.wait_settled(d.id, timeout=60)


def integration(repo: Path, did: str, path: str) -> str:
    return git(repo, "show", f"directive/{did}/integration:{path}")


async def test_two_parallel_steps_editing_different_files_both_merge(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    user_head = git(repo, "rev-parse", "HEAD")
    spec = scripted(
        repo,
        [
            StepSpec(name="left", attempts=[edit("a.txt", "ONE\ntwo\nthree\n")]),
            StepSpec(name="right", attempts=[edit("b.txt", "ALPHA\n")]),
        ],
    )
    engine, did, outcome = await run_to_rest(store, spec)
    assert outcome is Outcome.COMPLETED
    assert integration(repo, did, "a.txt") == "ONE\ntwo\nthree\n"
    assert integration(repo, did, "b.txt") == "ALPHA\n"
    checkpoints = await engine.checkpoints(did)
    assert len(checkpoints) == 2
    # untouched until asked
    assert git(repo, "rev-parse", "HEAD") == user_head
    assert (repo / "a.txt").read_text() == BASE["a.txt"] and git(
        repo, "status", "--porcelain"
    ) == ""
    assert "+ONE" in await engine.final_diff(did)
    offer = await engine.offer_fast_forward(did)
    assert offer.possible
    await engine.fast_forward_user_branch(did)
    assert (repo / "a.txt").read_text() == "ONE\ntwo\nthree\n"
    assert (repo / "b.txt").read_text() == "ALPHA\n"
    await engine.close()


async def test_two_steps_editing_the_same_lines_conflict_and_the_second_is_reworked(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    spec = scripted(
        repo,
        [
            StepSpec(name="first", attempts=[edit("a.txt", "one\nTWO (first)\nthree\n")]),
            # runs alongside "first" from the same base: its change conflicts
            StepSpec(
                name="second",
                attempts=[
                    edit("a.txt", "one\nTWO (second)\nthree\n"),
                    edit("a.txt", "one\nTWO (first)\nthree\nfour (second)\n"),
                ],
            ),
        ],
    )
    engine, did, outcome = await run_to_rest(store, spec)
    assert outcome is Outcome.COMPLETED
    chain = await store.current_chain(did)
    steps = {s.name: s for s in await store.list_steps(chain.id)}
    loser = next(s for s in steps.values() if s.rework_count == 1)
    events = [e for e in await store.list_events(did) if e.type == "step_status_changed"]
    conflict = next(e for e in events if e.step_id == loser.id and e.new_status == "rework")
    assert "merge conflict" in conflict.reason
    runs = await store.list_runs(loser.id)
    assert "a.txt" in runs[1].rework_instructions and "conflicts" in runs[1].rework_instructions
    assert integration(repo, did, "a.txt").startswith("one\nTWO (first)\nthree\n")
    await engine.close()


async def test_a_step_whose_change_lost_its_conflict_and_then_changed_nothing_asks_a_person(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """Two side-by-side `sed`s on one line: the loser's rework ran from the
    winner's tree, its `sed` matched nothing, and it passed green: the
    directive completed with exit 0 and its change nowhere."""
    repo = make_git_repo(BASE)
    nothing = ScriptedAttempt()
    spec = scripted(
        repo,
        [
            StepSpec(name="left", attempts=[edit("a.txt", "one\nLEFT\nthree\n"), nothing]),
            StepSpec(name="right", attempts=[edit("a.txt", "one\nRIGHT\nthree\n"), nothing]),
        ],
    )
    engine, did, outcome = await run_to_rest(store, spec)
    try:
        assert outcome is Outcome.AWAITING_APPROVAL
        (review,) = await store.pending_approvals(did)
        assert (
            "its earlier change conflicted (a.txt) and could not be carried over, and this"
            " attempt changed nothing: the step's change may be lost, so a person decides"
        ) in review.summary
    finally:
        await engine.close()


async def test_a_red_attempt_does_not_leak_into_the_next_unless_asked(
    store: Store, make_git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    # the check is red while scratch.txt exists: attempt 1 leaves it behind,
    # attempt 2 only touches b.txt. Fresh from the integration branch, the
    # second attempt does not see scratch.txt, so it is green.
    check = {"name": "no-scratch", "command": "test ! -e scratch.txt", "gating": True}
    step = StepSpec(
        name="tidy",
        attempts=[edit("scratch.txt", "half done\n"), edit("b.txt", "ALPHA\n")],
    )
    repo = make_git_repo(BASE)
    engine, did, outcome = await run_to_rest(store, scripted(repo, [step], [check]))
    assert outcome is Outcome.COMPLETED
    chain = await store.current_chain(did)
    (tidy,) = await store.list_steps(chain.id)
    assert tidy.rework_count == 1
    first, second = await store.list_runs(tidy.id)
    assert second.base_sha == first.base_sha  # started over from the integration branch
    assert "scratch.txt" in await engine.run_diff(first)
    assert "scratch.txt" not in await engine.run_diff(second)
    await engine.close()

    # asked: carry the red attempt forward, and the leftover keeps it red
    store2 = await Store.open(tmp_path / "carry.db")
    repo2 = make_git_repo(BASE, name="repo2")
    spec = scripted(
        repo2,
        [step],
        [check],
        workspace=WorkspaceConfig(carry_rework=True),
        limits={"max_rework_cycles": 1},
    )
    engine2, did2, outcome2 = await run_to_rest(store2, spec)
    assert outcome2 is Outcome.AWAITING_APPROVAL  # blocked: escalated
    chain2 = await store2.current_chain(did2)
    (tidy2,) = await store2.list_steps(chain2.id)
    assert tidy2.status.value == "blocked"
    await engine2.close()
    await store2.close()


async def test_approving_a_yellow_step_merges_it_and_denying_keeps_it_out(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    spec = scripted(
        repo,
        [
            StepSpec(name="kept", attempts=[edit("a.txt", "kept\n")]),
            StepSpec(name="refused", attempts=[edit("b.txt", "refused\n")]),
        ],
        [HALF, OK],
    )
    engine, did, outcome = await run_to_rest(store, spec)
    assert outcome is Outcome.AWAITING_APPROVAL
    chain = await store.current_chain(did)
    names = {s.id: s.name for s in await store.list_steps(chain.id)}
    for approval in await store.pending_approvals(did):
        decision = "approve" if names[approval.step_id] == "kept" else "deny"
        await engine.resolve_approval(approval.id, decision, comment="no thanks")
    await engine.wait_settled(did, timeout=30)
    assert integration(repo, did, "a.txt") == "kept\n"
    assert integration(repo, did, "b.txt") == BASE["b.txt"]
    await engine.close()


async def test_reset_to_a_checkpoint_reruns_the_later_steps(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    spec = scripted(repo, three_to_reset(), [HALF, OK])
    engine, did, outcome = await run_to_rest(store, spec)
    assert outcome is Outcome.AWAITING_APPROVAL
    first, second = await engine.checkpoints(did)
    assert integration(repo, did, "b.txt") == "2\n"

    assert await engine.preview_reset(did, first.sha[:12]) == ["s2", "s3"]  # changes nothing
    assert await engine.preview_reset(did, 1) == ["s2", "s3"]  # by number: the same
    assert await engine.preview_reset(did, 0) == ["s1", "s2", "s3"]
    with pytest.raises(EngineError, match="cannot reset to checkpoint #5: .* no checkpoint #5"):
        await engine.preview_reset(did, 5)
    assert git(repo, "rev-parse", f"directive/{did}/integration").strip() == second.sha
    rerun = await engine.reset_to_checkpoint(did, first.sha)
    assert rerun == ["s2", "s3"]
    assert git(repo, "rev-parse", f"directive/{did}/integration").strip() == first.sha
    # s2 runs again from the checkpoint, then s3 asks again
    assert await engine.wait_settled(did, timeout=30) is Outcome.AWAITING_APPROVAL
    chain = await store.current_chain(did)
    steps = {s.name: s for s in await store.list_steps(chain.id)}
    assert steps["s2"].status.value == "passed" and steps["s2"].attempts == 2
    assert steps["s3"].status.value == "awaiting_approval" and steps["s3"].attempts == 2
    assert integration(repo, did, "b.txt") == "2\n"
    assert len(await store.pending_approvals(did)) == 1  # the first review was closed
    (closed,) = [a for a in await store.list_approvals(did) if a.decision]
    assert (closed.status.value, closed.decision.value) == ("superseded", "superseded")
    assert closed.comment == f"integration branch reset to {first.sha[:10]}"  # nobody answered
    with pytest.raises(EngineError, match="cannot reset"):
        await engine.reset_to_checkpoint(did, "0" * 40)

    # Once the directive has ended nothing would run again: refused, branch kept.
    await engine.stop_directive(did)
    tip = git(repo, "rev-parse", f"directive/{did}/integration").strip()
    for attempt in (engine.preview_reset, engine.reset_to_checkpoint):
        with pytest.raises(EngineError, match=r"has ended \(stopped\)"):
            await attempt(did, first.sha)
    assert git(repo, "rev-parse", f"directive/{did}/integration").strip() == tip
    await engine.close()


async def test_a_reset_names_a_step_whose_review_it_makes_moot_and_keeps_one_it_does_not(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """`y` (yellow) waits for a review, its attempt cut after s2 merged.
    Back to the latest checkpoint: its attempt still merges, the review
    stands, nothing runs again (it used to be reworked, "to run again:
    nothing"). Back to #1: it cannot merge, so it is reworked, and the
    preview and the reset both name it."""
    steps = [
        StepSpec(name="s1", attempts=[edit("a.txt", "1\n")], verifiers=["ok"]),
        StepSpec(name="s2", attempts=[edit("b.txt", "2\n")], verifiers=["ok"]),
        StepSpec(name="y", attempts=[edit("c.txt", "y\n")]),
    ]
    spec = scripted(make_git_repo(BASE), steps, [HALF, OK])
    one_at_a_time = spec.limits.model_copy(update={"max_parallel_steps": 1})
    engine, did, outcome = await run_to_rest(
        store, spec.model_copy(update={"limits": one_at_a_time})
    )
    assert outcome is Outcome.AWAITING_APPROVAL
    (review,) = await store.pending_approvals(did)
    assert [c.step_slug for c in await engine.checkpoints(did)] == ["s1", "s2"]

    before = (await store.get_directive(did)).last_seq
    assert await engine.preview_reset(did, 2) == []
    assert (await store.get_directive(did)).last_seq == before  # the preview wrote nothing
    assert await engine.reset_to_checkpoint(did, 2) == []
    assert (await store.get_approval(review.id)).pending
    y = next(
        s for s in await store.list_steps((await store.current_chain(did)).id) if s.name == "y"
    )
    assert (y.status, y.attempts) == (StepStatus.AWAITING_APPROVAL, 1)

    assert await engine.preview_reset(did, 1) == ["s2", "y"]
    assert await engine.reset_to_checkpoint(did, 1) == ["s2", "y"]
    assert (await store.get_approval(review.id)).decision.value == "superseded"
    assert await engine.wait_settled(did, timeout=30) is Outcome.AWAITING_APPROVAL
    steps_now = {s.name: s for s in await store.list_steps(y.chain_id)}
    assert steps_now["y"].attempts == 2 and steps_now["s2"].attempts == 2
    (again,) = await store.pending_approvals(did)
    await engine.resolve_approval(again.id, "approve")  # cut from the new tip: it merges
    assert await engine.wait_settled(did, timeout=30) is Outcome.COMPLETED
    assert integration(spec.repo, did, "c.txt") == "y\n"
    await engine.close()


async def test_a_reset_names_the_steps_it_interrupts_here(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """s2 is being checked in this engine when the reset comes: it is
    interrupted and runs again from the start, so it is named."""
    slow = {"name": "slow", "command": "sleep 1"}
    steps = [
        StepSpec(name="s1", attempts=[edit("a.txt", "1\n")], verifiers=["ok"]),
        StepSpec(name="s2", attempts=[edit("b.txt", "2\n")], depends_on=["s1"], verifiers=["slow"]),
    ]
    engine = DirectiveEngine(store, EventBus(), NO_LLM)
    did = (await engine.create_directive(scripted(make_git_repo(BASE), steps, [OK, slow]))).id
    await engine.start_directive(did)
    while "s2" not in await engine.running_steps():
        await asyncio.sleep(0.02)
    assert await engine.preview_reset(did, 1) == ["s2"]
    assert await engine.reset_to_checkpoint(did, 1) == ["s2"]
    while "s2" not in await engine.running_steps():  # it runs again
        await asyncio.sleep(0.02)
    # A reset refused once s2 was interrupted (the command machine found
    # it): s2 was left ready, the driver never woken to run it.
    with pytest.raises(EngineError, match="no checkpoint #7"):
        await engine.reset_to_checkpoint(did, 7)
    assert await engine.wait_settled(did, timeout=30) is Outcome.COMPLETED
    s2 = next(
        s for s in await store.list_steps((await store.current_chain(did)).id) if s.name == "s2"
    )
    assert s2.attempts == 3
    await engine.close()


async def test_a_reset_while_another_engine_runs_a_step_is_refused_before_git_moves(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """The command line's engine cannot cancel a step another process runs:
    it used to reset the branch, then fail on the step's status, leaving the
    branch and the database apart."""
    repo = make_git_repo(BASE)
    slow = {"name": "slow", "command": "sleep 2"}
    steps = [
        StepSpec(name="s1", attempts=[edit("a.txt", "1\n")], verifiers=["ok"]),
        StepSpec(name="s2", attempts=[edit("b.txt", "2\n")], depends_on=["s1"], verifiers=["slow"]),
    ]
    running = DirectiveEngine(store, EventBus(), NO_LLM)
    await running.start()  # it holds the database's lease, as a running app does
    did = (await running.create_directive(scripted(repo, steps, [OK, slow]))).id
    await running.start_directive(did)

    async def s2_checked() -> bool:
        chain = await store.current_chain(did)
        evaluating = await store.steps_in(chain.id, [StepStatus.EVALUATING]) if chain else []
        return [s.name for s in evaluating] == ["s2"]

    while not await s2_checked():
        await asyncio.sleep(0.02)
    tip = git(repo, "rev-parse", f"directive/{did}/integration").strip()

    other = DirectiveEngine(store, EventBus(), NO_LLM)  # as `directive-tui reset` builds it
    for command in (other.preview_reset, other.reset_to_checkpoint):  # the preview says it first
        with pytest.raises(
            EngineError, match="cannot reset while s2 runs in another directive-tui"
        ):
            await command(did, 0)
    assert git(repo, "rev-parse", f"directive/{did}/integration").strip() == tip
    await other.close()
    assert await running.wait_settled(did, timeout=30) is Outcome.COMPLETED
    await running.close()


async def test_a_step_left_marked_running_by_an_engine_that_stopped_says_how_to_reset(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """No engine runs it (the one that did was killed): the refusal said it
    "runs in another directive-tui", and pausing it there was impossible."""
    repo = make_git_repo(BASE)
    steps = [StepSpec(name="s1", attempts=[edit("a.txt", "1\n")], verifiers=["ok"])]
    engine = DirectiveEngine(store, EventBus(), NO_LLM)
    await engine.start()
    did = (await engine.create_directive(scripted(repo, steps, [OK]))).id
    await engine.start_directive(did)
    assert await engine.wait_settled(did, timeout=30) is Outcome.COMPLETED
    await engine.close()
    # as a killed engine leaves it: a step marked running, and no lease
    (s1,) = await store.list_steps((await store.current_chain(did)).id)
    await store.write(lambda tx: tx.update("chain_steps", s1.id, status="running"))

    other = DirectiveEngine(store, EventBus(), NO_LLM)  # as `directive-tui reset` builds it
    with pytest.raises(EngineError, match="the directive-tui that ran it stopped"):
        await other.preview_reset(did, 0)
    await other.close()


async def test_a_reset_after_a_replan_runs_the_carried_steps_again(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """A replan carries the passed steps into its chain (their runs stay with
    the old one); a reset to the start sends the carried copies back to
    run, their attempts counting on from what they carried. Found by the
    command machine in a git repository: the checker wanted carried steps
    never to run."""
    from engine.invariants import check_invariants

    spec = scripted(make_git_repo(BASE), three_to_reset(), [HALF, OK])
    engine, did, outcome = await run_to_rest(store, spec)
    assert outcome is Outcome.AWAITING_APPROVAL
    await engine.regenerate_chain(did, "a new plan keeping what passed")
    assert await engine.wait_settled(did, timeout=30) is Outcome.AWAITING_APPROVAL
    carried = {s.name: s for s in await store.list_steps((await store.current_chain(did)).id)}
    assert carried["s1"].carried_from and carried["s1"].attempts == 1

    assert await engine.reset_to_checkpoint(did, 0) == ["s1", "s2", "s3"]
    assert await engine.wait_settled(did, timeout=30) is Outcome.AWAITING_APPROVAL
    s1 = next(s for s in await store.list_steps(carried["s1"].chain_id) if s.name == "s1")
    assert (s1.status.value, s1.attempts) == ("passed", 2)
    assert [r.attempt for r in await store.list_runs(s1.id)] == [2]
    assert await check_invariants(store.path) == []
    await engine.close()


async def test_reading_an_ended_directive_leaves_no_worktree_behind(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """At the end the worktrees go. Its diff, its checkpoints and taking its
    result read refs, as the command line does, in a new engine: they used
    to bring the integration worktree back and leave it in the repository."""
    repo = make_git_repo(BASE)
    spec = scripted(repo, [StepSpec(name="s1", attempts=[edit("a.txt", "1\n")])])
    engine, did, outcome = await run_to_rest(store, spec)
    assert outcome is Outcome.COMPLETED
    await engine.close()
    work = store.path.parent / f"{store.path.stem}-work" / "worktrees" / did

    def untouched() -> bool:
        return git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1 and (
            not work.exists()
        )

    assert untouched()
    reader = DirectiveEngine(store, EventBus(), NO_LLM)  # as `directive-tui diff` builds it
    before = (await store.get_directive(did)).last_seq
    assert "+1" in await reader.final_diff(did) and untouched()
    assert [c.step_slug for c in await reader.checkpoints(did)] == ["s1"] and untouched()
    assert (await reader.start_point(did)).sha == git(repo, "rev-parse", "main").strip()
    assert (await reader.offer_fast_forward(did)).possible and untouched()
    assert (await store.get_directive(did)).last_seq == before  # reading writes nothing
    await reader.fast_forward_user_branch(did)
    assert (repo / "a.txt").read_text() == "1\n" and untouched()
    await reader.close()


async def test_a_directive_whose_repository_is_gone_says_so_and_writes_nothing(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """The folder was deleted after the run: the views and commands say the
    folder is gone (not "not a git work tree"), and leave no event behind."""
    import shutil

    repo = make_git_repo(BASE)
    engine, did, outcome = await run_to_rest(store, scripted(repo, three_to_reset(), [HALF, OK]))
    assert outcome is Outcome.AWAITING_APPROVAL
    (review,) = await store.pending_approvals(did)
    await engine.close()
    shutil.rmtree(repo)
    other = DirectiveEngine(store, EventBus(), NO_LLM)
    before = (await store.get_directive(did)).last_seq
    gone = f"the repository folder {repo} is gone"
    for command in (other.final_diff, other.checkpoints, other.fast_forward_user_branch):
        with pytest.raises(EngineError, match=gone):
            await command(did)
    for command in (other.preview_reset, other.reset_to_checkpoint):
        with pytest.raises(EngineError, match=gone):
            await command(did, 0)
    with pytest.raises(EngineError, match=gone):  # approving would merge into it
        await other.resolve_approval(review.id, "approve")
    await other.pause_directive(did)
    with pytest.raises(EngineError, match=f"cannot resume: {gone}; put it back first"):
        await other.resume_directive(did)
    assert (await store.get_directive(did)).last_seq == before + 1  # only the pause
    await other.close()


@pytest.mark.parametrize("stopper", ["the engine that ran it", "another, as `stop` builds it"])
async def test_worktrees_a_stop_could_not_remove_go_once_the_repository_is_back(
    store: Store, make_git_repo: Callable[..., Path], stopper: str
) -> None:
    """Stopped while its repository folder was moved away: the worktrees it
    registered there could not go, and stayed for good. The log says why,
    and the first command that finds the folder again (`checkpoints` here)
    removes them and writes the notice the end could not."""
    repo = make_git_repo(BASE)
    engine, did, outcome = await run_to_rest(store, scripted(repo, three_to_reset(), [HALF, OK]))
    assert outcome is Outcome.AWAITING_APPROVAL  # s3's worktree is kept for its review
    work = store.path.parent / f"{store.path.stem}-work" / "worktrees" / did

    def registered() -> int:
        return git(repo, "worktree", "list", "--porcelain").count("worktree ") - 1

    assert registered() > 0 and work.exists()
    away = repo.rename(repo.with_name("moved-away"))
    if stopper.startswith("another"):
        await engine.close()
        engine = DirectiveEngine(store, EventBus(), NO_LLM)
    await engine.stop_directive(did)
    await engine.close()

    async def notices() -> list[str]:
        return [e.describe() for e in await store.list_events(did) if e.type == "notice"]

    stayed = (
        f"the repository folder {repo} is gone, so its worktrees stay: the first command"
        " that finds it again (the app, diff, checkpoints or merge) removes them"
    )
    assert (await notices())[-1] == stayed
    restarted = DirectiveEngine(store, EventBus(), NO_LLM)
    await restarted.start()  # still gone: nothing to do, nothing said again
    await restarted.close()
    assert (await notices())[-1] == stayed

    away.rename(repo)
    assert registered() > 0 and work.exists()
    reader = DirectiveEngine(store, EventBus(), NO_LLM)  # as `directive-tui checkpoints` builds it
    assert [c.step_slug for c in await reader.checkpoints(did)] == ["s1", "s2"]
    assert registered() == 0 and not work.exists()
    assert (await notices())[-1].startswith(f"the result is on branch directive/{did}/integration")
    await reader.close()


def test_a_crash_mid_step_leaves_no_orphan_worktree_after_restart(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    directive = tmp_path / "slow.toml"
    go = tmp_path / "go"  # s1 holds until the test says go: the crash lands inside it
    wait = {1: f"while [ ! -e {go} ]; do sleep 0.05; done && "}
    steps = "\n".join(
        f'[[steps]]\nname = "s{i}"\ncommand = "{wait.get(i, "")}echo s{i} > s{i}.txt"\n'
        + (f'depends_on = ["s{i - 1}"]\n' if i else "")
        for i in range(3)
    )
    directive.write_text(
        f'title = "slow"\ngoal = "crash"\nrepo = "{repo}"\nautonomy = "full_auto"\n'
        'executor = "shell"\n[verifiers]\nauto_detect = false\nllm_judge = false\n' + steps
    )
    db = tmp_path / "crash.db"
    cmd = [sys.executable, "-m", "tui.cli", "--db", str(db)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([*cmd, "run", str(directive), "--headless"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    work = tmp_path / "crash-work" / "worktrees"
    deadline = time.time() + 30
    while time.time() < deadline and not any(p.name.startswith("s1-") for p in _dirs(work)):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(p.name.startswith("s1-") for p in _dirs(work))  # the orphan the crash left
    with sqlite3.connect(db) as conn:
        (did,) = conn.execute("SELECT id FROM directives").fetchone()
    go.touch()
    done = subprocess.run([*cmd, "resume", did, "--headless"], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    leftovers = [p for p in _dirs(work) if not p.name.startswith("_")]
    assert leftovers == []
    listed = git(repo, "worktree", "list", "--porcelain")
    assert "/s0-" not in listed and "/s1-" not in listed and "/s2-" not in listed
    assert git(repo, "status", "--porcelain") == ""  # the user's tree never changed
    for i in range(3):
        assert git(repo, "show", f"directive/{did}/integration:s{i}.txt") == f"s{i}\n"


def _dirs(root: Path) -> list[Path]:
    return [p for p in root.glob("*/*") if p.is_dir()] if root.exists() else []


async def test_a_folder_that_is_not_a_git_tree_runs_in_place_with_a_warning(
    store: Store, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    spec = scripted(plain, [StepSpec(name="write", attempts=[edit("x.txt", "x\n")])])
    engine, did, outcome = await run_to_rest(store, spec)
    assert outcome is Outcome.COMPLETED
    assert (plain / "x.txt").read_text() == "x\n"
    notices = [e.message for e in await store.list_events(did) if e.type == "notice"]
    assert any("not a git work tree" in n and "share one tree" in n for n in notices)
    await engine.close()


async def test_a_git_repository_that_cannot_have_worktrees_pauses_and_leaves_the_checkout_alone(
    store: Store, tmp_path: Path
) -> None:
    """A repository with no commit yet (also a folder git does not track,
    the database inside the repository, a branch `directive` in the way):
    its steps ran in the user's checkout, over their uncommitted work, with
    a warning after the step began and exit 0 at the end. Now the directive
    pauses saying why and what to do, and runs in worktrees once it is put
    right."""
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "x.txt").write_text("mine, uncommitted\n")
    spec = scripted(repo, [StepSpec(name="write", attempts=[edit("x.txt", "step\n")] * 2)])
    engine, did, outcome = await run_to_rest(store, spec)
    try:
        assert outcome is Outcome.PAUSED
        d = await store.get_directive(did)
        assert d.pause_reason == (
            f"steps cannot run in worktrees of their own: {repo.resolve()} has no commit yet:"
            " commit once so the directive has a base to branch from. Put that right, then resume;"
            " or run the directive file again with `isolate = false` under [workspace] to run"
            " the steps in the folder itself"
        )
        assert (repo / "x.txt").read_text() == "mine, uncommitted\n"
        (step,) = await store.list_steps((await store.current_chain(did)).id)
        assert step.status is StepStatus.READY

        git(repo, "add", "x.txt")
        git(repo, "-c", "user.name=U", "-c", "user.email=u@x", "commit", "-q", "-m", "first")
        await engine.resume_directive(did)
        assert await engine.wait_settled(did, timeout=60) is Outcome.COMPLETED
        assert (repo / "x.txt").read_text() == "mine, uncommitted\n"  # merged on its branch
        assert git(repo, "show", f"directive/{did}/integration:x.txt") == "step\n"
    finally:
        await engine.close()


async def test_the_log_says_which_environments_the_worktrees_share_and_links_can_be_turned_off(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """A step that ran `rm -rf node_modules` deleted the user's own through
    the link, with no word in the log that the folder was shared; nor that
    submodules are empty in a worktree. Both are said before the first
    step, and `links = []` gives the worktrees no link at all."""
    repo = make_git_repo(
        {
            ".gitignore": ".venv/\n",
            ".gitmodules": '[submodule "lib"]\n\tpath = vendor/lib\n\turl = ../lib.git\n',
        }
    )
    (repo / ".venv").mkdir()
    (repo / ".venv" / "marker").write_text("the user's\n")
    (repo / "node_modules").mkdir()  # not ignored here: not linked, so not said to be
    look = {"name": "linked", "command": "test -L .venv"}
    linked = scripted(repo, [StepSpec(name="s", attempts=[edit("x.txt", "x\n")])], [look])
    engine, did, outcome = await run_to_rest(store, linked.model_copy(update={"title": "linked"}))
    await engine.close()
    assert outcome is Outcome.COMPLETED  # the check found the link
    notices = [e.message for e in await store.list_events(did) if e.type == "notice"]
    assert (
        "each step's worktree links your .venv (git-ignored, not a copy): a step that installs"
        " into or deletes it changes yours; `links = []` under [workspace] in the directive"
        " file turns this off"
    ) in notices
    assert (
        "submodules are not checked out in the steps' worktrees (vendor/lib): steps find their"
        " folders empty, and changes made inside them are not kept"
    ) in notices

    unlinked = linked.model_copy(update={"workspace": WorkspaceConfig(links=[])})
    engine, did, outcome = await run_to_rest(store, unlinked)
    await engine.close()
    assert outcome is Outcome.AWAITING_APPROVAL  # red: no .venv in the worktree
    notices = [e.message for e in await store.list_events(did) if e.type == "notice"]
    assert not any("links your" in n for n in notices)
    assert (repo / ".venv" / "marker").read_text() == "the user's\n"


async def test_a_reading_step_that_changed_files_with_no_judge_to_check_it_asks_a_person(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """Reading steps are judged by the LLM judge alone; with no judge (no
    key, or llm_judge = false) a review step that rewrote the code and broke
    the tests passed green, 'no verifier ran', and merged."""
    repo = make_git_repo(BASE)
    steps = [
        StepSpec(name="look", type="research", attempts=[ScriptedAttempt()]),
        StepSpec(name="review", type="review", attempts=[edit("a.txt", "broken\n")],
                 depends_on=["look"]),
    ]  # fmt: skip
    engine, did, outcome = await run_to_rest(store, scripted(repo, steps))
    try:
        assert outcome is Outcome.AWAITING_APPROVAL
        chain = await store.current_chain(did)
        status = {s.name: s.status for s in await store.list_steps(chain.id)}
        assert status == {"look": StepStatus.PASSED, "review": StepStatus.AWAITING_APPROVAL}
        (review,) = await store.pending_approvals(did)
        assert (
            "nothing checked this review step's changes (a.txt): reading steps are judged by the"
            " LLM judge alone, which is off here (no API key, or llm_judge = false), so a person"
            " decides" in review.summary
        )
    finally:
        await engine.close()


async def test_a_step_merged_before_its_verdict_was_written_passes_on_restart_not_twice(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """A kill (or a database busy past the lock wait) between a passed
    step's merge and its verdict's write: on restart the step ran again, so
    `echo one >> a.txt` appended twice and the checkpoints counted it twice.
    Its checkpoint on the branch says it passed: it is recorded so."""
    repo = make_git_repo(BASE)
    steps = [
        StepSpec(name="s1", attempts=[edit("a.txt", "once\n")] * 2, verifiers=["ok"]),
        StepSpec(name="s2", attempts=[edit("b.txt", "2\n")], verifiers=["half"], depends_on=["s1"]),
    ]
    engine, did, outcome = await run_to_rest(store, scripted(repo, steps, [OK, HALF]))
    assert outcome is Outcome.AWAITING_APPROVAL
    await engine.close()
    s1 = next(
        s for s in await store.list_steps((await store.current_chain(did)).id) if s.name == "s1"
    )
    with sqlite3.connect(store.path) as conn:  # as the kill left it: merged, still evaluating
        conn.execute(
            "UPDATE chain_steps SET status = 'evaluating', level = NULL WHERE id = ?", (s1.id,)
        )

    engine = DirectiveEngine(store, EventBus(), NO_LLM)
    await engine.start()
    try:
        s1 = await store.get_step(s1.id)
        assert s1.status is StepStatus.PASSED
        assert [r.attempt for r in await store.list_runs(s1.id)] == [1]  # not run again
        assert [c.step_slug for c in await engine.checkpoints(did)] == ["s1"]  # counted once
        said = [e.describe() for e in await store.list_events(did)]
        assert any("its merge was made, but the write of its verdict was lost" in s for s in said)
    finally:
        await engine.close()


async def test_an_approve_whose_write_was_lost_is_not_undone_by_a_deny_and_counts_once(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """`approve` merges, then writes the answer: a busy database (exit 75)
    left the merge on the branch and the request waiting. A deny then left
    the denied work in the result; approving again, as the exit code asks,
    recorded a second checkpoint at the same commit."""
    from engine.models import ApprovalDecision

    repo = make_git_repo(BASE)
    steps = [StepSpec(name="s1", attempts=[edit("a.txt", "1\n")], verifiers=["half"])]
    engine, did, outcome = await run_to_rest(store, scripted(repo, steps, [HALF]))
    try:
        assert outcome is Outcome.AWAITING_APPROVAL
        (review,) = await store.pending_approvals(did)
        await engine._merge_approved(review, ApprovalDecision.APPROVE)  # its write then lost

        with pytest.raises(EngineError, match=f"approval {review.id} was approved: step s1's"):
            await engine.resolve_approval(review.id, ApprovalDecision.DENY, "no")
        await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)
        assert await engine.wait_settled(did, timeout=30) is Outcome.COMPLETED
        assert [c.seq for c in await engine.checkpoints(did)] == [1]
        assert integration(repo, did, "a.txt") == "1\n"
    finally:
        await engine.close()


async def test_a_passed_attempt_git_could_not_merge_waits_for_a_person_not_a_rework(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """A ref git had locked (a concurrent `git gc`, say) failed the merge of a
    passed attempt: it went to rework carrying its own commit, and the shell
    step's `>>` then ran on top of it, its change applied twice."""
    from engine.models import ApprovalDecision

    repo = make_git_repo(BASE)
    lock = repo / ".git" / "refs" / "heads" / "directive" / "{did}" / "integration.lock"
    command = (
        'echo more >> a.txt; touch "$(git rev-parse --git-common-dir)'
        '/refs/heads/directive/$DIRECTIVE_ID/integration.lock"'
    )
    step = StepSpec(name="s1", executor=ExecutorKind.SHELL, command=command, verifiers=["ok"])
    spec = scripted(repo, [step], [OK], autonomy=Autonomy.FULL_AUTO)
    engine, did, outcome = await run_to_rest(store, spec)
    try:
        assert outcome is Outcome.AWAITING_APPROVAL
        (review,) = await store.pending_approvals(did)
        assert "passed its checks but git could not merge it" in review.summary
        assert "approve to try the merge again" in review.summary
        Path(str(lock).format(did=did)).unlink()  # git is free again
        await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)
        assert await engine.wait_settled(did, timeout=30) is Outcome.COMPLETED
        assert integration(repo, did, "a.txt") == BASE["a.txt"] + "more\n"  # once
        (run,) = await store.list_runs(review.step_id)  # not run again
    finally:
        await engine.close()


def one_writing_step(tmp_path: Path, repo: Path) -> Path:
    """A directive file whose one shell step writes new.txt in `repo`."""
    directive = tmp_path / "d.toml"
    directive.write_text(
        f'title = "t"\ngoal = "g"\nrepo = "{repo}"\nexecutor = "shell"\n'
        "[verifiers]\nauto_detect = false\nllm_judge = false\n"
        '[[steps]]\nname = "write"\ncommand = "echo new > new.txt"\n'
    )
    return directive


def test_the_command_line_shows_the_diff_and_checkpoints_and_merges_on_request(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    from tests.test_cli import run_cli

    repo = make_git_repo(BASE)
    directive = one_writing_step(tmp_path, repo)
    db = str(tmp_path / "x.db")
    code, out, _ = run_cli("--db", db, "run", str(directive), "--headless")
    assert code == 0 and f"`directive-tui --db {db} merge" in out
    did = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/directive/").split(
        "/"
    )[1]
    code, out, _ = run_cli("--db", db, "diff", did)
    assert code == 0 and "+new" in out
    start = git(repo, "rev-parse", "HEAD").strip()
    code, out, _ = run_cli("--db", db, "checkpoints", did)
    assert code == 0 and out.splitlines()[0] == f"{start[:12]}  #0   start: before any step"
    assert "write (attempt 1)" in out.splitlines()[1]
    assert not (repo / "new.txt").exists()
    code, out, _ = run_cli("--db", db, "merge", did)
    assert code == 0 and (repo / "new.txt").read_text() == "new\n"


async def test_worktrees_kept_for_inspection_go_when_the_directive_is_stopped_elsewhere(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A failed step's worktree is kept while the directive waits; stopping it
    from the command line (no engine running) removes it, and an engine that
    starts later tidies whatever a directive that ended elsewhere left."""
    repo = make_git_repo(BASE)
    directive = tmp_path / "fails.toml"
    directive.write_text(
        f'title = "fails"\ngoal = "wait"\nrepo = "{repo}"\nautonomy = "full_auto"\n'
        'executor = "shell"\n[verifiers]\nauto_detect = false\nllm_judge = false\n'
        '[[steps]]\nname = "broken"\ncommand = "echo half > half.txt && exit 1"\n'
    )
    db = tmp_path / "stop.db"
    cmd = [sys.executable, "-m", "tui.cli", "--db", str(db)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    waiting = subprocess.run([*cmd, "run", str(directive), "--headless"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert waiting.returncode == 3, waiting.stdout + waiting.stderr  # the escalation waits
    work = tmp_path / "stop-work" / "worktrees"
    assert any(p.name.startswith("broken-") for p in _dirs(work))  # kept for inspection
    with sqlite3.connect(db) as conn:
        (did,) = conn.execute("SELECT id FROM directives").fetchone()

    stopped = subprocess.run([*cmd, "stop", did], env=env, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert stopped.returncode == 0, stopped.stderr
    assert _dirs(work) == []
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "status", "--porcelain") == ""

    # The same leftovers, from a directive that ended while nothing could tidy
    # up (its stop committed, then the process died): the next engine does.
    second = subprocess.run([*cmd, "run", str(directive), "--headless"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert second.returncode == 3
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE directives SET status = 'stopped' WHERE status = 'active'")
    assert any(p.name.startswith("broken-") for p in _dirs(work))
    store = await Store.open(db)
    engine = DirectiveEngine(store, EventBus())
    try:
        await engine.start()
    finally:
        await engine.close()
        await store.close()
    assert _dirs(work) == []
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_a_step_that_writes_only_ignored_files_is_told_later_steps_will_not_see_them(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """Steps pass files on through commits: what git ignores stays behind in
    the step's worktree, and the run says so, naming it."""
    from tests.test_cli import directive_file, run_cli

    repo = make_git_repo({**BASE, ".gitignore": "out/\n"})
    directive = directive_file(
        tmp_path,
        repo,
        '[[steps]]\nname = "build"\n'
        'command = "mkdir -p out && echo bin > out/app && echo notes > notes.txt"\n'
        '[[steps]]\nname = "use"\ndepends_on = ["build"]\ncommand = "cat notes.txt"\n',
    )
    code, out, _ = run_cli("--db", str(tmp_path / "x.db"), "run", str(directive), "--headless")
    assert code == 0
    (warning,) = [line for line in out.splitlines() if "git ignores it" in line]
    assert "out/" in warning and "later steps will not see it" in warning
    assert "notes.txt" not in warning  # committed: the next step has it


def test_listed_artifacts_reach_the_steps_after_the_one_that_built_them(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """`[workspace] artifacts` hands a git-ignored build folder on: the step
    that needs it finds it, the checkpoint says so, nothing is committed."""
    from tests.test_cli import directive_file, run_cli

    repo = make_git_repo({**BASE, ".gitignore": "out/\n"})
    directive = directive_file(
        tmp_path,
        repo,
        '[workspace]\nartifacts = ["out"]\n'
        '[[steps]]\nname = "build"\ncommand = "mkdir -p out && echo bin > out/app"\n'
        '[[steps]]\nname = "use"\ndepends_on = ["build"]\n'
        'command = "test \\"$(cat out/app)\\" = bin"\n',
    )
    code, out, err = run_cli("--db", str(tmp_path / "x.db"), "run", str(directive), "--headless")
    assert code == 0, out + err
    assert "git ignores it" not in out
    (checkpoint,) = [
        line for line in out.splitlines() if "checkpoint" in line and "step build" in line
    ]
    # it commits nothing (out/ is ignored): the branch stays, the artifact goes on
    assert checkpoint.endswith("step build changed no file (the branch stays); hands on out")
    with sqlite3.connect(tmp_path / "x.db") as conn:
        (did,) = conn.execute("SELECT id FROM directives").fetchone()
    tip = f"directive/{did}/integration"
    assert git(repo, "ls-tree", "-r", "--name-only", tip).split() == [".gitignore", *sorted(BASE)]


async def test_a_failed_attempt_says_where_its_half_done_work_is_kept(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """An agent that wrote files and then lost the API: its work is kept in
    the attempt's worktree, and the escalation says where."""
    half_done = ScriptedAttempt(edits=[FileEdit(path="a.txt", content="half\n")], fail="API 529")
    spec = scripted(make_git_repo(BASE), [StepSpec(name="s1", attempts=[half_done])])
    engine, did, outcome = await run_to_rest(store, spec)
    assert outcome is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(did)
    kept = escalation.summary.split("its files are kept in ", 1)[1].split(" while", 1)[0]
    assert (Path(kept) / "a.txt").read_text() == "half\n"
    await engine.close()


async def test_a_directive_that_changed_nothing_offers_no_result_to_merge(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """Completed or stopped, a directive whose steps committed nothing says
    so instead of pointing at an integration branch that is the start."""

    def looks(checks: list[dict]) -> DirectiveSpec:
        step = StepSpec(name="look", attempts=[ScriptedAttempt(summary="read only")])
        return scripted(make_git_repo(BASE, name=checks[0]["name"]), [step], checks)

    async def closing_notice(did: str) -> str:
        return [e for e in await store.list_events(did) if e.type == "notice"][-1].message

    engine, completed, outcome = await run_to_rest(store, looks([OK]))
    assert outcome is Outcome.COMPLETED
    assert await closing_notice(completed) == "no step changed anything: nothing to merge"
    await engine.close()

    engine, waiting, outcome = await run_to_rest(store, looks([HALF]))
    assert outcome is Outcome.AWAITING_APPROVAL
    await engine.stop_directive(waiting)
    assert await engine.wait_settled(waiting, timeout=30) is Outcome.STOPPED
    assert await closing_notice(waiting) == "no step changed anything: nothing to merge"
    await engine.close()


def test_the_merge_hint_names_its_database_and_works_as_printed(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """Followed from another folder, with another default database, the
    printed command still merges this directive: it carries `--db`."""
    import shlex

    repo = make_git_repo(BASE)
    directive = one_writing_step(tmp_path, repo)
    db = tmp_path / "my work.db"  # a space: the path in the hint is quoted
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "DIRECTIVE_TUI_DB": str(tmp_path / "default.db")}  # fmt: skip
    cli = [sys.executable, "-m", "tui.cli"]
    ran = subprocess.run([*cli, "--db", str(db), "run", str(directive), "--headless"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (notice,) = [line for line in ran.stdout.splitlines() if "the result is on branch" in line]
    program, *args = shlex.split(notice.split("`")[1])
    assert (program, args[:2]) == ("directive-tui", ["--db", str(db)])
    merged = subprocess.run([*cli, *args], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    assert (repo / "new.txt").read_text() == "new\n"
    assert not (tmp_path / "default.db").exists()
