"""ChangeTracker against real git repositories and plain folders."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from engine.changes import ChangeTracker, is_git_worktree, parse_porcelain_z


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('app')\n")
    (root / "src" / "gone.py").write_text("old\n")
    (root / "README.md").write_text("# readme\n")
    (root / ".gitignore").write_text("build/\n*.log\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    return root


def notify_threads() -> int:
    """OS threads of the Rust file watcher (pooled Python workers are fine)."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{task}/comm").read_text()
        except OSError:
            continue
        count += name.startswith("notify")
    return count


async def watchers_gone() -> bool:
    """The watcher thread ends on its own soon after it is closed."""
    for _ in range(100):
        if notify_threads() == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_is_git_worktree(repo: Path, tmp_path: Path) -> None:
    assert await is_git_worktree(repo)
    assert await is_git_worktree(repo / "src")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert not await is_git_worktree(plain)
    assert not await is_git_worktree(tmp_path / "missing")


async def test_git_repo_reports_modified_created_deleted(repo: Path) -> None:
    async with ChangeTracker(repo) as tracker:
        (repo / "src" / "app.py").write_text("print('changed')\n")
        (repo / "src" / "new" / "deep").mkdir(parents=True)
        (repo / "src" / "new" / "deep" / "mod.py").write_text("x = 1\n")
        (repo / "src" / "gone.py").unlink()
    assert tracker.git
    assert tracker.modified_files == ["src/app.py", "src/gone.py", "src/new/deep/mod.py"]


async def test_git_repo_drops_ignored_debris_and_untouched_dirty_files(repo: Path) -> None:
    (repo / "README.md").write_text("# dirty before the step\n")
    (repo / "notes.txt").write_text("untracked before the step\n")
    async with ChangeTracker(repo) as tracker:
        (repo / "build").mkdir()
        (repo / "build" / "out.bin").write_bytes(b"\0\1")
        (repo / "run.log").write_text("log\n")
        (repo / "src" / "__pycache__").mkdir()
        (repo / "src" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"pyc")
        (repo / ".pytest_cache").mkdir()
        (repo / ".pytest_cache" / "v").write_text("cache")
        (repo / "src" / "app.py").write_text("print('app')\n")  # rewritten, same content
    assert tracker.modified_files == []


async def test_git_repo_catches_a_further_edit_of_a_dirty_file(repo: Path) -> None:
    (repo / "README.md").write_text("# dirty\n")
    (repo / "notes.txt").write_text("untracked\n")
    async with ChangeTracker(repo) as tracker:
        (repo / "README.md").write_text("# dirtier\n")
        (repo / "notes.txt").write_text("untracked, edited\n")
    assert tracker.modified_files == ["README.md", "notes.txt"]


async def test_git_repo_reverting_a_dirty_file_counts(repo: Path) -> None:
    (repo / "README.md").write_text("# dirty\n")
    async with ChangeTracker(repo) as tracker:
        git(repo, "checkout", "--", "README.md")
    assert tracker.modified_files == ["README.md"]


async def test_git_subdirectory_paths_are_relative_to_the_workdir(repo: Path) -> None:
    async with ChangeTracker(repo / "src") as tracker:
        (repo / "src" / "app.py").write_text("print('sub')\n")
        (repo / "README.md").write_text("outside the workdir\n")
    assert tracker.modified_files == ["app.py"]


async def test_plain_folder(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("a\n")
    (root / "pkg" / "b.py").write_text("b\n")
    (root / "olddir").mkdir()
    (root / "olddir" / "x.txt").write_text("x\n")
    (root / "untouched.txt").write_text("same\n")
    async with ChangeTracker(root) as tracker:
        (root / "pkg" / "a.py").write_text("a, longer now\n")
        (root / "pkg" / "b.py").unlink()
        (root / "fresh" / "deep").mkdir(parents=True)
        (root / "fresh" / "deep" / "c.py").write_text("c\n")
        (root / "pkg" / "__pycache__").mkdir()
        (root / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"pyc")
        (root / "node_modules" / "dep").mkdir(parents=True)
        (root / "node_modules" / "dep" / "index.js").write_text("js\n")
        (root / "temp.txt").write_text("made and removed\n")
        (root / "temp.txt").unlink()
        for child in (root / "olddir").iterdir():
            child.unlink()
        (root / "olddir").rmdir()
    assert not tracker.git
    assert tracker.modified_files == ["fresh/deep/c.py", "olddir/x.txt", "pkg/a.py", "pkg/b.py"]


async def test_watcher_sees_changes_live(tmp_path: Path) -> None:
    batches: list[set[str]] = []
    arrived = asyncio.Event()

    def on_change(paths: set[str]) -> None:
        batches.append(paths)
        arrived.set()

    async with ChangeTracker(tmp_path, on_change=on_change) as tracker:
        (tmp_path / "live.txt").write_text("hello\n")
        await asyncio.wait_for(arrived.wait(), 10)
    assert "live.txt" in set().union(*batches)
    assert tracker.modified_files == ["live.txt"]


async def test_no_watcher_threads_are_left_behind(tmp_path: Path) -> None:
    for i in range(3):
        async with ChangeTracker(tmp_path):
            assert notify_threads() >= 1
            (tmp_path / f"f{i}.txt").write_text("x")
    assert await watchers_gone()


async def test_cancelled_block_still_stops_the_watcher(tmp_path: Path) -> None:
    inside = asyncio.Event()

    async def step() -> None:
        async with ChangeTracker(tmp_path):
            inside.set()
            await asyncio.sleep(1000)

    task = asyncio.create_task(step())
    await asyncio.wait_for(inside.wait(), 10)
    assert notify_threads() >= 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await watchers_gone()


async def test_modified_files_before_the_block_ends_is_an_error(tmp_path: Path) -> None:
    tracker = ChangeTracker(tmp_path)
    with pytest.raises(RuntimeError, match="only after"):
        _ = tracker.modified_files


async def test_missing_workdir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="not a directory"):
        async with ChangeTracker(tmp_path / "missing"):
            pass


def test_parse_porcelain_with_renames() -> None:
    data = b"R  new.py\0old.py\0 M a b.txt\0?? dir/u.txt\0"
    assert parse_porcelain_z(data) == {
        "new.py": "R ",
        "old.py": "origin",
        "a b.txt": " M",
        "dir/u.txt": "??",
    }
