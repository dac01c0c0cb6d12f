"""Taking a directive's worktrees away: after a crash (`prune`), when it
ends (`close`: the integration branch and hidden refs stay, for the user to
merge and see diffs) and when it is deleted (`discard`: everything), with
the two questions a delete asks first."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.attempt_worktrees import Attempt
from engine.git_repo import GitRepo, WorktreeEntry
from engine.integration_branch import IntegrationBranch
from engine.paths import is_under
from engine.workspace_lock import WorkspaceLock
from engine.worktree_names import WorktreeNames


@dataclass(frozen=True)
class PruneReport:
    worktrees: list[Path]
    branches: list[str]
    folders: list[Path]


class WorktreeCleanup:
    """Cleanup for one directive whose integration branch began at
    `base_sha`; `lock` is the workspace's."""

    def __init__(
        self,
        git: GitRepo,
        names: WorktreeNames,
        integration: IntegrationBranch,
        base_sha: str,
        lock: WorkspaceLock,
    ) -> None:
        self._git = git
        self._names = names
        self._integration = integration
        self._base_sha = base_sha
        self._lock = lock

    def _ours(self, e: WorktreeEntry) -> bool:
        """A worktree in the engine's folder. Never one elsewhere, even on an
        attempt branch: that is a checkout of the user's (switched there to
        look at a failed attempt, say), and removing it removed their files,
        their whole repository when it was the main one."""
        return is_under(e.path, self._names.root)

    def _stale(self, e: WorktreeEntry) -> bool:
        """Git's record of an attempt worktree whose folder is gone (the
        engine's folder moved with its database): only the record goes."""
        on_attempt = (e.branch or "").startswith(self._names.step_branches)
        return on_attempt and not self._ours(e) and not e.path.exists()

    def _users_branches(self, entries: list[WorktreeEntry]) -> set[str]:
        """Attempt branches a checkout of the user's has: not deleted under it."""
        return {e.branch for e in entries if e.branch and not self._ours(e) and not self._stale(e)}

    async def prune(self, keep: Iterable[Attempt | Path] = ()) -> PruneReport:
        """Crash cleanup (call on restart): remove every attempt worktree,
        branch and folder of this directive except those in `keep`, and
        repair the integration worktree. Stale `git worktree list` entries
        (folder gone, or locked by a `worktree add` that never finished) go
        too. Other directives and the user's own worktrees are left alone."""
        kept = {(k.path if isinstance(k, Attempt) else Path(k)).resolve() for k in keep}
        kept_branches = {f"refs/heads/{k.branch}" for k in keep if isinstance(k, Attempt)}
        removed_wt: list[Path] = []
        removed_branches: list[str] = []
        removed_folders: list[Path] = []
        async with self._lock:
            entries = await self._git.worktrees()
            kept_branches |= self._users_branches(entries)
            for e in entries:
                if e.path == self._names.integration_path:
                    continue
                if self._stale(e):
                    await self._git.forget_worktree(e.path)
                    removed_wt.append(e.path)
                if not self._ours(e) or e.path in kept:
                    if e.path in kept and e.branch:
                        kept_branches.add(e.branch)
                    continue
                await self._git.remove_worktree(e.path, within=self._names.root)
                removed_wt.append(e.path)
            for ref, _ in await self._git.refs(self._names.step_branches):
                if ref not in kept_branches:
                    await self._git.run(self._git.top, "update-ref", "-d", ref)
                    removed_branches.append(ref.removeprefix("refs/heads/"))
            registered = {e.path for e in await self._git.worktrees()}
            if self._names.root.exists():
                for child in sorted(self._names.root.iterdir()):
                    child = child.resolve() if not child.is_symlink() else child
                    if child in registered or child in kept or child == self._names.artifacts_path:
                        continue
                    if child.is_dir() and not child.is_symlink():
                        await asyncio.to_thread(shutil.rmtree, child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
                    removed_folders.append(child)
            self._names.root.mkdir(parents=True, exist_ok=True)
            await self._integration.ensure_worktree()
        return PruneReport(removed_wt, removed_branches, removed_folders)

    async def close(self) -> None:
        """The directive ended: remove every worktree (kept ones too) and
        attempt branch, and the engine's folder. The integration branch and
        the hidden refs stay, so the user can still merge and see diffs."""
        async with self._lock:
            entries = await self._git.worktrees()
            users = self._users_branches(entries)
            for e in entries:
                if self._ours(e):
                    await self._git.remove_worktree(e.path, within=self._names.root)
                elif self._stale(e):
                    await self._git.forget_worktree(e.path)
            await self._git.delete_refs(
                ref
                for ref, _ in await self._git.refs(self._names.step_branches)
                if ref not in users
            )
            if self._names.root.exists():
                await asyncio.to_thread(shutil.rmtree, self._names.root, ignore_errors=True)

    async def result_only_here(self) -> bool:
        """Whether deleting the integration branch would lose work: its tip
        holds commits beyond the start that no other branch, tag or
        remote-tracking branch has (neither merged into the user's branch
        nor saved elsewhere: a tag or a push keeps it too)."""
        tip = await self._git.run(
            self._git.top,
            "rev-parse",
            "--verify",
            "-q",
            self._names.integration_ref,
            check=False,
        )
        if tip.code != 0 or tip.out.strip() == self._base_sha:
            return False
        holders = await self._git.run(
            self._git.top,
            "for-each-ref",
            "--contains",
            tip.out.strip(),
            "--format=%(refname)",
            "refs/heads/",
            "refs/tags/",
            "refs/remotes/",
        )
        mine = (self._names.integration_ref, self._names.step_branches)
        return not [r for r in holders.out.split() if not r.startswith(mine)]

    async def checked_out_by_user(self) -> Path | None:
        """A checkout outside the engine's folder (the repository itself, or
        a worktree the user added) that has the integration branch: deleting
        the branch would leave it on a branch with no commit."""
        ref = self._names.integration_ref
        for e in await self._git.worktrees():
            if e.branch == ref and e.path != self._names.integration_path:
                if not is_under(e.path, self._names.root):
                    return e.path
        return None

    async def discard(self) -> None:
        """The directive is deleted: `close()` plus the integration branch and
        every hidden ref (checkpoints, attempts, base)."""
        await self.close()
        refs = [ref for ref, _ in await self._git.refs(f"{self._names.hidden}/")]
        user_ref = self._names.user_ref
        await self._git.run(self._git.top, "symbolic-ref", "--delete", user_ref, check=False)
        await self._git.delete_refs(r for r in refs if r != user_ref)
        await self._git.run(
            self._git.top, "update-ref", "-d", self._names.integration_ref, check=False
        )
        self._lock.path.unlink(missing_ok=True)  # nothing merges for a deleted directive
