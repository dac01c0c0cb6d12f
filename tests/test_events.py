"""How events read in the log (the headless output, the app's event log)."""

from __future__ import annotations

import asyncio

from engine.events import ApprovalResolved, EvaluationCompleted


def test_an_answer_reads_as_a_person_says_it() -> None:
    answered = ApprovalResolved(
        directive_id="d", approval_id="a1", decision="request_changes", comment="split it"
    )
    assert answered.describe() == "approval [a1] request changes: split it"


def test_an_approval_closed_by_the_engine_says_nobody_answered() -> None:
    closed = ApprovalResolved(
        directive_id="d", approval_id="a1", decision="superseded", comment="replanned"
    )
    assert closed.describe() == "approval [a1] closed unanswered: replanned"


async def test_a_blocked_step_counts_its_rework_cycles_in_words(store, tmp_path) -> None:
    from engine.bus import EventBus
    from engine.engine import DirectiveEngine, Outcome
    from tests.engine_kit import Script, chain_spec, services

    engine = DirectiveEngine(store, EventBus(), services(Script(scores={"a": [0.1, 0.1]})))
    await engine.start()
    d = await engine.create_directive(chain_spec(tmp_path, [("a", [])], max_rework_cycles=1))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=10) is Outcome.AWAITING_APPROVAL
    (escalation,) = await store.pending_approvals(d.id)
    assert escalation.summary.endswith("still red after 1 rework cycle")
    await engine.close()


async def test_a_stop_says_the_step_it_interrupted_will_not_run(store, tmp_path) -> None:
    from engine.bus import EventBus
    from engine.engine import DirectiveEngine
    from tests.engine_kit import Script, chain_spec, services

    engine = DirectiveEngine(store, EventBus(), services(Script(delay={"slow": 30.0})))
    await engine.start()
    d = await engine.create_directive(chain_spec(tmp_path, [("slow", [])]))
    await engine.start_directive(d.id)
    for _ in range(500):  # until the step runs (bounded)
        if await engine.running_steps():
            break
        await asyncio.sleep(0.01)
    await engine.stop_directive(d.id)
    moves = [e.describe() for e in await store.list_events(d.id) if e.type == "step_status_changed"]
    assert moves[-1] == "step slow: running -> ready (interrupted: the directive stopped)"
    await engine.close()


async def test_a_step_that_changed_nothing_says_so_at_its_checkpoint(store, make_git_repo) -> None:
    from engine.bus import EventBus
    from engine.engine import DirectiveEngine, EngineServices, Outcome
    from engine.models import ScriptedAttempt, StepSpec
    from tests.test_delete import WRITE, spec

    look = StepSpec(
        name="look", attempts=[ScriptedAttempt(summary="read it")], depends_on=["write"]
    )
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    await engine.start()
    d = await engine.create_directive(spec(make_git_repo(), WRITE, look))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    said = [e.describe() for e in await store.list_events(d.id) if e.type == "checkpoint_recorded"]
    wrote, looked = said
    assert "step write merged (fast-forward)" in wrote
    assert looked.endswith("step look changed no file (the branch stays)")
    assert looked.split(":")[0] == wrote.split(":")[0]  # the same commit
    await engine.close()


def test_an_evaluation_s_flags_read_in_words_in_the_log() -> None:
    """The step panel and the approval dialog said "tests changed", and the
    event log and the headless output beside them "tests_modified"."""
    event = EvaluationCompleted(
        directive_id="d1",
        step_id="s1",
        step_name="add-vat",
        evaluation_id="e1",
        score=0.75,
        level="yellow",
        passed=False,
        flags=["tests_modified: tests/test_vat.py", "for_a_person", "brand_new_flag"],
    )
    assert event.describe().endswith(
        "flags: tests changed: tests/test_vat.py, for a person to decide, brand_new_flag"
    )
    assert event.flags[0] == "tests_modified: tests/test_vat.py"  # the record keeps the names


def test_a_verifier_that_gave_no_verdict_says_so_where_its_score_would_be() -> None:
    """Its tool is not installed here: it read "ruff=0.00 [not run: ...]",
    as if the code scored nothing, and its flag again after."""
    event = EvaluationCompleted(
        directive_id="d1",
        step_id="s1",
        step_name="add-vat",
        evaluation_id="e1",
        score=1.0,
        level="green",
        passed=True,
        verifiers={"pytest": 1.0, "ruff": 0.0},
        problems={"ruff": "not run: ruff is not installed here"},
        flags=["tests_modified: tests/test_vat.py", "no_verdict: ruff"],
    )
    assert event.describe() == (
        "step add-vat evaluated green (1.00; pytest=1.00;"
        " ruff no verdict [not run: ruff is not installed here])"
        " flags: tests changed: tests/test_vat.py"
    )
