"""The command line when things go wrong around it: a printer that falls
behind, signals, databases it may not write, step output that is not plain
text. Real SQLite files, real git repositories, real subprocesses."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.bus import EventBus, Subscription
from engine.store import Store
from tests.test_cli import directive_file
from tui.cli import load_spec, run_headless


class WatchedBus(EventBus):
    """The engine's bus, keeping its subscriptions to say whether one lagged."""

    def __init__(self, max_queue: int) -> None:
        super().__init__(max_queue)
        self.subscriptions: list[Subscription] = []

    def subscribe(self, directive_id: str | None = None) -> Subscription:
        sub = super().subscribe(directive_id)
        self.subscriptions.append(sub)
        return sub


def seq_of(line: str, as_json: bool) -> int:
    return json.loads(line)["seq"] if as_json else int(line.split()[1].removeprefix("#"))


@pytest.mark.parametrize("as_json", [False, True])
def test_a_headless_printer_that_falls_behind_still_prints_every_event_once_in_order(
    tmp_path: Path, make_git_repo: Callable[..., Path], as_json: bool
) -> None:
    """A step prints thousands of lines faster than the printer keeps up: the
    bus drops what its queue cannot hold (here a queue of 8), and the printed
    log used to jump from one seq to a much later one without a word."""
    steps = '[[steps]]\nname = "loud"\ncommand = "seq 1 3000"\n'
    spec = load_spec(directive_file(tmp_path, make_git_repo(), steps, autonomy="full_auto"))
    db = tmp_path / "x.db"
    bus = WatchedBus(max_queue=8)
    out = io.StringIO()

    code = asyncio.run(run_headless(db, spec=spec, as_json=as_json, out=out, bus=bus))

    assert code == 0
    assert any(sub.dropped for sub in bus.subscriptions)  # it did fall behind
    lines = out.getvalue().splitlines()
    printed = [seq_of(line, as_json) for line in lines]

    async def stored() -> list[int]:
        store = await Store.open(db)
        try:
            (d,) = await store.list_directives()
            return [e.seq for e in await store.list_events(d.id)]
        finally:
            await store.close()

    assert printed == asyncio.run(stored()) == list(range(1, len(printed) + 1))
