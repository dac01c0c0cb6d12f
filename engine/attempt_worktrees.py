"""One worktree per step attempt: starting it, committing what it did,
finding it again after a restart, and removing it.

Every attempt works in a fresh worktree on its own branch, cut from the
integration tip, with the artifacts of the live checkpoints put in and the
user's environment folders linked. Its commits stay reachable through its
hidden refs (`engine.worktree_names`) after the worktree and branch go.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.artifacts import ArtifactCopies
from engine.git import DEFAULT_IDENTITY, GitError, git_env, run_git
from engine.git_repo import GitRepo
from engine.integration_branch import IntegrationBranch
from engine.paths import is_under
from engine.workspace_lock import WorkspaceLock
from engine.worktree_names import WorktreeNames

# Ignored environment folders an attempt borrows from the user's tree by
# symlink: a worktree has only tracked files, and verifiers need the
# project's virtualenv / installed packages to run at all.
DEFAULT_LINKS = (".venv", "venv", "node_modules")


async def linked_environments(
    repo: Path, links: Sequence[str], env: dict[str, str] | None = None
) -> list[str]:
    """The folders of `links` an attempt's worktree links to: those in
    `repo` that git ignores (never one that would shadow tracked files; the
    log and `check` say only these are linked)."""
    env = git_env(DEFAULT_IDENTITY) if env is None else env
    linked = []
    for name in links:
        if not (repo / name).exists():
            continue
        ignored = await run_git(repo, "check-ignore", "-q", "--", name, env=env, check=False)
        if ignored.code == 0:
            linked.append(name)
    return linked


@dataclass
class Attempt:
    """One attempt's worktree. `workdir` is where the directive's repo folder
    lies inside it (the worktree root unless the repo is a subfolder of its
    git top level): executors and verifiers run there."""

    step_name: str
    attempt: int
    path: Path
    workdir: Path
    branch: str
    base_sha: str  # integration tip when the attempt started
    start_sha: str  # HEAD after carrying `carried_from` over (== base_sha without it)
    carried_from: str | None = None
    carry_conflicts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # top-relative symlinks, never committed
    # artifacts put in at the start, by top-relative file: (size, mtime_ns)
    restored: dict[str, tuple[int, int]] = field(default_factory=dict)
    committed: bool = False
    commit_sha: str | None = None


class AttemptWorktrees:
    """The attempts of one directive. `repo` is the directive's folder, at
    `prefix` (`""` or ending in `/`) below the top level; `links` are the
    environment folders to borrow from it; `lock` is the workspace's, held
    while the worktree list or the artifact folders change."""

    def __init__(
        self,
        *,
        git: GitRepo,
        names: WorktreeNames,
        integration: IntegrationBranch,
        artifact_copies: ArtifactCopies,
        repo: Path,
        prefix: str,
        links: Sequence[str],
        lock: WorkspaceLock,
    ) -> None:
        self._git = git
        self._names = names
        self._integration = integration
        self._artifact_copies = artifact_copies
        self._repo = repo
        self._prefix = prefix
        self._links = links
        self._lock = lock

    async def start(
        self, step_name: str, attempt: int, *, from_commit: str | None = None
    ) -> Attempt:
        """A fresh worktree on a new branch at the integration tip. With
        `from_commit` (a previous attempt's commit), that commit is merged in
        (a fast-forward when the integration branch has not moved since); if
        it conflicts with the new tip it is left out and the conflicting
        files are listed in `carry_conflicts`: the attempt starts clean."""
        path, branch = self._names.attempt(step_name, attempt)
        carried = await self._git.rev(from_commit) if from_commit else None
        async with self._lock:
            base = await self._integration.tip()
            await self._drop(path, branch)
            await self._git.run(
                self._git.top, "worktree", "add", "-q", "-b", branch, str(path), base
            )
        path = path.resolve()
        conflicts: list[str] = []
        if carried is not None:
            message = f"directive {self._names.directive_id}: carry {carried[:12]} into {step_name} attempt {attempt}"
            conflicts = await self._git.merge_into(path, carried, message) or []
        start = await self._git.rev("HEAD", path)
        async with self._lock:
            restored = await self._artifact_copies.restore(path)
        if restored:  # for `resume` after a restart
            await self._note_restored(path, restored)
        refs = self._names.attempt_refs(step_name, attempt)
        await self._git.run(
            self._git.top,
            "update-ref",
            "--no-deref",
            "--stdin",
            stdin=f"update {refs}/base {base}\nupdate {refs}/start {start}\ndelete {refs}/head\n",
        )
        workdir = path / self._prefix if self._prefix else path
        links = await self._link_environments(workdir)
        return Attempt(
            step_name=step_name,
            attempt=attempt,
            path=path,
            workdir=workdir,
            branch=branch,
            base_sha=base,
            start_sha=start,
            carried_from=carried if not conflicts else None,
            carry_conflicts=conflicts,
            links=links,
            restored=restored,
        )

    async def _link_environments(self, workdir: Path) -> list[str]:
        """Symlink the user's git-ignored environment folders (virtualenv,
        node_modules) into the attempt, so verifiers find the project's
        dependencies. Only ignored, existing ones: never shadow tracked files."""
        linked: list[str] = []
        for name in await linked_environments(self._repo, self._links, self._git.env):
            source, target = self._repo / name, workdir / name
            if target.exists() or target.is_symlink():
                continue
            target.symlink_to(source, target_is_directory=source.is_dir())
            linked.append(f"{self._prefix}{name}")
        return linked

    async def commit(self, attempt: Attempt, message: str) -> str | None:
        """Commit everything the attempt changed (`add -A`, minus the linked
        environment folders). Returns the attempt's head commit, or None when
        it holds nothing beyond the integration tip it started from. Commits
        an executor made itself count too. Call it before running verifiers,
        so their debris (coverage files, caches) is not part of the step."""
        if not message.strip():
            raise ValueError("commit message is empty")
        excludes = [f":(exclude,literal){rel}" for rel in attempt.links]
        await self._git.run(attempt.path, "add", "-A", "--", ".", *excludes)
        staged = await self._git.run(attempt.path, "diff", "--cached", "--quiet", check=False)
        if staged.code == 1:
            await self._git.run(attempt.path, "commit", "-q", "--no-verify", "-m", message)
        elif staged.code != 0:
            raise GitError(["diff", "--cached", "--quiet"], attempt.path, staged.code, staged.err)
        head = await self._git.rev("HEAD", attempt.path)
        attempt.committed = True
        attempt.commit_sha = head if head != attempt.base_sha else None
        # recorded even when it is the base: a resumed attempt knows it was committed
        await self._git.run(
            self._git.top,
            "update-ref",
            f"{self._names.attempt_refs(attempt.step_name, attempt.attempt)}/head",
            head,
        )
        return attempt.commit_sha

    def path(self, step_name: str, attempt: int) -> Path:
        """Where that attempt's worktree lives (for `Workspace.prune(keep=...)`
        after a restart, from what the store remembers)."""
        return self._names.attempt(step_name, attempt)[0]

    async def resume(self, step_name: str, attempt: int) -> Attempt | None:
        """Rebuild a kept attempt after a restart (say a step that was
        awaiting approval), or None when its worktree is gone."""
        path, branch = self._names.attempt(step_name, attempt)
        if not any(e.path == path.resolve() for e in await self._git.worktrees()):
            return None
        path = path.resolve()
        refs = dict(
            (ref.rsplit("/", 1)[1], sha)
            for ref, sha in await self._git.refs(f"{self._names.attempt_refs(step_name, attempt)}/")
        )
        if "base" not in refs:
            return None
        head = refs.get("head")
        workdir = path / self._prefix if self._prefix else path
        links = [f"{self._prefix}{name}" for name in self._links if (workdir / name).is_symlink()]
        note = await self._restored_note(path)
        restored = (
            {rel: (size, mtime) for rel, (size, mtime) in json.loads(note.read_text()).items()}
            if note.exists()
            else {}
        )
        return Attempt(
            step_name=step_name,
            attempt=attempt,
            path=path,
            workdir=workdir,
            branch=branch,
            base_sha=refs["base"],
            start_sha=refs.get("start", refs["base"]),
            links=links,
            restored=restored,
            committed=head is not None,
            commit_sha=head if head and head != refs["base"] else None,
        )

    async def _restored_note(self, path: Path) -> Path:
        """Where an attempt's worktree records the artifacts it was given: in
        git's own folder for the worktree, which goes when the worktree does."""
        git_dir = (await self._git.run(path, "rev-parse", "--absolute-git-dir")).out.strip()
        return Path(git_dir) / "directive-tui-artifacts.json"

    async def _note_restored(self, path: Path, restored: dict[str, tuple[int, int]]) -> None:
        (await self._restored_note(path)).write_text(json.dumps(restored))

    async def remove(self, attempt: Attempt, *, keep: bool = False) -> None:
        """Remove the attempt's worktree and branch (its commit stays
        reachable through the hidden attempt ref). `keep=True` leaves both for
        inspection; `Workspace.close()` removes them when the directive ends."""
        if keep:
            return
        async with self._lock:
            await self._drop(attempt.path, attempt.branch)

    async def _drop(self, path: Path, branch: str) -> None:
        """The attempt's worktree and branch go; not a checkout of the user's
        on that branch (outside the engine's folder), nor the branch it has."""
        path = path.resolve() if path.exists() else path
        ref = f"refs/heads/{branch}"
        root = self._names.root
        users = False
        for e in await self._git.worktrees():
            if e.path == path or e.branch == ref:
                if is_under(e.path, root):
                    await self._git.remove_worktree(e.path, within=root)
                else:
                    users = users or e.path.exists()
        if is_under(path, root) and (path.exists() or path.is_symlink()):
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
        if not users:
            await self._git.run(self._git.top, "update-ref", "-d", ref, check=False)
