"""A directive's events as printed lines: the headless run's and the
`events` command's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui.cli.exits import EXIT_OK, UsageError
from tui.cli.session import open_store
from tui.cli.text import one_line


def format_event(event: Any, as_json: bool) -> str:
    """One line: JSON (which escapes what it must), or the text a person
    reads, with a step's line breaks and control characters made visible."""
    if as_json:
        return event.model_dump_json()
    import time

    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    return f"{stamp} #{event.seq:<4} {event.severity.value:<7} {one_line(event.describe())}"


async def print_events(db: Path, directive_id: str, after: int, as_json: bool, out: Any) -> int:
    from engine.store import NotFound

    store = await open_store(db)
    try:
        d = await store.find_directive(directive_id)
        for event in await store.list_events(d.id, after_seq=after):
            print(format_event(event, as_json), file=out)
        return EXIT_OK
    except NotFound as exc:
        raise UsageError(str(exc)) from exc
    finally:
        await store.close()
