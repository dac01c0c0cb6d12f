"""A headless run's printer: the directive's events, one line each, in
order and none twice, from the store and then live from the bus; it ends
the run when the reader of its output goes away (`| head`)."""

from __future__ import annotations

import asyncio
from typing import Any

from tui.cli.events import format_event

READER_CHECK_S = 1.0  # how often a quiet headless run checks its output is still read
CATCH_UP_CHUNK = 5000  # events read from the store at a time when the printer catches up


class EventPrinter:
    """Prints `directive_id`'s events to `out`; `sub` is its subscription
    to the bus, taken before the first `catch_up`."""

    def __init__(self, store: Any, directive_id: str, sub: Any, out: Any, as_json: bool) -> None:
        self.store = store
        self.directive_id = directive_id
        self.sub = sub
        self.out = out
        self.as_json = as_json
        self.printed = 0  # the sequence number of the last event printed

    def show(self, event: Any) -> None:
        print(format_event(event, self.as_json), file=self.out, flush=True)
        self.printed = event.seq

    async def catch_up(self) -> None:
        """Print what the store has after the last line printed: what
        happened before we subscribed (creation, or an earlier run), and
        what the bus dropped while this printer lagged behind (events
        are stored before they are published). A chunk at a time, so a
        long gap is not read into memory at once."""
        while True:
            chunk = await self.store.list_events(
                self.directive_id, after_seq=self.printed, limit=CATCH_UP_CHUNK
            )
            for event in chunk:
                self.show(event)
            if len(chunk) < CATCH_UP_CHUNK:
                return

    async def follow(self) -> None:
        """The live events, in order and none twice: a lag (the bus
        cleared our full queue) or any gap is filled from the store."""
        while True:
            event = await self.sub.get()
            if self.sub.lagged or event.seq > self.printed + 1:
                self.sub.lagged = False
                await self.catch_up()
            if event.seq > self.printed:
                self.show(event)

    async def watch_reader(self) -> None:
        """A quiet step prints nothing for a long while: is anyone
        still reading?"""
        while not reader_gone(self.out):
            await asyncio.sleep(READER_CHECK_S)
        raise BrokenPipeError("the output's reader went away")

    async def print_live(self) -> None:
        """Both until one fails (the output closed), or this is
        cancelled. Not `wait_for(sub.get(), timeout)`: on Python 3.11
        it can swallow a cancellation that meets an arriving event, and
        the run then waited for ever for its printer to stop."""
        parts = [asyncio.create_task(self.follow()), asyncio.create_task(self.watch_reader())]
        try:
            done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_EXCEPTION)
            for part in done:
                part.result()
        finally:
            for part in parts:
                part.cancel()
            await asyncio.gather(*parts, return_exceptions=True)


def reader_gone(out: Any) -> bool:
    """Whether `out` is a pipe whose reader has closed it: the write end
    then polls as an error, so a run notices without waiting to print."""
    import select

    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's buffer)
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
