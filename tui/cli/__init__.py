"""The `directive-tui` command: the app, and its scriptable companions.

Kept light on purpose: only argparse at import time, so `--help` and the
first frame of the app never wait for the engine's heavier modules.

Exit codes: 0 completed (or command done), 1 failed or stopped, 2 bad input,
3 stopped waiting for an approval, 4 paused (a circuit breaker, a person, a
first plan that could not be made, or the repository folder gone), 130
interrupted (Ctrl-C), 141 the output was closed (as a process killed by
SIGPIPE reports it), 143 terminated (SIGTERM: `kill`, `timeout`, a CI job
cancelled) and 129 its terminal closed (SIGHUP), which stop a run as
Ctrl-C does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_APPROVAL, EXIT_PAUSED = 0, 1, 2, 3, 4
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
READER_CHECK_S = 1.0  # how often a quiet headless run checks its output is still read
CATCH_UP_CHUNK = 5000  # events read from the store at a time when the printer catches up

OUTCOME_EXIT = {
    "completed": EXIT_OK,
    "failed": EXIT_FAILED,
    "stopped": EXIT_FAILED,
    "awaiting_approval": EXIT_APPROVAL,
    "paused": EXIT_PAUSED,
}


NO_LIMIT = "none"  # what `limits` prints for a limit that is off, and takes to switch one off
# The limit behind each breaker (engine/breakers.py names them), for the
# hint a paused headless run prints.
BREAKER_LIMITS = {
    "cost": "max_cost_usd",
    "wall_time": "max_wall_time_minutes",
    "failed_steps": "max_failed_steps",
    "regenerations": "max_chain_regenerations",
}


def raised(limit: float | None) -> str:
    """A value to suggest for a limit that was reached: twice what it is
    (a count at least one more), as `limits` takes it."""
    if limit is None or limit <= 0:
        return "1"
    value = max(limit * 2, limit + 1) if float(limit).is_integer() else limit * 2
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _switchable_limit(text: str) -> float | str:
    """A number, or `none` (also `inf`) for no limit: stored as the model's None."""
    if text.strip().lower() in (NO_LIMIT, "inf", "infinity"):
        return NO_LIMIT
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, nor 'none'") from None


# `directive-tui limits ID --max-cost-usd 5 ...`: the Limits fields a person changes.
LIMIT_OPTIONS: list[tuple[str, Any, str]] = [
    ("max_cost_usd", _switchable_limit, "total cost in USD"),
    (
        "max_wall_time_minutes",
        _switchable_limit,
        "wall time in minutes (time paused or waiting for you does not count)",
    ),
    ("max_rework_cycles", int, "rework cycles per step before it is blocked"),
    ("max_chain_regenerations", int, "replans"),
    ("max_parallel_steps", int, "steps running at once"),
    ("max_failed_steps", int, "failed steps before the directive pauses"),
]


def default_db() -> Path:
    env = os.environ.get("DIRECTIVE_TUI_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("directive-tui")) / "directives.db"


class UsageError(Exception):
    """Bad input from the person at the keyboard: exit 2 with the message."""


def is_busy(exc: BaseException | None) -> bool:
    """SQLite's answer when another program held a lock past the store's wait."""
    import sqlite3

    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def readonly_error(exc: BaseException) -> bool:
    """A write SQLite refused because the database (or its folder) is
    read-only for this user: reading it worked, this command writes. The
    store's rule, imported only on this error path."""
    from engine.store import is_readonly

    return is_readonly(exc)


BUSY_WAIT_S = 10  # as the store waits for a lock (engine/store.py's busy_timeout)


def busy_message(db: Path) -> str:
    return (
        f"{db} is busy: another program kept it locked for longer than this command"
        f" waits ({BUSY_WAIT_S} s); try again once it is done"
    )


def command_line(db: Path | None) -> str:
    """How to call this program again on the same database, for the hints
    it prints: with `--db` when this call named one (or the environment
    did), so following a hint never lands on another database."""
    # Absolute: a hint pasted in another folder must reach the same file.
    return program() + (f" --db {shlex.quote(str(db.absolute()))}" if db is not None else "")


def program() -> str:
    """`directive-tui` when the shell finds this program by that name; the
    path it was started by when it does not (a virtualenv's bin/ that is not
    on PATH), so a pasted hint runs."""
    import shutil

    started = sys.argv[0]
    if Path(started).name != "directive-tui" or not os.path.exists(started):
        return "directive-tui"  # `python -m tui.cli`, or a test calling main()
    found = shutil.which("directive-tui")
    if found is not None and os.path.samefile(found, started):
        return "directive-tui"
    return shlex.quote(os.path.abspath(started))


# Commands that create their database when it is missing; every other one
# works on directives that must already be in it.
CREATES_DB = {None, "run", "demo"}


def check_db(db: Path, command: str | None) -> None:
    """Refuse a `--db` that cannot be right before anything is opened: a
    folder, or (for a command that needs existing directives) a missing
    file, which would otherwise be created empty, folders and all."""
    if db.is_dir():
        raise UsageError(
            f"{db} is a folder: --db takes a database file, such as {db / 'directives.db'}"
        )
    if command not in CREATES_DB and not db.exists():
        raise UsageError(f"no database at {db}")
    if command not in CREATES_DB and db.stat().st_size == 0:  # it would be made one
        raise UsageError(f"no database at {db} (an empty file)")
    if db.exists():
        foreign = other_programs_tables(db)
        if foreign:
            tables = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise UsageError(
                f"{db} is another program's SQLite database (its tables: {tables}):"
                " give --db a file of directive-tui's own, or a new path"
            )


def other_programs_tables(db: Path) -> list[str]:
    """The tables of a SQLite file that another program made: tables, but
    none of ours and no schema version of ours (the store would otherwise
    add its tables to it, even for `list`). Read-only; anything that is not
    a readable SQLite file is left to the store to refuse."""
    import sqlite3

    try:
        with open(db, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return []
        from engine.store import foreign_tables  # the store's own rule

        # immutable: the main file only, as it is on disk. A plain reader of a
        # database in WAL mode would leave -wal and -shm files beside it.
        uri = f"{db.resolve().as_uri()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_WAIT_S)
        try:
            names = foreign_tables(conn)
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if is_busy(exc):  # it cannot be told whose it is: wait no longer than the store would
            raise UsageError(busy_message(db)) from exc
        return []
    except (OSError, sqlite3.Error):
        return []
    return names


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


EXIT_CODES_HELP = """\
exit codes:
  0    completed (or the command did what it was asked)
  1    the directive failed or was stopped
  2    bad input: a malformed directive file (nothing is written), an unknown
       id, no database at --db, a database in use or busy
  3    stopped waiting for an approval: answer it, then `resume ID --headless`
  4    paused: a breaker tripped (raise it with `limits`), a person paused it,
       the first plan could not be made, or the repository folder is gone;
       then `resume ID --headless`
  130  interrupted (Ctrl-C): the run stopped; `resume` carries on
  143  terminated (SIGTERM): the run stopped as for Ctrl-C; `resume` carries on
  129  its terminal closed (SIGHUP): the same
  141  the output was closed (`| head`): the run stopped; `resume` carries on
"""

ID_HELP = "directive id (or a unique prefix)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="directive-tui",
        description="Hand a goal to AI coding agents and supervise them with guardrails.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--db",
        type=_db_path,
        help="database file (default: $DIRECTIVE_TUI_DB, else under your user data dir);"
        " also taken after the command",
    )
    p.add_argument(
        "--no-bell",
        dest="bell",
        action="store_false",
        help="the app does not ring the terminal bell when an approval is needed"
        " or a directive pauses or ends by itself",
    )
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="create a directive from a TOML file and start it")
    run.add_argument("file", type=Path, help="a directive file (TOML; see examples/README.md)")
    _headless_flags(run)

    demo = sub.add_parser("demo", help="the offline demo: no key, no network")
    demo.add_argument(
        "--auto",
        action="store_true",
        help="answer every approval by itself: approve plans and reviews, skip a step that escalates (recordings, CI)",
    )
    _headless_flags(demo)

    resume = sub.add_parser("resume", help="resume a directive (paused, or left waiting)")
    resume.add_argument("id", help=ID_HELP)
    _headless_flags(resume)

    ls = sub.add_parser("list", help="list directives")
    ls.add_argument("--json", action="store_true", help="a JSON list")

    ap = sub.add_parser("approvals", help="list pending approvals")
    ap.add_argument("--json", action="store_true", help="a JSON list")

    for name, helptext in (
        ("approve", "approve a pending approval"),
        ("deny", "deny a pending approval"),
        ("request-changes", "send a step back for rework with a comment"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("id", help="approval id (or a unique prefix)")
        cmd.add_argument("-m", "--comment", required=name == "request-changes")

    dec = sub.add_parser("decide", help="answer an escalation: retry, skip, replan or stop")
    dec.add_argument("id", help="approval id (or a unique prefix)")
    dec.add_argument("decision", choices=["retry", "skip", "replan", "stop"])
    dec.add_argument("-m", "--comment")

    for name in ("pause", "stop"):
        cmd = sub.add_parser(name, help=f"{name} a directive")
        cmd.add_argument("id", help=ID_HELP)

    lim = sub.add_parser(
        "limits",
        help="show a directive's limits, or change them (then `resume` after a breaker)",
    )
    lim.add_argument("id", help=ID_HELP)
    for name, kind, what in LIMIT_OPTIONS:
        off = f"; {NO_LIMIT}: no limit" if kind is _switchable_limit else ""
        lim.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=what + off)

    diff = sub.add_parser(
        "diff",
        help="the directive's result so far, as a diff from where your branch was when it started",
    )
    diff.add_argument("id", help=ID_HELP)
    diff.add_argument("--stat", action="store_true", help="files changed, not the diff")

    cps = sub.add_parser(
        "checkpoints", help="where the directive started, then a commit per passed step"
    )
    cps.add_argument("id", help=ID_HELP)

    reset = sub.add_parser("reset", help="reset the directive's branch to a checkpoint")
    reset.add_argument("id", help=ID_HELP)
    reset.add_argument(
        "point",
        type=_reset_point,
        help="a checkpoint's number (0: where the directive started) or commit; see `checkpoints`",
    )
    reset.add_argument(
        "--yes", action="store_true", help="do it (without it, only say what would run again)"
    )

    merge = sub.add_parser("merge", help="fast-forward your branch to the directive's result")
    merge.add_argument("id", help=ID_HELP)

    rm = sub.add_parser(
        "delete",
        help="delete a directive that has ended or never started, with its branch and refs",
    )
    rm.add_argument("id", help=ID_HELP)
    rm.add_argument(
        "--force", action="store_true", help="even when its result is on no other branch"
    )

    ev = sub.add_parser("events", help="print a directive's event log")
    ev.add_argument("id", help=ID_HELP)
    ev.add_argument("--json", action="store_true", help="JSON lines")
    ev.add_argument("--after", type=int, default=0, help="only events after this sequence number")
    for command in sub.choices.values():  # `list --db X` is a common slip: take it there too
        command.add_argument(
            "--db", type=_db_path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return p


def _db_path(text: str) -> Path:
    """`--db ""` would be the current folder: say what was given instead."""
    if not text.strip():
        raise argparse.ArgumentTypeError("it is empty: give a database file, such as directives.db")
    return Path(text)


def _reset_point(text: str) -> str | int:
    """`2` or `#2` is checkpoint number 2 (git takes no commit abbreviation
    under four characters, so short numbers are never commits)."""
    number = text.removeprefix("#")
    return int(number) if number.isdigit() and len(number) < 4 else text


def _headless_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headless", action="store_true", help="no screen: print one line per event")
    p.add_argument("--json", action="store_true", help="with --headless: JSON lines")


# --------------------------------------------------------------------------
# Headless runs
# --------------------------------------------------------------------------


def one_line(text: str) -> str:
    """tui.format's, imported when first needed (this module stays light)."""
    from tui.format import one_line as made_one_line

    return made_one_line(text)


def format_event(event: Any, as_json: bool) -> str:
    """One line: JSON (which escapes what it must), or the text a person
    reads, with a step's line breaks and control characters made visible."""
    if as_json:
        return event.model_dump_json()
    import time

    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    return f"{stamp} #{event.seq:<4} {event.severity.value:<7} {one_line(event.describe())}"


async def _open(db: Path):
    import sqlite3

    from engine.store import Store, StoreError

    try:
        return await Store.open(db)
    except StoreError as exc:
        if is_busy(exc.__cause__):
            raise UsageError(busy_message(db)) from exc
        raise UsageError(str(exc)) from exc
    except (sqlite3.Error, OSError) as exc:  # a folder we may not write in, say
        raise UsageError(f"cannot open the database {db}: {exc}") from exc


@contextlib.asynccontextmanager
async def engine_session(db: Path) -> AsyncIterator[tuple[Any, Any]]:
    """The store and an engine (running no step) for one command: what the
    engine refuses, an unknown id and a move the tables refuse become the
    one-line usage error; both are closed after."""
    from engine.engine import DirectiveEngine, EngineError
    from engine.store import NotFound
    from engine.transitions import InvalidTransition

    store = await _open(db)
    engine = DirectiveEngine(store)
    try:
        yield store, engine
    except (EngineError, NotFound, InvalidTransition) as exc:
        raise UsageError(str(exc)) from exc
    finally:
        await engine.close()
        await store.close()


async def run_headless(
    db: Path,
    *,
    spec: Any = None,
    directive_id: str | None = None,
    as_json: bool = False,
    auto_approve: bool = False,
    services: Any = None,
    out: Any = None,
    command: str | None = None,
    bus: Any = None,
) -> int:
    """Create (from `spec`) or resume (`directive_id`) a directive, print its
    events until it settles, and return the exit code for its outcome.
    `command` starts the hints printed at the end (default: with `--db`);
    `bus` is the engine's event bus (default: a new one)."""
    from engine.approvals import UNATTENDED
    from engine.bus import EventBus
    from engine.engine import DirectiveEngine, EngineError, Outcome
    from engine.lease import LeaseError
    from engine.models import DirectiveStatus
    from engine.store import NotFound
    from engine.transitions import InvalidTransition

    out = out or sys.stdout
    me = command or command_line(db)
    store = await _open(db)
    bus = bus or EventBus()
    engine = DirectiveEngine(store, bus, services)
    printer: asyncio.Task[None] | None = None
    try:
        # The lease first: while another engine runs this database, nothing
        # is written (not even the new directive) and the holder is named.
        await engine.start(only=[], label="directive-tui --headless")
        if spec is not None:
            directive = await engine.create_directive(spec)
        else:
            directive = await store.find_directive(directive_id or "")
        did = directive.id
        sub = bus.subscribe(did)

        printed = 0

        async def catch_up() -> None:
            """Print what the store has after the last line printed: what
            happened before we subscribed (creation, or an earlier run), and
            what the bus dropped while this printer lagged behind (events
            are stored before they are published). A chunk at a time, so a
            long gap is not read into memory at once."""
            nonlocal printed
            while True:
                chunk = await store.list_events(did, after_seq=printed, limit=CATCH_UP_CHUNK)
                for event in chunk:
                    print(format_event(event, as_json), file=out, flush=True)
                    printed = event.seq
                if len(chunk) < CATCH_UP_CHUNK:
                    return

        await catch_up()

        async def follow() -> None:
            """The live events, in order and none twice: a lag (the bus
            cleared our full queue) or any gap is filled from the store."""
            nonlocal printed
            while True:
                event = await sub.get()
                if sub.lagged or event.seq > printed + 1:
                    sub.lagged = False
                    await catch_up()
                if event.seq > printed:
                    print(format_event(event, as_json), file=out, flush=True)
                    printed = event.seq

        async def watch_reader() -> None:
            """A quiet step prints nothing for a long while: is anyone
            still reading?"""
            while not _reader_gone(out):
                await asyncio.sleep(READER_CHECK_S)
            raise BrokenPipeError("the output's reader went away")

        async def print_live() -> None:
            """Both until one fails (the output closed), or this is
            cancelled. Not `wait_for(sub.get(), timeout)`: on Python 3.11
            it can swallow a cancellation that meets an arriving event, and
            the run then waited for ever for its printer to stop."""
            parts = [asyncio.create_task(follow()), asyncio.create_task(watch_reader())]
            try:
                done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_EXCEPTION)
                for part in done:
                    part.result()
            finally:
                for part in parts:
                    part.cancel()
                await asyncio.gather(*parts, return_exceptions=True)

        printer = asyncio.create_task(print_live())

        async def settled() -> Outcome:
            """The outcome, unless the reader of our output went away first
            (`| head`): then the printer's BrokenPipeError ends the run."""
            waiting = asyncio.ensure_future(engine.wait_settled(did))
            try:
                await asyncio.wait({waiting, printer}, return_when=asyncio.FIRST_COMPLETED)
                if printer.done() and printer.exception() is not None:
                    raise printer.exception()  # type: ignore[misc]
                return await waiting
            finally:  # also when interrupted: it must not outlive the store
                waiting.cancel()

        await engine.recover(did)
        if directive.status is DirectiveStatus.DRAFT:
            await engine.start_directive(did)
        elif directive.status is DirectiveStatus.PAUSED:
            await engine.resume_directive(did)
        while True:
            outcome = await settled()
            if outcome is not Outcome.AWAITING_APPROVAL or not auto_approve:
                break
            for approval in await store.pending_approvals(did):
                decision = UNATTENDED[approval.kind]
                await engine.resolve_approval(
                    approval.id, decision, comment="auto-approved (--auto)"
                )
        if outcome is Outcome.COMPLETED and auto_approve:
            await _accept_fast_forward(engine, did)
        await asyncio.sleep(0)  # let the printer drain what is queued
        while not sub.queue.empty() and not printer.done():
            await asyncio.sleep(0.01)
        if printer.done() and printer.exception() is not None:
            raise printer.exception()  # type: ignore[misc]
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        await catch_up()  # the last events, had the bus dropped them with nothing after
        if outcome is Outcome.AWAITING_APPROVAL and not as_json:
            now_d = await store.get_directive(did)
            if not Path(now_d.spec.repo).is_dir():  # the engine refuses every answer till then
                print(
                    f"the repository folder {now_d.spec.repo} is gone:"
                    " put it back before answering (until then only deny and stop are taken)",
                    file=out,
                )
            for approval in await store.pending_approvals(did):
                answers = "\n".join(f"    {line}" for line in answer_commands(approval, me, now_d))
                print(
                    f"waiting for approval {approval.id}: {one_line(approval.summary)}\n"
                    f"  answer with one of:\n{answers}\n"
                    f"  then: {me} resume {did} --headless",
                    file=out,
                )
        if outcome is Outcome.PAUSED and not as_json:
            paused = await store.get_directive(did)
            print(f"paused: {one_line(paused.pause_reason or 'by a person')}", file=out)
            breaker = (paused.pause_reason or "").partition(" breaker:")[0]
            if breaker in BREAKER_LIMITS:
                limit = BREAKER_LIMITS[breaker]
                flag = "--" + limit.replace("_", "-")
                now_at = getattr(paused.spec.limits, limit)
                print(f"  raise the limit: {me} limits {did} {flag} {raised(now_at)}", file=out)
            print(f"  then: {me} resume {did} --headless", file=out)
        return OUTCOME_EXIT[outcome.value]
    except (EngineError, NotFound, InvalidTransition, LeaseError) as exc:
        raise UsageError(str(exc)) from exc
    finally:
        if printer:
            printer.cancel()
        await engine.close()
        await store.close()


def _reader_gone(out: Any) -> bool:
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


async def _accept_fast_forward(engine: Any, directive_id: str) -> None:
    """`--auto` says yes to everything, the offer to take the result too."""
    from engine.engine import EngineError

    try:
        if (await engine.offer_fast_forward(directive_id)).possible:
            await engine.fast_forward_user_branch(directive_id)
    except EngineError:
        pass  # no git workspace: the steps already worked in the tree itself


# --------------------------------------------------------------------------
# Companion commands
# --------------------------------------------------------------------------

# Approval decisions answered by a command of their own; the rest go to `decide`.
ANSWER_VERBS = {"approve": "approve", "deny": "deny", "request_changes": "request-changes"}


def cli_option(option: Any) -> str:
    """An approval's option as the command line spells it (`request-changes`)."""
    return ANSWER_VERBS.get(option.value, option.value)


def offered(approval: Any, directive: Any) -> list[Any]:
    """The answers `approval` takes now: its options, less those the engine
    refuses now (a replan with none left, changes to a plan the directive
    file lists)."""
    from engine.approvals import refused_answers

    refused = refused_answers(approval, directive)
    return [o for o in approval.options if o not in refused]


def answer_commands(approval: Any, me: str, directive: Any) -> list[str]:
    """The commands that answer `approval`: only the decisions it takes now."""
    options = offered(approval, directive)
    lines = []
    for option in options:
        verb = ANSWER_VERBS.get(option.value)
        if verb:
            comment = ' -m "what to change"' if verb == "request-changes" else ""
            lines.append(f"{me} {verb} {approval.id}{comment}")
    # One line each, every one pasteable (`retry|skip` in a shell is a pipe).
    lines += [
        f"{me} decide {approval.id} {o.value}" for o in options if o.value not in ANSWER_VERBS
    ]
    return lines


async def list_directives(db: Path, as_json: bool, out: Any) -> int:
    import json

    store = await _open(db)
    try:
        from engine.models import Progress

        progress = await store.progress()
        rows = []
        for d in await store.list_directives():
            p = progress.get(d.id, Progress())
            rows.append(
                {
                    "id": d.id,
                    "title": d.title,
                    "status": d.status.value,
                    "steps_done": p.done,  # passed or skipped
                    "steps_skipped": p.skipped,
                    "steps_total": p.total,
                    "cost_usd": round(d.total_cost_usd, 6),
                    "max_cost_usd": d.spec.limits.max_cost_usd,
                    "pending_approvals": p.pending_approvals,
                    "pause_reason": d.pause_reason,
                }
            )
        if as_json:
            print(json.dumps(rows, indent=2), file=out)
        elif not rows:
            print(f"no directives in {db}", file=out)
        else:
            for r in rows:
                skipped = f" ({r['steps_skipped']} skipped)" if r["steps_skipped"] else ""
                extra = f"  ({one_line(r['pause_reason'])})" if r["pause_reason"] else ""
                print(
                    f"{r['id']}  {r['status']:<10} {r['steps_done']}/{r['steps_total']} steps"
                    f"{skipped}  ${r['cost_usd']:.2f}  {plural(r['pending_approvals'], 'approval')}"
                    f"  {r['title']}{extra}",
                    file=out,
                )
        return EXIT_OK
    finally:
        await store.close()


def plural(count: int, noun: str) -> str:
    """`1 approval`, `2 approvals`, `0 approvals`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


TITLE_WIDTH = 24  # a directive's title beside each of its approvals


def shorten(text: str, width: int) -> str:
    """`text` on one line of at most `width` characters, cut with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


async def list_approvals(db: Path, as_json: bool, out: Any) -> int:
    import json

    store = await _open(db)
    try:
        pending = await store.pending_approvals()
        if as_json:
            print(json.dumps([a.model_dump(mode="json") for a in pending], indent=2), file=out)
        else:
            directives = {d.id: d for d in await store.list_directives()}
            titles = {i: shorten(d.title, TITLE_WIDTH) for i, d in directives.items()}
            width = max((len(titles[a.directive_id]) for a in pending), default=0)
            for a in pending:
                options = "/".join(cli_option(o) for o in offered(a, directives[a.directive_id]))
                title = titles[a.directive_id]
                print(
                    f"{a.id}  {a.kind.value:<11} [{options}]  {title:<{width}}  {one_line(a.summary)}",
                    file=out,
                )
        return EXIT_OK
    finally:
        await store.close()


async def resolve(
    db: Path,
    approval_id: str,
    decision: str,
    comment: str | None,
    out: Any,
    me: str = "directive-tui",
) -> int:
    async with engine_session(db) as (store, engine):
        approval = await store.find_approval(approval_id)
        if approval.pending and decision not in {o.value for o in approval.options}:
            allowed = ", ".join(cli_option(o) for o in approval.options)
            directive = await store.get_directive(approval.directive_id)
            answers = "\n  ".join(answer_commands(approval, me, directive))
            raise UsageError(
                f"approval {approval.id} ({approval.kind.value}) takes {allowed},"
                f" not {ANSWER_VERBS.get(decision, decision)}; answer with one of:\n  {answers}"
            )
        resolved = await engine.resolve_approval(approval.id, decision, comment)
        # An escalation's status is only `resolved`: say which way.
        how = f" ({resolved.decision.value})" if resolved.kind.value == "escalation" else ""
        print(f"approval {resolved.id}: {resolved.status.value}{how}", file=out)
        return EXIT_OK


async def directive_command(db: Path, directive_id: str, action: str, out: Any) -> int:
    """`pause` or `stop`: already so is done (exit 0); a directive that can
    no longer get there is told in words, not as a state-machine move."""
    from engine.approvals import either
    from engine.transitions import DIRECTIVE_TRANSITIONS

    target = {"pause": "paused", "stop": "stopped"}[action]
    async with engine_session(db) as (store, engine):
        d = await store.find_directive(directive_id)
        if d.status.value == target:
            print(f"directive {d.id}: already {target}", file=out)
            return EXIT_OK
        sources = [s.value for s, nxt in DIRECTIVE_TRANSITIONS.items() if target in nxt]
        if d.status.value not in sources:
            raise UsageError(
                f"directive {d.id} is {d.status.value}: only a directive that is"
                f" {either(sources)} can be {target}"
            )
        await getattr(engine, f"{action}_directive")(d.id)
        print(f"directive {d.id}: {(await store.get_directive(d.id)).status.value}", file=out)
        return EXIT_OK


async def limits_command(
    db: Path, args: argparse.Namespace, out: Any, me: str = "directive-tui"
) -> int:
    """Print the limits against what was used; with options, change them
    first (validated as a whole: a bad value changes nothing)."""
    from pydantic import ValidationError

    from engine.breakers import breaker_reason, duration

    given = {name: getattr(args, name) for name, _, _ in LIMIT_OPTIONS}
    changes = {k: None if v == NO_LIMIT else v for k, v in given.items() if v is not None}
    async with engine_session(db) as (store, engine):
        d = await store.find_directive(args.id)
        if changes:
            try:
                await engine.raise_limits(d.id, **changes)
            except ValidationError as exc:
                problems = "; ".join(
                    f"--{'-'.join(str(p) for p in e['loc'])}".replace("_", "-")
                    + f": {_limit_problem(e)}"
                    for e in exc.errors()
                )
                raise UsageError(f"limits not changed: {problems}") from exc
            d = await store.get_directive(d.id)
        limits = d.spec.limits
        used = {
            "max_cost_usd": f"${d.total_cost_usd:.2f}",
            "max_wall_time_minutes": duration(d.wall_time_s()),
            "max_chain_regenerations": str(d.regenerations),
            "max_failed_steps": str(d.failed_steps),
        }
        for name, _, what in LIMIT_OPTIONS:
            value = getattr(limits, name)
            shown = NO_LIMIT if value is None else f"{value:g}"
            spent = f"  (used {used[name]})" if name in used else ""
            print(f"{name:<24} {shown:>8}{spent}  {what}", file=out)
        tripped = breaker_reason(d)
        if tripped:
            print(f"still over a limit: {tripped[1]}", file=out)
        elif d.status.value == "paused":
            print(f"within its limits: `{me} resume {d.id} --headless`", file=out)
        return EXIT_OK


# pydantic's bound errors, in the words a directive file's are given in.
BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than_equal": ("le", "at most"),
}


def _limit_problem(error: Any) -> str:
    """`must be at least 1, got 0` (pydantic: `Input should be greater than
    or equal to 1`)."""
    if error["type"] not in BOUNDS:
        return str(error["msg"])
    key, words = BOUNDS[error["type"]]
    return f"must be {words} {error['ctx'][key]:g}, got {error['input']:g}"


async def print_events(db: Path, directive_id: str, after: int, as_json: bool, out: Any) -> int:
    from engine.store import NotFound

    store = await _open(db)
    try:
        d = await store.find_directive(directive_id)
        for event in await store.list_events(d.id, after_seq=after):
            print(format_event(event, as_json), file=out)
        return EXIT_OK
    except NotFound as exc:
        raise UsageError(str(exc)) from exc
    finally:
        await store.close()


async def git_command(db: Path, args: argparse.Namespace, out: Any) -> int:
    """The directive's git workspace: its diff, checkpoints, reset, merge."""
    from engine.worktrees import START_LABEL

    async with engine_session(db) as (store, engine):
        did = (await store.find_directive(args.id)).id
        if args.command == "diff":
            print(await engine.final_diff(did, stat=args.stat), file=out, end="")
        elif args.command == "checkpoints":
            start = await engine.start_point(did)
            print(f"{start.sha[:12]}  #{start.seq:<3} {START_LABEL}", file=out)
            for cp in await engine.checkpoints(did):
                print(
                    f"{cp.sha[:12]}  #{cp.seq:<3} {cp.step_slug} (attempt {cp.attempt})", file=out
                )
        elif args.command == "merge":
            return await merge(engine, await store.get_directive(did), out)
        elif args.yes:
            rerun = await engine.reset_to_checkpoint(did, args.point)
            print(f"reset; to run again: {', '.join(rerun) or 'nothing'}", file=out)
        else:
            rerun = await engine.preview_reset(did, args.point)
            print(f"would run again: {', '.join(rerun) or 'nothing'}; add --yes to reset", file=out)
        return EXIT_OK


async def delete_command(db: Path, directive_id: str, force: bool, out: Any, me: str) -> int:
    """Delete for good, saying what went; what the engine keeps unless
    forced (a result on no other branch, refs in a repository folder that is
    gone) is refused with the way to take it first, or `--force`."""
    from engine.engine import NeedsForce, ResultOnlyHere

    async with engine_session(db) as (store, engine):
        d = await store.find_directive(directive_id)
        try:
            said = await engine.delete_directive(d.id, force=force)
        except ResultOnlyHere as exc:
            take = f" (`{me} merge {d.id}`)" if exc.fast_forward else ""
            raise UsageError(f"{exc}: take it first{take}, or add --force to drop it") from exc
        except NeedsForce as exc:
            raise UsageError(f"{exc}; or add --force to delete it anyway") from exc
        for line in said:
            print(line, file=out)
        return EXIT_OK


async def merge(engine: Any, directive: Any, out: Any) -> int:
    """Fast-forward the user's branch to the result, naming the branch; a
    branch that already has the result is done already (exit 0)."""
    offer = await engine.offer_fast_forward(directive.id)
    if offer.possible:
        sha = await engine.fast_forward_user_branch(directive.id)
        print(f"fast-forwarded {offer.branch} to {sha[:12]}", file=out)
        return EXIT_OK
    if offer.branch and await _has_commit(directive.spec.repo, offer.branch, offer.target_sha):
        print(
            f"already merged: {offer.branch} has the directive's result ({offer.target_sha[:12]})",
            file=out,
        )
        return EXIT_OK
    raise UsageError(f"cannot merge: {offer.reason}")


async def _has_commit(repo: Path, branch: str, sha: str) -> bool:
    """Is `sha` on `branch` (its tip, or behind it) in `repo`? Through the
    engine's git runner, which a cancellation cannot cut off mid-start."""
    from engine.git import run_git

    ancestor = ["merge-base", "--is-ancestor", sha, f"refs/heads/{branch}"]
    return (await run_git(Path(repo), *ancestor, check=False)).code == 0


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


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


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


class Terminated(Exception):
    """SIGTERM or SIGHUP arrived while a command ran: it was stopped as
    Ctrl-C stops it. `code`: 128 + the signal's number, as a shell reports a
    process the signal ended."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.code = 128 + signum


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
            return run_async(_demo_headless(db, args.auto, args.json, me))
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


async def _demo_headless(db: Path, auto: bool, as_json: bool, me: str) -> int:
    import tempfile

    from engine.demo import DemoError, prepare_demo

    root = Path(tempfile.mkdtemp(prefix="directive-demo-"))
    try:
        spec = await prepare_demo(root)
    except DemoError as exc:
        raise UsageError(f"cannot prepare the demo: {exc}") from exc
    code = await run_headless(db, spec=spec, as_json=as_json, auto_approve=auto, command=me)
    # Its hints (`merge` fast-forwards master) are about a folder made for
    # it: say where (on stderr beside JSON lines, which hold only events).
    print(f"the demo's repository: {spec.repo}", file=sys.stderr if as_json else sys.stdout)
    return code


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
