"""The directive's integration branch, where its passed attempts are merged.

It is created at the user's HEAD with `update-ref` (no checkout), and the
merges happen in an integration worktree of its own under the engine's
folder, never in the user's checkout. The first open records where it began
(the base commit, and the user's branch as a symbolic ref) in hidden refs.
"""

from __future__ import annotations

import asyncio
import shutil

from engine.git import GitError
from engine.git_repo import GitRepo
from engine.worktree_names import WorktreeNames


class IntegrationBranch:
    """The integration branch and worktree of directive `names.directive_id`."""

    def __init__(self, git: GitRepo, names: WorktreeNames) -> None:
        self._git = git
        self._names = names

    async def record_start(self, head: str) -> tuple[str, str | None]:
        """First open: remember the base commit and the user's branch, and
        create the integration branch there (create-only updates, so a
        reopen never moves them). Returns what `recorded_start` reads."""
        git, top = self._git, self._git.top
        base_ref, user_ref = self._names.base_ref, self._names.user_ref
        found = await git.run(top, "rev-parse", "--verify", "-q", base_ref, check=False)
        if found.code != 0:
            await git.run(top, "update-ref", base_ref, head, "")
            branch = await git.run(top, "symbolic-ref", "-q", "HEAD", check=False)
            if branch.code == 0 and branch.out.strip().startswith("refs/heads/"):
                await git.run(top, "symbolic-ref", user_ref, branch.out.strip())
        base_sha, user_branch = await self.recorded_start()
        integration = self._names.integration_ref
        exists = await git.run(top, "rev-parse", "--verify", "-q", integration, check=False)
        if exists.code != 0:
            await git.run(top, "update-ref", integration, base_sha, "")
        return base_sha, user_branch

    async def recorded_start(self) -> tuple[str, str | None]:
        """The base commit and the user's branch (None: a detached HEAD) the
        first open recorded; ValueError when it never ran here."""
        git, top = self._git, self._git.top
        found = await git.run(top, "rev-parse", "--verify", "-q", self._names.base_ref, check=False)
        if found.code != 0:
            raise ValueError(
                f"directive {self._names.directive_id} has no branch in {top}: "
                "no step of it ran there"
            )
        user = await git.run(top, "symbolic-ref", "-q", self._names.user_ref, check=False)
        user_branch = user.out.strip().removeprefix("refs/heads/") if user.code == 0 else None
        return found.out.strip(), user_branch

    async def tip(self) -> str:
        return await self._git.rev(self._names.integration_ref)

    async def ensure_worktree(self) -> None:
        """The integration worktree exists, sits on the integration branch and
        is clean (a crash mid-merge leaves MERGE_HEAD and a dirty tree)."""
        git, branch = self._git, self._names.integration_branch
        path, ref = self._names.integration_path, self._names.integration_ref
        entries = await git.worktrees()
        for e in entries:
            if e.branch == ref and e.path != path:
                raise GitError(
                    ["worktree", "add", str(path), branch],
                    git.top,
                    None,
                    f"{branch} is checked out in {e.path}; switch that "
                    "checkout to another branch so the directive can merge into it",
                )
        mine = next((e for e in entries if e.path == path), None)
        if mine is not None and (mine.branch != ref or not (path / ".git").exists()):
            await git.remove_worktree(path, within=self._names.root)
            mine = None
        if mine is None:
            if path.exists():
                await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
            await git.run(git.top, "worktree", "add", "-q", str(path), branch)
            return
        in_merge = await git.run(path, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False)
        if in_merge.code == 0:
            await git.run(path, "merge", "--abort", check=False)
        if await git.dirty(path):
            await git.run(path, "reset", "--hard", "-q", "HEAD")
            await git.run(path, "clean", "-fdxq")
