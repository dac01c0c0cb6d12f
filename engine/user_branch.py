"""The user's branch: whether it can be fast-forwarded to the directive's
result, and doing it. The one place the engine moves the user's branch,
and only on the user's say-so."""

from __future__ import annotations

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


async def offer_fast_forward(
    git: GitRepo, branch: str | None, integration_branch: str, tip: str
) -> FastForwardOffer:
    """Can the user's `branch` (the one checked out when the directive
    started) be fast-forwarded to `tip`, the integration branch's? Read only."""

    def no(reason: str, where: Path | None = None) -> FastForwardOffer:
        return FastForwardOffer(False, branch, tip, reason, where)

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
        return no(f"{branch} is already at {tip[:12]}: nothing to fast-forward")
    if not await git.is_ancestor(cur, tip):
        return no(
            f"{branch} has moved on since the directive started; "
            f"merge {integration_branch} into it yourself"
        )
    where = next(
        (e.path for e in await git.worktrees() if e.branch == f"refs/heads/{branch}"),
        None,
    )
    if where is not None and await git.dirty(where, untracked=False):
        return no(f"{where} has uncommitted changes: commit or stash them first", where)
    count = (await git.run(git.top, "rev-list", "--count", f"{cur}..{tip}")).out.strip()
    return FastForwardOffer(
        True,
        branch,
        tip,
        f"fast-forward {branch} {cur[:12]} -> {tip[:12]} ({plural(int(count), 'commit')})",
        where,
    )


async def fast_forward_as_offered(git: GitRepo, offer: FastForwardOffer) -> str:
    """Fast-forward the user's branch to the integration tip, as `offer`
    says: `merge --ff-only` in the checkout that has it, or a checked ref
    update when no checkout has it. Only ever on the user's explicit say-so."""
    if not offer.possible or offer.branch is None:
        raise ValueError(f"cannot fast-forward: {offer.reason}")
    if offer.worktree is not None:
        await git.run(offer.worktree, "merge", "--ff-only", "-q", offer.target_sha)
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
