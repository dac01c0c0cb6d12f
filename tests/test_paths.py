"""resolve_in_repo / relative_to_repo against real folders and symlinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.paths import PathEscapeError, relative_to_repo, resolve_in_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret\n")
    return root


def test_plain_relative_paths_resolve_inside(repo: Path) -> None:
    assert resolve_in_repo(repo, "src/pkg/mod.py") == (repo / "src/pkg/mod.py").resolve()
    assert resolve_in_repo(repo, "./src/../src/pkg") == (repo / "src/pkg").resolve()
    assert resolve_in_repo(repo, ".") == repo.resolve()


def test_missing_paths_are_allowed(repo: Path) -> None:
    assert resolve_in_repo(repo, "new/dir/file.txt") == repo.resolve() / "new/dir/file.txt"


@pytest.mark.parametrize(
    "bad", ["..", "../outside/secret.txt", "src/../../outside", "src/pkg/../../.."]
)
def test_dotdot_escaping_is_refused(repo: Path, bad: str) -> None:
    with pytest.raises(PathEscapeError, match=r"'\.\.' leads outside"):
        resolve_in_repo(repo, bad)


def test_absolute_paths_are_refused(repo: Path) -> None:
    with pytest.raises(PathEscapeError, match="absolute paths are not allowed"):
        resolve_in_repo(repo, str(repo / "src"))
    with pytest.raises(PathEscapeError, match="absolute"):
        resolve_in_repo(repo, "/etc/passwd")


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_paths_are_refused(repo: Path, bad: str) -> None:
    with pytest.raises(PathEscapeError, match="empty path"):
        resolve_in_repo(repo, bad)


def test_symlinked_file_pointing_out_is_refused(repo: Path, tmp_path: Path) -> None:
    (repo / "leak.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    with pytest.raises(PathEscapeError, match="leak.txt is a symlink to .*outside the repository"):
        resolve_in_repo(repo, "leak.txt")


def test_symlinked_dir_pointing_out_is_refused_midway(repo: Path, tmp_path: Path) -> None:
    (repo / "src" / "ext").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(PathEscapeError, match="src/ext is a symlink"):
        resolve_in_repo(repo, "src/ext/secret.txt")
    with pytest.raises(PathEscapeError, match="src/ext is a symlink"):
        resolve_in_repo(repo, "src/ext/not-yet-there.txt")


def test_dangling_symlink_pointing_out_is_refused(repo: Path, tmp_path: Path) -> None:
    (repo / "dangling").symlink_to(tmp_path / "outside" / "missing.txt")
    with pytest.raises(PathEscapeError, match="dangling is a symlink"):
        resolve_in_repo(repo, "dangling")


def test_symlinks_inside_the_repo_are_followed(repo: Path) -> None:
    (repo / "alias").symlink_to(repo / "src" / "pkg", target_is_directory=True)
    (repo / "rel-link.py").symlink_to(Path("src/pkg/mod.py"))
    assert resolve_in_repo(repo, "alias/mod.py") == (repo / "src/pkg/mod.py").resolve()
    assert resolve_in_repo(repo, "rel-link.py") == (repo / "src/pkg/mod.py").resolve()


def test_dotdot_after_symlink_follows_the_real_parent(repo: Path, tmp_path: Path) -> None:
    # alias -> src/pkg, so alias/.. is src (what the OS does), still inside.
    (repo / "alias").symlink_to(repo / "src" / "pkg", target_is_directory=True)
    assert resolve_in_repo(repo, "alias/..") == (repo / "src").resolve()


def test_repo_given_through_a_symlink(repo: Path, tmp_path: Path) -> None:
    via = tmp_path / "via"
    via.symlink_to(repo, target_is_directory=True)
    assert resolve_in_repo(via, "src/pkg/mod.py") == (repo / "src/pkg/mod.py").resolve()


def test_relative_to_repo(repo: Path, tmp_path: Path) -> None:
    assert relative_to_repo(repo, repo / "src" / "pkg" / "mod.py") == "src/pkg/mod.py"
    assert relative_to_repo(repo, "src/pkg") == "src/pkg"
    assert relative_to_repo(repo, repo) == "."
    (repo / "leak.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    assert relative_to_repo(repo, repo / "leak.txt") == "leak.txt"  # names the link
    with pytest.raises(PathEscapeError, match="outside the repository"):
        relative_to_repo(repo, tmp_path / "outside" / "secret.txt")


def test_a_symlink_loop_is_refused_as_a_path_that_leads_nowhere(repo: Path) -> None:
    """Python's resolve raises RuntimeError on a loop, which got past every
    caller that catches PathEscapeError (an agent's whole attempt failed)."""
    (repo / "b").symlink_to("a")
    (repo / "a").symlink_to("b")
    with pytest.raises(PathEscapeError, match="leads nowhere"):
        resolve_in_repo(repo, "a")
    with pytest.raises(PathEscapeError, match="leads nowhere"):
        resolve_in_repo(repo, "a/inside.txt")
    with pytest.raises(PathEscapeError, match="leads nowhere"):
        relative_to_repo(repo, "a/inside.txt")
    assert relative_to_repo(repo, "a") == "a"  # the link itself is named, not followed
