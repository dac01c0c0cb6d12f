"""The process the crash fuzzer kills: run one directive to its end on a
database, answering every approval by itself.

    python -m tests.crash_worker DB DIRECTIVE.toml

Started again and again on the same database (and SIGKILLed at random
moments in between), it picks up wherever the last one died: creates the
directive if the database has none yet, starts it if it is still a draft,
resumes it if paused, and otherwise lets the engine's recovery go on. Step
reviews are approved, escalations retried, plans approved: what a patient
person would do, so the final outcome must match an uninterrupted run.

With `--lease` the worker first takes the engine lease (engine/lease.py)
and refuses to run, exit 2 with the holder named on stderr, while another
live engine holds it: the two-process tests run it side by side.

Exit codes are the headless command's (0 completed, 1 failed or stopped,
2 refused, 4 paused); a worker whose lease is taken from it exits 5.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from engine.bus import EventBus
from engine.directive_file import load_directive_file
from engine.engine import DirectiveEngine, EngineServices, Outcome
from engine.lease import EngineLease, LeaseHeld
from engine.models import ApprovalDecision, ApprovalKind, DirectiveStatus
from engine.store import Store

EXIT = {
    Outcome.COMPLETED: 0,
    Outcome.FAILED: 1,
    Outcome.STOPPED: 1,
    Outcome.PAUSED: 4,
}

# What the worker answers, by the kind of approval.
ANSWER = {
    ApprovalKind.STEP_REVIEW: ApprovalDecision.APPROVE,
    ApprovalKind.PLAN: ApprovalDecision.APPROVE,
    ApprovalKind.ESCALATION: ApprovalDecision.RETRY,
}


EXIT_REFUSED, EXIT_LEASE_LOST = 2, 5


async def run(db: Path, directive_file: Path, *, lease: bool = False) -> int:
    store = await Store.open(db)
    held: EngineLease | None = None
    if lease:
        me = asyncio.current_task()
        try:
            held = await EngineLease.acquire(
                store, "crash worker", heartbeat_s=0.5, stale_after_s=5, on_lost=me and me.cancel
            )
        except LeaseHeld as exc:
            print(f"refused: {exc}", file=sys.stderr, flush=True)
            await store.close()
            return EXIT_REFUSED
        if held.taken_over:
            print(held.taken_over, flush=True)
    # The worker holds the lease itself (short heartbeat, and it exits 5 on
    # losing it), so its engine takes none of its own.
    services = EngineServices(output_flush_s=0.01, take_lease=False)
    engine = DirectiveEngine(store, EventBus(), services)
    try:
        return await _drive(engine, store, directive_file)
    except asyncio.CancelledError:
        if held is not None and held.lost.is_set():
            print("lease lost: stopping", file=sys.stderr, flush=True)
            return EXIT_LEASE_LOST
        raise
    finally:
        await engine.close()
        if held is not None:
            await held.release()
        await store.close()


async def _drive(engine: DirectiveEngine, store: Store, directive_file: Path) -> int:
    directives = await store.list_directives()
    if directives:
        directive = directives[0]
    else:
        directive = await engine.create_directive(load_directive_file(directive_file))
    did = directive.id
    await engine.start(only=[did])
    if directive.status is DirectiveStatus.DRAFT:
        await engine.start_directive(did)
    elif directive.status is DirectiveStatus.PAUSED:
        await engine.resume_directive(did)
    while True:
        outcome = await engine.wait_settled(did)
        if outcome is not Outcome.AWAITING_APPROVAL:
            break
        for approval in await store.pending_approvals(did):
            await engine.resolve_approval(approval.id, ANSWER[approval.kind], "crash worker")
    print(f"outcome {outcome.value}", flush=True)
    return EXIT[outcome]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crash_worker")
    parser.add_argument("db", type=Path)
    parser.add_argument("directive", type=Path)
    parser.add_argument("--lease", action="store_true", help="take the engine lease first")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.db, args.directive, lease=args.lease))


if __name__ == "__main__":
    sys.exit(main())
