"""`merge` and the user's checkout: the fast-forward never overwrites a
file git does not track there (an ignored one least of all: git would
overwrite it without a word), it says where the branch was and how to put
it back, and the end of a run names the command even when the checkout
must be tidied first."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.git import GitError
from engine.user_branch import fast_forward_as_offered
from engine.worktrees import Workspace
from tests.test_cli import directive_file, only_directive, run_cli

DIRECTIVE = "d0123456789a"
SECRET = "MY SECRET LOCAL CONFIG\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def shell_step(command: str) -> str:
    return f'[[steps]]\nname = "write"\ntype = "shell"\ncommand = \'{command}\'\n'


def run_directive(tmp_path: Path, repo: Path, command: str) -> tuple[str, str]:
    """A full-auto directive of one shell step on `repo`, run to its end:
    its id and the tip of its integration branch."""
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, repo, shell_step(command), autonomy="full_auto")
    code, out, err = run_cli("--db", db, "run", str(path), "--headless")
    assert code == 0, out + err
    did = only_directive(db)
    return did, git(repo, "rev-parse", f"directive/{did}/integration")


# ------------------------------------------------- files git does not track


def test_merge_refuses_to_overwrite_an_ignored_file(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """The reviewer's case: the result starts tracking `config.local`, which
    the user has as an ignored local file. `merge --ff-only` would have
    replaced it with the result's; merge refuses, naming it, and moves
    nothing until it is moved aside."""
    repo = make_git_repo({"README.md": "hello\n", ".gitignore": "config.local\n"})
    (repo / "config.local").write_text(SECRET)
    head = git(repo, "rev-parse", "HEAD")
    did, tip = run_directive(
        tmp_path, repo, 'printf "" > .gitignore; echo "template config" > config.local'
    )
    db = str(tmp_path / "x.db")

    code, out, err = run_cli("--db", db, "merge", did)
    assert (code, out) == (2, "")
    assert "config.local" in err and "Move it aside" in err and "ignored" in err, err
    assert (repo / "config.local").read_text() == SECRET
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""

    (repo / "config.local").rename(tmp_path / "config.local.mine")
    code, out, _ = run_cli("--db", db, "merge", did)
    assert code == 0 and out.startswith(f"fast-forwarded main to {tip[:12]}"), out
    assert (repo / "config.local").read_text() == "template config\n"


async def _workspace_with(repo: Path, tmp_path: Path, write: Callable[[Path], None]) -> Workspace:
    """A workspace on `repo` whose one passed step did `write` in its worktree."""
    ws = await Workspace.open(repo, DIRECTIVE, tmp_path / "data")
    assert ws is not None
    att = await ws.start_attempt("impl", 1)
    write(att.workdir)
    await ws.commit_attempt(att, "impl attempt 1")
    assert (await ws.merge(att)).merged
    await ws.remove_attempt(att)
    return ws


def _adds_files(workdir: Path) -> None:
    (workdir / ".gitignore").write_text("")
    (workdir / "build").write_text("now a tracked file\n")  # where the user has a folder
    (workdir / "cache").mkdir()
    (workdir / "cache" / "index.txt").write_text("x\n")  # where the user has a file
    (workdir / "notes.txt").write_text("tracked notes\n")  # untracked, not ignored


async def test_the_offer_names_every_untracked_path_in_the_way(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """An ignored folder where the result adds a file, an ignored file where
    it needs a folder, an untracked file where it adds one: all named, and
    the offer is refused for the checkout only (tidied, merge goes)."""
    repo = make_git_repo({"README.md": "hello\n", ".gitignore": "build/\ncache\n"})
    ws = await _workspace_with(repo, tmp_path, _adds_files)
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("mine\n")
    (repo / "cache").write_text("mine\n")
    (repo / "notes.txt").write_text("mine\n")

    offer = await ws.offer_fast_forward()
    assert not offer.possible and offer.blocked_by_checkout
    for path in ("build/", "cache", "notes.txt"):
        assert path in offer.reason, offer.reason
    assert offer.current_sha == ws.base_sha
    with pytest.raises(ValueError, match="cannot fast-forward"):
        await ws.fast_forward_user_branch()
    assert (repo / "build" / "out.bin").read_text() == "mine\n"
    assert (repo / "cache").read_text() == "mine\n"

    for rel in ("build/out.bin", "cache", "notes.txt"):
        (repo / rel).unlink()
    offer = await ws.offer_fast_forward()  # an empty folder is no loss: git replaces it
    assert offer.possible and not offer.blocked_by_checkout, offer.reason


async def test_a_tracked_file_the_result_turns_into_a_folder_is_not_in_the_way(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo({"README.md": "hello\n", "docs": "one file\n"})

    def to_folder(workdir: Path) -> None:
        (workdir / "docs").unlink()
        (workdir / "docs").mkdir()
        (workdir / "docs" / "index.md").write_text("a folder now\n")

    ws = await _workspace_with(repo, tmp_path, to_folder)
    offer = await ws.offer_fast_forward()
    assert offer.possible, offer.reason
    await ws.fast_forward_user_branch()
    assert (repo / "docs" / "index.md").read_text() == "a folder now\n"


async def test_an_ignored_file_that_turns_up_after_the_offer_stops_the_fast_forward(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """Between the offer and the fast-forward (the app's dialog waiting for
    its answer) the file appears: git refuses (`--no-overwrite-ignore`)."""
    repo = make_git_repo({"README.md": "hello\n", ".gitignore": "config.local\n"})

    def adds(workdir: Path) -> None:
        (workdir / ".gitignore").write_text("")
        (workdir / "config.local").write_text("template config\n")

    ws = await _workspace_with(repo, tmp_path, adds)
    offer = await ws.offer_fast_forward()
    assert offer.possible, offer.reason
    (repo / "config.local").write_text(SECRET)
    with pytest.raises(GitError):
        await fast_forward_as_offered(ws._git, offer)
    assert (repo / "config.local").read_text() == SECRET
    assert git(repo, "rev-parse", "HEAD") == ws.base_sha


# ----------------------------------------------------- what merge then says


def test_merge_says_where_the_branch_was_how_to_undo_and_that_delete_may_go(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    head = git(repo, "rev-parse", "HEAD")
    did, tip = run_directive(tmp_path, repo, "echo hi > out.txt")
    db = str(tmp_path / "x.db")

    code, out, _ = run_cli("--db", db, "merge", did)
    assert code == 0
    moved, undo, delete = out.splitlines()
    assert moved == f"fast-forwarded main to {tip[:12]} (it was at {head[:12]})"
    assert undo.startswith(f"to undo, while main is still at {tip[:12]}: git ")
    assert f"`directive-tui --db {db} delete {did}`" in delete
    assert f"directive/{did}/integration" in delete

    # the undo, as printed, puts branch and files back
    subprocess.run(shlex.split(undo.split(": ", 1)[1]), check=True, capture_output=True)
    assert git(repo, "rev-parse", "HEAD") == head
    assert not (repo / "out.txt").exists() and git(repo, "status", "--porcelain") == ""

    assert run_cli("--db", db, "merge", did)[0] == 0  # and again, then delete
    code, out, _ = run_cli("--db", db, "delete", did)
    assert code == 0 and "removed branch" in out, out
    assert git(repo, "rev-parse", "HEAD") == tip


def test_the_undo_of_a_branch_no_checkout_has_moves_only_the_branch(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    head = git(repo, "rev-parse", "HEAD")
    did, tip = run_directive(tmp_path, repo, "echo hi > out.txt")
    git(repo, "switch", "-q", "-c", "elsewhere")
    db = str(tmp_path / "x.db")

    code, out, _ = run_cli("--db", db, "merge", did)
    assert code == 0
    undo = out.splitlines()[1].split(": ", 1)[1]
    assert git(repo, "rev-parse", "main") == tip
    subprocess.run(shlex.split(undo), check=True, capture_output=True)
    assert git(repo, "rev-parse", "main") == head
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "elsewhere"


# ------------------------------------------------------ the end of the run


def test_the_end_names_merge_when_the_checkout_must_be_tidied_first(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo({"README.md": "hello\n", "lib.py": "x = 1\n"})
    (repo / "lib.py").write_text("x = 2  # the user's own edit\n")
    did, _ = run_directive(tmp_path, repo, "echo hi > out.txt")
    db = str(tmp_path / "x.db")
    last = run_cli("--db", db, "events", did, "--last", "1")[1]
    assert "uncommitted changes" in last, last
    assert f"directive-tui --db {db} merge {did}" in last, last
