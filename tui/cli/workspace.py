"""The directive's git workspace on the command line: `diff`,
`checkpoints`, `reset` and `merge`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tui.cli.exits import EXIT_OK, UsageError
from tui.cli.session import engine_session


async def git_command(db: Path, args: argparse.Namespace, out: Any) -> int:
    """The directive's git workspace: its diff, checkpoints, reset, merge."""
    from engine.checkpoints import START_LABEL

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
            return await merge(engine, await store.get_directive(did), out, _me(db, args))
        elif args.yes:
            rerun = await engine.reset_to_checkpoint(did, args.point)
            print(f"reset; to run again: {', '.join(rerun) or 'nothing'}", file=out)
        else:
            rerun = await engine.preview_reset(did, args.point)
            print(f"would run again: {', '.join(rerun) or 'nothing'}; add --yes to reset", file=out)
        return EXIT_OK


def _me(db: Path, args: argparse.Namespace) -> str:
    """This program on this database, as the entry point names it for the
    hints it prints (`--db` when this call or the environment chose one)."""
    from tui.cli.program import command_line

    named = getattr(args, "db", None) is not None or bool(os.environ.get("DIRECTIVE_TUI_DB"))
    return command_line(db if named else None)


async def merge(engine: Any, directive: Any, out: Any, me: str = "directive-tui") -> int:
    """Fast-forward the user's branch to the result, naming the branch, where
    it was, how to undo it and that `delete` may now go; a branch that
    already has the result is done already (exit 0)."""
    from engine.engine import DELETABLE
    from tui.format import undo_command

    offer = await engine.offer_fast_forward(directive.id)
    if offer.possible:
        sha = await engine.fast_forward_user_branch(directive.id)
        old = offer.current_sha
        print(f"fast-forwarded {offer.branch} to {sha[:12]} (it was at {old[:12]})", file=out)
        print(
            f"to undo, while {offer.branch} is still at {sha[:12]}: {undo_command(offer, directive.spec.repo)}",
            file=out,
        )
        if directive.status in DELETABLE:
            print(
                f"{offer.branch} has the result now: `{me} delete {directive.id}` removes the"
                f" directive's branch directive/{directive.id}/integration and its refs",
                file=out,
            )
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
