"""A failed attempt's half-done work (an agent that ran out of turns, a
command that died halfway) is committed on its own branch: its diff can be
read, and with `carry_rework` a retry starts from it instead of from
scratch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineServices, Outcome
from engine.invariants import check_invariants
from engine.models import (
    ApprovalDecision,
    Autonomy,
    DirectiveSpec,
    ExecutorKind,
    FileEdit,
    PlannerKind,
    ScriptedAttempt,
    StepSpec,
    VerifierConfig,
    WorkspaceConfig,
)
from engine.store import Store
from tests.conftest import git

HALF_DONE = ScriptedAttempt(
    edits=[FileEdit(path="part1.txt", content="first half\n")], fail="ran out of turns"
)
# The second attempt writes only the second half: with the first half
# carried, both are there at the end.
SECOND_HALF = ScriptedAttempt(edits=[FileEdit(path="part2.txt", content="second half\n")])


def spec(repo: Path, *, carry: bool) -> DirectiveSpec:
    return DirectiveSpec(
        title="two halves",
        goal="write both halves",
        repo=repo,
        autonomy=Autonomy.FULL_AUTO,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SCRIPTED,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
        workspace=WorkspaceConfig(carry_rework=carry),
        steps=[StepSpec(name="write", attempts=[HALF_DONE, SECOND_HALF])],
    )


async def fail_then_retry(store: Store, the_spec: DirectiveSpec) -> tuple[DirectiveEngine, str]:
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    await engine.start()
    d = await engine.create_directive(the_spec)
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    (chain,) = await store.list_chains(d.id)
    (step,) = await store.list_steps(chain.id)
    (failed,) = await store.list_runs(step.id)
    assert failed.status == "failed" and failed.commit_sha
    assert f"committed as {failed.commit_sha[:10]}" in failed.error
    assert "+first half" in await engine.run_diff(failed)  # what it did can be read

    (escalation,) = await store.pending_approvals(d.id)
    await engine.resolve_approval(escalation.id, ApprovalDecision.RETRY)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    assert await check_invariants(store.path) == []
    return engine, d.id


async def test_with_carry_rework_a_retry_starts_from_the_failed_attempt(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    engine, did = await fail_then_retry(store, spec(repo, carry=True))
    (chain,) = await store.list_chains(did)
    (step,) = await store.list_steps(chain.id)
    failed, _ = await store.list_runs(step.id)
    assert "(a retry starts from it)" in failed.error
    branch = f"directive/{did}/integration"
    assert git(repo, "show", f"{branch}:part1.txt") == "first half\n"
    assert git(repo, "show", f"{branch}:part2.txt") == "second half\n"
    await engine.close()


async def test_without_it_a_retry_starts_over_and_the_half_done_work_stays_out(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    engine, did = await fail_then_retry(store, spec(repo, carry=False))
    branch = f"directive/{did}/integration"
    files = git(repo, "ls-tree", "--name-only", branch).split()
    assert "part2.txt" in files and "part1.txt" not in files
    await engine.close()
