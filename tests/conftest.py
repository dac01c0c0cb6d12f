"""Shared fixtures: real SQLite files and real git repositories in tmp_path."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from engine.store import Store

pytest_plugins = ["tests.conftest_llm"]

# No test may ever see a real key, whatever the developer's shell has.
os.environ.pop("ANTHROPIC_API_KEY", None)
os.environ.pop("ANTHROPIC_BASE_URL", None)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "engine.db")
    yield s
    await s.close()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def init_git_repo(repo: Path, files: dict[str, str]) -> Path:
    """A new git repository at `repo` whose first commit holds `files` (an
    empty commit when there are none: the engine needs one to branch from)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "Test")
    for rel, content in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "initial")
    return repo


@pytest.fixture
def make_git_repo(tmp_path: Path) -> Callable[..., Path]:
    """A fresh git repository with the given files committed."""

    def make(files: dict[str, str] | None = None, name: str = "repo") -> Path:
        return init_git_repo(tmp_path / name, files or {"README.md": "hello\n"})

    return make
