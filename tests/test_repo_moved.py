"""The repository folder moved away while a step ran (a person tidied their
projects folder): the step is not failed or judged over it. The directive
pauses saying where the folder was, and once it is back, resume runs the
step again. While it is away, only `stop` answers what the directive asks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineServices, Outcome, RepoGone
from engine.invariants import check_invariants
from engine.models import (
    Autonomy,
    DirectiveSpec,
    ExecutorKind,
    PlannerKind,
    VerifierConfig,
    WorkspaceConfig,
)
from engine.store import Store
from tests.conftest import git


def moves_repo_once(repo: Path, flag: Path, then: str) -> str:
    """A shell step that, the first time only, moves the repository away and
    then does `then`; every later time, writes done.txt."""
    away = repo.with_name(repo.name + "-away")
    return (
        f"if [ ! -e {flag} ]; then touch {flag}; mv {repo} {away}; {then}; fi; echo done > done.txt"
    )


def spec(repo: Path, command: str, *, isolate: bool) -> DirectiveSpec:
    return DirectiveSpec(
        title="tidy",
        goal="write done.txt",
        repo=repo,
        autonomy=Autonomy.FULL_AUTO,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SHELL,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
        workspace=WorkspaceConfig(isolate=isolate),
        steps=[{"name": "write", "type": "implement", "command": command}],
    )


async def pauses_then_finishes(store: Store, repo: Path, the_spec: DirectiveSpec) -> str:
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    await engine.start()
    d = await engine.create_directive(the_spec)
    await engine.start_directive(d.id)

    assert await engine.wait_settled(d.id, timeout=30) is Outcome.PAUSED
    paused = await store.get_directive(d.id)
    assert paused.pause_reason == f"the repository folder {repo} is gone: put it back, then resume"
    assert paused.failed_steps == 0 and await store.pending_approvals(d.id) == []
    (chain,) = await store.list_chains(d.id)
    (step,) = await store.list_steps(chain.id)
    assert step.status.value == "ready" and step.rework_count == 0
    assert await store.list_evaluations(step.id) == []  # nothing was judged
    assert await check_invariants(store.path) == []

    repo.with_name(repo.name + "-away").rename(repo)  # put back
    await engine.resume_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    await engine.close()
    return d.id


async def test_a_failed_attempt_in_a_moved_repository_pauses_instead_of_failing(
    store: Store, make_git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_git_repo()
    command = moves_repo_once(repo, tmp_path / "moved-once", then="exit 3")
    did = await pauses_then_finishes(store, repo, spec(repo, command, isolate=True))
    assert git(repo, "show", f"directive/{did}/integration:done.txt") == "done\n"


async def test_an_attempt_that_finished_in_a_moved_repository_is_not_judged(
    store: Store, make_git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_git_repo()
    command = moves_repo_once(repo, tmp_path / "moved-once", then="true")
    await pauses_then_finishes(store, repo, spec(repo, command, isolate=False))
    assert (repo / "done.txt").read_text() == "done\n"


async def test_an_escalation_is_not_answered_while_the_folder_is_gone_but_stop_is(
    store: Store, make_git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """`resume` said answers were refused while the folder was gone, yet
    retry and skip were taken: the retry was used up on an attempt that
    could only pause the directive again. Now only stop is taken."""
    repo = make_git_repo()
    flag = tmp_path / "failed-once"
    command = f"if [ ! -e {flag} ]; then touch {flag}; exit 3; fi; echo done > done.txt"
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    await engine.start()
    d = await engine.create_directive(spec(repo, command, isolate=True))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(d.id)
    away = repo.rename(repo.with_name("away"))

    for answer in ("retry", "skip", "replan"):
        with pytest.raises(RepoGone, match=f"the repository folder {repo} is gone"):
            await engine.resolve_approval(escalation.id, answer)
    assert (await store.get_approval(escalation.id)).pending  # nothing used up

    away.rename(repo)
    await engine.resolve_approval(escalation.id, "retry")
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    await engine.close()


async def test_stop_is_taken_while_the_folder_is_gone(
    store: Store, make_git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_git_repo()
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    await engine.start()
    d = await engine.create_directive(spec(repo, "exit 3", isolate=True))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(d.id)
    repo.rename(repo.with_name("away"))
    await engine.resolve_approval(escalation.id, "stop")
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.STOPPED
    await engine.close()


async def test_a_plan_is_denied_while_the_folder_is_gone(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """A plan approval offers approve and deny, not stop: with deny refused
    too, nothing could answer it until the folder came back."""
    repo = make_git_repo()
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    await engine.start()
    the_spec = spec(repo, "true", isolate=True).model_copy(update={"autonomy": Autonomy.MANUAL})
    d = await engine.create_directive(the_spec)
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    (plan,) = await store.pending_approvals(d.id)
    repo.rename(repo.with_name("away"))
    with pytest.raises(RepoGone, match="deny and stop need no folder"):
        await engine.resolve_approval(plan.id, "approve")
    await engine.resolve_approval(plan.id, "deny")
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.STOPPED
    await engine.close()
