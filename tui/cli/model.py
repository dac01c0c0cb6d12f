"""`directive-tui model ID [NAME]`: the Claude model a directive uses, and
changing it, the way out of a model the API does not know (a 404 paused
it): a directive file edited afterwards does not reach a directive made."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tui.cli.carry_on import resume_hint
from tui.cli.exits import EXIT_OK, UsageError
from tui.cli.session import engine_session


async def model_command(
    db: Path, args: argparse.Namespace, out: Any, me: str = "directive-tui"
) -> int:
    """Print the directive's model; with a name (or --default), set it
    first, then say what carries the directive on."""
    from engine.pricing import DEFAULT_MODEL, model_warnings

    if args.name is not None and args.default:
        raise UsageError("model: give a model name or --default, not both")
    async with engine_session(db) as (store, engine):
        d = await store.find_directive(args.id)
        if args.name is None and not args.default:
            print(_shown(d.spec.model, DEFAULT_MODEL), file=out)
            return EXIT_OK
        wanted = None if args.default else args.name.strip()
        if wanted == d.spec.model:  # nothing to change, nothing written
            print(f"directive {d.id}: model {_shown(wanted, DEFAULT_MODEL)} already", file=out)
            return EXIT_OK
        old, new = await engine.set_model(d.id, wanted)
        was = old or "not set"
        print(f"directive {d.id}: model {_shown(new, DEFAULT_MODEL)} (was {was})", file=out)
        for warning in model_warnings(new) if new else []:
            print(f"directive-tui: {warning}", file=sys.stderr)
        d = await store.get_directive(d.id)
        if d.status.value == "paused":
            print(f"from its next call on: {await resume_hint(db, d.id, me)}", file=out)
        return EXIT_OK


def _shown(model: str | None, default: str) -> str:
    if model:
        return model
    return f"not set: DIRECTIVE_MODEL where its engine runs, else {default}"
