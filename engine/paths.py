"""Keeping paths an executor or agent is given inside the repository.

Paths come from directive files and from model tool calls, so they are
untrusted: an absolute path, a `..` or a symlink could point anywhere on the
machine. `resolve_in_repo` walks the path one component at a time the way
the OS would, following each symlink and refusing the first step outside.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathEscapeError(ValueError):
    """A path that would leave the repository, or is not a usable path."""


def is_under(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or lies inside it."""
    return path == root or root in path.parents


def _resolve(path: Path, named: str) -> Path:
    """`path.resolve()`, a symlink loop refused as a path like any other
    (Python raises RuntimeError for one, which no caller expects)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        raise PathEscapeError(f"{named!r} leads nowhere: {exc}") from None


def resolve_in_repo(repo: Path, user_path: str) -> Path:
    """The real, absolute path `user_path` names inside `repo`.

    Refuses absolute paths, `..` that climbs out, and symlinks (anywhere
    along the path, the last component included when it exists) resolving
    outside. The path need not exist; missing components are taken as they
    are written. `""` is refused, `"."` is the repository itself.
    """
    if not isinstance(user_path, str):
        raise PathEscapeError(f"path must be a string, got {type(user_path).__name__}")
    if not user_path.strip():
        raise PathEscapeError("empty path: give a path relative to the repository")
    if "\0" in user_path:
        raise PathEscapeError(f"{user_path!r}: path contains a NUL byte")
    if os.path.isabs(user_path) or user_path.startswith("~"):
        raise PathEscapeError(
            f"{user_path!r}: absolute paths are not allowed; give a path relative to the repository"
        )
    root = Path(repo).resolve()
    current = root
    walked = PurePosixPath()
    for part in PurePosixPath(user_path.replace(os.sep, "/")).parts:
        if part == ".":
            continue
        walked /= part
        if part == "..":
            if current == root:
                raise PathEscapeError(f"{user_path!r}: '..' leads outside the repository")
            current = current.parent
            continue
        candidate = current / part
        if candidate.is_symlink():
            target = _resolve(candidate, user_path)
            if not is_under(target, root):
                raise PathEscapeError(
                    f"{user_path!r}: {walked.as_posix()} is a symlink to {target}, "
                    "outside the repository"
                )
            current = target
        else:
            current = candidate
    return current


def relative_to_repo(repo: Path, path: Path | str) -> str:
    """`path` (absolute, or relative to `repo`) as a repo-relative posix
    string, e.g. for a list of modified files. The last component is not
    followed if it is a symlink: the link itself is what is named."""
    root = Path(repo).resolve()
    p = Path(path)
    if not p.is_absolute():
        p = root / p
    if p.name in ("", ".", ".."):
        p = _resolve(p, str(path))
    else:
        p = _resolve(p.parent, str(path)) / p.name
    if not is_under(p, root):
        raise PathEscapeError(f"{str(path)!r} is outside the repository {root}")
    return p.relative_to(root).as_posix()


# Names a file system may take for `.git`: any case (macOS, Windows), trailing
# dots and spaces (Windows drops them), its 8.3 short name, and code points
# macOS ignores in names (zero-width joiners and direction marks).
GIT_DIR_NAMES = frozenset({".git", "git~1"})
HFS_IGNORED = dict.fromkeys(
    [0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


def in_git_dir(rel: str) -> bool:
    """Whether a repo-relative path goes into `.git` on some file system:
    no step may write there (it would corrupt the repository)."""
    return any(
        part.translate(HFS_IGNORED).casefold().rstrip(". ") in GIT_DIR_NAMES
        for part in rel.split("/")
    )
