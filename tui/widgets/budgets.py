"""Cost, wall time, regenerations and failed steps against their limits,
and the tripped breaker (if any) with the key that raises its limit."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from engine.breakers import breaker_reason, duration
from engine.models import Directive, DirectiveStatus
from tui.format import bar, fraction, money
from tui.presentation import DIRECTIVE_LOOK, clock_mark
from tui.widgets.looks import LOOK_CLASSES, Looks


@dataclass(frozen=True)
class Breaker:
    """A circuit breaker as the screen knows it: which limit raises it."""

    name: str  # as the engine names it in BreakerTripped / pause_reason
    label: str
    limit_field: str  # the `Limits` field `raise_limits` takes


BREAKERS: dict[str, Breaker] = {
    b.name: b
    for b in (
        Breaker("cost", "cost", "max_cost_usd"),
        Breaker("wall_time", "time", "max_wall_time_minutes"),
        Breaker("regenerations", "replans", "max_chain_regenerations"),
        Breaker("failed_steps", "failed", "max_failed_steps"),
    )
}


def tripped_breaker(d: Directive) -> tuple[Breaker, str] | None:
    """(breaker, reason) when the directive is paused by one: the engine
    writes `pause_reason` as "<breaker> breaker: <reason>"."""
    if d.status is not DirectiveStatus.PAUSED or not d.pause_reason:
        return None
    name, sep, reason = d.pause_reason.partition(" breaker: ")
    if not sep or name not in BREAKERS:
        return None
    return BREAKERS[name], reason


def usage(d: Directive, at: float) -> list[tuple[Breaker, float, float | None, str]]:
    """(breaker, used, limit, shown) for each bar, in screen order."""
    limits = d.spec.limits
    minutes = limits.max_wall_time_minutes
    wall = d.wall_time_s(at)
    cost = limits.max_cost_usd
    return [
        (BREAKERS["cost"], d.total_cost_usd, cost,
         money(d.total_cost_usd) + (f" / {money(cost)}" if cost is not None else " (no limit)")),
        (BREAKERS["wall_time"], wall, None if minutes is None else minutes * 60,
         duration(wall) + (f" / {duration(minutes * 60)}" if minutes is not None else " (no limit)")
         + clock_mark(d)),
        (BREAKERS["regenerations"], d.regenerations, limits.max_chain_regenerations,
         f"{d.regenerations} / {limits.max_chain_regenerations}"),
        (BREAKERS["failed_steps"], d.failed_steps, limits.max_failed_steps,
         f"{d.failed_steps} / {limits.max_failed_steps}"),
    ]  # fmt: skip


def pause_banner(d: Directive) -> str | None:
    """Why a directive is paused when a resume is all it needs (its first
    plan failed, its folder went, a person paused it, or the limit that
    tripped has been raised since), or None."""
    if d.status is not DirectiveStatus.PAUSED:
        return None
    tripped = tripped_breaker(d)
    if tripped is None:
        return d.pause_reason or "paused"
    if breaker_holds(d):
        return None
    return f"paused by the {tripped[0].label} breaker; its limit has been raised since"


def breaker_holds(d: Directive) -> bool:
    """Whether a breaker pauses the directive and its limit still stands
    (a resume needs the limit raised first)."""
    tripped = tripped_breaker(d)
    if tripped is None:
        return False
    if tripped[0].name == "regenerations":  # trips on a replan, not in `breaker_reason`
        return not d.replans_left
    return breaker_reason(d) is not None


class BudgetBars(Looks, Widget):
    """Two rows of two bars; a third line when the directive is paused: the
    tripped breaker with the key that raises its limit, or the reason."""

    COMPONENT_CLASSES = LOOK_CLASSES

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.directive: Directive | None = None
        self.at = 0.0

    def show(self, directive: Directive, at: float) -> None:
        self.directive, self.at = directive, at
        paused = pause_banner(directive) is not None
        tripped = not paused and tripped_breaker(directive) is not None
        # Only the banner changes the height: a layout of the whole screen on
        # every event batch and every tick was the app's costliest paint.
        grows = (tripped or paused) != (self.has_class("-tripped") or self.has_class("-paused"))
        self.set_class(tripped, "-tripped")
        self.set_class(paused, "-paused")
        self.refresh(layout=grows)

    def render(self) -> RenderableType:
        d = self.directive
        if d is None:
            return Text("")
        grid = Table.grid(expand=True, padding=(0, 1))
        half = max(self.size.width // 2 - 1, 20)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        cells = [
            self._bar(b, used, limit, shown, half) for b, used, limit, shown in usage(d, self.at)
        ]
        grid.add_row(cells[0], cells[1])
        grid.add_row(cells[2], cells[3])
        why = pause_banner(d)
        tripped = None if why is not None else tripped_breaker(d)
        if why is not None:
            return Group(
                grid,
                Text.assemble(
                    (
                        f"{DIRECTIVE_LOOK[DirectiveStatus.PAUSED].icon} ",
                        self.look("look--awaiting"),
                    ),
                    why,
                    ("  p", self.look("look--key")),
                    " resume",
                    no_wrap=True,  # one line: the whole reason is in the event log
                    overflow="ellipsis",
                ),
            )
        if tripped is None:
            return grid
        breaker, reason = tripped
        banner = Text.assemble(
            (f"⚠ {breaker.label} breaker: ", self.look("sev--error")),
            reason,
            ("  L", self.look("look--key")),
            " raise limit and resume",
            no_wrap=True,  # one line, as the height counts it
            overflow="ellipsis",
        )
        return Group(grid, banner)

    def _bar(
        self, breaker: Breaker, used: float, limit: float | None, shown: str, width: int
    ) -> Text:
        frac = fraction(used, limit)
        css = "level--green"
        if frac is not None and frac >= 0.9:
            css = "level--red"
        elif frac is not None and frac >= 0.6:
            css = "level--yellow"
        label = f"{breaker.label:<8}"
        bar_width = max(width - len(label) - len(shown) - 2, 4)
        # One line whatever the numbers: a figure wider than its half wrapped,
        # and the second line pushed "replans / failed" out of the header.
        return Text.assemble(
            (label, self.look("look--muted")),
            bar(frac, bar_width, self.look(css)),
            " ",
            shown,
            no_wrap=True,
            overflow="ellipsis",
        )

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[no-untyped-def]
        d = self.directive
        banner = d is not None and (tripped_breaker(d) or pause_banner(d))
        return 2 + (1 if banner else 0)
