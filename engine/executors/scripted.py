"""Deterministic file edits written in the directive: the offline demo and
tests get a real executor that changes real files, without a model.

Attempt N of a step uses `step.spec.attempts[min(N, len) - 1]`, so a script
can fail first and succeed on rework. An attempt's edits are applied in
order; `fail` then makes it fail (after its edits: a half-done attempt).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

from engine.executors.base import ExecutionResult, StepContext
from engine.models import FileEdit, Severity
from engine.paths import PathEscapeError, in_git_dir, relative_to_repo, resolve_in_repo
from engine.text import plural


class EditError(Exception):
    """One edit could not be applied; the message names the file and why."""


def _write(path: Path, edit: FileEdit, rel: str) -> str:
    if path.is_dir():
        raise EditError(f"cannot write {rel}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    content = edit.content or ""
    path.write_text(content, encoding="utf-8")
    return f"wrote {rel} ({len(content.splitlines())} lines)"


def _replace(path: Path, edit: FileEdit, rel: str) -> str:
    old, new = edit.replace or "", edit.with_ or ""
    if not path.is_file():
        raise EditError(f"cannot replace text in {rel}: no such file")
    text = path.read_text(encoding="utf-8")
    count = text.count(old)
    if count == 0:
        snippet = old if len(old) <= 80 else old[:77] + "..."
        raise EditError(f"cannot replace text in {rel}: {snippet!r} is not in the file")
    path.write_text(text.replace(old, new), encoding="utf-8")
    return f"edited {rel}: replaced {plural(count, 'occurrence')}"


def _delete(path: Path, edit: FileEdit, rel: str) -> str:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        raise EditError(f"cannot delete {rel}: no such file")
    return f"deleted {rel}"


ACTIONS: dict[str, Callable[[Path, FileEdit, str], str]] = {
    "content": _write,
    "replace": _replace,
    "delete": _delete,
}


def _action(edit: FileEdit) -> str:
    chosen = [
        name
        for name, given in (
            ("content", edit.content is not None),
            ("replace", edit.replace is not None),
            ("delete", edit.delete),
        )
        if given
    ]
    if len(chosen) != 1:
        raise EditError(
            f"edit of {edit.path!r} must give exactly one of content, replace or delete"
            + (f" (it gives {', '.join(chosen)})" if chosen else "")
        )
    if edit.with_ is not None and chosen != ["replace"]:
        raise EditError(f"edit of {edit.path!r}: `with` only goes with `replace`")
    if edit.with_ is None and chosen == ["replace"]:
        raise EditError(f"edit of {edit.path!r}: `replace` needs `with` (the new text)")
    return chosen[0]


def check_edit(repo: Path, edit: FileEdit) -> tuple[str, Path, str]:
    """The edit's action, real path and repo-relative path, or EditError for
    an edit that could never apply: the directive file loader refuses those
    with this before anything runs."""
    action = _action(edit)
    try:
        path = resolve_in_repo(repo, edit.path)
    except PathEscapeError as exc:  # out, or a symlink loop
        raise EditError(f"refused: {exc}") from None
    rel = relative_to_repo(repo, path)
    if rel == ".":
        raise EditError(f"edit of {edit.path!r} names the repository itself, not a file")
    if in_git_dir(rel):
        raise EditError(f"edit of {edit.path!r} goes into .git: steps never write there")
    return action, path, rel


def apply_edit(repo: Path, edit: FileEdit) -> tuple[str, str]:
    """Apply one edit inside `repo`; returns (repo-relative path, what was done)."""
    action, path, rel = check_edit(repo, edit)
    try:
        return rel, ACTIONS[action](path, edit, rel)
    except (OSError, UnicodeDecodeError) as exc:
        raise EditError(f"cannot {action} {rel}: {exc}") from None


class ScriptedExecutor:
    kind = "scripted"
    modifies_files = True

    async def run(self, ctx: StepContext) -> ExecutionResult:
        attempts = ctx.step.spec.attempts
        if not attempts:
            return ExecutionResult(success=True, summary="nothing to do")
        script = attempts[min(max(ctx.attempt, 1), len(attempts)) - 1]
        modified: list[str] = []
        for edit in script.edits:
            await asyncio.sleep(0)  # a cancelled task stops between edits
            try:
                rel, line = apply_edit(ctx.workdir, edit)
            except EditError as exc:
                ctx.emit(str(exc), Severity.ERROR)
                return ExecutionResult(
                    success=False,
                    summary=f"edit failed: {exc}",
                    modified_files=modified,
                    error=str(exc),
                )
            ctx.emit(line, Severity.INFO)
            if rel not in modified:
                modified.append(rel)
        count = len(script.edits)
        summary = script.summary or f"applied {plural(count, 'edit')}"
        if script.fail:
            return ExecutionResult(
                success=False, summary=summary, modified_files=modified, error=script.fail
            )
        return ExecutionResult(success=True, summary=summary, modified_files=modified)
