"""Under manual autonomy no plan runs unseen: when the replan that a
person's requested changes asked for cannot be made (the API is down), the
plan as it stands is put to them again instead of running unapproved."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineError, Outcome
from engine.invariants import check_invariants
from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    Autonomy,
    PlannerKind,
)
from engine.services import default_planner
from engine.store import Store
from tests.engine_kit import Script, chain_spec, services, statuses


class ReplansFail:
    """Plans the first chain as written (an Anthropic planner as far as the
    engine knows); every replan fails as an overloaded API would."""

    def __init__(self) -> None:
        self.inner = default_planner(PlannerKind.EXPLICIT, None)

    async def plan(self, d, replan):
        if replan is not None:
            raise RuntimeError("Overloaded (529): the API is busy, try again later")
        return await self.inner.plan(d, None)


async def plan_waiting(
    store: Store, tmp_path: Path, script: Script
) -> tuple[DirectiveEngine, str, ApprovalRequest]:
    """A manual directive of two steps (`b` after `a`) whose first plan
    waits for approval; its replans fail."""
    spec = chain_spec(tmp_path, [("a", []), ("b", ["a"])], autonomy=Autonomy.MANUAL)
    spec = spec.model_copy(update={"planner": PlannerKind.ANTHROPIC})
    kit = dataclasses.replace(services(script), planner=lambda kind, llm: ReplansFail())
    engine = DirectiveEngine(store, EventBus(), kit)
    await engine.start()
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=10) is Outcome.AWAITING_APPROVAL
    (plan,) = await store.pending_approvals(d.id)
    assert plan.kind is ApprovalKind.PLAN
    return engine, d.id, plan


async def test_a_failed_replan_for_plan_changes_asks_about_the_plan_again(
    store: Store, tmp_path: Path
) -> None:
    script = Script()
    engine, did, plan = await plan_waiting(store, tmp_path, script)

    await engine.resolve_approval(plan.id, ApprovalDecision.REQUEST_CHANGES, "split b in two")
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    (again,) = await store.pending_approvals(did)
    assert again.kind is ApprovalKind.PLAN and again.id != plan.id
    assert "replanning failed: Overloaded (529)" in again.summary
    await asyncio.sleep(0.2)
    assert script.calls == []  # nothing ran unapproved
    assert await statuses(engine, did) == {"a": "pending", "b": "pending"}
    assert await check_invariants(store.path) == []

    await engine.resolve_approval(again.id, ApprovalDecision.APPROVE)  # approved as it is: it runs
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    assert [call[0] for call in script.calls] == ["a"]  # manual: a waits for its review
    await engine.close()


async def test_changes_to_a_plan_need_a_comment_saying_what_to_change(
    store: Store, tmp_path: Path
) -> None:
    engine, _, plan = await plan_waiting(store, tmp_path, Script())
    with pytest.raises(EngineError, match="it becomes what the planner is asked to change$"):
        await engine.resolve_approval(plan.id, ApprovalDecision.REQUEST_CHANGES, "  ")
    assert (await store.get_approval(plan.id)).pending
    await engine.close()
