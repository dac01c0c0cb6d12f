"""A run without a screen (`run`, `resume` or `demo` with `--headless`):
the directive's events printed until it settles, then what to do next,
and the exit code for its outcome."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any

from tui.cli.approvals import answer_commands
from tui.cli.exits import OUTCOME_EXIT, TryLater, UsageError
from tui.cli.limits import BREAKER_LIMITS, raised
from tui.cli.printer import EventPrinter
from tui.cli.program import command_line
from tui.cli.session import open_store
from tui.cli.text import one_line


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
    from engine.lease import LeaseError, LeaseHeld
    from engine.models import DirectiveStatus
    from engine.store import NotFound
    from engine.transitions import InvalidTransition

    out = out or sys.stdout
    me = command or command_line(db)
    store = await open_store(db)
    bus = bus or EventBus()
    engine = DirectiveEngine(store, bus, services)
    printing: asyncio.Task[None] | None = None
    printer: EventPrinter | None = None
    interrupted = False
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
        printer = EventPrinter(store, did, sub, out, as_json)
        await printer.catch_up()
        printing = asyncio.create_task(printer.print_live())

        async def settled() -> Outcome:
            """The outcome, unless the reader of our output went away first
            (`| head`): then the printer's BrokenPipeError ends the run."""
            waiting = asyncio.ensure_future(engine.wait_settled(did))
            try:
                await asyncio.wait({waiting, printing}, return_when=asyncio.FIRST_COMPLETED)
                if printing.done() and printing.exception() is not None:
                    raise printing.exception()  # type: ignore[misc]
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
        while not sub.queue.empty() and not printing.done():
            await asyncio.sleep(0.01)
        if printing.done() and printing.exception() is not None:
            raise printing.exception()  # type: ignore[misc]
        printing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printing
        await printer.catch_up()  # the last events, had the bus dropped them with nothing after
        if outcome is Outcome.AWAITING_APPROVAL and not as_json:
            await _print_approvals_to_answer(store, did, me, out)
        if outcome is Outcome.PAUSED and not as_json:
            await _print_why_paused(store, did, me, out)
        return OUTCOME_EXIT[outcome.value]
    except LeaseHeld as exc:  # another engine runs here: the same command works later
        raise TryLater(str(exc)) from exc
    except (EngineError, NotFound, InvalidTransition, LeaseError) as exc:
        raise UsageError(str(exc)) from exc
    except asyncio.CancelledError:  # Ctrl-C, SIGTERM, SIGHUP (see signals.py)
        interrupted = True
        raise
    finally:
        if printing:
            printing.cancel()
        await engine.close()
        if interrupted and printer is not None:
            await _say_interrupted(printer, me, sys.stderr if as_json else out, as_json)
        await store.close()


async def _say_interrupted(
    printer: EventPrinter, me: str, note_to: Any, as_json: bool = False
) -> None:
    """After an interrupted run's engine closed: the events its closing
    wrote (the steps put back to run again, the clock stopped), so the log
    ends where the directive is, then how to carry on. Not when the
    output's reader is gone: that is why it stopped."""
    with contextlib.suppress(OSError):  # BrokenPipeError among them
        await printer.catch_up()
        print(
            f"interrupted: `{me} resume {printer.directive_id} --headless"
            f"{' --json' if as_json else ''}` carries on",
            file=note_to,
            flush=True,
        )


async def _print_approvals_to_answer(store: Any, did: str, me: str, out: Any) -> None:
    """Each pending approval with the commands that answer it, then how to
    carry on."""
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


async def _print_why_paused(store: Any, did: str, me: str, out: Any) -> None:
    """Why it paused; after a breaker, the limit to raise; then how to carry on."""
    paused = await store.get_directive(did)
    print(f"paused: {one_line(paused.pause_reason or 'by a person')}", file=out)
    breaker = (paused.pause_reason or "").partition(" breaker:")[0]
    if breaker in BREAKER_LIMITS:
        limit = BREAKER_LIMITS[breaker]
        flag = "--" + limit.replace("_", "-")
        now_at = getattr(paused.spec.limits, limit)
        print(f"  raise the limit: {me} limits {did} {flag} {raised(now_at)}", file=out)
    print(f"  then: {me} resume {did} --headless", file=out)


async def _accept_fast_forward(engine: Any, directive_id: str) -> None:
    """`--auto` says yes to everything, the offer to take the result too."""
    from engine.engine import EngineError

    try:
        if (await engine.offer_fast_forward(directive_id)).possible:
            await engine.fast_forward_user_branch(directive_id)
    except EngineError:
        pass  # no git workspace: the steps already worked in the tree itself


async def demo_headless(db: Path, auto: bool, as_json: bool, me: str, out: Any = None) -> int:
    """`demo --headless`: the demo's repository made in a new folder, then
    a headless run of its directive, printed to `out` (default: stdout)."""
    import tempfile

    from engine.demo import DemoError, prepare_demo

    root = Path(tempfile.mkdtemp(prefix="directive-demo-"))
    try:
        spec = await prepare_demo(root)
    except DemoError as exc:
        raise UsageError(f"cannot prepare the demo: {exc}") from exc
    out = out or sys.stdout
    try:
        code = await run_headless(
            db, spec=spec, as_json=as_json, auto_approve=auto, out=out, command=me
        )
    except TryLater:  # refused before any directive was made: its folder goes too
        shutil.rmtree(root, ignore_errors=True)
        raise
    # Its hints (`merge` fast-forwards master) are about a folder made for
    # it: say where (on stderr beside JSON lines, which hold only events).
    print(f"the demo's repository: {spec.repo}", file=sys.stderr if as_json else out)
    return code
