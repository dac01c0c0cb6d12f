"""Workspace: per-attempt worktrees, merges, checkpoints, crash cleanup, all
against real git repositories in tmp_path (and a user tree that must never
change behind the user's back)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import git as git_runner  # `git` is this file's helper
from engine.git import GitError, run_git
from engine.worktree_names import step_slug
from engine.worktrees import Attempt, StaleAttemptError, Workspace

DIRECTIVE = "d0123456789a"


def git(repo: Path, *args: str) -> str:
    # optional locks off: the test's own `git status` must not refresh the
    # user's index, or the "index untouched" checks would measure the test
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def user_state(repo: Path) -> dict[str, object]:
    """Everything about the user's checkout that the engine must not touch:
    HEAD, branch, status, every file's bytes, the index file itself."""
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] == ".git" or not path.is_file():
            continue
        files[str(rel)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "-q", "HEAD"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "files": files,
        "index": hashlib.sha1((repo / ".git" / "index").read_bytes()).hexdigest(),
    }


@pytest.fixture
def repo(make_git_repo: Callable[..., Path]) -> Path:
    return make_git_repo(
        {
            "README.md": "hello\n",
            "app.py": "a = 1\nb = 2\nc = 3\n",
            "lib.py": "x = 1\n",
            ".gitignore": ".venv/\n",
        }
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def ws(repo: Path, data_dir: Path) -> Workspace:
    opened = await Workspace.open(repo, DIRECTIVE, data_dir)
    assert opened is not None
    return opened


async def edit(
    ws: Workspace, step: str, attempt: int, files: dict[str, str], **kw: object
) -> Attempt:
    att = await ws.start_attempt(step, attempt, **kw)  # type: ignore[arg-type]
    for rel, text in files.items():
        (att.workdir / rel).write_text(text)
    await ws.commit_attempt(att, f"{step} attempt {attempt}")
    return att


def tip(ws: Workspace) -> str:
    return git(ws.top, "rev-parse", f"refs/heads/{ws.integration_branch}")


def show(ws: Workspace, rel: str, rev: str | None = None) -> str:
    return git(ws.top, "show", f"{rev or ws.integration_branch}:{rel}")


# --------------------------------------------------------------------- open


async def test_non_git_folder_is_none(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert await Workspace.open(plain, DIRECTIVE, tmp_path / "data") is None


async def test_open_branches_from_head_without_touching_the_checkout(
    repo: Path, data_dir: Path
) -> None:
    (repo / "notes.txt").write_text("uncommitted\n")  # the user's own work in progress
    before = user_state(repo)
    ws = await Workspace.open(repo, DIRECTIVE, data_dir)
    assert ws is not None
    assert ws.integration_branch == f"directive/{DIRECTIVE}/integration"
    assert tip(ws) == before["head"] == ws.base_sha
    assert ws.user_branch == "main"
    assert ws.dirty_at_open == ["notes.txt"]
    assert ws.integration_path.is_dir() and ws.root.is_relative_to(data_dir.resolve())
    assert user_state(repo) == before
    # reopening (a restart) keeps what the first open recorded, even though
    # the user has since committed
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-qm", "notes")
    again = await Workspace.open(repo, DIRECTIVE, data_dir)
    assert again is not None and again.base_sha == ws.base_sha and tip(again) == ws.base_sha


async def test_open_rejects_what_cannot_be_isolated(tmp_path: Path, repo: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(ValueError, match="no commit yet"):
        await Workspace.open(empty, DIRECTIVE, tmp_path / "data")
    with pytest.raises(ValueError, match="inside the repository"):
        await Workspace.open(repo, DIRECTIVE, repo / ".cache")
    with pytest.raises(ValueError, match="not usable in a branch name"):
        await Workspace.open(repo, "../evil", tmp_path / "data")
    (repo / "newproj").mkdir()
    (repo / "newproj" / "x.py").write_text("x\n")
    with pytest.raises(ValueError, match="not in the last commit"):
        await Workspace.open(repo / "newproj", DIRECTIVE, tmp_path / "data")
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    with pytest.raises(ValueError, match="bare repository"):
        await Workspace.open(bare, DIRECTIVE, tmp_path / "data")
    # git refuses it (here a newer format; for another user, "dubious
    # ownership"): it was taken for no repository, the steps run in it
    refused = tmp_path / "refused"
    git(tmp_path, "init", "-q", str(refused))
    git(refused, "config", "core.repositoryformatversion", "99")
    with pytest.raises(ValueError, match="git refuses .*: fatal: Expected git repo version"):
        await Workspace.open(refused, DIRECTIVE, tmp_path / "data")


async def test_repo_in_a_subfolder_maps_workdir(
    make_git_repo: Callable[..., Path], data_dir: Path
) -> None:
    top = make_git_repo({"pkg/mod.py": "v = 1\n", "other.txt": "o\n"})
    ws = await Workspace.open(top / "pkg", DIRECTIVE, data_dir)
    assert ws is not None and ws.prefix == "pkg/"
    att = await edit(ws, "impl", 1, {"mod.py": "v = 2\n"})
    assert att.workdir == att.path / "pkg"
    assert (await ws.merge(att)).merged
    assert show(ws, "pkg/mod.py") == "v = 2"


# ----------------------------------------------------------- attempts, merge


async def test_parallel_attempts_on_different_files_both_merge(ws: Workspace, repo: Path) -> None:
    before = user_state(repo)
    base = tip(ws)
    a, b = await asyncio.gather(ws.start_attempt("api", 1), ws.start_attempt("docs", 1))
    assert a.base_sha == b.base_sha == base and a.path != b.path and a.branch != b.branch
    assert a.branch == f"directive/{DIRECTIVE}/step/api/1"
    assert (a.path / ".git").is_file()  # a linked worktree: `.git` is a file
    (a.workdir / "lib.py").write_text("x = 2\n")
    (b.workdir / "README.md").write_text("hello docs\n")
    sha_a, sha_b = await asyncio.gather(ws.commit_attempt(a, "api"), ws.commit_attempt(b, "docs"))
    assert sha_a and sha_b

    first = await ws.merge(a)
    assert first.merged and first.fast_forward and first.sha == sha_a
    assert first.previous_sha == base
    # the second was cut from the old tip: a real merge commit, not a rebase
    second = await ws.merge(b)
    assert second.merged and not second.fast_forward and not second.conflicts
    parents = git(ws.top, "rev-list", "--parents", "-n", "1", second.sha or "").split()[1:]
    assert parents == [sha_a, sha_b]
    assert show(ws, "lib.py") == "x = 2" and show(ws, "README.md") == "hello docs"
    assert [c.sha for c in await ws.checkpoints()] == [first.sha, second.sha]
    assert [(c.step_slug, c.attempt) for c in await ws.checkpoints()] == [("api", 1), ("docs", 1)]
    assert user_state(repo) == before


async def test_conflicting_attempt_is_reported_and_changes_nothing(
    ws: Workspace, repo: Path
) -> None:
    before = user_state(repo)
    a = await ws.start_attempt("one", 1)
    b = await ws.start_attempt("two", 1)
    (a.workdir / "app.py").write_text("a = 1\nb = 'one'\nc = 3\n")
    (b.workdir / "app.py").write_text("a = 1\nb = 'two'\nc = 3\n")
    (b.workdir / "new.py").write_text("n = 1\n")
    await ws.commit_attempt(a, "one")
    await ws.commit_attempt(b, "two")
    assert (await ws.merge(a)).merged
    tip_after_a = tip(ws)
    result = await ws.merge(b)
    assert not result.merged and result.sha is None
    assert result.conflicts == ["app.py"]
    assert tip(ws) == tip_after_a
    # the integration worktree is left clean, with no merge in progress
    assert git(ws.integration_path, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (ws.integration_path / "new.py").exists()
    assert len(await ws.checkpoints()) == 1
    # the rework attempt starts from the new tip, and then merges
    c = await edit(ws, "two", 2, {"app.py": "a = 1\nb = 'one and two'\nc = 3\n"})
    assert c.base_sha == tip_after_a
    assert (await ws.merge(c)).fast_forward
    assert user_state(repo) == before


async def test_red_attempt_does_not_leak_unless_carried(ws: Workspace) -> None:
    red = await edit(ws, "impl", 1, {"lib.py": "x = 'half done'\n", "scratch.py": "s\n"})
    assert red.commit_sha
    await ws.remove_attempt(red, keep=True)  # kept for inspection
    assert red.path.exists()

    fresh = await ws.start_attempt("impl", 2)
    assert (fresh.workdir / "lib.py").read_text() == "x = 1\n"
    assert not (fresh.workdir / "scratch.py").exists()
    assert fresh.carried_from is None and fresh.start_sha == fresh.base_sha
    await ws.remove_attempt(fresh)

    # meanwhile another step moved the integration branch on
    other = await edit(ws, "docs", 1, {"README.md": "docs\n"})
    assert (await ws.merge(other)).merged

    carried = await ws.start_attempt("impl", 3, from_commit=red.commit_sha)
    assert carried.carried_from == red.commit_sha and not carried.carry_conflicts
    assert (carried.workdir / "lib.py").read_text() == "x = 'half done'\n"
    assert (carried.workdir / "README.md").read_text() == "docs\n"
    assert carried.base_sha == tip(ws) != carried.start_sha
    # nothing new in this attempt, but the carried work is its result
    assert await ws.commit_attempt(carried, "impl 3") == carried.start_sha
    diff = await ws.attempt_diff(carried)
    assert "half done" in diff and "docs" not in diff


async def test_carry_that_conflicts_starts_clean_and_says_so(ws: Workspace) -> None:
    red = await edit(ws, "impl", 1, {"app.py": "a = 'red'\nb = 2\nc = 3\n"})
    other = await edit(ws, "other", 1, {"app.py": "a = 'other'\nb = 2\nc = 3\n"})
    assert (await ws.merge(other)).merged
    again = await ws.start_attempt("impl", 2, from_commit=red.commit_sha)
    assert again.carry_conflicts == ["app.py"] and again.carried_from is None
    assert again.start_sha == again.base_sha == tip(ws)
    assert git(again.path, "status", "--porcelain") == ""
    assert (again.workdir / "app.py").read_text().startswith("a = 'other'")


async def test_commit_attempt_without_changes_and_executor_commits(ws: Workspace) -> None:
    idle = await ws.start_attempt("research", 1)
    assert await ws.commit_attempt(idle, "nothing") is None
    result = await ws.merge(idle)  # a step that changed nothing still passes
    assert result.merged and result.sha == idle.base_sha and not result.fast_forward
    assert len(await ws.checkpoints()) == 1

    busy = await ws.start_attempt("impl", 1)
    (busy.workdir / "lib.py").write_text("x = 3\n")
    git(busy.path, "-c", "user.name=agent", "-c", "user.email=a@b", "commit", "-qam", "agent")
    (busy.workdir / "extra.py").write_text("e\n")
    sha = await ws.commit_attempt(busy, "the rest")
    assert sha == git(busy.path, "rev-parse", "HEAD")
    assert git(ws.top, "rev-list", "--count", f"{busy.base_sha}..{sha}") == "2"
    assert git(ws.top, "log", "-1", "--format=%an", sha) == "directive-tui"
    assert await ws.changed_files(busy.base_sha, sha) == ["extra.py", "lib.py"]
    with pytest.raises(ValueError, match="not committed"):
        await ws.merge(await ws.start_attempt("late", 1))


async def test_linked_virtualenv_is_shared_but_never_committed(ws: Workspace, repo: Path) -> None:
    venv = repo / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    att = await ws.start_attempt("impl", 1)
    assert att.links == [".venv"]
    assert (att.workdir / ".venv").is_symlink()
    assert (att.workdir / ".venv" / "bin" / "python").exists()
    (att.workdir / "lib.py").write_text("x = 5\n")
    sha = await ws.commit_attempt(att, "impl")
    assert await ws.changed_files(att.base_sha, sha or "") == ["lib.py"]
    await ws.remove_attempt(att)
    assert not att.path.exists()
    assert (venv / "bin" / "python").read_text() == "#!/bin/sh\n"  # removal kept the original


async def test_remove_attempt_keeps_its_commit_reachable(ws: Workspace) -> None:
    att = await edit(ws, "impl", 1, {"lib.py": "x = 9\n"})
    await ws.remove_attempt(att)
    assert not att.path.exists()
    assert git(ws.top, "branch", "--list", att.branch) == ""
    assert f"{att.path}" not in git(ws.top, "worktree", "list")
    assert "x = 9" in await ws.diff(att.base_sha, att.commit_sha or "")


# ------------------------------------------------------ checkpoints, reset


async def test_reset_to_checkpoint_drops_later_ones_and_stale_attempts(ws: Workspace) -> None:
    one = await edit(ws, "one", 1, {"lib.py": "x = 'one'\n"})
    cp1 = await ws.merge(one)
    early = await edit(ws, "early", 1, {"early.py": "e\n"})  # cut from cp1
    two = await edit(ws, "two", 1, {"README.md": "two\n"})
    cp2 = await ws.merge(two)
    in_flight = await edit(ws, "three", 1, {"new.py": "three\n"})

    dropped = await ws.reset_to(cp1.sha or "")
    assert [(c.step_slug, c.sha) for c in dropped] == [("two", cp2.sha)]
    assert tip(ws) == cp1.sha
    assert [c.sha for c in await ws.checkpoints()] == [cp1.sha]
    assert (ws.integration_path / "README.md").read_text() == "hello\n"
    assert git(ws.integration_path, "status", "--porcelain", "--untracked-files=all") == ""
    with pytest.raises(StaleAttemptError, match="reset"):
        await ws.merge(in_flight)  # cut from cp2, which the reset removed
    assert (await ws.merge(early)).merged  # cut from cp1: still fine
    assert [c.step_slug for c in await ws.checkpoints()] == ["one", "early"]

    with pytest.raises(ValueError, match="not a checkpoint"):
        await ws.reset_to(cp2.sha or "")  # dropped: no longer a checkpoint
    assert [c.seq for c in await ws.reset_to(ws.base_sha)] == [1, 2]
    assert tip(ws) == ws.base_sha and await ws.checkpoints() == []
    # numbering goes on after a reset
    again = await edit(ws, "one", 2, {"lib.py": "x = 'again'\n"})
    assert (await ws.merge(again)).merged
    assert [c.seq for c in await ws.checkpoints()] == [1]


async def test_checkpoints_that_share_a_commit_are_told_apart_by_number(
    ws: Workspace,
) -> None:
    """A step that commits nothing (research, a build into ignored files)
    leaves the commit before it: only its number names that checkpoint."""
    survey = await ws.start_attempt("survey", 1)
    await ws.commit_attempt(survey, "survey: nothing to commit")
    at_base = await ws.merge(survey)
    assert at_base.sha == ws.base_sha
    one = await ws.merge(await edit(ws, "one", 1, {"lib.py": "x = 'one'\n"}))

    assert (await ws.dropped_by_reset(ws.base_sha))[1] == [await ws.checkpoints()][0][1:]
    assert [c.step_slug for c in (await ws.dropped_by_reset(0))[1]] == ["survey", "one"]
    assert await ws.dropped_by_reset(1) == (ws.base_sha, (await ws.checkpoints())[1:])
    with pytest.raises(
        ValueError, match=r"no checkpoint #7 \(#0 is where it started; checkpoints: #1, #2\)"
    ):
        await ws.dropped_by_reset(7)
    assert [c.seq for c in await ws.reset_to(2)] == []
    assert tip(ws) == one.sha
    assert [c.step_slug for c in await ws.reset_to(0)] == ["survey", "one"]
    assert await ws.checkpoints() == []


# ------------------------------------------------------------ artifacts


@pytest.fixture
async def builds(make_git_repo: Callable[..., Path], data_dir: Path) -> Workspace:
    """A workspace whose repo ignores build/ and cache/, handing build/ on."""
    repo = make_git_repo({"README.md": "hello\n", ".gitignore": "build/\ncache/\n"})
    opened = await Workspace.open(repo, DIRECTIVE, data_dir, artifacts=["build"])
    assert opened is not None
    return opened


async def make(ws: Workspace, step: str, attempt: int, files: dict[str, str]) -> Attempt:
    """An attempt that writes `files` (ignored ones included) and commits."""
    att = await ws.start_attempt(step, attempt)
    for rel, text in files.items():
        (att.workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (att.workdir / rel).write_text(text)
    await ws.commit_attempt(att, f"{step} attempt {attempt}")
    return att


def tree(att: Attempt, folder: str) -> dict[str, str]:
    top = att.workdir / folder
    return {
        p.relative_to(top).as_posix(): p.read_text() for p in sorted(top.rglob("*")) if p.is_file()
    }


async def test_a_passed_step_hands_its_ignored_build_folder_to_later_attempts(
    builds: Workspace,
) -> None:
    compile_ = await make(builds, "compile", 1, {"build/app.bin": "v1", "cache/x": "tmp"})
    assert await builds.left_out(compile_) == ["cache/"]  # build/ is handed on, not left out
    merged = await builds.merge(compile_)
    assert merged.artifacts == ["build"]
    assert (
        git(builds.top, "ls-tree", "-r", "--name-only", merged.sha or "") == ".gitignore\nREADME.md"
    )

    package = await builds.start_attempt("package", 1)
    assert tree(package, "build") == {"app.bin": "v1"}
    assert not (package.workdir / "cache").exists()  # ignored but not listed: stays behind
    assert git(package.workdir, "status", "--porcelain") == ""  # nothing to commit


async def test_artifacts_of_parallel_steps_add_up_and_the_newest_copy_wins(
    builds: Workspace,
) -> None:
    left = await make(builds, "left", 1, {"build/left.o": "L", "build/shared": "from left"})
    right = await make(builds, "right", 1, {"build/right.o": "R", "build/shared": "from right"})
    await builds.merge(left)
    await builds.merge(right)  # cut before left passed: it never saw left.o

    link = await builds.start_attempt("link", 1)
    assert tree(link, "build") == {"left.o": "L", "right.o": "R", "shared": "from right"}
    # link changes one file: its checkpoint keeps that one only, the rest
    # still comes from the older checkpoints
    (link.workdir / "build/shared").write_text("linked")
    await builds.commit_attempt(link, "link")
    await builds.merge(link)
    kept = builds.artifacts_path / "0003"
    assert [p.name for p in kept.rglob("*") if p.is_file()] == ["shared"]
    after = await builds.start_attempt("ship", 1)
    assert tree(after, "build") == {"left.o": "L", "right.o": "R", "shared": "linked"}


async def test_an_artifact_a_later_step_removes_stays_removed(builds: Workspace) -> None:
    """Artifacts merge like files: what a step was given and deleted is gone
    for the steps after it, while older checkpoints still hold their copy."""
    await builds.merge(await make(builds, "compile", 1, {"build/a.o": "A", "build/b.o": "B"}))
    clean = await builds.start_attempt("clean", 1)
    (clean.workdir / "build/a.o").unlink()
    (clean.workdir / "README.md").write_text("cleaned\n")
    await builds.commit_attempt(clean, "clean")
    await builds.merge(clean)
    assert (builds.artifacts_path / "0002.removed").read_text() == "build/a.o\n"
    assert tree(await builds.start_attempt("link", 1), "build") == {"b.o": "B"}
    await builds.reset_to(1)  # the removal goes with its checkpoint
    assert not (builds.artifacts_path / "0002.removed").exists()
    assert tree(await builds.start_attempt("again", 1), "build") == {"a.o": "A", "b.o": "B"}


async def test_an_attempt_resumed_after_a_restart_knows_the_artifacts_it_was_given(
    builds: Workspace, data_dir: Path
) -> None:
    """A step waiting for approval across a restart: when it passes, what it
    left unchanged is not copied again and what it removed is recorded."""
    await builds.merge(await make(builds, "compile", 1, {"build/a.o": "A", "build/b.o": "B"}))
    waiting = await builds.start_attempt("review", 1)
    (waiting.workdir / "build/a.o").unlink()
    (waiting.workdir / "notes.txt").write_text("reviewed\n")
    await builds.commit_attempt(waiting, "review")

    reopened = await Workspace.open(builds.repo, DIRECTIVE, data_dir, artifacts=["build"])
    assert reopened is not None
    resumed = await reopened.resume_attempt("review", 1)
    assert resumed is not None and resumed.restored == waiting.restored
    await reopened.merge(resumed)
    assert not (reopened.artifacts_path / "0002").exists()  # b.o unchanged: not copied
    assert (reopened.artifacts_path / "0002.removed").read_text() == "build/a.o\n"


async def test_a_reset_drops_the_artifacts_of_the_checkpoints_it_drops(
    builds: Workspace,
) -> None:
    first = await builds.merge(await make(builds, "first", 1, {"build/a": "1", "a.txt": "1"}))
    await builds.merge(await make(builds, "second", 1, {"build/b": "2", "b.txt": "2"}))
    await builds.reset_to(first.sha or "")
    assert tree(await builds.start_attempt("again", 1), "build") == {"a": "1"}
    await builds.reset_to(builds.base_sha)
    assert not (await builds.start_attempt("fresh", 1)).workdir.joinpath("build").exists()


async def test_artifacts_survive_a_restart_but_never_overwrite_tracked_files(
    builds: Workspace, data_dir: Path
) -> None:
    await builds.merge(await make(builds, "compile", 1, {"build/app.bin": "v1"}))
    await builds.prune()  # crash cleanup on restart keeps the artifacts folder
    reopened = await Workspace.open(builds.repo, DIRECTIVE, data_dir, artifacts=["build"])
    assert reopened is not None
    # a later step stops ignoring build/ and commits its own build/app.bin
    tracked = await reopened.start_attempt("track", 1)
    (tracked.workdir / ".gitignore").write_text("cache/\n")
    (tracked.workdir / "build/app.bin").write_text("committed")
    await reopened.commit_attempt(tracked, "track build")
    await reopened.merge(tracked)
    assert tree(await reopened.start_attempt("after", 1), "build") == {"app.bin": "committed"}


# ------------------------------------------------------------ crash cleanup


async def test_prune_after_a_crash_leaves_no_orphan(
    repo: Path, data_dir: Path, ws: Workspace
) -> None:
    survivor = await edit(ws, "kept", 1, {"lib.py": "kept\n"})
    gone = await ws.start_attempt("gone", 1)
    half = await ws.start_attempt("half", 1)
    live = await ws.start_attempt("live", 1)
    (live.workdir / "dirty.py").write_text("uncommitted\n")
    # the crash: one folder vanished (stale `worktree list` entry), one
    # worktree locked like an unfinished `worktree add`, a stray folder, and
    # the integration worktree caught mid-merge
    git(repo, "worktree", "lock", "--reason", "initializing", str(half.path))
    shutil.rmtree(gone.path)
    (ws.root / "junk-3").mkdir()
    (ws.root / "junk-3" / "file").write_text("x\n")
    (ws.integration_path / "lib.py").write_text("half merged\n")
    other = await Workspace.open(repo, "otherdirective", data_dir)
    assert other is not None
    theirs = await other.start_attempt("impl", 1)

    restarted = await Workspace.open(repo, DIRECTIVE, data_dir)
    assert restarted is not None
    report = await restarted.prune(keep=[survivor])
    listed = git(repo, "worktree", "list", "--porcelain")
    paths = {line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("worktree ")}
    assert paths == {
        str(repo.resolve()),
        str(restarted.integration_path),
        str(survivor.path),
        str(other.integration_path),
        str(theirs.path),
    }
    assert sorted(p.name for p in report.worktrees) == ["gone-1", "half-1", "live-1"]
    assert [p.name for p in report.folders] == ["junk-3"]
    assert sorted(os.listdir(restarted.root)) == ["_integration", "kept-1"]
    branches = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/directive/")
    assert sorted(branches.splitlines()) == sorted(
        [
            restarted.integration_branch,
            survivor.branch,
            other.integration_branch,
            theirs.branch,
        ]
    )
    assert git(restarted.integration_path, "status", "--porcelain", "--untracked-files=all") == ""
    # the kept attempt still merges after the restart
    assert (await restarted.merge(survivor)).merged


async def test_close_and_discard(ws: Workspace, repo: Path) -> None:
    att = await edit(ws, "impl", 1, {"lib.py": "x = 7\n"})
    assert (await ws.merge(att)).merged
    failed = await edit(ws, "broken", 1, {"README.md": "oops\n"})
    await ws.remove_attempt(failed, keep=True)
    await ws.close()
    assert not ws.root.exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "branch", "--list", "directive/*") == ws.integration_branch
    assert "x = 7" in await ws.final_diff()
    await ws.discard()
    assert git(repo, "for-each-ref", "refs/heads/directive/", "refs/directive-tui/") == ""
    assert git(repo, "rev-parse", "main") == ws.base_sha  # the user's branch survived


async def test_a_checkout_of_the_user_s_on_an_attempt_branch_survives_every_cleanup(
    ws: Workspace, repo: Path, tmp_path: Path, data_dir: Path
) -> None:
    """A user who switched their repository to a failed attempt's branch to
    look at it (or added a worktree there) lost it all on `stop`: cleanup
    took any worktree on an attempt branch for the engine's, and when git
    refused to remove the main one, the folder went anyway, `.git` too."""
    failed = await edit(ws, "broken", 1, {"README.md": "oops\n"})
    await ws.remove_attempt(failed, keep=True)
    again = await edit(ws, "again", 1, {"lib.py": "y\n"})
    await ws.remove_attempt(again, keep=True)
    git(repo, "worktree", "remove", "--force", str(failed.path))  # the user looks at it...
    git(repo, "switch", "-q", failed.branch)  # ...in their own checkout
    (repo / "notes.txt").write_text("mine, uncommitted\n")
    inspect = tmp_path / "inspect"
    git(repo, "worktree", "add", "-q", "-f", str(inspect), again.branch)
    (inspect / "fix.txt").write_text("mine too\n")

    await ws.remove_attempt(failed)  # a retry drops the failed attempt
    restarted = await Workspace.open(repo, DIRECTIVE, data_dir)
    assert restarted is not None
    await restarted.prune()  # a restart after a crash
    await restarted.close()  # the directive ends

    assert (repo / ".git").is_dir() and (repo / "notes.txt").read_text() == "mine, uncommitted\n"
    assert git(repo, "symbolic-ref", "HEAD") == f"refs/heads/{failed.branch}"
    assert git(repo, "rev-parse", "HEAD") == failed.commit_sha  # its branch is still there
    assert (inspect / "fix.txt").read_text() == "mine too\n"
    assert git(inspect, "rev-parse", "--abbrev-ref", "HEAD") == again.branch
    assert not restarted.root.exists()  # the engine's own worktrees went


async def test_removing_a_worktree_outside_the_engine_s_folder_is_refused(
    ws: Workspace, repo: Path
) -> None:
    from engine.git_repo import GitRepo

    with pytest.raises(GitError, match="where the engine keeps its worktrees"):
        await GitRepo(repo, {}).remove_worktree(repo.resolve(), within=ws.root)
    assert (repo / ".git").is_dir() and (repo / "app.py").exists()


async def test_merges_of_two_engines_on_one_database_go_one_at_a_time(
    ws: Workspace, repo: Path, data_dir: Path
) -> None:
    """An `approve` from the command line merged beside the app's verdict:
    git's ref lock failed one, and its undo moved the branch back over the
    other's merge, a passed step gone from the result. The workspace's lock
    holds across processes (another Workspace here, with a lock of its own)."""
    other = await Workspace.open(repo, DIRECTIVE, data_dir)
    assert other is not None
    mine = await edit(ws, "mine", 1, {"lib.py": "mine\n"})
    theirs = await edit(other, "theirs", 1, {"README.md": "theirs\n"})
    async with ws._lock:  # this engine is merging
        merging = asyncio.create_task(other.merge(theirs))
        await asyncio.sleep(0.3)
        assert not merging.done()  # the other waits
    assert (await merging).merged
    assert (await ws.merge(mine)).merged
    assert show(ws, "lib.py") == "mine" and show(ws, "README.md") == "theirs"


async def test_merging_an_attempt_merged_before_neither_merges_nor_counts_it_twice(
    ws: Workspace,
) -> None:
    """A kill (or a busy database) between a merge and the write of its
    verdict: the engine that carries on merges the same attempt again, and
    recorded a second checkpoint at the same commit."""
    att = await edit(ws, "impl", 1, {"lib.py": "x = 7\n"})
    first = await ws.merge(att)
    again = await ws.merge(att)
    assert (again.merged, again.sha) == (True, first.sha)
    assert again.sha != again.previous_sha  # the step did change files
    assert [c.seq for c in await ws.checkpoints()] == [1]


async def test_looking_at_a_closed_workspace_creates_nothing(
    ws: Workspace, repo: Path, data_dir: Path
) -> None:
    """An ended directive is read from its refs: no folder, no worktree and
    no branch comes back, and one that never ran here has nothing to show."""
    att = await edit(ws, "impl", 1, {"lib.py": "x = 7\n"})
    assert (await ws.merge(att)).merged
    await ws.close()
    refs = git(repo, "for-each-ref")
    seen = await Workspace.open(repo, DIRECTIVE, data_dir, look_only=True)
    assert seen is not None and seen.base_sha == ws.base_sha and seen.user_branch == "main"
    assert "x = 7" in await seen.final_diff() and len(await seen.checkpoints()) == 1
    assert not ws.root.exists() and git(repo, "for-each-ref") == refs
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    with pytest.raises(ValueError, match="has no branch in .*: no step of it ran there"):
        await Workspace.open(repo, "never0run", data_dir, look_only=True)
    assert git(repo, "for-each-ref") == refs


# ---------------------------------------------------------- the user's branch


async def test_user_branch_moves_only_on_fast_forward(ws: Workspace, repo: Path) -> None:
    before = user_state(repo)
    att = await edit(ws, "impl", 1, {"lib.py": "x = 42\n", "new.py": "n\n"})
    assert (await ws.merge(att)).merged
    await ws.remove_attempt(att)
    final = await ws.final_diff()
    assert "+x = 42" in final and "new.py" in final
    assert "new.py" in await ws.final_diff(stat=True)

    (repo / "lib.py").write_text("user edit\n")
    offer = await ws.offer_fast_forward()
    assert not offer.possible and "uncommitted changes" in offer.reason
    (repo / "lib.py").write_text("x = 1\n")
    assert user_state(repo) == before

    offer = await ws.offer_fast_forward()
    assert offer.possible and offer.branch == "main" and offer.target_sha == tip(ws)
    assert offer.worktree == repo.resolve()
    assert await ws.fast_forward_user_branch() == tip(ws)
    assert git(repo, "rev-parse", "HEAD") == tip(ws)
    assert (repo / "new.py").read_text() == "n\n"
    assert git(repo, "status", "--porcelain") == ""
    nothing = await ws.offer_fast_forward()
    assert not nothing.possible and "nothing to fast-forward" in nothing.reason
    with pytest.raises(ValueError, match="cannot fast-forward"):
        await ws.fast_forward_user_branch()


async def test_fast_forward_refused_when_user_branch_moved(ws: Workspace, repo: Path) -> None:
    att = await edit(ws, "impl", 1, {"lib.py": "x = 2\n"})
    assert (await ws.merge(att)).merged
    (repo / "mine.txt").write_text("mine\n")
    git(repo, "add", "mine.txt")
    git(repo, "commit", "-qm", "user work")
    offer = await ws.offer_fast_forward()
    assert not offer.possible and "moved on" in offer.reason
    # the final diff is still base .. integration tip, without the user's commit
    assert "mine.txt" not in await ws.final_diff()


async def test_fast_forward_of_a_branch_not_checked_out(ws: Workspace, repo: Path) -> None:
    git(repo, "switch", "-q", "-c", "elsewhere")
    before = user_state(repo)
    att = await edit(ws, "impl", 1, {"lib.py": "x = 2\n"})
    assert (await ws.merge(att)).merged
    offer = await ws.offer_fast_forward()
    assert offer.possible and offer.worktree is None
    assert offer.reason.endswith("(1 commit)")  # it read "(1 commits)"
    await ws.fast_forward_user_branch()
    assert git(repo, "rev-parse", "main") == tip(ws)
    assert user_state(repo) == before  # the checkout (on `elsewhere`) did not change


# -------------------------------------------------------------- small parts


async def test_git_error_names_command_and_stderr(ws: Workspace) -> None:
    with pytest.raises(GitError) as info:
        await run_git(ws.top, "diff", "no-such-rev", "HEAD")
    message = str(info.value)
    assert "git diff no-such-rev HEAD" in message and "unknown revision" in message
    assert info.value.code == 128
    with pytest.raises(ValueError, match="unknown commit"):
        await ws.start_attempt("impl", 1, from_commit="no-such-rev")
    with pytest.raises(ValueError, match="start at 1"):
        await ws.start_attempt("impl", 0)


def test_step_slug_is_safe_and_distinct() -> None:
    assert step_slug("implement") == "implement"
    names = ["Build", "build ", "a b", "a-b", "../x", "x.lock", "é", "a..b", "x" * 80]
    slugs = [step_slug(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    for slug in slugs:
        assert slug == slug.lower() and "/" not in slug and ".." not in slug
        assert not slug.endswith(".lock") and len(slug) <= 47
        subprocess.run(["git", "check-ref-format", f"refs/heads/{slug}"], check=True)
    with pytest.raises(ValueError, match="empty"):
        step_slug("  ")


async def test_merges_run_one_at_a_time(ws: Workspace) -> None:
    attempts = [await edit(ws, f"s{i}", 1, {f"f{i}.py": f"v = {i}\n"}) for i in range(4)]
    results = await asyncio.gather(*(ws.merge(a) for a in attempts))
    assert all(r.merged for r in results)
    assert sum(r.fast_forward for r in results) == 1  # the first; the rest merge commits
    for i in range(4):
        assert show(ws, f"f{i}.py") == f"v = {i}"
    assert len(await ws.checkpoints()) == 4


async def test_restarting_an_attempt_number_starts_fresh(ws: Workspace) -> None:
    first = await ws.start_attempt("impl", 1)
    (first.workdir / "lib.py").write_text("crashed mid-way\n")
    again = await ws.start_attempt("impl", 1)
    assert again.path == first.path
    assert (again.workdir / "lib.py").read_text() == "x = 1\n"
    assert git(again.path, "status", "--porcelain") == ""


async def test_resume_a_kept_attempt_after_restart(
    ws: Workspace, repo: Path, data_dir: Path
) -> None:
    waiting = await edit(ws, "review me", 1, {"lib.py": "x = 'yellow'\n"})
    uncommitted = await ws.start_attempt("busy", 1)
    restarted = await Workspace.open(repo, DIRECTIVE, data_dir)
    assert restarted is not None
    path = restarted.attempt_path("review me", 1)
    assert path == waiting.path
    await restarted.prune(keep=[path])
    assert await restarted.resume_attempt("busy", 1) is None  # pruned
    assert uncommitted.path.exists() is False
    back = await restarted.resume_attempt("review me", 1)
    assert back is not None
    assert (back.base_sha, back.commit_sha, back.committed) == (
        waiting.base_sha,
        waiting.commit_sha,
        True,
    )
    assert back.branch == waiting.branch and back.workdir == waiting.workdir
    assert (await restarted.merge(back)).fast_forward


async def test_a_briefly_held_lock_is_waited_out(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another git process (the user's, say) holds a ref lock for a moment:
    the call backs off and retries instead of failing the step."""
    att = await ws.start_attempt("impl", 1)
    (att.workdir / "lib.py").write_text("x = 11\n")
    common = Path(git(ws.top, "rev-parse", "--git-common-dir"))
    ref = f"refs/directive-tui/{DIRECTIVE}/attempts/impl/1/head"
    lock = (ws.top / common) / f"{ref}.lock"
    lock.write_text("")
    backoffs: list[float] = []
    real_sleep = asyncio.sleep

    async def backoff(delay: float) -> None:  # the other process lets go
        backoffs.append(delay)
        lock.unlink(missing_ok=True)
        await real_sleep(0)

    monkeypatch.setattr(git_runner.asyncio, "sleep", backoff)
    sha = await ws.commit_attempt(att, "impl")
    assert backoffs == [git_runner.LOCK_BACKOFF_S]
    assert sha and git(ws.top, "rev-parse", ref) == sha

    lock.write_text("")  # held for good: the error says so
    monkeypatch.setattr(git_runner.asyncio, "sleep", lambda delay: real_sleep(0))
    with pytest.raises(GitError, match="File exists"):
        await ws.commit_attempt(att, "again")
    lock.unlink()


async def test_cancelled_git_call_is_let_finish(ws: Workspace, tmp_path: Path) -> None:
    """Killing git mid-write would leave lock files behind: a cancelled call
    waits for git to end, then the cancellation goes on."""
    started, done = tmp_path / "started", tmp_path / "done"
    alias = f"alias.slow=!touch {started} && sleep 0.3 && touch {done}"
    call = asyncio.create_task(run_git(ws.top, "-c", alias, "slow"))
    while not started.exists():
        await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert done.exists()


async def test_git_cancelled_while_starting_is_let_finish(ws: Workspace, tmp_path: Path) -> None:
    """A cancellation landing while asyncio connects git's pipes (after the
    fork) made asyncio SIGKILL git mid-start. Which turn of the loop that is
    depends on asyncio's internals, so every early turn is tried."""
    for turns in range(1, 5):
        done = tmp_path / f"done-{turns}"
        alias = f"alias.slow=!sleep 0.2 && touch {done}"
        call = asyncio.create_task(run_git(ws.top, "-c", alias, "slow"))
        for _ in range(turns):
            await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert done.exists(), f"git cut off when cancelled after {turns} turns"
