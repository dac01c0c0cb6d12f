"""The wall-time clock counts the time an engine works a directive: not
the time it waits only for a person, nor the time no engine runs it (the
app closed). Both used to count, so a directive left waiting over lunch, or
overnight with the app closed, tripped its breaker the moment it went on."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine.bus import EventBus
from engine.engine import DirectiveEngine, Outcome
from engine.models import ApprovalDecision, DirectiveStatus, PlannerKind
from engine.planner import make_planner
from engine.store import Store
from tests.engine_kit import Script, chain_spec, services, statuses

LINEAR = [("a", []), ("b", ["a"])]


async def started(store: Store, spec, script: Script) -> tuple[DirectiveEngine, str]:
    engine = DirectiveEngine(store, EventBus(), services(script))
    await engine.start()
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    return engine, d.id


async def clock_events(store: Store, did: str) -> list[tuple[bool, str]]:
    return [
        (e.running, e.reason) for e in await store.list_events(did) if e.type == "clock_changed"
    ]


async def test_the_clock_stops_while_only_a_person_can_move_the_directive(
    store: Store, tmp_path: Path
) -> None:
    # a is yellow: it waits for approval, and b waits for a
    engine, did = await started(store, chain_spec(tmp_path, LINEAR), Script(scores={"a": [0.6]}))
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    waiting = await store.get_directive(did)
    assert waiting.active_since is None
    await asyncio.sleep(0.3)
    assert (await store.get_directive(did)).wall_time_s() == waiting.wall_time_s()

    (review,) = await store.pending_approvals(did)
    await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert await clock_events(store, did) == [
        (False, "nothing runs until a person answers"),
        (True, "step b runs"),
    ]
    await engine.close()


async def test_time_spent_waiting_for_a_person_does_not_trip_the_wall_time_breaker(
    store: Store, tmp_path: Path
) -> None:
    spec = chain_spec(tmp_path, LINEAR, max_wall_time_minutes=0.01)  # 0.6 s of work
    engine, did = await started(store, spec, Script(scores={"a": [0.6]}))
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    await asyncio.sleep(1.0)  # longer than the limit: a person takes their time
    (review,) = await store.pending_approvals(did)
    await engine.resolve_approval(review.id, ApprovalDecision.APPROVE)
    assert await engine.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert (await store.get_directive(did)).wall_time_s() < 0.6
    await engine.close()


async def test_closing_the_engine_stops_the_clock_and_the_next_engine_runs_it_again(
    store: Store, tmp_path: Path
) -> None:
    engine, did = await started(store, chain_spec(tmp_path, LINEAR), Script(delay={"a": 30.0}))
    while (await statuses(engine, did)).get("a") != "running":
        await asyncio.sleep(0.02)
    await engine.close()
    closed = await store.get_directive(did)
    assert closed.status.value == "active" and closed.active_since is None
    await asyncio.sleep(0.3)  # the app stays closed a while
    assert (await store.get_directive(did)).wall_time_s() == closed.wall_time_s()

    again = DirectiveEngine(store, EventBus(), services(Script()))
    started_again = time.monotonic()
    await again.start()
    assert await again.wait_settled(did, timeout=10) is Outcome.COMPLETED
    ran_again = time.monotonic() - started_again
    assert await clock_events(store, did) == [(False, "no engine runs it"), (True, "step a runs")]
    ended = await store.get_directive(did)
    # only the time the second engine ran it: the 0.3 s closed is not in it
    assert ended.wall_time_s() - closed.wall_time_s() < ran_again + 0.1
    await again.close()


async def test_a_directive_closed_while_planning_plans_again_with_its_clock_running(
    store: Store, tmp_path: Path
) -> None:
    engine = DirectiveEngine(store, EventBus(), services(Script()))
    await engine.start()
    d = await engine.create_directive(chain_spec(tmp_path, LINEAR))
    await engine.close()
    # as an engine closing mid-plan leaves it: planning, the clock stopped
    await store.write(lambda tx: tx.directive_status(d.id, DirectiveStatus.PLANNING))
    await store.write(
        lambda tx: tx.clock(tx.directive(d.id), running=False, reason="no engine runs it")
    )
    assert (await store.get_directive(d.id)).active_since is None
    again = DirectiveEngine(store, EventBus(), services(Script()))
    await again.start()
    assert await again.wait_settled(d.id, timeout=10) is Outcome.COMPLETED
    assert (True, "planning again") in await clock_events(store, d.id)
    await again.close()


async def test_a_replan_a_person_asked_for_runs_the_clock(store: Store, tmp_path: Path) -> None:
    engine, did = await started(store, chain_spec(tmp_path, LINEAR), Script(scores={"a": [0.6]}))
    assert await engine.wait_settled(did, timeout=10) is Outcome.AWAITING_APPROVAL
    await engine.regenerate_chain(did, "try another way")
    assert (await clock_events(store, did))[:2] == [
        (False, "nothing runs until a person answers"),
        (True, "replanning"),
    ]
    await engine.close()


async def test_an_engine_that_died_stops_its_clock_at_its_last_heartbeat(
    store: Store, tmp_path: Path
) -> None:
    """Killed with the clock running, the directive was charged all the time
    until the next engine came; now only until the dead one's heartbeat."""
    engine, did = await started(store, chain_spec(tmp_path, LINEAR), Script(delay={"a": 30.0}))
    while (await statuses(engine, did)).get("a") != "running":
        await asyncio.sleep(0.02)
    await engine.close()
    # As a killed engine leaves it: the clock running for the last hour, and
    # its lease, with a heartbeat 50 minutes old and its process gone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "UPDATE directives SET active_since = ?, wall_time_used_s = 0 WHERE id = ?",
            (time.time() - 3600, did),
        )
        conn.execute(
            "INSERT INTO engine_lease (id, owner, pid, host, heartbeat) VALUES (1, ?, ?, ?, ?)",
            ("killed\x1fabc\x1f0", dead.pid, socket.gethostname(), time.time() - 3000),
        )

    kit = dataclasses.replace(services(Script()), take_lease=True)
    again = DirectiveEngine(store, EventBus(), kit)
    await again.start()
    assert await again.wait_settled(did, timeout=10) is Outcome.COMPLETED
    assert (False, "the engine that ran it stopped") in await clock_events(store, did)
    assert 595 <= (await store.get_directive(did)).wall_time_s() < 700
    await again.close()


class HeldReplanner:
    """The explicit planner, whose replans run until the test lets them end
    (an LLM taking its time)."""

    def __init__(self) -> None:
        self.inner = make_planner(PlannerKind.EXPLICIT)
        self.replanning = asyncio.Event()
        self.done = asyncio.Event()

    async def plan(self, directive, replan=None):  # type: ignore[no-untyped-def]
        if replan is not None:
            self.replanning.set()
            await self.done.wait()
        return await self.inner.plan(directive, replan)


async def test_a_replan_slower_than_the_time_left_trips_the_breaker_on_time(
    store: Store, tmp_path: Path
) -> None:
    """Asked while the clock stood (a person had the directive), the replan
    ran its clock again but no timer: it ran on past the limit."""
    spec = chain_spec(tmp_path, LINEAR, max_wall_time_minutes=0.01)  # 0.6 s of work
    planner = HeldReplanner()
    kit = dataclasses.replace(
        services(Script(scores={"a": [0.6]})), planner=lambda kind, llm: planner
    )
    engine = DirectiveEngine(store, EventBus(), kit)
    await engine.start()
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=10) is Outcome.AWAITING_APPROVAL
    replan = asyncio.create_task(engine.regenerate_chain(d.id, "try another way"))
    try:
        await asyncio.wait_for(planner.replanning.wait(), 10)
        # The planner works on until told: the breaker must trip without it.
        deadline = time.monotonic() + 10
        while not (
            tripped := [e for e in await store.list_events(d.id) if e.type == "breaker_tripped"]
        ):
            assert time.monotonic() < deadline, "the breaker waited for the replan"
            await asyncio.sleep(0.02)
        assert [e.breaker for e in tripped] == ["wall_time"]
        assert not replan.done()  # tripped while the planner still worked, past the limit
    finally:
        planner.done.set()
        await replan
        await engine.close()
