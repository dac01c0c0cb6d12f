"""Circuit breakers and budgets: which limit a directive has reached, and
what an attempt may still spend."""

from __future__ import annotations

from engine.executors.base import Budget
from engine.models import Directive


def budget_for(d: Directive) -> Budget:
    limits = d.spec.limits
    return Budget(
        cost_usd=None
        if limits.max_cost_usd is None
        else max(limits.max_cost_usd - d.total_cost_usd, 0.0),
        wall_time_s=None
        if limits.max_wall_time_minutes is None
        else max(limits.max_wall_time_minutes * 60 - d.wall_time_s(), 0.0),
    )


def breaker_reason(d: Directive) -> tuple[str, str] | None:
    """(breaker, reason) for the first limit this directive has reached."""
    limits = d.spec.limits
    if limits.max_cost_usd is not None and d.total_cost_usd >= limits.max_cost_usd:
        return "cost", f"cost ${d.total_cost_usd:.2f} reached the limit ${limits.max_cost_usd:.2f}"
    if (
        limits.max_wall_time_minutes is not None
        and d.wall_time_s() >= limits.max_wall_time_minutes * 60
    ):
        return (
            "wall_time",
            f"wall time {duration(d.wall_time_s())} reached the limit "
            f"{duration(limits.max_wall_time_minutes * 60)}",
        )
    if d.failed_steps >= limits.max_failed_steps:
        return (
            "failed_steps",
            f"{d.failed_steps} failed steps reached the limit {limits.max_failed_steps}",
        )
    return None


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`: one way to write a time span, in breaker
    reasons, on the command line and in the app's table cells. Under a
    second it keeps two decimals (`0.6s`, `0.05s`): a limit of 0.01 minutes
    read `0s`, and "23s reached the limit 0s"."""
    if 0 < seconds < 1:
        shown = f"{seconds:.2f}".rstrip("0").rstrip(".")
        return f"{shown}s" if shown != "0" else "<0.01s"
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
