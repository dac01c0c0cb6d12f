"""`main`: the command line parsed, the database checked, the command run,
and every way it can end turned into its exit code (see `exits`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tui.cli.database import busy_message, check_db, default_db, is_busy, readonly_error
from tui.cli.exits import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT_CLOSED,
    EXIT_OUTPUT_FAILED,
    EXIT_TRY_LATER,
    OutputFailed,
    Terminated,
    TryLater,
    UsageError,
)
from tui.cli.launch import need_terminal, run_app
from tui.cli.parser import build_parser
from tui.cli.program import command_line


def main(argv: list[str] | None = None) -> int:
    _stderr_to_devnull_if_closed()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "headless", True) is False and args.json:
        parser.error(f"{args.command}: --json needs --headless (the app has no JSON output)")
    db: Path = args.db or default_db()
    named = args.db is not None or bool(os.environ.get("DIRECTIVE_TUI_DB"))
    me = command_line(db if named else None)
    out = Output(sys.stdout) if sys.stdout is not None else None
    try:
        if args.command is not None and out is None:  # started with `>&-`
            raise UsageError(
                "the standard output is closed: give it a file (or /dev/null)"
                f" for {args.command} to write to"
            )
        check_db(db, args.command)
        code = _dispatch(args, db, me, out)
        if out is not None:
            out.flush()  # a full disk is said here, not as a traceback at exit
        return code
    except UsageError as exc:
        print(f"directive-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TryLater as exc:
        print(f"directive-tui: {exc}", file=sys.stderr)
        return EXIT_TRY_LATER
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Terminated as exc:
        return exc.code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do. A
        # headless run has closed its engine; its steps run again on resume.
        _drop_output()
        return EXIT_OUTPUT_CLOSED
    except OutputFailed as exc:
        # A full disk under the file it writes to: stopped as when the reader goes away.
        print(f"directive-tui: cannot write the standard output: {exc}", file=sys.stderr)
        _drop_output()
        return EXIT_OUTPUT_FAILED
    except Exception as exc:  # SQLite's lock wait ran out, or it may not write, wherever it was
        if is_busy(exc):
            print(f"directive-tui: {busy_message(db)}", file=sys.stderr)
            return EXIT_TRY_LATER
        if not readonly_error(exc):
            raise
        from engine.connection import unwritable

        message = unwritable(db) or f"cannot write the database {db} ({exc})"
        print(f"directive-tui: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


class Output:
    """The standard output as the commands write to it: a write that fails
    (a full disk; not a reader gone, which stays BrokenPipeError) raises
    OutputFailed, told apart from the OSErrors of the work itself."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        with _failing_output():
            return self.stream.write(text)

    def flush(self) -> None:
        with _failing_output():
            self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()


@contextlib.contextmanager
def _failing_output() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputFailed(exc.strerror or str(exc)) from exc


def _drop_output() -> None:
    """What is left unwritten goes nowhere: Python would otherwise fail to
    flush it at exit, and complain on stderr."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _stderr_to_devnull_if_closed() -> None:
    """Started with `2>&-`, Python has no sys.stderr, and print(file=None)
    writes to stdout: errors and notes would land in the data a script reads
    (`--json | jq`). They go nowhere instead, as the caller asked."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the program's life)


def _dispatch(args: argparse.Namespace, db: Path, me: str, out: Any) -> int:
    cmd = args.command
    if cmd in (None, "run", "demo", "resume") and not getattr(args, "headless", False):
        need_terminal(cmd)
    if cmd is None:
        return run_app(db, bell=args.bell)
    # The commands' modules: not on the app's way to its first frame.
    from tui.cli.approvals import list_approvals, resolve
    from tui.cli.check import check_command
    from tui.cli.directives import delete_command, directive_command, list_directives
    from tui.cli.events import print_events
    from tui.cli.headless import demo_headless, run_headless
    from tui.cli.limits import limits_command
    from tui.cli.model import model_command
    from tui.cli.signals import run_async
    from tui.cli.workspace import git_command

    if cmd == "run":
        spec = load_spec(args.file, starting=True)  # before the database: bad files write nothing
        if args.headless:
            return run_async(run_headless(db, spec=spec, as_json=args.json, out=out, command=me))
        return run_app(db, bell=args.bell, start_file=args.file)
    if cmd == "demo":
        if args.headless:
            return run_async(demo_headless(db, args.auto, args.json, me, out))
        return run_app(db, bell=args.bell, demo=True, auto_approve=args.auto)
    if cmd == "resume":
        if args.headless:
            return run_async(
                run_headless(db, directive_id=args.id, as_json=args.json, out=out, command=me)
            )
        return run_app(db, bell=args.bell, open_directive=args.id, resume=True)
    if cmd == "check":
        return run_async(check_command(db, args.file, out))
    if cmd == "list":
        return run_async(list_directives(db, args.json, out, me))
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
    if cmd == "model":
        return run_async(model_command(db, args, out, me))
    if cmd == "events":
        return run_async(
            print_events(
                db, args.id, args.after, args.json, out, last=args.last, follow=args.follow, me=me
            )
        )
    if cmd == "delete":
        return run_async(delete_command(db, args.id, args.force, out, me))
    if cmd in ("diff", "checkpoints", "reset", "merge"):
        return run_async(git_command(db, args, out))
    raise UsageError(f"unknown command {cmd!r}")  # the parser knows no other


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
