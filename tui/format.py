"""Small text helpers shared by widgets: money, clock times, bars (durations
are `engine.breakers.duration`, which breaker reasons use too)."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import Any

from rich.text import Text

BAR_FULL, BAR_EMPTY = "█", "░"
PADDING = re.compile(r" {3,}")


def money(usd: float) -> str:
    return f"${usd:.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.4f}"


def clock(ts: float) -> str:
    """Local time of day of a timestamp, as the event log shows it."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def fraction(used: float, limit: float | None) -> float | None:
    if limit is None or limit <= 0:
        return None
    return used / limit


def bar(frac: float | None, width: int, style: str) -> Text:
    """A bar of `width` cells filled to `frac` (None: no limit, an empty dim bar)."""
    if frac is None:
        return Text(BAR_EMPTY * width, style="dim")
    filled = min(max(round(frac * width), 0), width)
    if frac > 0 and filled == 0:
        filled = 1
    return Text.assemble((BAR_FULL * filled, style), (BAR_EMPTY * (width - filled), "dim"))


def tail(text: str, lines: int) -> str:
    """The last `lines` lines, runs of padding squeezed to two spaces: tools
    pad for an 80-column terminal (pytest right-aligns its `[100%]`), which
    wraps into a stray line in a narrow panel."""
    return "\n".join(
        PADDING.sub("  ", line.rstrip()) for line in text.rstrip().splitlines()[-lines:]
    )


# Terminal escape sequences: CSI (colours, cursor moves), OSC (window title,
# links; ended by BEL or ESC \), and the other two-character ESC forms.
ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x85\u2028\u2029]")
# What is left that a terminal would act on rather than show: C0 controls
# but the tab, DEL, C1 controls, and a lone ESC.
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
LINE_BREAK_MARK = " ⏎ "


def one_line(text: str) -> str:
    """`text` safe on one line of a terminal, for the command line's
    one-line-per-entry output (events, approvals): escape sequences from a
    step's output dropped, line breaks (a lone CR too, which would send the
    cursor back over the line) shown as ⏎, other control characters
    shown as `\\xNN` rather than acted on (a bell, a backspace)."""
    text = ESCAPES.sub("", text)
    text = LINE_BREAKS.sub(LINE_BREAK_MARK, text.strip("\r\n"))
    return CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def headline(text: str, width: int = 72) -> str:
    """The first line of `text`, cut to `width` characters with "…": what
    a toast says of a request (its whole summary, a failure's error and
    all, covered the log)."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    more = first != text.strip()
    if len(first) > width or more:
        return first[: width - 1].rstrip() + "…"
    return first


def undo_command(offer: Any, repo: Path | str, sha: str | None = None) -> str:
    """The git command that puts the branch back where `offer` (a
    FastForwardOffer) found it, at `sha` (its `current_sha` by default; the
    app's toast gives it shorter). In the checkout that has it: `reset
    --keep`, which moves the files back too and refuses to lose a change
    made to them since. A branch no checkout has: `branch -f`, which git
    refuses once one has it. Said by `merge` and by the app's `m`."""
    old = sha or offer.current_sha
    if offer.worktree is not None:
        where = shlex.quote(str(offer.worktree))
        return f"git -C {where} reset --keep {old}"
    branch = shlex.quote(offer.branch)
    return f"git -C {shlex.quote(str(repo))} branch -f {branch} {old}"
