"""Artifacts: the ignored outputs a passed step hands on to later steps.

What git ignores never reaches a commit, so a `build/` folder one step
makes would be missing from the next step's fresh worktree. The paths
named in `[workspace] artifacts` are copied, when a step passes, to a
folder per checkpoint (with the list of files the step removed), and
into every attempt started later, newest checkpoint first. A reset
drops them with their checkpoints.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.changes import is_ignored
from engine.checkpoints import Checkpoints
from engine.git_repo import GitRepo
from engine.paths import is_under

if TYPE_CHECKING:
    from engine.attempt_worktrees import Attempt


class ArtifactCopies:
    """The copies of `paths` (top-relative) that checkpoints keep, one
    folder each under `root` (`<data_dir>/worktrees/<d>/_artifacts`)."""

    def __init__(
        self, git: GitRepo, paths: tuple[str, ...], root: Path, checkpoints: Checkpoints
    ) -> None:
        self._git = git
        self._paths = paths
        self._root = root
        self._checkpoints = checkpoints

    async def _ignored(self, attempt: Attempt) -> list[str]:
        """What the attempt holds that git ignores, build debris and the
        linked environment folders aside; top-relative, a folder ending in `/`."""
        out = await self._git.run(attempt.path, "status", "--porcelain", "--ignored=matching", "-z")
        return [
            rel
            for entry in out.out.split("\0")
            if entry.startswith("!! ")
            and (rel := entry[3:]).rstrip("/") not in attempt.links
            and not is_ignored(rel.rstrip("/"))
        ]

    async def left_out(self, attempt: Attempt) -> list[str]:
        """What the attempt wrote that git ignores and no artifact path
        covers: neither committed nor handed on, so no later step has it."""
        ignored = await self._ignored(attempt)
        handed_on = set(self._of(ignored))
        return [rel for rel in ignored if rel.rstrip("/") not in handed_on]

    def _folder(self, seq: int) -> Path:
        return self._root / f"{seq:04d}"

    def _removed_list(self, seq: int) -> Path:
        """Artifact files the step of checkpoint `seq` was given and removed."""
        return self._root / f"{seq:04d}.removed"

    async def drop(self, seq: int) -> None:
        await asyncio.to_thread(shutil.rmtree, self._folder(seq), ignore_errors=True)
        self._removed_list(seq).unlink(missing_ok=True)

    def _of(self, ignored: Iterable[str]) -> list[str]:
        """The top-relative paths under the artifact paths among git's ignored
        entries (a folder entry ends in `/`): a whole entry inside an
        artifact path, or the artifact path inside an ignored folder."""
        found: list[str] = []
        for entry in (e.rstrip("/") for e in ignored):
            for art in self._paths:
                if entry == art or entry.startswith(art + "/"):
                    found.append(entry)
                elif art.startswith(entry + "/"):
                    found.append(art)
        return sorted(set(found))

    async def keep(self, attempt: Attempt, seq: int) -> list[str]:
        """Copy the attempt's artifacts to checkpoint `seq`'s folder (emptied
        first: a reset frees its number for reuse), leaving out files still as
        they were restored (an older checkpoint has them), and list the
        restored files it removed. Returns the paths looked at."""
        await self.drop(seq)
        if not self._paths:
            return []
        kept = [
            rel
            for rel in self._of(await self._ignored(attempt))
            if os.path.lexists(attempt.path / rel)
        ]
        folder = self._folder(seq)
        await asyncio.to_thread(_copy_changed, attempt.path, folder, kept, attempt.restored)
        removed = sorted(r for r in attempt.restored if not os.path.lexists(attempt.path / r))
        if removed:
            self._root.mkdir(parents=True, exist_ok=True)
            self._removed_list(seq).write_text("".join(f"{r}\n" for r in removed))
        return kept

    async def restore(self, path: Path) -> dict[str, tuple[int, int]]:
        """Put the artifacts of the live checkpoints into a new worktree. The
        newest copy of a path wins, a later step's removal hides older
        copies, and nothing there already (tracked) is overwritten. Returns
        what was put there, by file."""
        restored: dict[str, tuple[int, int]] = {}
        if not self._paths or not self._root.is_dir():
            return restored
        removed: set[str] = set()
        for cp in reversed(await self._checkpoints.all()):
            folder = self._folder(cp.seq)
            if folder.is_dir():
                await asyncio.to_thread(_copy_missing, folder, path, restored, removed)
            if self._removed_list(cp.seq).exists():
                removed.update(self._removed_list(cp.seq).read_text().splitlines())
        return restored


def _signature(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_size, st.st_mtime_ns


def _files(top: Path, rels: Iterable[str]) -> Iterable[str]:
    """Top-relative files (and symlinks) at or under each of `rels`."""
    for rel in rels:
        start = top / rel
        if not start.is_dir() or start.is_symlink():
            yield rel
            continue
        for folder, dirs, files in os.walk(start):
            here = Path(folder).relative_to(top).as_posix()
            links = [d for d in dirs if (Path(folder) / d).is_symlink()]
            yield from (f"{here}/{name}" for name in [*files, *links])


def _copy_changed(
    src_top: Path, dst_top: Path, rels: Iterable[str], unchanged: dict[str, tuple[int, int]]
) -> None:
    """Copy the files under `rels` from one tree to the same places in
    another (symlinks as links), but those whose (size, mtime) still match
    `unchanged`."""
    for rel in _files(src_top, rels):
        src, dst = src_top / rel, dst_top / rel
        if unchanged.get(rel) == _signature(src):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)


def _copy_missing(
    src_top: Path, dst_top: Path, copied: dict[str, tuple[int, int]], skip: set[str]
) -> None:
    """Copy a tree's files, but those in `skip`, into another where nothing
    is in their place yet (not under a file either), noting each one copied
    in `copied`."""
    for rel in _files(src_top, ["."]):
        rel = rel.removeprefix("./")
        dst = dst_top / rel
        if (
            rel in skip
            or os.path.lexists(dst)
            or any(p.exists() and not p.is_dir() for p in dst.parents if is_under(p, dst_top))
        ):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src_top / rel, dst, follow_symlinks=False)
        copied[rel] = _signature(dst)
