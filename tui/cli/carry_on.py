"""What carries a directive on after a command wrote to it (an answer, a
limit): the engine running the database, which picks the write up at
once, or, when none runs it, the command that does. The write alone runs
nothing: said plainly, a script or a person does not wait for a step that
no process will start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui.cli.text import one_line

GOING = ("active", "planning")  # a directive an engine drives on its own


async def runner_brief(db: Path) -> str | None:
    """Who runs `db` now ('directive-tui app' (pid 12 on host)), or None."""
    from engine.lease import EngineLease

    runner = await EngineLease.runner(db)
    return runner.brief() if runner is not None else None


async def after_answer(store: Any, db: Path, directive_id: str, me: str) -> list[str]:
    """The lines after an answer: the approvals the directive waits for now
    (a deny opens an escalation), else who carries it on."""
    d = await store.get_directive(directive_id)
    if d.status.value not in GOING:
        return []
    waiting = await store.pending_approvals(directive_id)
    if waiting:
        return [f"waiting for approval {a.id}: {one_line(a.summary)}" for a in waiting] + [
            f"  its answers: {me} approvals"
        ]
    return [await carried_on_by(db, d.id, me)]


async def carried_on_by(db: Path, directive_id: str, me: str) -> str:
    """The engine running `db` carries it on; with none, `resume` does."""
    runner = await runner_brief(db)
    if runner is not None:
        return f"{runner} runs this database: it carries the directive on"
    return f"nothing runs this database now: `{me} resume {directive_id} --headless` carries on"


async def resume_hint(db: Path, directive_id: str, me: str) -> str:
    """How to resume a paused directive. Where another engine runs the
    database a headless resume is refused (one engine per file): the app
    opened on it watches, and has that engine resume it."""
    runner = await runner_brief(db)
    if runner is not None:
        return (
            f"{runner} runs this database, so a headless resume would be refused:"
            f" `{me} resume {directive_id}` opens the app on it, which has that engine resume it"
        )
    return f"`{me} resume {directive_id} --headless`"


async def who_runs(db: Path, going: list[str], me: str) -> str:
    """Under `list`: who runs the directives still going (`going`: their
    ids), or that nothing does, with the command that would."""
    from engine.text import plural

    runner = await runner_brief(db)
    if runner is not None:
        return f"run by {runner}"
    if len(going) == 1:
        (did,) = going
        return f"nothing runs this database now: {did} waits for the app or `{me} resume {did} --headless`"
    return (
        f"nothing runs this database now: {plural(len(going), 'active directive')} wait"
        f" for the app or `{me} resume ID --headless`"
    )
