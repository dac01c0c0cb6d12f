"""The app's launch from the command line: refused without a terminal,
and quit as a person quits on SIGTERM or SIGHUP."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from tui.cli.exits import Terminated, UsageError
from tui.cli.signals import stop_signals


def need_terminal(command: str | None) -> None:
    """The app reads keys from stdin and draws on stderr (as Textual does):
    without a terminal on both it would hang, or fail with a traceback,
    and a CI job that forgot `--headless` would wait for nobody. Refused
    before anything is written."""
    streams = {"stdin": sys.__stdin__, "stderr": sys.__stderr__}
    missing = [name for name, stream in streams.items() if stream is None or not stream.isatty()]
    if not missing:
        return
    if command in ("run", "resume", "demo"):
        hint = f"add --headless to {command} without a screen"
    else:
        hint = "the commands (see `directive-tui --help`) need none"
    verb = "is" if len(missing) == 1 else "are"
    raise UsageError(
        f"the app needs a terminal, and {' and '.join(missing)} {verb} not one: {hint}"
    )


def run_app(db: Path, **kwargs: Any) -> int:
    """The app; SIGTERM or SIGHUP (its terminal closed) quits it as a person
    quitting does (its engine closes, so a running step's processes are
    killed and its clock stops), with exit code 128 + the signal, rather
    than killing it on the spot with its steps left running and the
    terminal left in the app's mode."""
    import signal

    from tui.app import DirectiveApp

    app = DirectiveApp(db, **kwargs)

    def on_term(signum: int, frame: Any) -> None:
        # Python runs this in the main thread, where the app's loop runs.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # before the app's loop, or after it: nothing to close
            raise Terminated(signum) from None
        loop.call_soon_threadsafe(lambda: app.exit(return_code=128 + signum))

    previous = {signum: signal.signal(signum, on_term) for signum in stop_signals()}
    try:
        app.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if app.farewell:
        print(app.farewell)
    return int(app.return_code or 0)
