"""The commands on a directive as a whole: `list`, `pause`/`stop`, and
`delete`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.text import plural
from tui.cli.carry_on import GOING, who_runs
from tui.cli.exits import EXIT_OK, UsageError
from tui.cli.session import engine_session, open_store
from tui.cli.text import one_line


async def list_directives(db: Path, as_json: bool, out: Any, me: str = "directive-tui") -> int:
    """The directives, oldest first; in text, then who runs those still
    going, or that nothing does (they wait, however long, for a resume)."""
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
            # Still going on its own: not ended, paused, nor waiting for a person.
            going = [r["id"] for r in rows if r["status"] in GOING and not r["pending_approvals"]]
            if going:
                print(await who_runs(db, going, me), file=out)
        return EXIT_OK
    finally:
        await store.close()


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
