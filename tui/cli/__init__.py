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

from tui.cli.database import busy_message, check_db, default_db, is_busy, readonly_error
from tui.cli.exits import (
    EXIT_APPROVAL,  # noqa: F401  (tests import it from here until they import it from exits)
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT_CLOSED,
    OUTCOME_EXIT,
    Terminated,
    UsageError,
)
from tui.cli.limits import BREAKER_LIMITS, limits_command, raised
from tui.cli.parser import build_parser
from tui.cli.program import command_line
from tui.cli.session import engine_session, open_store
from tui.cli.text import one_line, plural, shorten

READER_CHECK_S = 1.0  # how often a quiet headless run checks its output is still read
CATCH_UP_CHUNK = 5000  # events read from the store at a time when the printer catches up


# --------------------------------------------------------------------------
# Headless runs
# --------------------------------------------------------------------------


def format_event(event: Any, as_json: bool) -> str:
    """One line: JSON (which escapes what it must), or the text a person
    reads, with a step's line breaks and control characters made visible."""
    if as_json:
        return event.model_dump_json()
    import time

    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    return f"{stamp} #{event.seq:<4} {event.severity.value:<7} {one_line(event.describe())}"


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
    store = await open_store(db)
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

    store = await open_store(db)
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


TITLE_WIDTH = 24  # a directive's title beside each of its approvals


async def list_approvals(db: Path, as_json: bool, out: Any) -> int:
    import json

    store = await open_store(db)
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
