"""Planning the first chain is work: its time counts against the wall-time
limit, and a planner that never answers pauses the directive on that
breaker instead of holding it in `planning` for as long as the client's
timeouts and retries last."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineError, Outcome
from engine.invariants import check_invariants
from engine.models import DirectiveStatus, PlannerKind
from engine.services import default_planner
from engine.store import Store
from tests.engine_kit import Script, chain_spec, services

STEPS = [("a", []), ("b", ["a"])]


class HangsOnce:
    """The first plan waits for an API that never answers; later plans are
    made as written."""

    def __init__(self) -> None:
        self.inner = default_planner(PlannerKind.EXPLICIT, None)
        self.calls = 0
        self.cancelled = False

    async def plan(self, d, replan):
        self.calls += 1
        if self.calls == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        return await self.inner.plan(d, replan)


class Slow:
    """Plans as written, after `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.inner = default_planner(PlannerKind.EXPLICIT, None)
        self.seconds = seconds

    async def plan(self, d, replan):
        await asyncio.sleep(self.seconds)
        return await self.inner.plan(d, replan)


async def start(store: Store, spec, planner) -> tuple[DirectiveEngine, str]:
    kit = dataclasses.replace(services(Script()), planner=lambda kind, llm: planner)
    engine = DirectiveEngine(store, EventBus(), kit)
    await engine.start()
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    return engine, d.id


async def test_a_planner_that_never_answers_trips_the_wall_time_breaker(
    store: Store, tmp_path: Path
) -> None:
    planner = HangsOnce()
    spec = chain_spec(tmp_path, STEPS, max_wall_time_minutes=0.01)  # 0.6 s
    engine, did = await start(store, spec, planner)

    assert await engine.wait_settled(did, timeout=10) is Outcome.PAUSED
    assert planner.cancelled
    d = await store.get_directive(did)
    assert d.pause_reason is not None and d.pause_reason.startswith("wall_time breaker: ")
    assert d.wall_time_s() >= 0.6 and d.active_since is None
    events = await store.list_events(did)
    assert [e.breaker for e in events if e.type == "breaker_tripped"] == ["wall_time"]
    notices = [e.message for e in events if e.type == "notice"]
    assert any(n.startswith("planning did not finish in the wall time left") for n in notices)
    assert await store.list_chains(did) == []
    assert await check_invariants(store.path) == []

    # the breaker holds until the limit is raised; then it plans again
    with pytest.raises(EngineError, match="raise the limit first"):
        await engine.resume_directive(did)
    await engine.raise_limits(did, max_wall_time_minutes=5)
    await engine.resume_directive(did)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert planner.calls == 2 and len(await store.list_chains(did)) == 1
    assert await check_invariants(store.path) == []
    await engine.close()


async def test_a_limit_raised_while_planning_gives_the_planner_the_new_time(
    store: Store, tmp_path: Path
) -> None:
    """The first plan is bounded by the time left when it began; a person
    who raises the limit meanwhile has given it more, and the directive
    does not pause on a breaker that no longer holds."""
    spec = chain_spec(tmp_path, STEPS, max_wall_time_minutes=0.01)  # 0.6 s
    engine, did = await start(store, spec, Slow(1.2))
    await asyncio.sleep(0.2)
    await engine.raise_limits(did, max_wall_time_minutes=5)

    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    events = await store.list_events(did)
    assert [e for e in events if e.type == "breaker_tripped"] == []
    assert not [e for e in events if e.type == "notice" and "planning did not" in e.message]
    assert len(await store.list_chains(did)) == 1
    await engine.close()


async def test_a_planner_that_never_answers_a_stopped_directive_is_cut_off_quietly(
    store: Store, tmp_path: Path
) -> None:
    planner = HangsOnce()
    spec = chain_spec(tmp_path, STEPS, max_wall_time_minutes=0.01)  # 0.6 s
    engine, did = await start(store, spec, planner)
    await asyncio.sleep(0.1)
    await engine.stop_directive(did)

    for _ in range(100):  # no later than the time it had left
        if planner.cancelled:
            break
        await asyncio.sleep(0.05)
    assert planner.cancelled
    events = await store.list_events(did)
    assert [e for e in events if e.type == "breaker_tripped"] == []
    assert not [e for e in events if e.type == "notice" and "planning did not" in e.message]
    assert (await store.get_directive(did)).status is DirectiveStatus.STOPPED
    await engine.close()


async def test_planning_time_counts_against_the_wall_time_limit(
    store: Store, tmp_path: Path
) -> None:
    engine, did = await start(store, chain_spec(tmp_path, STEPS), Slow(0.4))
    await asyncio.sleep(0.1)
    planning = await store.get_directive(did)
    assert planning.status is DirectiveStatus.PLANNING
    assert planning.active_since is not None  # the clock runs while it plans

    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert (await store.get_directive(did)).wall_time_s() >= 0.4
    await engine.close()


async def test_pausing_while_planning_stops_the_clock(store: Store, tmp_path: Path) -> None:
    engine, did = await start(store, chain_spec(tmp_path, STEPS), Slow(0.3))
    await asyncio.sleep(0.1)
    await engine.pause_directive(did)
    paused = await store.get_directive(did)
    assert paused.active_since is None and 0.1 <= paused.wall_time_used_s < 5
    await asyncio.sleep(0.4)  # the plan lands while paused; paused time does not count
    assert (await store.get_directive(did)).wall_time_s() == paused.wall_time_used_s
    await engine.close()


async def planning_with_a_late_correction(
    store: Store, tmp_path: Path, fake_env, late_s: float, limits: dict | None = None
):  # type: ignore[no-untyped-def]
    """A directive the Anthropic planner plans: its first chain has a cycle
    (a paid call, usage 800 in / 200 out), and the correction it asks for
    comes back only after `late_s`, as an error. Started."""
    import time

    import anthropic  # noqa: F401  (imported lazily, it takes a second: not within a deadline)

    from engine.models import DirectiveSpec, VerifierConfig
    from engine.services import EngineServices
    from tests.fake_anthropic import Scripted
    from tests.test_llm_planner import CYCLIC, usage

    fake_env.reply_json(CYCLIC, usage=usage(800, 200))

    def late(request) -> Scripted:
        time.sleep(late_s)
        return Scripted(500, {"type": "error", "error": {"type": "api_error", "message": "late"}})

    fake_env.push(late)
    spec = DirectiveSpec(
        title="plan it",
        goal="a chain",
        repo=tmp_path,
        planner=PlannerKind.ANTHROPIC,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
        limits=limits or {},
    )
    engine = DirectiveEngine(store, EventBus(), EngineServices())
    await engine.start()
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    return engine, d


async def test_calls_a_cut_off_planner_finished_are_charged(
    store: Store, tmp_path: Path, fake_env
) -> None:
    """The Anthropic planner's first chain has a cycle (a paid call); the
    correction never comes back before the wall time runs out. The directive
    pauses, and the call that did come back is on its bill."""
    from tests.test_llm_planner import cost_of, usage

    limits = {"max_wall_time_minutes": 0.04}  # 2.4 s
    engine, d = await planning_with_a_late_correction(store, tmp_path, fake_env, 4, limits)
    assert await engine.wait_settled(d.id, timeout=20) is Outcome.PAUSED
    paused = await store.get_directive(d.id)
    assert paused.pause_reason.startswith("wall_time breaker: ")
    assert paused.planning_cost_usd == pytest.approx(cost_of(usage(800, 200)))
    assert paused.total_cost_usd == paused.planning_cost_usd
    assert await check_invariants(store.path) == []
    await engine.close()


async def test_a_plan_that_lands_after_a_stop_is_still_charged(
    store: Store, tmp_path: Path
) -> None:
    class PaidAndSlow(Slow):
        async def plan(self, d, replan):
            planned = await super().plan(d, replan)
            return planned.model_copy(update={"cost_usd": 0.5})

    engine, did = await start(store, chain_spec(tmp_path, STEPS), PaidAndSlow(0.3))
    await asyncio.sleep(0.1)
    await engine.stop_directive(did)
    await asyncio.sleep(0.5)  # the plan lands, the directive has ended: no chain
    stopped = await store.get_directive(did)
    assert stopped.status is DirectiveStatus.STOPPED and await store.list_chains(did) == []
    assert stopped.total_cost_usd == stopped.planning_cost_usd == 0.5
    assert await check_invariants(store.path) == []
    await engine.close()


async def test_a_planner_s_calls_are_charged_as_they_are_paid_not_when_it_ends(
    store: Store, tmp_path: Path, fake_env
) -> None:
    """Charged only when planning ended, the calls of a plan still being made
    were on no bill: not on screen, and lost if the engine was killed then."""
    from tests.test_llm_planner import cost_of, usage

    engine, d = await planning_with_a_late_correction(store, tmp_path, fake_env, 3)
    first = cost_of(usage(800, 200))
    for _ in range(200):  # the correction is still on its way
        planning = await store.get_directive(d.id)
        if planning.total_cost_usd:
            break
        await asyncio.sleep(0.02)
    assert planning.status is DirectiveStatus.PLANNING
    assert planning.total_cost_usd == pytest.approx(first) == planning.planning_cost_usd
    await engine.stop_directive(d.id)
    await engine.close()
    ended = await store.get_directive(d.id)
    assert ended.total_cost_usd == pytest.approx(first)  # charged once
    assert await check_invariants(store.path) == []


class RateLimitedOnce:
    """Plans as written, after the SDK said it waits out one 429 (as the
    Claude planner passes each retry on through `on_retry`)."""

    def __init__(self) -> None:
        self.inner = default_planner(PlannerKind.EXPLICIT, None)
        self.on_retry = None

    async def plan(self, d, replan):
        self.on_retry("retry 1 of 2 in 30s: rate limited by the Anthropic API (HTTP 429)")
        return await self.inner.plan(d, replan)


async def test_a_retry_while_planning_is_said_in_the_log(store: Store, tmp_path: Path) -> None:
    """The SDK sleeps through each 429 inside the planner's call: the app
    showed 'planning' for minutes with no word of why."""
    engine, did = await start(store, chain_spec(tmp_path, STEPS), RateLimitedOnce())
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    await engine.close()
    said = [e.describe() for e in await store.list_events(did) if e.type == "notice"]
    assert "planning: retry 1 of 2 in 30s: rate limited by the Anthropic API (HTTP 429)" in said
