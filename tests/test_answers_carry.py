"""What a person's answer hands the step's next attempt: the commit it
starts from (`carry_sha`) and the instructions it is given. A deny refuses
the work under review, so a retry after it starts from the integration
branch even when a request for changes carried that work; a retry's note
reaches the next attempt as a request for changes' comment does; a skipped
step keeps no carry. Through the real engine, in a real git repository."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.engine import DirectiveEngine, Outcome
from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    ExecutorKind,
    FileEdit,
    ScriptedAttempt,
    Step,
    StepSpec,
    WorkspaceConfig,
)
from engine.store import Store
from tests.conftest import git
from tests.test_engine_worktrees import BASE, HALF, OK, edit, integration, run_to_rest, scripted

D = ApprovalDecision


async def the_step(engine: DirectiveEngine, did: str) -> Step:
    chain = await engine.store.current_chain(did)
    assert chain is not None
    (step,) = await engine.store.list_steps(chain.id)
    return step


async def the_approval(engine: DirectiveEngine, did: str, kind: ApprovalKind) -> ApprovalRequest:
    (a,) = await engine.store.pending_approvals(did)
    assert a.kind is kind, a.summary
    return a


async def answer(
    engine: DirectiveEngine, did: str, kind: ApprovalKind, decision: D, comment: str | None = None
) -> Outcome:
    a = await the_approval(engine, did, kind)
    await engine.resolve_approval(a.id, decision, comment)
    return await engine.wait_settled(did, timeout=60)


def parent(repo: Path, commit: str | None) -> str:
    return git(repo, "rev-parse", f"{commit}^").strip()


def tree(repo: Path, ref: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", ref).split())


@pytest.mark.parametrize("carry_rework", [False, True])
async def test_a_retry_after_a_deny_starts_afresh_not_from_the_work_changes_were_asked_of(
    store: Store, make_git_repo: Callable[..., Path], carry_rework: bool
) -> None:
    """Request changes (attempt 2 builds on attempt 1), deny attempt 2, retry,
    approve attempt 3: the result held attempt 1's file, attempt 3's commit
    a child of attempt 1's. Denied work is not the start of a retry, with or
    without `carry_rework`: the person refused it."""
    repo = make_git_repo(BASE)
    step = StepSpec(
        name="feature",
        attempts=[edit("one.txt", "1\n"), edit("two.txt", "2\n"), edit("three.txt", "3\n")],
    )
    spec = scripted(repo, [step], [HALF, OK], workspace=WorkspaceConfig(carry_rework=carry_rework))
    engine, did, outcome = await run_to_rest(store, spec)
    try:
        assert outcome is Outcome.AWAITING_APPROVAL
        review = ApprovalKind.STEP_REVIEW
        outcome = await answer(engine, did, review, D.REQUEST_CHANGES, "add two.txt")
        assert outcome is Outcome.AWAITING_APPROVAL
        first, second = await engine.store.list_runs((await the_step(engine, did)).id)
        assert parent(repo, second.commit_sha) == first.commit_sha  # as designed

        outcome = await answer(engine, did, review, D.DENY, "not what I asked")
        assert outcome is Outcome.AWAITING_APPROVAL
        denied = await the_step(engine, did)
        assert denied.status.value == "blocked"

        outcome = await answer(engine, did, ApprovalKind.ESCALATION, D.RETRY)
        assert outcome is Outcome.AWAITING_APPROVAL
        outcome = await answer(engine, did, review, D.APPROVE)
        assert outcome is Outcome.COMPLETED

        runs = await engine.store.list_runs(denied.id)
        third = runs[-1]
        assert third.attempt == 3 and third.base_sha == first.base_sha  # the integration branch
        assert third.rework_instructions == (  # told why it starts afresh
            "A reviewer denied the previous attempt: not what I asked\n\n"
            "Earlier findings:\nA reviewer requested changes: add two.txt"
        )
        assert parent(repo, third.commit_sha) == first.base_sha
        result = tree(repo, f"directive/{did}/integration")
        assert "three.txt" in result
        assert not {"one.txt", "two.txt"} & result  # the denied work stays out
    finally:
        await engine.close()


# Fails with empty instructions; with any, writes them to note.txt and passes.
ECHO_NOTE = 'printf "%s" "$DIRECTIVE_REWORK_INSTRUCTIONS" > note.txt; test -s note.txt'


async def test_a_retry_hands_its_note_to_the_next_attempt_and_one_without_a_note_changes_nothing(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """An escalation answered retry with "use the other mirror" was logged,
    but the step's next attempt was told nothing: a shell step echoing
    $DIRECTIVE_REWORK_INSTRUCTIONS printed an empty line."""
    repo = make_git_repo(BASE)
    step = StepSpec(name="fetch", executor=ExecutorKind.SHELL, command=ECHO_NOTE, verifiers=["ok"])
    engine, did, outcome = await run_to_rest(store, scripted(repo, [step], [OK]))
    try:
        assert outcome is Outcome.AWAITING_APPROVAL
        assert (await the_step(engine, did)).status.value == "failed"
        escalation = ApprovalKind.ESCALATION

        outcome = await answer(engine, did, escalation, D.RETRY)  # no note: as before
        assert outcome is Outcome.AWAITING_APPROVAL
        failed = await the_step(engine, did)
        assert failed.status.value == "failed" and failed.rework_instructions is None

        outcome = await answer(engine, did, escalation, D.RETRY, "use the other mirror")
        assert outcome is Outcome.COMPLETED
        passed = await the_step(engine, did)
        runs = await engine.store.list_runs(passed.id)
        assert [r.attempt for r in runs] == [1, 2, 3]
        assert runs[1].rework_instructions is None
        assert (
            runs[2].rework_instructions
            == "A person retried this step and said: use the other mirror"
        )
        assert integration(repo, did, "note.txt") == runs[2].rework_instructions
    finally:
        await engine.close()


async def test_a_retry_note_keeps_the_findings_before_it(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """A step blocked after a deny of requested changes: the note comes
    first, what the reviewer asked before stays below it."""
    repo = make_git_repo(BASE)
    step = StepSpec(name="feature", attempts=[edit("one.txt", "1\n"), edit("two.txt", "2\n")])
    engine, did, outcome = await run_to_rest(store, scripted(repo, [step], [HALF, OK]))
    try:
        review = ApprovalKind.STEP_REVIEW
        await answer(engine, did, review, D.REQUEST_CHANGES, "add two.txt")
        await answer(engine, did, review, D.DENY, "not what I asked")
        outcome = await answer(engine, did, ApprovalKind.ESCALATION, D.RETRY, "only three.txt")
        assert outcome is Outcome.AWAITING_APPROVAL
        runs = await engine.store.list_runs((await the_step(engine, did)).id)
        assert runs[-1].attempt == 3
        assert runs[-1].rework_instructions == (
            "A person retried this step and said: only three.txt\n\n"
            "Earlier findings:\nA reviewer denied the previous attempt: not what I asked\n\n"
            "Earlier findings:\nA reviewer requested changes: add two.txt"
        )
    finally:
        await engine.close()


@pytest.mark.parametrize("how", ["answer", "command"])
async def test_a_skipped_step_keeps_no_carry(
    store: Store, make_git_repo: Callable[..., Path], how: str
) -> None:
    """A failed attempt's commit is the retry's start under `carry_rework`;
    skipped (for good), the step holds no carry for anything to take up."""
    repo = make_git_repo(BASE)
    half_done = ScriptedAttempt(edits=[FileEdit(path="one.txt", content="1\n")], fail="boom")
    step = StepSpec(name="feature", attempts=[half_done])
    spec = scripted(repo, [step], [OK], workspace=WorkspaceConfig(carry_rework=True))
    engine, did, outcome = await run_to_rest(store, spec)
    try:
        assert outcome is Outcome.AWAITING_APPROVAL
        failed = await the_step(engine, did)
        assert failed.status.value == "failed" and failed.carry_sha  # the retry's start
        if how == "answer":
            outcome = await answer(engine, did, ApprovalKind.ESCALATION, D.SKIP)
        else:
            await engine.skip_step(failed.id)
            outcome = await engine.wait_settled(did, timeout=60)
        assert outcome is Outcome.COMPLETED
        skipped = await the_step(engine, did)
        assert skipped.status.value == "skipped" and skipped.carry_sha is None
    finally:
        await engine.close()


@pytest.mark.parametrize("carry_rework", [False, True])
async def test_a_retry_of_a_blocked_step_starts_from_its_last_attempt_under_carry_rework(
    store: Store, make_git_repo: Callable[..., Path], carry_rework: bool
) -> None:
    """Blocked after its last red attempt, the step kept the carry of the
    rework before it: a retry built on attempt 1, not on the attempt just
    judged (nor afresh, without carry_rework, when an older carry was set)."""
    red = {"name": "red", "command": "exit 1"}
    repo = make_git_repo(BASE)
    step = StepSpec(
        name="feature",
        attempts=[edit("one.txt", "1\n"), edit("two.txt", "2\n"), edit("three.txt", "3\n")],
        verifiers=["red"],
    )
    spec = scripted(
        repo, [step], [red], limits={"max_rework_cycles": 1},
        workspace=WorkspaceConfig(carry_rework=carry_rework),
    )  # fmt: skip
    engine, did, outcome = await run_to_rest(store, spec)
    try:
        assert outcome is Outcome.AWAITING_APPROVAL
        blocked = await the_step(engine, did)
        first, second = await engine.store.list_runs(blocked.id)
        assert blocked.status.value == "blocked"
        assert blocked.carry_sha == (second.commit_sha if carry_rework else None)
    finally:
        await engine.close()
