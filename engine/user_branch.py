"""The user's branch: whether it can be fast-forwarded to the directive's
result, and doing it. The one place the engine moves the user's branch,
and only on the user's say-so."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.git_repo import GitRepo
from engine.text import plural


@dataclass(frozen=True)
class FastForwardOffer:
    possible: bool
    branch: str | None
    target_sha: str
    reason: str  # why not, or what it would do: shown to the user as is
    worktree: Path | None = None  # where the branch is checked out, if anywhere
    current_sha: str | None = None  # where the branch is now, when it exists
    # refused only for what the checkout at `worktree` holds (uncommitted
    # changes, files git does not track that the result would overwrite):
    # once the user tidies it, `merge` goes ahead
    blocked_by_checkout: bool = False


async def offer_fast_forward(
    git: GitRepo, branch: str | None, integration_branch: str, tip: str
) -> FastForwardOffer:
    """Can the user's `branch` (the one checked out when the directive
    started) be fast-forwarded to `tip`, the integration branch's? Read only."""

    def no(
        reason: str, where: Path | None = None, cur: str | None = None, *, blocked: bool = False
    ) -> FastForwardOffer:
        return FastForwardOffer(False, branch, tip, reason, where, cur, blocked)

    if branch is None:
        return no(
            f"the repository was on a detached HEAD when the directive started; "
            f"merge {integration_branch} yourself"
        )
    current = await git.run(
        git.top, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False
    )
    if current.code != 0:
        return no(f"branch {branch} no longer exists; merge {integration_branch} yourself")
    cur = current.out.strip()
    if cur == tip:
        return no(f"{branch} is already at {tip[:12]}: nothing to fast-forward", cur=cur)
    if not await git.is_ancestor(cur, tip):
        return no(
            f"{branch} has moved on since the directive started; "
            f"merge {integration_branch} into it yourself",
            cur=cur,
        )
    where = next(
        (e.path for e in await git.worktrees() if e.branch == f"refs/heads/{branch}"),
        None,
    )
    if where is not None and await git.dirty(where, untracked=False):
        return no(
            f"{where} has uncommitted changes: commit or stash them first",
            where,
            cur,
            blocked=True,
        )
    if where is not None:
        in_the_way = await untracked_in_the_way(git, where, cur, tip)
        if in_the_way:
            return no(_in_the_way(where, in_the_way), where, cur, blocked=True)
    count = (await git.run(git.top, "rev-list", "--count", f"{cur}..{tip}")).out.strip()
    return FastForwardOffer(
        True,
        branch,
        tip,
        f"fast-forward {branch} {cur[:12]} -> {tip[:12]} ({plural(int(count), 'commit')})",
        where,
        cur,
    )


async def untracked_in_the_way(git: GitRepo, where: Path, cur: str, tip: str) -> list[str]:
    """The paths in the checkout at `where` (at `cur`, clean) that git does
    not track there and moving it to `tip` would overwrite or remove: a
    file where the result adds one, or where it needs a folder, and a
    folder with untracked files where the result adds a file. Git refuses
    to overwrite untracked files but overwrites ignored ones without a
    word (a local `config.local` that the result starts tracking), so
    both are looked for here, before anything is touched. Read only."""
    out = await git.run(git.top, "diff-tree", "-r", "-z", "--name-status", "--no-renames", cur, tip)
    fields = out.out.split("\0")
    added, deleted = [], set()
    for status, path in zip(fields[0::2], fields[1::2], strict=False):
        if status == "A":
            added.append(path)
        elif status == "D":
            deleted.add(path)
    found: dict[str, None] = {}  # in the order met, once each
    folders: list[str] = []
    for path in added:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            rel = "/".join(parts[:depth])
            full = where / rel
            if not os.path.lexists(full):
                break  # nothing here, nor below it
            if full.is_dir() and not full.is_symlink():
                if depth == len(parts):  # a folder where the result adds a file
                    folders.append(rel)
                continue
            if rel not in deleted:  # a tracked file the result removes goes anyway
                found[rel] = None
            break
    if folders:  # what git does not track in them, ignored files too
        specs = [f":(literal){f}/" for f in folders]
        listed = await git.run(
            where, "ls-files", "-z", "--others", "--directory", "--no-empty-directory", "--", *specs
        )
        for rel in listed.out.split("\0"):
            if rel:
                found[rel] = None
    return list(found)


def _in_the_way(where: Path, paths: list[str], shown: int = 5) -> str:
    names = ", ".join(paths[:shown])
    if len(paths) > shown:
        names += f" and {len(paths) - shown} more"
    one = len(paths) == 1
    them, paths_word = ("it", "that path") if one else ("them", "those paths")
    return (
        f"{where} has {names}, not tracked by git there (ignored or untracked), and the result"
        f" adds tracked files at {paths_word}: the fast-forward would overwrite {them}."
        f" Move {them} aside (out of the checkout) first"
    )


async def fast_forward_as_offered(git: GitRepo, offer: FastForwardOffer) -> str:
    """Fast-forward the user's branch to the integration tip, as `offer`
    says: `merge --ff-only` in the checkout that has it, or a checked ref
    update when no checkout has it. Only ever on the user's explicit say-so."""
    if not offer.possible or offer.branch is None:
        raise ValueError(f"cannot fast-forward: {offer.reason}")
    if offer.worktree is not None:
        # --no-overwrite-ignore: an ignored file that turned up since the
        # offer makes git refuse, as an untracked one does, not vanish
        await git.run(
            offer.worktree, "merge", "--ff-only", "--no-overwrite-ignore", "-q", offer.target_sha
        )
    else:
        ref = f"refs/heads/{offer.branch}"
        old = await git.rev(ref)
        await git.run(
            git.top,
            "update-ref",
            "-m",
            "directive-tui: fast-forward",
            ref,
            offer.target_sha,
            old,
        )
    return offer.target_sha
