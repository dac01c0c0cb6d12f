"""The `directive-tui` command: the app, and its scriptable companions.

Kept light on purpose: only argparse at import time, so `--help` and the
first frame of the app never wait for the engine's heavier modules.

The exit codes are in `exits`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from tui.cli.approvals import list_approvals, resolve
from tui.cli.database import busy_message, check_db, default_db, is_busy, readonly_error
from tui.cli.directives import delete_command, directive_command, list_directives
from tui.cli.events import print_events
from tui.cli.exits import (
    EXIT_APPROVAL,  # noqa: F401  (tests import it from here until they import it from exits)
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,  # noqa: F401  (as EXIT_APPROVAL)
    EXIT_OUTPUT_CLOSED,
    Terminated,
    UsageError,
)
from tui.cli.headless import demo_headless, run_headless
from tui.cli.limits import limits_command
from tui.cli.parser import build_parser
from tui.cli.program import command_line
from tui.cli.workspace import git_command


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "headless", True) is False and args.json:
        parser.error(f"{args.command}: --json needs --headless (the app has no JSON output)")
    db: Path = args.db or default_db()
    named = args.db is not None or bool(os.environ.get("DIRECTIVE_TUI_DB"))
    me = command_line(db if named else None)
    out = sys.stdout
    try:
        if args.command is not None and out is None:  # started with `>&-`
            raise UsageError(
                "the standard output is closed: give it a file (or /dev/null)"
                f" for {args.command} to write to"
            )
        check_db(db, args.command)
        return _dispatch(args, db, me, out)
    except UsageError as exc:
        print(f"directive-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Terminated as exc:
        return exc.code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do. A
        # headless run has closed its engine; its steps run again on resume.
        with contextlib.suppress(OSError):  # nor complain when stdout is flushed at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED
    except Exception as exc:  # SQLite's lock wait ran out, or it may not write, wherever it was
        if is_busy(exc):
            message = busy_message(db)
        elif readonly_error(exc):
            from engine.store import unwritable

            message = unwritable(db) or f"cannot write the database {db} ({exc})"
        else:
            raise
        print(f"directive-tui: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _stop_signals() -> tuple[int, ...]:
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

        for signum in _stop_signals():
            loop.add_signal_handler(signum, on_term, signum)
        try:
            code = await coro
        except asyncio.CancelledError:
            if terminated is None:
                raise
            raise Terminated(terminated) from None
        finally:
            for signum in _stop_signals():
                loop.remove_signal_handler(signum)
        if terminated is not None:
            raise Terminated(terminated)
        return code

    return asyncio.run(guarded())


def _dispatch(args: argparse.Namespace, db: Path, me: str, out: Any) -> int:
    cmd = args.command
    if cmd in (None, "run", "demo", "resume") and not getattr(args, "headless", False):
        need_terminal(cmd)
    if cmd == "run":
        spec = load_spec(args.file, starting=True)  # before the database: bad files write nothing
        if args.headless:
            return run_async(run_headless(db, spec=spec, as_json=args.json, command=me))
        return _run_app(db, bell=args.bell, start_file=args.file)
    if cmd == "demo":
        if args.headless:
            return run_async(demo_headless(db, args.auto, args.json, me))
        return _run_app(db, bell=args.bell, demo=True, auto_approve=args.auto)
    if cmd == "resume":
        if args.headless:
            return run_async(run_headless(db, directive_id=args.id, as_json=args.json, command=me))
        return _run_app(db, bell=args.bell, open_directive=args.id, resume=True)
    if cmd == "list":
        return run_async(list_directives(db, args.json, out))
    if cmd == "approvals":
        return run_async(list_approvals(db, args.json, out))
    if cmd in ("approve", "deny", "request-changes"):
        decision = {"approve": "approve", "deny": "deny", "request-changes": "request_changes"}[cmd]
        return run_async(resolve(db, args.id, decision, args.comment, out, me))
    if cmd == "decide":
        return run_async(resolve(db, args.id, args.decision, args.comment, out, me))
    if cmd in ("pause", "stop"):
        return run_async(directive_command(db, args.id, cmd, out))
    if cmd == "limits":
        return run_async(limits_command(db, args, out, me))
    if cmd == "events":
        return run_async(print_events(db, args.id, args.after, args.json, out))
    if cmd == "delete":
        return run_async(delete_command(db, args.id, args.force, out, me))
    if cmd in ("diff", "checkpoints", "reset", "merge"):
        return run_async(git_command(db, args, out))
    return _run_app(db, bell=args.bell)


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


def _run_app(db: Path, **kwargs: Any) -> int:
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

    previous = {signum: signal.signal(signum, on_term) for signum in _stop_signals()}
    try:
        app.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if app.farewell:
        print(app.farewell)
    return int(app.return_code or 0)


def load_spec(path: Path, *, starting: bool = False) -> Any:
    """The directive in `path`; `starting`: it runs now, so a Claude key it
    needs and lacks is bad input too (refused before anything is written)."""
    from engine.directive_file import DirectiveFileError, check_api_key, load_directive_file

    try:
        spec = load_directive_file(path)
        if starting:
            check_api_key(spec, str(path))
    except DirectiveFileError as exc:
        raise UsageError(str(exc)) from exc
    return spec
