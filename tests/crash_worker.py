"""The process the crash fuzzer kills: run one directive to its end on a
database, answering every approval by itself.

    python -m tests.crash_worker DB DIRECTIVE.toml

Started again and again on the same database (and SIGKILLed at random
moments in between), it picks up wherever the last one died: creates the
directive if the database has none yet, starts it if it is still a draft,
resumes it if paused, and otherwise lets the engine's recovery go on. Step
reviews are approved, escalations retried, plans approved: what a patient
person would do, so the final outcome must match an uninterrupted run.

Exit codes are the headless command's (0 completed, 1 failed or stopped,
4 paused); a worker that loses the engine lease to another exits 5.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from engine.bus import EventBus
from engine.directive_file import load_directive_file
from engine.engine import DirectiveEngine, EngineServices, Outcome
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


async def run(db: Path, directive_file: Path) -> int:
    store = await Store.open(db)
    engine = DirectiveEngine(store, EventBus(), EngineServices(output_flush_s=0.01))
    try:
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
    finally:
        await engine.close()
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crash_worker")
    parser.add_argument("db", type=Path)
    parser.add_argument("directive", type=Path)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.db, args.directive))


if __name__ == "__main__":
    sys.exit(main())
