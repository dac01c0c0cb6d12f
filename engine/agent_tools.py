"""The agent's tools: look at, search, change and test a repository.

The file tools reach nothing outside the repository: every path a model
sends goes through `engine.paths.resolve_in_repo`, so `..`, absolute paths
and symlinks that lead out are refused; the refusal comes back to the model
as a tool_result with `is_error`, which it can read and correct. They read
and write regular files only: a named pipe or a device would block the
event loop on open or read, so it is refused by name. `search` matches in
a child process with a timeout (`engine.file_search`: a regular expression
can backtrack for hours while holding the GIL). `run_command` is not
confined: it is a shell started in the repository folder with the user's
rights (minus the app's API credentials, see `engine.procs`), like a
person typing there. The tools are a table (name -> argument model,
description, handler): the definitions sent to the API are made from the
same models that validate the arguments.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine import file_search
from engine.file_search import BINARY_SNIFF_BYTES, is_binary
from engine.paths import PathEscapeError, in_git_dir, relative_to_repo, resolve_in_repo
from engine.procs import run_process, trim_output

MAX_READ_BYTES = 100_000  # one read shows at most this much, with a note
MAX_PAGED_BYTES = 10_000_000  # start_line can page this far into a file
MAX_WRITE_BYTES = 2_000_000
MAX_SEARCH_FILE_BYTES = 1_000_000  # bigger files are not searched
MAX_SEARCH_MATCHES = 200
SEARCH_TIMEOUT_S = 30.0  # one search; a pattern that backtracks for ever is stopped
SEARCH_OUTPUT_BYTES = 1_000_000  # MAX_SEARCH_MATCHES lines of JSON fit well within
MAX_LIST_ENTRIES = 500
MAX_COMMAND_OUTPUT = 20_000
DEFAULT_COMMAND_TIMEOUT_S = 120.0
SKIPPED_DIRS = frozenset(
    {
        ".git",
        "node_modules",
        "__pycache__",
        ".venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        "target",
        "dist",
        "build",
    }
)


class ToolError(Exception):
    """A tool call that could not be done; the message goes to the model."""


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    modified: list[str] = field(default_factory=list)  # repo-relative paths written


# --------------------------------------------------------------------------
# Arguments: one model per tool (also the input_schema the API sees)
# --------------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListFilesArgs(_Args):
    path: str = Field(".", description="Directory relative to the repository root.")
    recursive: bool = Field(False, description="List the whole tree below `path`.")


class ReadFileArgs(_Args):
    path: str = Field(description="File path relative to the repository root.")
    start_line: int = Field(1, ge=1, description="First line to show (1-based).")
    max_lines: int | None = Field(None, ge=1, description="How many lines to show at most.")


class SearchArgs(_Args):
    pattern: str = Field(
        min_length=1, description="Python regular expression (or plain text with literal=true)."
    )
    path: str = Field(
        ".", description="Directory or file to search, relative to the repository root."
    )
    glob: str | None = Field(None, description="Only files whose name matches, e.g. '*.py'.")
    literal: bool = Field(False, description="Treat the pattern as plain text.")
    case_sensitive: bool = True


class WriteFileArgs(_Args):
    path: str = Field(description="File path relative to the repository root; parents are created.")
    content: str = Field(description="The whole new content of the file.")


class EditFileArgs(_Args):
    path: str = Field(description="File path relative to the repository root.")
    old: str = Field(
        min_length=1,
        description="Exact text to replace (must occur exactly once unless replace_all).",
    )
    new: str = Field(description="Replacement text.")
    replace_all: bool = False


class RunCommandArgs(_Args):
    command: str = Field(
        min_length=1,
        description="Shell command, run in the repository root with the user's rights "
        "(not confined to the repository).",
    )
    timeout_s: float | None = Field(None, gt=0, description="Seconds before the command is killed.")


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


# --------------------------------------------------------------------------
# The tools
# --------------------------------------------------------------------------


def _not_regular(user_path: str) -> ToolError:
    return ToolError(
        f"{user_path!r} is not a regular file (a named pipe, socket or device); "
        "the file tools only open regular files"
    )


def _open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
    """An open descriptor of `path`, refused unless it is a regular file.
    O_NONBLOCK makes opening a named pipe return at once (a write-open with
    no reader fails), and fstat checks what was really opened: the callers'
    own checks could be raced by a command the agent left running."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_regular(path.name)
    return fd


def read_regular(path: Path, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes of a regular file, and its size."""
    with os.fdopen(_open_regular(path), "rb") as handle:
        return handle.read(limit), os.fstat(handle.fileno()).st_size


def _write_regular(path: Path, data: bytes) -> None:
    fd = _open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


async def _search_in_child(
    request: dict[str, Any], repo: Path, timeout_s: float
) -> tuple[list[tuple[str, int, str]], bool]:
    """The matches `engine.file_search` finds, run as a child process (see
    its docstring for why), and whether it ran out of time."""
    with tempfile.TemporaryDirectory(prefix="directive-search-") as folder:
        asked = Path(folder) / "request.json"
        await asyncio.to_thread(asked.write_text, json.dumps(request), "utf-8")
        result = await run_process(
            [sys.executable, "-I", file_search.__file__, str(asked)],
            cwd=repo,
            timeout_s=timeout_s,
            max_output=SEARCH_OUTPUT_BYTES,
        )
    found = []
    for line in result.output.splitlines():
        try:
            name, number, text = json.loads(line)
        except ValueError:
            continue  # the child's own error, or a line cut by the trim
        found.append((str(name), int(number), str(text)))
    if result.exit_code not in (0, None) and not found:
        raise ToolError(f"the search failed: {trim_output(result.output.strip(), 500)}")
    return found, result.timed_out


def _is_utf8(data: bytes) -> bool:
    """Whether `data` decodes as UTF-8; a character cut at the end of a
    partial read still counts as UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3 and exc.reason == "unexpected end of data"
    return True


@dataclass
class _View:
    """The lines a read shows: whole lines within MAX_READ_BYTES, or the start
    of one line too long for it."""

    lines: list[str]
    first: int  # 1-based number of the first line shown
    cut_line_bytes: int | None = None  # length of the last line when it was cut

    @property
    def last(self) -> int:
        return self.first + len(self.lines) - 1

    @classmethod
    def of(cls, wanted: list[str], start: int) -> _View:
        shown: list[str] = []
        used = 0
        for line in wanted:
            cost = len(line.encode())
            if used + cost <= MAX_READ_BYTES:
                shown.append(line)
                used += cost
                continue
            if not shown:  # one enormous line: show its start, and say so
                head = line.encode()[:MAX_READ_BYTES].decode("utf-8", errors="ignore")
                return cls([head], start + 1, cost)
            break
        return cls(shown, start + 1)

    def cuts(self, *, more_wanted: bool, file_cut: bool) -> list[str]:
        """Where this view stops short of what was asked, one note each."""
        notes = []
        if self.cut_line_bytes is not None:
            notes.append(
                f"line {self.first} is {self.cut_line_bytes} bytes and only its first "
                f"{MAX_READ_BYTES} are shown; read_file cannot show it whole, so change this "
                "file with edit_file, not by rewriting it from this read"
            )
        if more_wanted:
            notes.append(
                f"this shows lines {self.first}-{self.last}. Read on with start_line={self.last + 1}"
            )
        elif file_cut:
            notes.append(
                f"only its first {MAX_PAGED_BYTES} bytes can be read (through line {self.last}, "
                "which may itself be cut)"
            )
        return notes


class AgentTools:
    """The tools of one agent attempt, bound to one repository."""

    def __init__(
        self,
        repo: Path,
        *,
        command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        on_command_line: Callable[[str], None] | None = None,
        search_timeout_s: float = SEARCH_TIMEOUT_S,
    ) -> None:
        self.repo = Path(repo).resolve()
        self.command_timeout_s = command_timeout_s
        self.search_timeout_s = search_timeout_s
        self.on_command_line = on_command_line
        self.modified: list[str] = []  # in the order first written
        self._table: dict[str, tuple[type[_Args], str, Callable[[Any], Awaitable[ToolOutcome]]]] = {
            "list_files": (
                ListFilesArgs,
                "List the files and directories at a path in the repository.",
                self.list_files,
            ),
            "read_file": (
                ReadFileArgs,
                "Read a text file (large files come back truncated with a note saying where; "
                "use start_line to page).",
                self.read_file,
            ),
            "search": (
                SearchArgs,
                "Search file contents for a pattern; returns path:line: text matches.",
                self.search,
            ),
            "write_file": (
                WriteFileArgs,
                "Create or overwrite a file with the given content.",
                self.write_file,
            ),
            "edit_file": (EditFileArgs, "Replace an exact string in a file.", self.edit_file),
            "run_command": (
                RunCommandArgs,
                "Run a shell command in the repository root (tests, linters, builds); output is "
                "trimmed. It runs as the user and is not confined to the repository: stay in it.",
                self.run_command,
            ),
        }

    @property
    def names(self) -> list[str]:
        return list(self._table)

    def definitions(self) -> list[dict[str, Any]]:
        """Tool definitions for the Messages API."""
        return [
            {"name": name, "description": description, "input_schema": _schema(model)}
            for name, (model, description, _) in self._table.items()
        ]

    async def call(self, name: str, arguments: Any) -> ToolOutcome:
        """Run one tool call; every failure becomes an is_error outcome."""
        entry = self._table.get(name)
        if entry is None:
            return ToolOutcome(
                f"unknown tool {name!r}; available: {', '.join(self._table)}", is_error=True
            )
        model, _, handler = entry
        try:
            args = model.model_validate(arguments if isinstance(arguments, dict) else {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            return ToolOutcome(f"invalid arguments for {name}: {problems}", is_error=True)
        try:
            outcome = await handler(args)
        except PathEscapeError as exc:
            return ToolOutcome(f"refused: {exc}", is_error=True)
        except ToolError as exc:
            return ToolOutcome(str(exc), is_error=True)
        except OSError as exc:
            return ToolOutcome(f"{name} failed: {exc.strerror or exc}", is_error=True)
        for path in outcome.modified:
            if path not in self.modified:
                self.modified.append(path)
        return outcome

    # -- helpers ----------------------------------------------------------------

    def _resolve(self, user_path: str) -> Path:
        return resolve_in_repo(self.repo, user_path)

    def _rel(self, path: Path) -> str:
        return relative_to_repo(self.repo, path) if path != self.repo else "."

    def _writable(self, user_path: str) -> Path:
        target = self._resolve(user_path)
        rel = self._rel(target)
        if rel == "." or in_git_dir(rel):
            raise ToolError(f"refused: {user_path!r} is not a file the agent may write")
        if target.is_dir():
            raise ToolError(f"{user_path!r} is a directory")
        if target.exists() and not _is_regular(target):
            raise _not_regular(user_path)
        return target

    def _walk(self, start: Path) -> list[Path]:
        """Files below `start` (sorted), not following directory symlinks and
        skipping files that are symlinks leading out of the repository."""
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.is_symlink():
                    try:
                        resolve_in_repo(self.repo, self._rel(path))
                    except PathEscapeError:  # out, or a symlink loop
                        continue
                found.append(path)
        return found

    def _listing(self, base: Path, recursive: bool) -> list[str]:
        """Repo-relative names below `base` (a real directory inside the
        repository, so every path walked from it is lexically inside too)."""
        if recursive:
            return [p.relative_to(self.repo).as_posix() for p in self._walk(base)]
        return [
            child.relative_to(self.repo).as_posix() + ("/" if child.is_dir() else "")
            for child in sorted(base.iterdir(), key=lambda p: p.name)
            if child.name != ".git"
        ]

    # -- handlers ----------------------------------------------------------------

    async def list_files(self, args: ListFilesArgs) -> ToolOutcome:
        base = self._resolve(args.path)
        if not base.exists():
            raise ToolError(f"no such directory: {args.path!r}")
        if not base.is_dir():
            raise ToolError(f"{args.path!r} is a file, not a directory")
        # A tree of 100,000 files takes seconds to walk: off the event loop.
        entries = await asyncio.to_thread(self._listing, base, args.recursive)
        if not entries:
            return ToolOutcome(f"{args.path!r} is empty")
        shown = entries[:MAX_LIST_ENTRIES]
        more = len(entries) - len(shown)
        note = f"\n... and {more} more (list a subdirectory)" if more > 0 else ""
        return ToolOutcome("\n".join(shown) + note)

    async def read_file(self, args: ReadFileArgs) -> ToolOutcome:
        path = self._resolve(args.path)
        if not path.exists():
            raise ToolError(f"no such file: {args.path!r}")
        if path.is_dir():
            raise ToolError(f"{args.path!r} is a directory; use list_files")
        if not _is_regular(path):
            raise _not_regular(args.path)
        data, size = await asyncio.to_thread(read_regular, path, MAX_PAGED_BYTES)
        if is_binary(data[:BINARY_SNIFF_BYTES]):
            raise ToolError(
                f"{args.path!r} is a binary file ({size} bytes); it cannot be read as text"
            )
        lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
        start = args.start_line - 1
        if start >= len(lines) and lines:
            raise ToolError(
                f"{args.path!r} has {len(lines)} lines; start_line {args.start_line} is past the end"
            )
        wanted = lines[start : start + args.max_lines] if args.max_lines else lines[start:]
        view = _View.of(wanted, start)
        cuts = view.cuts(
            more_wanted=len(view.lines) < len(wanted),
            file_cut=size > len(data) and view.last == len(lines),
        )
        body = "".join(view.lines)
        notes = (
            [f"[truncated: {args.path} is {size} bytes; " + "; ".join(cuts) + "]"] if cuts else []
        )
        if not _is_utf8(data):
            notes.append(
                f"[{args.path} is not all UTF-8: the bytes that are not are shown as \ufffd, and "
                "writing this text back would save them so; change it with run_command]"
            )
        if notes:
            body = body if body.endswith("\n") else body + "\n"
            body += "\n" + "\n".join(notes)
        return ToolOutcome(body)

    async def search(self, args: SearchArgs) -> ToolOutcome:
        flags = 0 if args.case_sensitive else re.IGNORECASE
        pattern = re.escape(args.pattern) if args.literal else args.pattern
        try:
            re.compile(pattern, flags)
        except re.error as exc:
            raise ToolError(f"invalid regular expression {args.pattern!r}: {exc}") from None
        base = self._resolve(args.path)
        if not base.exists():
            raise ToolError(f"no such path: {args.path!r}")
        if not base.is_dir() and not _is_regular(base):
            raise _not_regular(args.path)
        # A walk of a big tree takes seconds: off the event loop.
        files = await asyncio.to_thread(self._searched_files, base, args.glob)
        request = {
            "pattern": pattern,
            "flags": flags,
            "files": files,
            "max_file_bytes": MAX_SEARCH_FILE_BYTES,
            "max_matches": MAX_SEARCH_MATCHES,
        }
        found, timed_out = await _search_in_child(request, self.repo, self.search_timeout_s)
        lines = [f"{name}:{number}: {text}" for name, number, text in found]
        if timed_out:
            raise ToolError(
                f"the search for {args.pattern!r} was stopped after {self.search_timeout_s:g}s: "
                "simplify the pattern (nested repeats like (a+)+ can take for ever), use "
                "literal=true, or search a smaller path"
                + ("; matches found before it stopped:\n" + "\n".join(lines) if lines else "")
            )
        if len(lines) >= MAX_SEARCH_MATCHES:
            lines.append(f"... stopped at {MAX_SEARCH_MATCHES} matches; narrow the search")
        return ToolOutcome("\n".join(lines) if lines else f"no matches for {args.pattern!r}")

    def _searched_files(self, base: Path, glob: str | None) -> list[tuple[str, str]]:
        """(real path, repo-relative name) of each file below `base` whose
        name matches `glob`; the child opens regular files only."""
        files = [base] if base.is_file() else self._walk(base)
        return [
            (str(path), self._rel(path))
            for path in files
            if not glob or fnmatch.fnmatch(path.name, glob)
        ]

    async def write_file(self, args: WriteFileArgs) -> ToolOutcome:
        target = self._writable(args.path)
        data = args.content.encode()
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}")
        existed = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_regular(target, data)
        rel = self._rel(target)
        verb = "overwrote" if existed else "created"
        return ToolOutcome(f"{verb} {rel} ({len(data)} bytes)", modified=[rel])

    async def edit_file(self, args: EditFileArgs) -> ToolOutcome:
        target = self._writable(args.path)
        if not target.exists():
            raise ToolError(f"no such file: {args.path!r}; use write_file to create it")
        raw, size = read_regular(target, MAX_WRITE_BYTES + 1)  # never the whole of a huge file
        if size > MAX_WRITE_BYTES:
            raise ToolError(
                f"{args.path!r} is {size} bytes, over the {MAX_WRITE_BYTES} an edit takes;"
                " change it with run_command instead"
            )
        if is_binary(raw[:BINARY_SNIFF_BYTES]):
            raise ToolError(f"{args.path!r} is a binary file; it cannot be edited as text")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(
                f"{args.path!r} is not UTF-8 text (byte {exc.start} is not); editing it as "
                "text would change its other bytes, so change it with run_command instead"
            ) from None
        count = text.count(args.old)
        if count == 0:
            raise ToolError(
                f"the text to replace was not found in {args.path!r} (it must match exactly, whitespace included)"
            )
        if count > 1 and not args.replace_all:
            raise ToolError(
                f"the text to replace occurs {count} times in {args.path!r}; "
                "give more surrounding context or set replace_all"
            )
        updated = (
            text.replace(args.old, args.new)
            if args.replace_all
            else text.replace(args.old, args.new, 1)
        )
        data = updated.encode()
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(
                f"the edited file would be {len(data)} bytes; the limit is {MAX_WRITE_BYTES}"
            )
        _write_regular(target, data)
        rel = self._rel(target)
        return ToolOutcome(
            f"replaced {count if args.replace_all else 1} occurrence(s) in {rel}", modified=[rel]
        )

    async def run_command(self, args: RunCommandArgs) -> ToolOutcome:
        timeout = min(args.timeout_s or self.command_timeout_s, self.command_timeout_s)
        result = await run_process(
            args.command,
            cwd=self.repo,
            timeout_s=timeout,
            on_line=self.on_command_line,
            max_output=MAX_COMMAND_OUTPUT,
        )
        output = trim_output(result.output, MAX_COMMAND_OUTPUT)
        if result.timed_out:
            return ToolOutcome(
                f"timed out after {timeout:g}s and was killed\n{output}", is_error=True
            )
        return ToolOutcome(f"exit code {result.exit_code}\n{output}")
