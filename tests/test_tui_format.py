"""Text helpers the widgets share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.breakers import duration
from tui.format import tail


def test_a_tool_output_tail_keeps_its_last_lines_with_terminal_padding_squeezed() -> None:
    """pytest pads its progress line to 80 columns; in a 60-column panel the
    `[100%]` would wrap onto a line of its own, out of its indent."""
    output = (
        "collected 12 items\n"
        "tests/test_vat.py ............" + " " * 40 + "[100%]   \n"
        "12 passed in 0.02s\n\n"
    )
    assert tail(output, 2) == "tests/test_vat.py ............  [100%]\n12 passed in 0.02s"
    assert tail("a  b\n", 5) == "a  b"  # two spaces are kept: short columns stay apart


def test_a_time_span_under_a_second_is_not_shown_as_nothing() -> None:
    """A wall-time limit of 0.01 minutes read `0s` ("23s reached the limit
    0s"); spans of a second and more keep their whole-unit formats."""
    assert [duration(s) for s in (0.6, 0.05, 0.999, 0.001, 0, -3)] == [
        "0.6s", "0.05s", "1s", "<0.01s", "0s", "0s"
    ]  # fmt: skip
    assert [duration(s) for s in (1, 1.9, 42, 59.9, 60, 185, 3599, 3600, 7620)] == [
        "1s", "1s", "42s", "59s", "1m00s", "3m05s", "59m59s", "1h00m", "2h07m"
    ]  # fmt: skip


def test_a_breaker_holds_until_its_own_limit_is_raised(tmp_path: Path) -> None:
    """`p` on a directive a breaker paused opens the limits dialog while the
    limit stands, and resumes once it was raised (the replan breaker
    included: it trips on a replan, so `breaker_reason` never names it)."""
    from engine.models import Directive, DirectiveSpec, DirectiveStatus, Limits
    from tui.widgets.budgets import breaker_holds, pause_banner

    def paused(breaker: str, **limits: Any) -> Directive:
        spec = DirectiveSpec(title="t", goal="g", repo=tmp_path, limits=Limits(**limits))
        return Directive(
            spec=spec,
            status=DirectiveStatus.PAUSED,
            pause_reason=f"{breaker} breaker: reached",
            regenerations=1,
            total_cost_usd=2.0,
        )

    assert breaker_holds(paused("regenerations", max_chain_regenerations=1))
    assert not breaker_holds(paused("regenerations", max_chain_regenerations=2))
    assert breaker_holds(paused("cost", max_cost_usd=1.0))
    raised = paused("cost", max_cost_usd=5.0)
    assert not breaker_holds(raised)
    assert pause_banner(raised) == "paused by the cost breaker; its limit has been raised since"
