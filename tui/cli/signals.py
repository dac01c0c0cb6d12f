"""SIGTERM and SIGHUP stop a command as Ctrl-C does: its engine closes
(each running step's processes are killed, to run again on resume) rather
than the program dying on the spot with them left running."""

from __future__ import annotations

import asyncio
from typing import Any

from tui.cli.exits import Terminated


def stop_signals() -> tuple[int, ...]:
    """The signals that stop a command or the app cleanly: SIGTERM (`kill`,
    `timeout`, a CI job cancelled) and SIGHUP (its terminal closed, an ssh
    session dropped)."""
    import signal

    return (signal.SIGTERM, signal.SIGHUP)


def run_async(coro: Any) -> int:
    """`asyncio.run(coro)`, with SIGTERM and SIGHUP handled as asyncio
    handles Ctrl-C: the command's task is cancelled, so its `finally` closes
    the engine (which kills each running step's process group and leaves
    the step to run again on resume) before `Terminated` ends the program.
    Their default, to die on the spot, left the steps' processes running on
    without a parent, and a later resume ran them a second time alongside."""

    async def guarded() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        terminated: int | None = None

        def on_term(signum: int) -> None:
            nonlocal terminated
            if terminated is None:  # once: a second one must not cut the cleanup short
                terminated = signum
                task.cancel()

        for signum in stop_signals():
            loop.add_signal_handler(signum, on_term, signum)
        try:
            code = await coro
        except asyncio.CancelledError:
            if terminated is None:
                raise
            raise Terminated(terminated) from None
        finally:
            for signum in stop_signals():
                loop.remove_signal_handler(signum)
        if terminated is not None:
            raise Terminated(terminated)
        return code

    return asyncio.run(guarded())
