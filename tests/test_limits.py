"""Changing a directive's limits: each change is made on the limits as
they are when it is written (another process may have changed them a
moment before), and an ended directive's limits are left alone."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineError, Outcome
from engine.events import LimitsChanged
from engine.store import Store
from tests.engine_kit import Script, chain_spec, services


async def test_two_changes_from_two_processes_both_stand(store: Store, tmp_path: Path) -> None:
    first = DirectiveEngine(store, EventBus(), services(Script()))
    d = await first.create_directive(chain_spec(tmp_path, [("a", [])]))
    other_store = await Store.open(store.path)
    second = DirectiveEngine(other_store, EventBus(), services(Script()))

    await first.raise_limits(d.id, max_cost_usd=20)
    await second.raise_limits(d.id, max_rework_cycles=7)  # knew nothing of the first

    limits = (await store.get_directive(d.id)).spec.limits
    assert (limits.max_cost_usd, limits.max_rework_cycles) == (20, 7)
    await other_store.close()


async def test_an_ended_directive_s_limits_are_refused(store: Store, tmp_path: Path) -> None:
    engine = DirectiveEngine(store, EventBus(), services(Script()))
    await engine.start()
    d = await engine.create_directive(chain_spec(tmp_path, [("a", [])]))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=10) is Outcome.COMPLETED
    before = await store.get_directive(d.id)

    with pytest.raises(EngineError, match="is completed: its limits no longer change anything"):
        await engine.raise_limits(d.id, max_cost_usd=50)
    after = await store.get_directive(d.id)
    assert after.spec == before.spec and after.last_seq == before.last_seq
    await engine.close()


def test_the_limits_command_on_an_ended_directive_says_so(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    from tests.test_cli import STEP_OK, directive_file, only_directive, run_cli

    db = str(tmp_path / "x.db")
    run_cli(
        "--db", db, "run", str(directive_file(tmp_path, make_git_repo(), STEP_OK)), "--headless"
    )
    did = only_directive(db)
    code, out, err = run_cli("--db", db, "limits", did, "--max-cost-usd", "9")
    assert (code, out) == (2, "")
    assert err == "directive-tui: 'cli test' is completed: its limits no longer change anything\n"
    assert "max_cost_usd" in run_cli("--db", db, "limits", did)[1]  # showing them still works


async def test_an_infinite_limit_is_no_limit_in_the_live_event_and_the_stored_one(
    store: Store, tmp_path: Path
) -> None:
    """`inf` for max cost: the app's log said `max_cost_usd=inf`, the stored
    event (JSON has no infinity) `max_cost_usd=none`. It is None before the
    event is made, so both say none, and the spec has no cost limit."""
    bus = EventBus()
    engine = DirectiveEngine(store, bus, services(Script()))
    d = await engine.create_directive(chain_spec(tmp_path, [("a", [])]))
    with bus.subscribe(d.id) as live:
        limits = await engine.raise_limits(d.id, max_cost_usd=float("inf"))
        (seen,) = [e for e in live.drain() if isinstance(e, LimitsChanged)]
    (stored,) = [e for e in await store.list_events(d.id) if isinstance(e, LimitsChanged)]
    assert seen.describe() == stored.describe() == "limits changed: max_cost_usd=none"
    assert limits.max_cost_usd is None
    assert (await store.get_directive(d.id)).spec.limits.max_cost_usd is None


def test_inf_means_no_limit_wherever_a_limit_is_written() -> None:
    """The model (a directive file's TOML `inf`, the engine) and the Limits
    dialog turn it into None; a limit already off is then not a change."""
    from engine.models import Limits
    from tui.modals.limits import limit_changes

    assert Limits(max_cost_usd=math.inf, max_wall_time_minutes=math.inf) == Limits(
        max_cost_usd=None, max_wall_time_minutes=None
    )
    texts = {"max_cost_usd": "inf", "max_wall_time_minutes": "Infinity",
             "max_chain_regenerations": "2", "max_failed_steps": "3"}  # fmt: skip
    assert limit_changes(Limits(), texts) == (
        {"max_cost_usd": None, "max_wall_time_minutes": None},
        {},
    )
    assert limit_changes(Limits(max_cost_usd=None, max_wall_time_minutes=None), texts) == ({}, {})
