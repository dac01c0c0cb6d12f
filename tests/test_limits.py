"""Changing a directive's limits: each change is made on the limits as
they are when it is written (another process may have changed them a
moment before), and an ended directive's limits are left alone."""

from __future__ import annotations

import asyncio
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


# -- bounds: a limit beyond any real one is refused, naming the bound -----------


def test_limits_beyond_their_bounds_are_refused_by_the_model() -> None:
    """1e300 minutes of wall time was taken, and the header then showed a
    78-digit number; each limit has an upper bound (engine/models.py says
    why each), and the bounds themselves are taken."""
    from pydantic import ValidationError

    from engine.models import LIMIT_BOUNDS, Limits

    Limits(**LIMIT_BOUNDS)  # at the bounds: fine
    for name, bound in LIMIT_BOUNDS.items():
        with pytest.raises(ValidationError, match=f"less than or equal to {bound}"):
            Limits(**{name: bound * 10})
    assert LIMIT_BOUNDS["max_cost_usd"] == 1_000_000
    assert LIMIT_BOUNDS["max_wall_time_minutes"] == 365 * 24 * 60  # a year


def test_the_limits_dialog_refuses_a_limit_past_its_bound_naming_it() -> None:
    from engine.models import Limits
    from tui.modals.limits import limit_changes

    texts = {"max_cost_usd": "5", "max_wall_time_minutes": "1e300",
             "max_chain_regenerations": "2", "max_failed_steps": "100000"}  # fmt: skip
    changes, errors = limit_changes(Limits(), texts)
    assert changes == {}
    assert errors == {
        "max_wall_time_minutes": 'Max wall time (minutes): at most 525,600, or "none"',
        "max_failed_steps": "Max failed steps: at most 1,000",
    }


def test_a_directive_file_with_a_limit_past_its_bound_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    from engine.directive_file import DirectiveFileError, parse_directive_text

    (tmp_path / "project").mkdir()
    text = 'title = "T"\ngoal = "G"\nrepo = "project"\nexecutor = "agent"\n'
    with pytest.raises(DirectiveFileError) as caught:
        parse_directive_text(
            text + "[limits]\nmax_cost_usd = 1e300\n", base_dir=tmp_path, source="d.toml"
        )
    assert str(caught.value) == "d.toml: limits.max_cost_usd: must be at most 1000000, got 1e+300"


def test_the_limits_command_refuses_a_limit_past_its_bound_naming_it(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    from tests.test_cli import YELLOW, directive_file, only_directive, run_cli

    db = str(tmp_path / "x.db")  # a run left waiting for a person: its limits still apply
    run_cli("--db", db, "run", str(directive_file(tmp_path, make_git_repo(), YELLOW)), "--headless")
    did = only_directive(db)
    code, out, err = run_cli("--db", db, "limits", did, "--max-wall-time-minutes", "1e300")
    assert (code, out) == (2, "")
    assert "--max-wall-time-minutes" in err and "must be at most 525600, got 1e+300" in err, err
    assert "max_wall_time_minutes" in run_cli("--db", db, "limits", did)[1]

    code, _, err = run_cli("--db", db, "limits", did, "--max-cost-usd", "nan")
    assert code == 2 and "finite number" in err and "at most" not in err, err


def test_nan_is_refused_as_not_a_number_not_as_too_large(tmp_path: Path) -> None:
    """It read "must be at most 1000000, got nan"."""
    from engine.directive_file import DirectiveFileError, parse_directive_text

    (tmp_path / "project").mkdir()
    text = 'title = "T"\ngoal = "G"\nrepo = "project"\nexecutor = "agent"\n'
    with pytest.raises(DirectiveFileError) as caught:
        parse_directive_text(
            text + "[limits]\nmax_cost_usd = nan\n", base_dir=tmp_path, source="d.toml"
        )
    assert "limits.max_cost_usd: must be a finite number, got nan" in str(caught.value)


async def test_a_limit_lowered_below_what_is_used_trips_while_steps_run(
    store: Store, tmp_path: Path
) -> None:
    """The bar read `13s / 0.6s` and the directive ran on until its steps
    ended: the driver kept the timer it had set from the old limit."""
    engine = DirectiveEngine(store, EventBus(), services(Script(delay={"slow": 30.0})))
    await engine.start()
    d = await engine.create_directive(chain_spec(tmp_path, [("slow", [])]))
    await engine.start_directive(d.id)
    await asyncio.sleep(0.3)  # running, and its clock with it
    await engine.raise_limits(d.id, max_wall_time_minutes=0.001)  # 0.06 s
    assert await engine.wait_settled(d.id, timeout=5) is Outcome.PAUSED
    assert (await store.get_directive(d.id)).pause_reason.startswith("wall_time breaker")
    await engine.close()


async def test_a_limit_set_to_the_value_it_has_writes_nothing(store: Store, tmp_path: Path) -> None:
    """Each such `limits` wrote a 'limits changed' event and a new spec."""
    engine = DirectiveEngine(store, EventBus(), services(Script()))
    d = await engine.create_directive(chain_spec(tmp_path, [("a", [])]))
    await engine.raise_limits(d.id, max_cost_usd=7)
    before = await store.list_events(d.id)
    await engine.raise_limits(d.id, max_cost_usd=7)
    assert await store.list_events(d.id) == before
    assert (await store.get_directive(d.id)).spec.limits.max_cost_usd == 7
