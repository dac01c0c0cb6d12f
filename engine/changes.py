"""Which files did a step modify?

Watch the working tree while the step runs (watchfiles) and confirm at the
end against a snapshot taken at the start:

* in a git work tree, with git itself: `git status` plus content hashes of
  the dirty files, before and after. What differs is what the step changed;
  files git ignores, or that ended as they began, drop out, and changes the
  watcher missed (debounce, a directory made and filled at once) are caught.
* elsewhere, with a stat snapshot (mtime, size) of the tree, compared with
  the end state of every path the watcher saw and every path a final walk
  finds changed, for the same reasons.

The watcher's own set (`seen`) is live while the step runs: a progress view
can show it before the confirmation exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from engine.git import GitError
from engine.procs import child_env, start_process

IGNORED_DIRS = frozenset(
    {
        ".git",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "node_modules",
    }
)
IGNORED_SUFFIXES = (".pyc",)
WATCH_STEP_MS = 50
WATCH_DEBOUNCE_MS = 400

# (kind, size, mtime_ns) for files; a symlink counts by its target text.
Signature = tuple[str, int, int] | tuple[str, str]


def is_ignored(rel: str) -> bool:
    """Build and cache debris that no step is said to have written."""
    parts = rel.split("/")
    return any(part in IGNORED_DIRS for part in parts) or rel.endswith(IGNORED_SUFFIXES)


async def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    env = child_env({"GIT_OPTIONAL_LOCKS": "0"})  # never fight a commit for index.lock
    proc = await start_process(
        asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        ),
        _kill,
    )
    try:
        out, err = await proc.communicate(stdin)
    except BaseException:
        if proc.returncode is None:
            await _kill(proc)
        raise
    if proc.returncode != 0:
        raise GitError(args, cwd, proc.returncode, err.decode(errors="replace"))
    return out


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """These git calls only read (optional locks off): stopping one is safe."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()


async def is_git_worktree(path: Path) -> bool:
    """True when `path` is inside a git work tree (and git is installed)."""
    try:
        out = await _git(Path(path), "rev-parse", "--is-inside-work-tree")
    except (GitError, FileNotFoundError, NotADirectoryError):
        return False
    return out.strip() == b"true"


# --------------------------------------------------------------------------
# git snapshots
# --------------------------------------------------------------------------


def parse_porcelain_z(data: bytes) -> dict[str, str]:
    """`git status --porcelain=v1 -z` -> {root-relative path: XY code}.
    Renames and copies carry their origin as an extra entry; both the new
    and the old path count as changed."""
    entries: dict[str, str] = {}
    fields = data.split(b"\0")
    i = 0
    while i < len(fields):
        item = fields[i]
        i += 1
        if len(item) < 4:
            continue
        code, path = item[:2].decode(), item[3:].decode("utf-8", errors="surrogateescape")
        entries[path] = code
        if "R" in code or "C" in code:
            origin = fields[i].decode("utf-8", errors="surrogateescape")
            i += 1
            entries.setdefault(origin, "origin")
    return entries


async def _git_snapshot(root: Path, prefix: str) -> dict[str, tuple[str, str | None]]:
    """{workdir-relative path: (status code, content hash or None)} for every
    path git reports as not clean under `root`."""
    raw = await _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
    codes = {
        path[len(prefix) :]: code
        for path, code in parse_porcelain_z(raw).items()
        if path.startswith(prefix)
    }
    files = [p for p in codes if _is_plain_file(root / p)]
    hashes: dict[str, str | None] = {}
    if files:
        out = await _git(
            root,
            "hash-object",
            "--no-filters",
            "--stdin-paths",
            # absolute: from a subdirectory, git reads these relative to the top
            stdin="".join(f"{root / p}\n" for p in files).encode("utf-8", errors="surrogateescape"),
        )
        hashes = dict(zip(files, out.decode().split(), strict=True))
    for path in codes:
        if path not in hashes:
            hashes[path] = _link_or_none(root / path)
    return {path: (code, hashes[path]) for path, code in codes.items()}


def _is_plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _link_or_none(path: Path) -> str | None:
    try:
        return "link:" + os.readlink(path)
    except OSError:
        return None


def _diff(start: Mapping[str, object], end: Mapping[str, object]) -> set[str]:
    return {p for p in start.keys() | end.keys() if start.get(p) != end.get(p)}


# --------------------------------------------------------------------------
# plain-folder snapshots
# --------------------------------------------------------------------------


def _signature(path: Path) -> Signature | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return ("link", _link_or_none(path) or "")
    if stat.S_ISREG(st.st_mode):
        return ("file", st.st_size, st.st_mtime_ns)
    return None  # directories and special files are not "modified files"


def _walk(root: Path) -> dict[str, Signature]:
    """Signatures of every file under `root`, ignored folders pruned."""
    found: dict[str, Signature] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS]
        base = Path(dirpath)
        for name in filenames:
            full = base / name
            rel = full.relative_to(root).as_posix()
            if is_ignored(rel):
                continue
            sig = _signature(full)
            if sig is not None:
                found[rel] = sig
        # symlinked dirs are listed in dirnames but not walked (followlinks=False)
        for name in list(dirnames):
            full = base / name
            if full.is_symlink():
                found[full.relative_to(root).as_posix()] = ("link", _link_or_none(full) or "")
    return found


# --------------------------------------------------------------------------
# the tracker
# --------------------------------------------------------------------------


class ChangeTracker:
    """`async with ChangeTracker(workdir) as t: ...` then `t.modified_files`.

    `on_change(paths)` (optional) gets each batch the watcher reports while
    the step runs; it must not block.
    """

    def __init__(
        self, workdir: Path, *, on_change: Callable[[set[str]], None] | None = None
    ) -> None:
        self.workdir = Path(workdir)
        self.root = self.workdir.resolve()
        self.on_change = on_change
        self.seen: set[str] = set()  # what the watcher reported so far
        self.watch_error: str | None = None
        self.git = False
        self._prefix = ""
        self._git_start: dict[str, tuple[str, str | None]] = {}
        self._walk_start: dict[str, Signature] = {}
        self._stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._modified: list[str] | None = None

    @property
    def modified_files(self) -> list[str]:
        """Sorted repo-relative posix paths; available after the block."""
        if self._modified is None:
            raise RuntimeError("modified_files is known only after the `async with` block")
        return self._modified

    async def __aenter__(self) -> ChangeTracker:
        if not self.root.is_dir():
            raise NotADirectoryError(f"cannot track changes: {self.root} is not a directory")
        self.git = await is_git_worktree(self.root)
        if self.git:
            prefix = await _git(self.root, "rev-parse", "--show-prefix")
            self._prefix = prefix.decode().strip()
            self._git_start = await _git_snapshot(self.root, self._prefix)
        else:
            self._walk_start = await asyncio.to_thread(_walk, self.root)
        self._watch_task = asyncio.create_task(self._watch())
        # awatch makes its watcher before its first suspension point: one
        # turn of the loop and changes from here on are being recorded.
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop_watching()
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            self._modified = sorted(p for p in self.seen if not is_ignored(p))
            return
        if self.git:
            end = await _git_snapshot(self.root, self._prefix)
            changed = _diff(self._git_start, end)
        else:
            changed = await asyncio.to_thread(self._confirm_walk)
        self._modified = sorted(p for p in changed if not is_ignored(p))

    async def _stop_watching(self) -> None:
        self._stop.set()
        task = self._watch_task
        if task is None:
            return
        try:
            await task
        except Exception as exc:  # a watcher that could not start; the snapshot still answers
            self.watch_error = f"{type(exc).__name__}: {exc}"

    async def _watch(self) -> None:
        from watchfiles import awatch

        async for batch in awatch(
            self.root,
            watch_filter=self._keep,
            stop_event=self._stop,
            step=WATCH_STEP_MS,
            debounce=WATCH_DEBOUNCE_MS,
            recursive=True,
            ignore_permission_denied=True,
        ):
            fresh = {self._rel(path) for _, path in batch} - {"."}
            self.seen |= fresh
            if self.on_change is not None and fresh:
                self.on_change(fresh)

    def _rel(self, path: str) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def _keep(self, change: object, path: str) -> bool:
        return not is_ignored(self._rel(path))

    def _confirm_walk(self) -> set[str]:
        """Plain folder: what differs between the start and end walks, plus
        anything the watcher saw whose end state differs from the start
        (a cross-check for paths a walk cannot reach)."""
        changed = _diff(self._walk_start, _walk(self.root))
        changed |= {p for p in self.seen if self._walk_start.get(p) != _signature(self.root / p)}
        return changed
