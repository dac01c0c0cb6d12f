"""A directive's limits on the command line: the options that change them,
the `limits` command, and the raised limit a paused run suggests."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tui.cli.carry_on import resume_hint
from tui.cli.exits import EXIT_OK, UsageError
from tui.cli.session import engine_session

NO_LIMIT = "none"  # what `limits` prints for a limit that is off, and takes to switch one off
# The limit behind each breaker (engine/breakers.py names them), for the
# hint a paused headless run prints.
BREAKER_LIMITS = {
    "cost": "max_cost_usd",
    "wall_time": "max_wall_time_minutes",
    "failed_steps": "max_failed_steps",
    "regenerations": "max_chain_regenerations",
}


def raised(limit: float | None) -> str:
    """A value to suggest for a limit that was reached: twice what it is
    (a count at least one more), as `limits` takes it."""
    if limit is None or limit <= 0:
        return "1"
    value = max(limit * 2, limit + 1) if float(limit).is_integer() else limit * 2
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def switchable_limit(text: str) -> float | str:
    """A number, or `none` (also `inf`) for no limit: stored as the model's None."""
    if text.strip().lower() in (NO_LIMIT, "inf", "infinity"):
        return NO_LIMIT
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, nor 'none'") from None


# `directive-tui limits ID --max-cost-usd 5 ...`: the Limits fields a person changes.
LIMIT_OPTIONS: list[tuple[str, Any, str]] = [
    ("max_cost_usd", switchable_limit, "total cost in USD"),
    (
        "max_wall_time_minutes",
        switchable_limit,
        "wall time in minutes (time paused or waiting for you does not count)",
    ),
    ("max_rework_cycles", int, "rework cycles per step before it is blocked"),
    ("max_chain_regenerations", int, "replans"),
    ("max_parallel_steps", int, "steps running at once"),
    ("max_failed_steps", int, "failed steps before the directive pauses"),
]

# pydantic's bound errors, in the words a directive file's are given in.
BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than_equal": ("le", "at most"),
}


async def limits_command(
    db: Path, args: argparse.Namespace, out: Any, me: str = "directive-tui"
) -> int:
    """Print the limits against what was used; with options, change them
    first (validated as a whole: a bad value changes nothing)."""
    from pydantic import ValidationError

    from engine.breakers import breaker_reason, duration

    given = {name: getattr(args, name) for name, _, _ in LIMIT_OPTIONS}
    changes = {k: None if v == NO_LIMIT else v for k, v in given.items() if v is not None}
    async with engine_session(db) as (store, engine):
        d = await store.find_directive(args.id)
        if changes:
            try:
                await engine.raise_limits(d.id, **changes)
            except ValidationError as exc:
                problems = "; ".join(
                    f"--{'-'.join(str(p) for p in e['loc'])}".replace("_", "-")
                    + f": {_limit_problem(e)}"
                    for e in exc.errors()
                )
                raise UsageError(f"limits not changed: {problems}") from exc
            d = await store.get_directive(d.id)
        d = await as_left(db, d)
        if args.json:
            print(json.dumps(limits_as_json(d)), file=out)
            return EXIT_OK
        limits = d.spec.limits
        used = {
            "max_cost_usd": f"${d.total_cost_usd:.2f}",
            "max_wall_time_minutes": duration(d.wall_time_s()),
            "max_chain_regenerations": str(d.regenerations),
            "max_failed_steps": str(d.failed_steps),
        }
        for name, _, what in LIMIT_OPTIONS:
            value = getattr(limits, name)
            shown = NO_LIMIT if value is None else f"{value:g}"
            spent = f"  (used {used[name]})" if name in used else ""
            print(f"{name:<24} {shown:>8}{spent}  {what}", file=out)
        tripped = breaker_reason(d)
        if tripped:
            print(f"still over a limit: {tripped[1]}", file=out)
        elif d.status.value == "paused":
            print(f"within its limits: {await resume_hint(db, d.id, me)}", file=out)
        return EXIT_OK


def limits_as_json(d: Any) -> dict[str, Any]:
    """`limits --json`: each limit (null: none), what was used of those
    that are spent, and the limit still reached, if one is, as a script
    needs them to decide whether a resume can go on."""
    from engine.breakers import breaker_reason

    limits = d.spec.limits
    tripped = breaker_reason(d)
    return {
        "directive_id": d.id,
        "status": d.status.value,
        "limits": {name: getattr(limits, name) for name, _, _ in LIMIT_OPTIONS},
        "used": {
            "max_cost_usd": round(d.total_cost_usd, 6),
            "max_wall_time_minutes": round(d.wall_time_s() / 60, 3),
            "max_chain_regenerations": d.regenerations,
            "max_failed_steps": d.failed_steps,
        },
        "over_limit": None if tripped is None else {"breaker": tripped[0], "reason": tripped[1]},
    }


async def as_left(db: Path, d: Any) -> Any:
    """`d` as the next engine will find it. One whose engine died (`kill -9`,
    a reboot) with its clock running ran until that engine's last heartbeat,
    not through the time nothing ran it: the next engine charges that much
    (`DirectiveEngine._recover`), so the time used and a reached limit are
    shown as it will count them."""
    from engine.lease import EngineLease

    if d.active_since is None or await EngineLease.runner(db) is not None:
        return d
    holder = await EngineLease.holder(db)
    if holder is None:
        return d
    stopped = max(holder.heartbeat, d.active_since)
    return d.model_copy(update={"wall_time_used_s": d.wall_time_s(stopped), "active_since": None})


def _limit_problem(error: Any) -> str:
    """`must be at least 1, got 0` (pydantic: `Input should be greater than
    or equal to 1`)."""
    if error["type"] not in BOUNDS:
        return str(error["msg"])
    key, words = BOUNDS[error["type"]]
    return f"must be {words} {error['ctx'][key]:g}, got {error['input']:g}"
