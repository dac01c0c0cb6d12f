"""`directive-tui check FILE`: what a run would do, told without running
anything or writing anything. The mistakes a run meets only after its
first step (a step naming a check the repository lacks, a repository git
cannot give worktrees) are refused up front, every one at once."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_cli import run_cli

PYTHON_REPO = {
    "tests/test_calc.py": "def test_add():\n    assert 1 + 1 == 2\n",
    "pyproject.toml": "[tool.ruff]\n",
}


def write(tmp_path: Path, repo: Path, body: str, name: str = "d.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'title = "check me"\ngoal = "g"\nrepo = "{repo}"\nexecutor = "shell"\n' + body)
    return path


def nothing_written(tmp_path: Path, db: Path) -> bool:
    return not db.exists() and not (tmp_path / f"{db.stem}-work").exists()


def test_a_runnable_file_is_told_step_by_step_and_nothing_is_written(
    tmp_path: Path, make_git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    repo = make_git_repo(PYTHON_REPO)
    (repo / "pyproject.toml").write_text("[tool.ruff]\nline-length = 90\n")  # uncommitted
    steps = (
        '[[steps]]\nname = "look"\ntype = "research"\ncommand = "true"\n'
        '[[steps]]\nname = "build"\ncommand = "echo x > x.txt"\ndepends_on = ["look"]\n'
        '[[steps]]\nname = "docs"\ntype = "docs"\ncommand = "true"\ndepends_on = ["look"]\n'
        "verifiers = []\n"
    )
    path = write(tmp_path, repo, steps)
    db = tmp_path / "x.db"
    code, out, err = run_cli("--db", str(db), "check", str(path))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{path}: ready to run (nothing was written)"
    assert lines[1].startswith(f"  repo      {repo} (git, at ")
    assert lines[1].endswith(": each attempt in a worktree of its own)")
    assert "  runs      planner explicit, executor shell, autonomy guardrails" in lines
    assert "  claude    not used: the LLM judge is off without ANTHROPIC_API_KEY" in lines
    checks = next(line for line in lines if line.startswith("  checks    "))
    assert "pytest (tests/test_calc.py; run with " in checks and "ruff ([tool.ruff]" in checks
    assert "  steps     look -> build, docs" in lines
    assert (
        "  look      llm_judge (off here: no ANTHROPIC_API_KEY): a person looks if it changes files"
    ) in lines
    assert "  build     pytest (gates), ruff, llm_judge (off here: no ANTHROPIC_API_KEY)" in lines
    assert "  docs      no check: passes on its command's result" in lines
    assert (
        "  note      uncommitted changes in your tree are not part of this directive: pyproject.toml"
    ) in lines
    assert nothing_written(tmp_path, db)


def test_what_a_run_would_meet_only_later_is_refused_every_one_at_once(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A step naming a check the repository lacks was caught only after its
    command ran; a repository with no commit only at the first step."""
    empty = tmp_path / "fresh"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    (empty / "tests").mkdir()
    (empty / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    steps = '[[steps]]\nname = "a"\ncommand = "true"\nverifiers = ["npm_test"]\n'
    path = write(tmp_path, empty, steps)
    db = tmp_path / "x.db"
    code, out, err = run_cli("--db", str(db), "check", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"directive-tui: {path}: cannot run (2 problems):\n")
    assert (
        f"  steps cannot run in worktrees of their own: {empty.resolve()} has no commit yet:"
        " commit once so the directive has a base to branch from\n"
    ) in err
    assert "  step 'a' lists unknown verifier(s) 'npm_test'; it can name: " in err
    assert nothing_written(tmp_path, db)


def test_a_malformed_file_is_refused_as_run_refuses_it(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    path = write(tmp_path, make_git_repo(), '[[steps]]\nname = "a"\ncomand = "true"\n')
    checked = run_cli("check", str(path))
    ran = run_cli("--db", str(tmp_path / "x.db"), "run", str(path), "--headless")
    assert checked[0] == ran[0] == 2
    assert checked[2] == ran[2] and "comand" in checked[2]


def test_a_database_run_would_refuse_is_refused_and_a_missing_one_is_not_made(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """check skipped the database checks altogether: 'ready to run' for a
    --db that is a folder, another program's file or not SQLite at all."""
    import sqlite3

    path = write(tmp_path, make_git_repo(), '[[steps]]\nname = "a"\ncommand = "true"\n')
    folder = tmp_path / "dbs"
    folder.mkdir()
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not sql")
    for db, says in (
        (folder, "is a folder"),
        (foreign, "is another program's SQLite database"),
        (garbage, "is not a SQLite database"),
    ):
        code, out, err = run_cli("--db", str(db), "check", str(path))
        assert (code, out) == (2, "") and says in err, err
    missing = tmp_path / "new" / "x.db"
    assert run_cli("--db", str(missing), "check", str(path))[0] == 0
    assert not missing.parent.exists()


def test_a_folder_detection_cannot_read_is_named_not_a_traceback(
    tmp_path: Path, make_git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.verifiers import detect

    def unreadable(repo: Path, *names: str) -> str | None:
        raise PermissionError(13, "Permission denied", str(repo / names[0]))

    monkeypatch.setattr(detect, "_exists", unreadable)
    path = write(tmp_path, make_git_repo(PYTHON_REPO), '[[steps]]\nname = "a"\ncommand = "true"\n')
    code, out, err = run_cli("--db", str(tmp_path / "x.db"), "check", str(path))
    assert (code, out) == (2, "")
    assert "verifiers: [Errno 13] Permission denied" in err
