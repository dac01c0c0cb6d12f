"""The engine's loop: levels, approvals, rework, escalation, replanning,
autonomy, breakers, pause/stop, recovery — against a real SQLite store."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import ApprovalAlreadyResolved, DirectiveEngine, EngineError, Outcome
from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    Autonomy,
    DirectiveStatus,
    PlannerKind,
    Progress,
)
from engine.store import Store
from tests.engine_kit import Script, chain_spec, services, statuses

LINEAR = [("a", []), ("b", ["a"]), ("c", ["b"])]


async def run(store: Store, spec, script: Script, bus: EventBus | None = None, **parts):
    """Create and start `spec` on a new engine; `parts` replace the test
    services' own (a planner, verifiers, a client provider)."""
    kit = dataclasses.replace(services(script), **parts)
    engine = DirectiveEngine(store, bus or EventBus(), kit)
    await engine.start()
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    return engine, d.id


async def test_green_steps_complete_the_directive(store: Store, tmp_path: Path) -> None:
    engine, did = await run(store, chain_spec(tmp_path, LINEAR), Script())
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert await statuses(engine, did) == {"a": "passed", "b": "passed", "c": "passed"}
    assert [c[0] for c in engine.services.executor("x", None).script.calls] == ["a", "b", "c"]
    await engine.close()


async def test_dependencies_order_execution_in_a_diamond(store: Store, tmp_path: Path) -> None:
    script = Script()
    spec = chain_spec(tmp_path, [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])])
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    order = [c[0] for c in script.calls]
    assert order[0] == "a" and order[-1] == "d" and set(order[1:3]) == {"b", "c"}
    await engine.close()


async def test_red_step_is_reworked_with_instructions_then_passes(
    store: Store, tmp_path: Path
) -> None:
    script = Script(scores={"a": [0.2, 1.0]})
    engine, did = await run(store, chain_spec(tmp_path, [("a", [])]), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert [(n, attempt) for n, attempt, _ in script.calls] == [("a", 1), ("a", 2)]
    instructions = script.calls[1][2]
    assert instructions and "scripted-check" in instructions
    # the log says why each attempt scored as it did
    red, green = [
        e.describe() for e in await store.list_events(did) if e.type == "evaluation_completed"
    ]
    assert red == "step a evaluated red (0.20; scripted-check=0.20 [score 0.2])"
    assert green == "step a evaluated green (1.00; scripted-check=1.00)"
    chain = await store.current_chain(did)
    (step,) = await store.list_steps(chain.id)
    assert step.rework_count == 1 and step.attempts == 2
    runs = await store.list_runs(step.id)
    assert [r.attempt for r in runs] == [1, 2]
    assert runs[1].rework_instructions == instructions
    levels = [e.level.value for e in await store.list_evaluations(step.id)]
    assert levels == ["red", "green"]
    await engine.close()


async def test_red_beyond_rework_limit_blocks_and_escalates(store: Store, tmp_path: Path) -> None:
    script = Script(scores={"a": [0.1]})
    engine, did = await run(store, chain_spec(tmp_path, LINEAR, max_rework_cycles=2), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    assert (await statuses(engine, did))["a"] == "blocked"
    assert len(script.calls) == 3  # first attempt + 2 reworks
    (escalation,) = await store.pending_approvals(did)
    assert escalation.kind is ApprovalKind.ESCALATION
    assert [o.value for o in escalation.options] == ["retry", "skip", "replan", "stop"]
    await engine.close()


async def test_escalation_skip_lets_the_chain_finish(store: Store, tmp_path: Path) -> None:
    script = Script(scores={"a": [0.1]})
    engine, did = await run(store, chain_spec(tmp_path, LINEAR, max_rework_cycles=0), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(did)
    await engine.resolve_approval(escalation.id, ApprovalDecision.SKIP)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert await statuses(engine, did) == {"a": "skipped", "b": "passed", "c": "passed"}
    # the home screen's figures tell the skip from the passes
    assert (await store.progress())[did] == Progress(passed=2, skipped=1, total=3)
    await engine.close()


async def test_escalation_retry_runs_the_step_again(store: Store, tmp_path: Path) -> None:
    script = Script(scores={"a": [0.1, 1.0]})
    engine, did = await run(store, chain_spec(tmp_path, [("a", [])], max_rework_cycles=0), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(did)
    await engine.resolve_approval(escalation.id, ApprovalDecision.RETRY)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    await engine.close()


async def test_escalation_stop_stops_the_directive(store: Store, tmp_path: Path) -> None:
    script = Script(scores={"a": [0.1]})
    engine, did = await run(store, chain_spec(tmp_path, LINEAR, max_rework_cycles=0), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(did)
    await engine.resolve_approval(escalation.id, ApprovalDecision.STOP)
    assert await engine.wait_settled(did, timeout=10) is Outcome.STOPPED
    assert await store.pending_approvals(did) == []
    await engine.close()


async def test_yellow_step_waits_for_approval_then_approve_passes(
    store: Store, tmp_path: Path
) -> None:
    script = Script(scores={"b": [0.6]})
    engine, did = await run(store, chain_spec(tmp_path, LINEAR), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    assert await statuses(engine, did) == {"a": "passed", "b": "awaiting_approval", "c": "pending"}
    (approval,) = await store.pending_approvals(did)
    assert approval.kind is ApprovalKind.STEP_REVIEW and approval.evaluation_id
    evaluation = await store.get_evaluation(approval.evaluation_id)
    assert evaluation.level.value == "yellow" and evaluation.score == pytest.approx(0.6)
    resolved = await engine.resolve_approval(approval.id, ApprovalDecision.APPROVE)
    assert resolved.status.value == "approved"
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    await engine.close()


async def test_second_answer_to_an_approval_is_refused_and_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    script = Script(scores={"a": [0.6]})
    engine, did = await run(store, chain_spec(tmp_path, [("a", [])]), script)
    await engine.wait_settled(did, timeout=10)
    (approval,) = await store.pending_approvals(did)
    await engine.resolve_approval(approval.id, ApprovalDecision.APPROVE)
    await engine.wait_settled(did, timeout=10)
    before = await store.list_events(did)
    with pytest.raises(ApprovalAlreadyResolved, match="already approved"):
        await engine.resolve_approval(approval.id, ApprovalDecision.DENY)
    assert await store.list_events(did) == before
    assert (await store.get_approval(approval.id)).status.value == "approved"
    await engine.close()


async def test_denied_step_is_blocked_and_escalated(store: Store, tmp_path: Path) -> None:
    script = Script(scores={"a": [0.6]})
    engine, did = await run(store, chain_spec(tmp_path, LINEAR), script)
    await engine.wait_settled(did, timeout=10)
    (approval,) = await store.pending_approvals(did)
    await engine.resolve_approval(approval.id, ApprovalDecision.DENY, comment="not what I asked")
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    assert (await statuses(engine, did))["a"] == "blocked"
    (escalation,) = await store.pending_approvals(did)
    assert escalation.kind is ApprovalKind.ESCALATION
    await engine.close()


async def test_request_changes_sends_the_comment_as_rework_instructions(
    store: Store, tmp_path: Path
) -> None:
    script = Script(scores={"a": [0.6, 1.0]})
    engine, did = await run(store, chain_spec(tmp_path, [("a", [])]), script)
    await engine.wait_settled(did, timeout=10)
    (approval,) = await store.pending_approvals(did)
    with pytest.raises(EngineError, match="needs a comment"):
        await engine.resolve_approval(approval.id, ApprovalDecision.REQUEST_CHANGES)
    await engine.resolve_approval(
        approval.id, ApprovalDecision.REQUEST_CHANGES, comment="rename the function"
    )
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert "rename the function" in script.calls[1][2]
    await engine.close()


async def test_refusals_name_answers_in_words_not_as_the_engine_stores_them(
    store: Store, tmp_path: Path
) -> None:
    """The app's `c` and the command line's `request-changes` both reach
    these messages: "request changes" reads right under either."""
    script = Script(scores={"a": [0.6, 0.1]})
    engine, did = await run(store, chain_spec(tmp_path, [("a", [])], max_rework_cycles=0), script)
    await engine.wait_settled(did, timeout=10)
    (review,) = await store.pending_approvals(did)
    await engine.resolve_approval(review.id, ApprovalDecision.REQUEST_CHANGES, "smaller")
    with pytest.raises(ApprovalAlreadyResolved) as again:
        await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)
    assert (
        str(again.value) == f"approval {review.id} is already changes requested (request changes)"
    )
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(did)  # the rework scored red: blocked
    with pytest.raises(EngineError) as refused:
        await engine.resolve_approval(escalation.id, ApprovalDecision.REQUEST_CHANGES, "x")
    assert str(refused.value) == (
        f"approval {escalation.id} (escalation) takes retry, skip, replan, stop,"
        " not request changes"
    )
    await engine.close()


async def test_full_auto_passes_yellow_without_asking(store: Store, tmp_path: Path) -> None:
    script = Script(scores={"a": [0.6]})
    spec = chain_spec(tmp_path, LINEAR, autonomy=Autonomy.FULL_AUTO)
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert await store.list_approvals(did) == []
    await engine.close()


async def test_full_auto_replans_a_blocked_step_keeping_passed_ones(
    store: Store, tmp_path: Path
) -> None:
    script = Script(scores={"b": [0.1, 0.1, 1.0]})
    spec = chain_spec(
        tmp_path,
        LINEAR,
        autonomy=Autonomy.FULL_AUTO,
        max_rework_cycles=1,
        max_chain_regenerations=1,
    )
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    chains = await store.list_chains(did)
    assert [c.superseded for c in chains] == [True, False]
    assert chains[1].reason and "b" in chains[1].reason
    old = {s.name: s.status.value for s in await store.list_steps(chains[0].id)}
    assert old == {"a": "passed", "b": "superseded", "c": "superseded"}
    new = await store.list_steps(chains[1].id)
    kept = next(s for s in new if s.name == "a")
    assert kept.carried_from is not None
    assert [c[0] for c in script.calls].count("a") == 1  # passed step not run again
    assert (await store.get_directive(did)).regenerations == 1
    await engine.close()


async def test_manual_autonomy_asks_for_the_plan_and_every_result(
    store: Store, tmp_path: Path
) -> None:
    script = Script()
    spec = chain_spec(tmp_path, [("a", [])], autonomy=Autonomy.MANUAL)
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (plan,) = await store.pending_approvals(did)
    assert plan.kind is ApprovalKind.PLAN and script.calls == []
    await engine.resolve_approval(plan.id, ApprovalDecision.APPROVE)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (review,) = await store.pending_approvals(did)
    assert review.kind is ApprovalKind.STEP_REVIEW  # green, but manual asks anyway
    await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    await engine.close()


def claude_planned(spec):  # type: ignore[no-untyped-def]
    """`spec` as the Claude planner would plan it (it reads the changes a
    person asks for), and the part that plans in its place: the steps
    `spec` lists, as they are."""
    from engine.planner import ExplicitPlanner

    return spec.model_copy(update={"planner": PlannerKind.ANTHROPIC}), ExplicitPlanner()


async def test_manual_autonomy_asks_again_for_every_new_plan(store: Store, tmp_path: Path) -> None:
    """A plan sent back with changes, or replanned later, does not run
    until a person approves it; the steps a replan keeps are marked."""
    script = Script()
    spec, planner = claude_planned(
        chain_spec(tmp_path, [("a", []), ("b", ["a"])], autonomy=Autonomy.MANUAL)
    )
    engine, did = await run(store, spec, script, planner=lambda kind, llm: planner)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (plan,) = await store.pending_approvals(did)
    await engine.resolve_approval(plan.id, ApprovalDecision.REQUEST_CHANGES, "split b")
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (second,) = await store.pending_approvals(did)
    assert second.kind is ApprovalKind.PLAN and second.id != plan.id
    assert second.summary == "approve the new plan (plan changes requested: split b): a -> b"
    assert script.calls == []  # nothing ran unseen

    await engine.resolve_approval(second.id, ApprovalDecision.APPROVE)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (review,) = await store.pending_approvals(did)
    assert review.kind is ApprovalKind.STEP_REVIEW
    await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)  # a passes
    await engine.wait_settled(did, timeout=10)
    (review_b,) = await store.pending_approvals(did)
    await engine.regenerate_chain(did, "rethink b")
    (third,) = await store.pending_approvals(did)  # b's review closed with the old chain
    assert review_b.id != third.id and third.kind is ApprovalKind.PLAN
    assert third.summary == "approve the new plan (rethink b): a (kept) -> b"
    await asyncio.sleep(0.05)
    assert [name for name, _, _ in script.calls] == ["a", "b"]  # b not run again yet
    await engine.close()


async def test_changes_to_a_plan_the_directive_file_lists_are_refused(
    store: Store, tmp_path: Path
) -> None:
    """The explicit planner would list the same steps again: requesting
    changes used up a replan to rebuild the identical chain. Refused, with
    what to do instead; the plan still waits for its answer."""
    spec = chain_spec(tmp_path, [("a", []), ("b", ["a"])], autonomy=Autonomy.MANUAL)
    engine, did = await run(store, spec, Script())
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (plan,) = await store.pending_approvals(did)
    with pytest.raises(EngineError) as refused:
        await engine.resolve_approval(plan.id, ApprovalDecision.REQUEST_CHANGES, "split b")
    assert str(refused.value) == (
        "the plan's steps come from the directive file, so a new plan would be the same:"
        " edit the file and run it again to change them, or answer approve or deny"
    )
    assert (await store.get_approval(plan.id)).pending
    assert (await store.get_directive(did)).regenerations == 0
    assert len(await store.list_chains(did)) == 1
    await engine.resolve_approval(plan.id, ApprovalDecision.APPROVE)  # the other answers stand
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    await engine.close()


async def test_changes_to_a_plan_with_no_replans_left_are_refused(
    store: Store, tmp_path: Path
) -> None:
    """They replan: with none left that tripped the breaker and paused, the
    plan's approval answered, so the unapproved plan ran once resumed."""
    spec, planner = claude_planned(
        chain_spec(tmp_path, [("a", [])], autonomy=Autonomy.MANUAL, max_chain_regenerations=0)
    )
    engine, did = await run(store, spec, Script(), planner=lambda kind, llm: planner)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (plan,) = await store.pending_approvals(did)
    with pytest.raises(
        EngineError, match=r"^no replans left \(0/0\): .*or answer approve or deny$"
    ):
        await engine.resolve_approval(plan.id, ApprovalDecision.REQUEST_CHANGES, "smaller")
    assert (await store.get_approval(plan.id)).pending
    assert (await store.get_directive(did)).status is DirectiveStatus.ACTIVE
    await engine.close()


async def test_approvals_never_expire(store: Store, tmp_path: Path) -> None:
    script = Script(scores={"a": [0.6]})
    engine, did = await run(
        store, chain_spec(tmp_path, [("a", [])], max_wall_time_minutes=None), script
    )
    await engine.wait_settled(did, timeout=10)
    await asyncio.sleep(0.3)
    (approval,) = await store.pending_approvals(did)
    assert approval.pending
    await engine.close()


async def test_failed_executor_marks_the_step_failed_and_escalates(
    store: Store, tmp_path: Path
) -> None:
    script = Script(fail={"a": "tool crashed"})
    engine, did = await run(store, chain_spec(tmp_path, [("a", [])]), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    assert (await statuses(engine, did))["a"] == "failed"
    chain = await store.current_chain(did)
    (step,) = await store.list_steps(chain.id)
    (run_,) = await store.list_runs(step.id)
    assert run_.status == "failed" and run_.error == "tool crashed"
    assert (await store.get_directive(did)).failed_steps == 1
    await engine.close()


async def test_only_a_blocked_or_failed_step_can_be_retried(store: Store, tmp_path: Path) -> None:
    """Retry is the escalation's answer given directly. A pending step made
    ready would run before its dependencies, so it is refused, and so is a
    step waiting for a review."""
    script = Script(scores={"a": [0.1, 1.0], "b": [0.6]})
    spec = chain_spec(tmp_path, [("a", []), ("b", ["a"])], max_rework_cycles=0)
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    chain = await store.current_chain(did)
    a, b = await store.list_steps(chain.id)
    with pytest.raises(EngineError, match="step b is pending: only a blocked or failed step"):
        await engine.retry_step(b.id)
    assert await statuses(engine, did) == {"a": "blocked", "b": "pending"}

    await engine.retry_step(a.id)  # blocked: runs again, its escalation answered "retry"
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    assert await statuses(engine, did) == {"a": "passed", "b": "awaiting_approval"}
    (escalation,) = [x for x in await store.list_approvals(did) if x.step_id == a.id]
    assert escalation.decision is ApprovalDecision.RETRY
    with pytest.raises(EngineError, match="step b is awaiting_approval: only a blocked"):
        await engine.retry_step(b.id)
    await engine.close()


async def test_a_replan_keeps_the_rework_a_carried_step_took(store: Store, tmp_path: Path) -> None:
    """The rework count goes with a passed step into the new chain, so the
    app's rework marker (↻1) does not vanish with the replan."""
    from engine.invariants import check_invariants

    script = Script(scores={"a": [0.2, 1.0], "b": [0.1]})
    spec = chain_spec(tmp_path, [("a", []), ("b", ["a"])], max_rework_cycles=1)
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    await engine.regenerate_chain(did, "b needs another approach")
    chain = await store.current_chain(did)
    a = next(s for s in await store.list_steps(chain.id) if s.name == "a")
    assert a.carried_from and (a.status.value, a.rework_count, a.attempts) == ("passed", 1, 2)
    assert await check_invariants(store.path) == []
    await engine.close()


async def test_approvals_closed_by_a_stop_or_a_replan_are_recorded_as_unanswered(
    store: Store, tmp_path: Path
) -> None:
    """Nobody answered them: the audit trail says they were superseded, and
    why, instead of a "replan" or "stop" a person never chose."""
    from engine.invariants import check_invariants

    script = Script(scores={"a": [0.6], "b": [0.6]})
    spec = chain_spec(tmp_path, [("a", []), ("b", [])])
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    first, second = await store.pending_approvals(did)
    await engine.resolve_approval(first.id, ApprovalDecision.APPROVE)
    await engine.regenerate_chain(did, "try another split")
    replaced = await store.get_approval(second.id)
    assert (replaced.status.value, replaced.decision.value) == ("superseded", "superseded")
    assert replaced.comment == "chain regenerated: try another split"
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (review,) = await store.pending_approvals(did)
    await engine.stop_directive(did, "stopped by user")
    stopped = await store.get_approval(review.id)
    assert (stopped.decision.value, stopped.comment) == ("superseded", "stopped by user")
    with pytest.raises(ApprovalAlreadyResolved, match="closed unanswered \\(stopped by user\\)"):
        await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)
    lines = [e.describe() for e in await store.list_events(did) if e.type == "approval_resolved"]
    assert lines == [
        f"approval [{first.id}] approve",
        f"approval [{second.id}] closed unanswered: chain regenerated: try another split",
        f"approval [{review.id}] closed unanswered: stopped by user",
    ]
    assert await check_invariants(store.path) == []
    await engine.close()


async def test_a_directive_whose_folder_is_gone_pauses_instead_of_failing_its_steps(
    store: Store, tmp_path: Path
) -> None:
    """No attempt runs in a folder that is not there, and none fails with an
    exception's name: the directive pauses saying why, resuming is refused
    until the folder is back, and then the step runs."""
    import shutil

    from engine.invariants import check_invariants

    folder = tmp_path / "project"
    folder.mkdir()
    script = Script(fail={"a": "tool crashed"})
    engine, did = await run(store, chain_spec(folder, [("a", [])]), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    shutil.rmtree(folder)
    script.fail.clear()
    (a,) = await store.list_steps((await store.current_chain(did)).id)
    await engine.retry_step(a.id)
    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED
    gone = f"the repository folder {folder} is gone"
    assert (await store.get_directive(did)).pause_reason == f"{gone}: put it back, then resume"
    assert await statuses(engine, did) == {"a": "ready"} and len(script.calls) == 1
    with pytest.raises(EngineError, match=f"cannot resume: {gone}; put it back first"):
        await engine.resume_directive(did)

    folder.mkdir()
    await engine.resume_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert await check_invariants(store.path) == []
    await engine.close()


async def test_a_note_goes_into_the_directive_log_like_any_event(
    store: Store, tmp_path: Path
) -> None:
    """A front end's line for people (the demo's repository path): numbered,
    stored and published on the bus with the engine's own events."""
    from engine.store import NotFound

    bus = EventBus()
    engine = DirectiveEngine(store, bus, services(Script()))
    await engine.start()
    did = (await engine.create_directive(chain_spec(tmp_path, [("a", [])]))).id
    sub = bus.subscribe(did)
    await engine.record_note(did, "demo repository: /tmp/demo/tally")
    published = await asyncio.wait_for(sub.queue.get(), timeout=5)
    (stored,) = [e for e in await store.list_events(did) if e.type == "notice"]
    assert stored == published and stored.seq == 2
    assert stored.describe() == "demo repository: /tmp/demo/tally"
    with pytest.raises(EngineError, match="a note needs some words"):
        await engine.record_note(did, "  ")
    with pytest.raises(NotFound):
        await engine.record_note("nosuchdirective", "lost")
    await engine.close()


# -- circuit breakers ----------------------------------------------------------


async def test_cost_breaker_pauses_mid_chain_and_raising_the_limit_resumes(
    store: Store, tmp_path: Path
) -> None:
    script = Script(costs={"a": 0.6, "b": 0.6, "c": 0.6})
    engine, did = await run(store, chain_spec(tmp_path, LINEAR, max_cost_usd=1.0), script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED
    d = await store.get_directive(did)
    assert d.status is DirectiveStatus.PAUSED and d.pause_reason.startswith("cost breaker")
    assert d.total_cost_usd == pytest.approx(1.2)
    events = [e.type for e in await store.list_events(did)]
    assert "breaker_tripped" in events
    with pytest.raises(EngineError, match="raise the limit"):
        await engine.resume_directive(did)
    await engine.raise_limits(did, max_cost_usd=5.0)
    await engine.resume_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    chain = await store.current_chain(did)
    runs = [r for s in await store.list_steps(chain.id) for r in await store.list_runs(s.id)]
    total = (await store.get_directive(did)).total_cost_usd
    assert total == pytest.approx(sum(r.cost_usd for r in runs)) and total >= 1.8 - 1e-9
    await engine.close()


async def test_wall_time_breaker_trips_on_a_timer_while_nothing_happens(
    store: Store, tmp_path: Path
) -> None:
    script = Script(delay={"a": 30})
    spec = chain_spec(tmp_path, [("a", [])], max_wall_time_minutes=0.01)  # 0.6 s
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED
    d = await store.get_directive(did)
    assert d.pause_reason.startswith("wall_time breaker")
    assert (await statuses(engine, did))["a"] == "ready"  # interrupted, will run again
    await engine.close()


async def test_failed_steps_breaker(store: Store, tmp_path: Path) -> None:
    script = Script(fail={"a": "boom", "b": "boom"})
    spec = chain_spec(tmp_path, [("a", []), ("b", [])], max_failed_steps=2)
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED
    assert (await store.get_directive(did)).pause_reason.startswith("failed_steps breaker")
    await engine.close()


async def test_failed_steps_breaker_counts_steps_not_retries(store: Store, tmp_path: Path) -> None:
    """Retrying a flaky step that fails again is a person's call, not a
    second failed step: only another step failing trips the breaker."""
    script = Script(fail={"a": "flaky", "b": "boom"})
    spec = chain_spec(tmp_path, [("a", []), ("b", ["a"])], max_failed_steps=2)
    engine, did = await run(store, spec, script)
    for _ in range(3):
        assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
        (escalation,) = await store.pending_approvals(did)
        await engine.resolve_approval(escalation.id, ApprovalDecision.RETRY)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    assert (await store.get_directive(did)).failed_steps == 1
    assert [name for name, _, _ in script.calls] == ["a"] * 4

    script.fail.pop("a")
    (escalation,) = await store.pending_approvals(did)
    await engine.resolve_approval(escalation.id, ApprovalDecision.RETRY)
    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED  # b failed: 2 steps
    d = await store.get_directive(did)
    assert d.failed_steps == 2
    assert d.pause_reason == "failed_steps breaker: 2 failed steps reached the limit 2"
    await engine.close()


async def test_regeneration_breaker_trips_instead_of_replanning(
    store: Store, tmp_path: Path
) -> None:
    script = Script(scores={"a": [0.1]})
    spec = chain_spec(tmp_path, [("a", [])], max_rework_cycles=0, max_chain_regenerations=0)
    engine, did = await run(store, spec, script)
    await engine.wait_settled(did, timeout=10)
    (escalation,) = await store.pending_approvals(did)
    # (an escalation's answer "replan" is refused first: see the test below)
    assert await engine.regenerate_chain(did, "replan requested", escalation.step_id) is None
    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED
    d = await store.get_directive(did)
    assert d.pause_reason.startswith("regenerations breaker") and d.regenerations == 0
    (again,) = await store.pending_approvals(did)  # the step waits on a person, not a replan
    assert again.kind is ApprovalKind.ESCALATION and again.step_id == escalation.step_id
    await engine.resume_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    await engine.close()


async def test_replan_on_request_counts_and_records_the_reason(
    store: Store, tmp_path: Path
) -> None:
    script = Script(scores={"b": [0.1, 1.0]})
    spec = chain_spec(tmp_path, LINEAR, max_rework_cycles=0)
    engine, did = await run(store, spec, script)
    await engine.wait_settled(did, timeout=10)
    (escalation,) = await store.pending_approvals(did)
    await engine.resolve_approval(escalation.id, ApprovalDecision.REPLAN, comment="try again")
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    chains = await store.list_chains(did)
    assert len(chains) == 2 and "try again" in chains[1].reason
    assert (await store.get_directive(did)).regenerations == 1
    events = await store.list_events(did)
    regen = [e for e in events if e.type == "chain_created" and e.old_chain_id]
    assert regen and regen[0].old_chain_id == chains[0].id
    await engine.close()


# -- pause, stop, parallelism -------------------------------------------------------


async def test_pause_interrupts_running_steps_and_resume_reruns_them(
    store: Store, tmp_path: Path
) -> None:
    script = Script(delay={"a": 30})
    engine, did = await run(store, chain_spec(tmp_path, [("a", [])]), script)
    while (await statuses(engine, did)).get("a") != "running":
        await asyncio.sleep(0.01)
    await engine.pause_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED
    assert (await statuses(engine, did))["a"] == "ready"
    script.delay.clear()
    await engine.resume_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    await engine.close()


async def test_stop_is_final(store: Store, tmp_path: Path) -> None:
    script = Script(delay={"a": 30})
    engine, did = await run(store, chain_spec(tmp_path, [("a", [])]), script)
    await asyncio.sleep(0.05)
    await engine.stop_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.STOPPED
    with pytest.raises(Exception, match="cannot move from 'stopped'"):
        await engine.resume_directive(did)
    await engine.close()


async def test_ready_steps_run_concurrently_up_to_the_limit(store: Store, tmp_path: Path) -> None:
    running: list[int] = []
    peak = 0
    script = Script(delay={n: 0.2 for n in "abcde"})
    spec = chain_spec(tmp_path, [(n, []) for n in "abcde"], max_parallel_steps=2)
    engine = DirectiveEngine(store, EventBus(), services(script))
    bus_sub = engine.bus.subscribe()
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)

    async def watch() -> None:
        nonlocal peak
        while True:
            ev = await bus_sub.get()
            if ev.type == "step_status_changed":
                if ev.new_status == "running":
                    running.append(1)
                elif ev.old_status == "running":
                    running.pop()
                peak = max(peak, len(running))

    watcher = asyncio.create_task(watch())
    assert await engine.wait_settled(d.id, timeout=10) is Outcome.COMPLETED
    watcher.cancel()
    assert peak == 2
    await engine.close()


# -- events ---------------------------------------------------------------------------


async def test_every_change_is_an_event_with_gap_free_sequence(
    store: Store, tmp_path: Path
) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    script = Script(scores={"b": [0.2, 1.0]})
    engine, did = await run(store, chain_spec(tmp_path, LINEAR), script, bus)
    await engine.wait_settled(did, timeout=10)
    await asyncio.sleep(0.05)
    persisted = await store.list_events(did)
    assert [e.seq for e in persisted] == list(range(1, len(persisted) + 1))
    published = [e for e in sub.drain() if e.directive_id == did]
    assert [e.seq for e in published] == [e.seq for e in persisted]
    types = {e.type for e in persisted}
    assert {"directive_created", "chain_created", "step_status_changed", "step_output",
            "evaluation_completed", "directive_status_changed"} <= types  # fmt: skip
    await engine.close()


class OverloadedReplanner:
    """Plans the first chain as written; every replan fails as an API would."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def plan(self, d, replan):
        if replan is not None:
            raise RuntimeError("Overloaded (529): the API is busy, try again later")
        return await self.inner.plan(d, None)


class OverloadedOnce:
    """The first plan fails as an overloaded API would, after costing a
    call; the next one is planned as written."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    async def plan(self, d, replan):
        self.calls += 1
        if self.calls == 1:
            error = RuntimeError("Overloaded (529): the API is busy, try again later")
            error.cost_usd = 0.25
            raise error
        return await self.inner.plan(d, replan)


async def test_a_first_plan_that_fails_pauses_and_resuming_plans_again(
    store: Store, tmp_path: Path
) -> None:
    from engine.invariants import check_invariants
    from engine.services import default_planner

    planner = OverloadedOnce(default_planner(PlannerKind.EXPLICIT, None))
    spec = chain_spec(tmp_path, LINEAR)
    engine, did = await run(store, spec, Script(), planner=lambda kind, llm: planner)

    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED
    d = await store.get_directive(did)
    assert d.pause_reason == (
        "planning failed: Overloaded (529): the API is busy, try again later (resume to plan again)"
    )
    assert d.total_cost_usd == 0.25 and await store.list_chains(did) == []
    assert await check_invariants(store.path) == []

    await engine.resume_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert planner.calls == 2 and len(await store.list_chains(did)) == 1
    assert await check_invariants(store.path) == []
    await engine.close()


async def test_a_replan_that_fails_keeps_the_chain_and_asks_a_person(
    store: Store, tmp_path: Path
) -> None:
    from engine.invariants import check_invariants
    from engine.services import default_planner

    script = Script(scores={"b": [0.1]})
    spec = chain_spec(
        tmp_path, LINEAR, autonomy=Autonomy.FULL_AUTO, max_rework_cycles=1,
        max_chain_regenerations=2,
    )  # fmt: skip
    engine, did = await run(
        store,
        spec,
        script,
        planner=lambda kind, llm: OverloadedReplanner(default_planner(kind, llm)),
    )

    # full_auto replans the blocked step by itself; the replan fails once and
    # the directive waits for a person instead of failing (or looping)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    d = await store.get_directive(did)
    assert d.status is DirectiveStatus.ACTIVE and d.regenerations == 0
    (escalation,) = await store.pending_approvals(did)
    assert escalation.kind is ApprovalKind.ESCALATION
    assert "replanning failed: Overloaded (529)" in escalation.summary
    notices = [e.message for e in await store.list_events(did) if e.type == "notice"]
    assert any("replanning failed, the current chain stays" in n for n in notices)
    assert len(await store.list_chains(did)) == 1
    assert await check_invariants(store.path) == []

    # asked again to replan by a person: fails the same way, asks again
    await engine.resolve_approval(escalation.id, ApprovalDecision.REPLAN)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (again,) = await store.pending_approvals(did)
    assert again.id != escalation.id
    # skipping the step lets the rest of the chain finish
    await engine.resolve_approval(again.id, ApprovalDecision.SKIP)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert await statuses(engine, did) == {"a": "passed", "b": "skipped", "c": "passed"}
    await engine.close()


async def test_resuming_a_directive_that_never_started_is_refused(
    store: Store, tmp_path: Path
) -> None:
    engine = DirectiveEngine(store, EventBus(), services(Script()))
    await engine.start()
    d = await engine.create_directive(chain_spec(tmp_path, LINEAR))
    with pytest.raises(EngineError, match="has not started yet: start it"):
        await engine.resume_directive(d.id)
    assert (await store.get_directive(d.id)).status is DirectiveStatus.DRAFT
    await engine.close()


async def two_steps_just_claimed(
    store: Store, tmp_path: Path
) -> tuple[DirectiveEngine, str, Script]:
    """A directive of two independent steps, returned once the claim that
    moved them to running has committed and before their tasks begin: the
    first claims' tasks are held back (a task created at the commit could
    otherwise begin, and even reach the executor, while the caller's pause
    or close waits for the database thread on a loaded machine)."""
    bus = EventBus()
    events = bus.subscribe()
    script = Script()
    engine = DirectiveEngine(store, bus, services(script))
    start_claims = engine._start_claims
    held: list[object] = []

    def hold_the_first(view):  # type: ignore[no-untyped-def]
        if held or not view.claims:
            return start_claims(view)
        held.append(view)  # claimed, as the commit callback records them, with no task yet
        for claim in view.claims:
            engine._runtime(claim.directive.id).unstarted[claim.step.id] = claim
        return None

    engine._start_claims = hold_the_first  # type: ignore[method-assign]
    await engine.start()
    spec = chain_spec(tmp_path, [("a", []), ("b", [])], max_parallel_steps=2)
    did = (await engine.create_directive(spec)).id
    await engine.start_directive(did)
    while (e := await events.get()).type != "step_status_changed" or e.new_status != "running":
        pass
    assert held, "the claim committed without its tasks being held"
    return engine, did, script


async def test_steps_claimed_but_not_begun_when_a_person_pauses_run_after_the_resume(
    store: Store, tmp_path: Path
) -> None:
    """A pause that lands between the claim's commit and its task's first
    step: the claims go back to ready (not left running with nothing
    running them) and the resume runs each step once."""
    engine, did, script = await two_steps_just_claimed(store, tmp_path)
    await engine.pause_directive(did)  # before the claimed steps' tasks began
    assert script.calls == []
    assert await statuses(engine, did) == {"a": "ready", "b": "ready"}
    await engine.resume_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    # each runs once; the claim the pause interrupted was attempt 1
    assert sorted(call[:2] for call in script.calls) == [("a", 2), ("b", 2)]
    await engine.close()


async def test_steps_claimed_but_not_begun_when_the_engine_closes_are_ready_to_run_again(
    store: Store, tmp_path: Path
) -> None:
    """The driver moves a step to running in the transaction that claims it;
    closing the engine before the attempt's task took its first step must not
    leave the step running with nothing running it."""
    engine, did, script = await two_steps_just_claimed(store, tmp_path)
    await engine.close()  # the claims are committed; their tasks have not begun
    assert script.calls == []
    assert await statuses(engine, did) == {"a": "ready", "b": "ready"}
    chain = await store.current_chain(did)
    runs = [r for s in await store.list_steps(chain.id) for r in await store.list_runs(s.id)]
    closed = "interrupted: directive-tui closed; runs again when it next runs this directive"
    assert [(r.status, r.error) for r in runs] == [("cancelled", closed)] * 2


class SilentJudge:
    """A judge whose API is down: it gives no verdict at all."""

    name, kind, weight, gating = "llm_judge", "llm_judge", 1.0, False

    async def verify(self, ctx):
        from engine.verifiers.base import NoVerdictError

        raise NoVerdictError("the Anthropic API is overloaded (529)")


async def test_an_attempt_nothing_could_score_waits_for_a_person_even_in_full_auto(
    store: Store, tmp_path: Path
) -> None:
    """full_auto passes yellow steps, but this yellow means 'not scored':
    the only verifier gave no verdict, so no autonomy lets it through."""
    spec = chain_spec(tmp_path, [("a", [])], autonomy=Autonomy.FULL_AUTO)
    engine, did = await run(store, spec, Script(), verifiers=lambda d, step, llm: [SilentJudge()])
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (review,) = await store.pending_approvals(did)
    assert review.kind is ApprovalKind.STEP_REVIEW
    assert "llm_judge gave no verdict" in review.summary
    (evaluation,) = await store.list_evaluations(review.step_id)
    assert "for_a_person" in evaluation.flags and evaluation.rework_instructions is None
    await engine.close()


async def test_a_model_with_no_price_is_said_once_in_the_log(store: Store, tmp_path: Path) -> None:
    """Its costs are counted at the highest known rate: the log says so,
    where the app's users look, once per directive."""
    from types import SimpleNamespace

    spec = chain_spec(tmp_path, LINEAR)
    spec.verifiers.llm_judge = True  # the judge's client is made for each evaluation
    typo = SimpleNamespace(model="claude-sonet-5-5")
    engine, did = await run(store, spec, Script(), llm_provider=lambda spec: typo)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    await asyncio.sleep(0.05)
    said = [e for e in await store.list_events(did) if "no price known" in e.describe()]
    assert len(said) == 1 and said[0].severity.value == "warning"
    assert "'claude-sonet-5-5'" in said[0].describe()
    await engine.close()


async def test_an_escalation_cannot_be_answered_replan_with_no_replans_left(
    store: Store, tmp_path: Path
) -> None:
    """It would only trip the regenerations breaker and pause the directive:
    refused, the approval still open, with the ways out named."""
    script = Script(scores={"a": [0.1]})
    spec = chain_spec(tmp_path, [("a", [])], max_rework_cycles=0, max_chain_regenerations=0)
    engine, did = await run(store, spec, script)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(did)
    with pytest.raises(EngineError, match=r"no replans left \(0/0\): raise max_chain_regen"):
        await engine.resolve_approval(escalation.id, ApprovalDecision.REPLAN)
    assert (await store.get_approval(escalation.id)).pending
    d = await store.get_directive(did)
    assert d.status is DirectiveStatus.ACTIVE and d.regenerations == 0
    await engine.close()


async def test_verifiers_that_cannot_be_set_up_go_to_a_person_with_the_reason(
    store: Store, tmp_path: Path
) -> None:
    """A step naming a tool the repository lacks: no rework can fix the
    directive's own checks, so a person is asked, and the log says why."""

    def no_verifiers(d, step, llm):
        raise ValueError(f"step {step.name!r} lists unknown verifier(s) 'ruff'")

    script = Script()
    spec = chain_spec(tmp_path, [("a", [])], autonomy=Autonomy.FULL_AUTO)
    engine, did = await run(store, spec, script, verifiers=no_verifiers)
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    assert len(script.calls) == 1  # not reworked
    (review,) = await store.pending_approvals(did)
    assert (
        "verifiers could not be set up: step 'a' lists unknown verifier(s) 'ruff'" in review.summary
    )
    (line,) = [
        e.describe() for e in await store.list_events(did) if e.type == "evaluation_completed"
    ]
    assert "setup=0.00 [verifiers could not be set up: step 'a' lists unknown" in line
    await engine.close()


def test_a_limit_switched_off_is_logged_as_the_command_line_spells_it() -> None:
    from engine.events import LimitsChanged

    changed = LimitsChanged(directive_id="d", limits={"max_cost_usd": None, "max_rework_cycles": 2})
    assert changed.describe() == "limits changed: max_cost_usd=none, max_rework_cycles=2"


async def test_a_plan_to_approve_lists_steps_that_run_side_by_side_as_one_layer(
    store: Store, tmp_path: Path
) -> None:
    """It read "a -> b -> c -> d" for a fan-out, as if b and c ran in turn."""
    spec = chain_spec(
        tmp_path,
        [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])],
        autonomy=Autonomy.MANUAL,
    )
    engine, did = await run(store, spec, Script())
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (plan,) = await store.pending_approvals(did)
    assert plan.summary == "approve the plan: a -> b, c -> d"
    await engine.close()
