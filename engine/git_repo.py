"""Git's answers about one repository, as the workspace's parts ask them:
commits and refs, the worktree list, what a checkout has uncommitted, and
merging a commit into a checkout. Every call goes through `run_git`, with
the environment the repository was opened with."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.git import GitError, GitOutput, run_git
from engine.paths import is_under


@dataclass(frozen=True)
class WorktreeEntry:
    """One entry of `git worktree list`."""

    path: Path
    branch: str | None  # full ref name


def _parse_worktrees(text: str) -> list[WorktreeEntry]:
    entries: list[WorktreeEntry] = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        if "worktree" in fields:
            entries.append(WorktreeEntry(Path(fields["worktree"]), fields.get("branch")))
    return entries


class GitRepo:
    """Git in the repository whose top level is `top`."""

    def __init__(self, top: Path, env: dict[str, str]) -> None:
        self.top = top
        self.env = env

    async def run(
        self, cwd: Path, *args: str, check: bool = True, stdin: str | None = None
    ) -> GitOutput:
        return await run_git(cwd, *args, env=self.env, check=check, stdin=stdin)

    async def rev(self, rev: str, cwd: Path | None = None) -> str:
        out = await self.run(
            cwd or self.top, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False
        )
        if out.code != 0:
            raise ValueError(f"unknown commit {rev!r} in {self.top}")
        return out.out.strip()

    async def is_ancestor(self, older: str, newer: str) -> bool:
        r = await self.run(self.top, "merge-base", "--is-ancestor", older, newer, check=False)
        if r.code not in (0, 1):
            raise GitError(["merge-base", "--is-ancestor", older, newer], self.top, r.code, r.err)
        return r.code == 0

    async def dirty(self, cwd: Path, *, untracked: bool = True) -> list[str]:
        """What the checkout at `cwd` has uncommitted, untracked files too
        unless `untracked` is False."""
        mode = "--untracked-files=all" if untracked else "--untracked-files=no"
        out = await self.run(cwd, "status", "--porcelain=v1", "-z", mode)
        paths, parts = [], out.out.split("\0")
        i = 0
        while i < len(parts):
            entry = parts[i]
            if entry:
                paths.append(entry[3:])
                if entry[0] in "RC":
                    i += 1  # the rename's source follows
            i += 1
        return paths

    async def worktrees(self) -> list[WorktreeEntry]:
        """Every worktree git knows of, the folders that exist resolved."""
        out = await self.run(self.top, "worktree", "list", "--porcelain")
        return [
            WorktreeEntry(e.path.resolve() if e.path.exists() else e.path, e.branch)
            for e in _parse_worktrees(out.out)
        ]

    async def remove_worktree(self, path: Path, *, within: Path) -> None:
        """Remove the worktree at `path`, files and all. Only one in `within`,
        the engine's own folder: a checkout of the user's (the repository
        itself, or one they added, say on an attempt branch) is refused, as
        git refuses the main one and the folder would otherwise go anyway."""
        if not is_under(path, within):
            raise GitError(
                ["worktree", "remove", str(path)],
                self.top,
                None,
                f"{path} is not in {within}, where the engine keeps its worktrees:"
                " it is left as it is",
            )
        r = await self.run(
            self.top, "worktree", "remove", "--force", "--force", str(path), check=False
        )
        if r.code != 0:  # older gits cannot remove a missing folder: unlock + prune
            await self.forget_worktree(path)
        if path.exists() or path.is_symlink():
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)

    async def forget_worktree(self, path: Path) -> None:
        """Drop git's record of a worktree whose folder is gone (files are
        never touched): unlock it, then prune every such record."""
        await self.run(self.top, "worktree", "unlock", str(path), check=False)
        await self.run(self.top, "worktree", "prune")

    async def delete_refs(self, refs: Iterable[str]) -> None:
        lines = "".join(f"delete {ref}\n" for ref in refs)
        if lines:
            # --no-deref: never delete through a symbolic ref (a directive's
            # `user` ref points at the user's branch)
            await self.run(self.top, "update-ref", "--no-deref", "--stdin", stdin=lines)

    async def refs(self, prefix: str) -> list[tuple[str, str]]:
        out = await self.run(self.top, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
        pairs = (line.partition(" ") for line in out.out.splitlines() if line)
        return [(ref, sha) for ref, _, sha in pairs]

    async def _conflicts(self, cwd: Path) -> list[str]:
        out = await self.run(cwd, "diff", "--name-only", "-z", "--diff-filter=U")
        return sorted({p for p in out.out.split("\0") if p})

    async def merge_into(self, cwd: Path, sha: str, message: str) -> list[str] | None:
        """Merge `sha` into the branch checked out at `cwd`. None on success;
        on conflict the merge is aborted, the tree restored, and the
        conflicting files returned."""
        r = await self.run(cwd, "merge", "--no-edit", "--ff", "-m", message, sha, check=False)
        if r.code == 0:
            return None
        conflicts = await self._conflicts(cwd)
        await self.run(cwd, "merge", "--abort", check=False)
        # HEAD, not `before`: a merge that failed did not move it, and a
        # branch that moved meanwhile (another process's merge) stays moved.
        await self.run(cwd, "reset", "--hard", "-q", "HEAD")
        await self.run(cwd, "clean", "-fdq")
        if not conflicts:
            raise GitError(["merge", sha], cwd, r.code, r.err or r.out)
        return conflicts
