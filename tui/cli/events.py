"""A directive's events as printed lines: the headless run's and the
`events` command's, which can also keep following what an engine in
another process (the app, a headless run) writes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from tui.cli.carry_on import GOING, runner_brief
from tui.cli.exits import EXIT_OK, OUTCOME_EXIT, UsageError
from tui.cli.session import open_store
from tui.cli.text import one_line

FOLLOW_POLL_S = 0.5  # how often `events --follow` looks for new events
CHUNK = 5000  # events read from the store at a time: a long log is not read at once
ENDING_GRACE_S = 1.0  # how long `--follow` still prints after the directive ended
ENDED = ("completed", "failed", "stopped")


def format_event(event: Any, as_json: bool) -> str:
    """One line: JSON (which escapes what it must), or the text a person
    reads, with a step's line breaks and control characters made visible."""
    if as_json:
        return event.model_dump_json()
    import time

    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    return f"{stamp} #{event.seq:<4} {event.severity.value:<7} {one_line(event.describe())}"


async def print_events(
    db: Path,
    directive_id: str,
    after: int,
    as_json: bool,
    out: Any,
    *,
    last: int | None = None,
    follow: bool = False,
    me: str = "directive-tui",
) -> int:
    """Print the events after `after` (only the `last` of them, when
    given). `follow`: keep printing new ones as they are written, until
    the directive has ended; then exit as its headless run would (0
    completed, 1 failed or stopped)."""
    from engine.store import NotFound

    store = await open_store(db)
    try:
        d = await store.find_directive(directive_id)
        if last is not None:
            after = max(after, d.last_seq - last)
        if follow:
            waiting = _waits_for(d, await runner_brief(db) is not None, me)
            if waiting:  # or it would seem to hang: nothing writes until someone acts
                print(waiting, file=sys.stderr)
        loop = asyncio.get_running_loop()
        ended_at: float | None = None
        while True:
            if ended_at is None and (await store.get_directive(d.id)).status.value in ENDED:
                ended_at = loop.time()
            after, printed = await _print_after(store, d.id, after, as_json, out)
            if not follow:
                break
            # An ending writes a little after it (the merge hint, once its
            # workspace is tidied): stop only once the log stayed quiet a while.
            if ended_at is not None and not printed and loop.time() - ended_at >= ENDING_GRACE_S:
                break
            if not printed:
                await asyncio.sleep(FOLLOW_POLL_S)
        if follow:
            return OUTCOME_EXIT[(await store.get_directive(d.id)).status.value]
        return EXIT_OK
    except NotFound as exc:
        raise UsageError(str(exc)) from exc
    finally:
        await store.close()


def _waits_for(d: Any, running: bool, me: str) -> str | None:
    """What `--follow` waits for when nothing will write to the directive
    until someone acts, or None."""
    status = d.status.value
    if status == "paused":
        return f"the directive is paused: following until it is resumed (`{me} resume {d.id}`)"
    if status == "draft":
        return f"the directive has not started: following until it starts (`{me} resume {d.id}`)"
    if status in GOING and not running:
        return (
            f"nothing runs this database now: following until the app or"
            f" `{me} resume {d.id} --headless` runs it"
        )
    return None


async def _print_after(
    store: Any, directive_id: str, after: int, as_json: bool, out: Any
) -> tuple[int, int]:
    """Print what the store has after `after`, a chunk at a time; returns
    the last sequence number printed and how many were."""
    printed = 0
    while True:
        chunk = await store.list_events(directive_id, after_seq=after, limit=CHUNK)
        for event in chunk:
            print(format_event(event, as_json), file=out, flush=True)
            after = event.seq
        printed += len(chunk)
        if len(chunk) < CHUNK:
            return after, printed
