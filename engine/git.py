"""Running git for the engine: one call, its output, its error.

Every git call of the workspace (`engine.worktrees` and its parts) goes
through `run_git`: `-C <dir>`, no prompts, a fixed
identity (commits work with no user config), hooks / signing / fsmonitor /
auto-gc off (an engine commit must not run the user's pre-commit suite or
ask for a GPG passphrase), C locale (stable messages), and a short retry when
another git process holds a lock in the shared repository. Three callers
run their few read-only or set-up commands through helpers of their own:
the change tracker (`engine.changes`), the judge's diff
(`engine.verifiers.llm_judge`) and the demo's project (`engine.demo.project`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.procs import child_env, start_process

DEFAULT_IDENTITY = ("directive-tui", "directive-tui@localhost")

# `-c` settings for every call: the engine's own commits and merges must not
# depend on (or be slowed, blocked or re-routed by) the user's git config.
GIT_CONFIG = (
    "core.hooksPath=/dev/null",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "core.fsmonitor=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "submodule.recurse=false",
    "advice.detachedHead=false",
    "core.quotePath=false",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
)
# Inherited variables that would point git somewhere other than `-C`.
SCRUBBED_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
LOCK_RETRIES = 5
LOCK_BACKOFF_S = 0.05
LOCK_ERROR = re.compile(
    r"Unable to create '[^']*\.lock': File exists|cannot lock ref .*File exists"
)
CANCEL_GRACE_S = 10.0  # a cancelled git call may finish (never leave a lock)


class GitError(RuntimeError):
    """A git command failed; the message names the command and its stderr."""

    def __init__(self, args: Sequence[str], cwd: Path, code: int | None, stderr: str) -> None:
        self.args_ = list(args)
        self.cwd = cwd
        self.code = code
        self.stderr = stderr.strip()
        shown = " ".join(args)
        super().__init__(
            f"`git {shown}` failed (exit {code}) in {cwd}: {self.stderr or 'no output'}"
        )


@dataclass(frozen=True)
class GitOutput:
    code: int
    out: str
    err: str


def git_env(identity: tuple[str, str] = DEFAULT_IDENTITY) -> dict[str, str]:
    """Git's environment: the user's filters and diff drivers run under it,
    so it has no Anthropic credentials (as every child, see `procs`)."""
    name, email = identity
    env = {k: v for k, v in child_env().items() if k not in SCRUBBED_ENV}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        LC_ALL="C",
        LANGUAGE="C",
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email,
    )
    return env


async def run_git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    stdin: str | None = None,
) -> GitOutput:
    """`git -C cwd <args>`; raises GitError on a non-zero exit when `check`.

    A cancelled call lets git finish (up to CANCEL_GRACE_S) before the
    cancellation goes on: a git killed mid-write leaves `*.lock` files that
    block every later command in the repository."""
    argv = ["git", "-C", str(cwd)]
    for setting in GIT_CONFIG:
        argv += ["-c", setting]
    argv += list(args)
    full_env = dict(env) if env is not None else git_env()
    data = stdin.encode() if stdin is not None else None
    for attempt in range(LOCK_RETRIES + 1):
        try:
            proc = await start_process(
                asyncio.create_subprocess_exec(
                    *argv,
                    env=full_env,
                    stdin=asyncio.subprocess.PIPE
                    if data is not None
                    else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                ),
                lambda started: _let_finish(started, data),
            )
        except FileNotFoundError as exc:
            raise GitError(args, cwd, None, "git is not installed (not on PATH)") from exc
        talk = asyncio.ensure_future(proc.communicate(data))
        try:
            out, err = await asyncio.shield(talk)
        except asyncio.CancelledError:
            await _let_finish(proc, data, talk)
            raise
        result = GitOutput(
            proc.returncode or 0,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )
        if result.code != 0 and LOCK_ERROR.search(result.err) and attempt < LOCK_RETRIES:
            await asyncio.sleep(LOCK_BACKOFF_S * 2**attempt)
            continue
        break
    if check and result.code != 0:
        raise GitError(args, cwd, result.code, result.err or result.out)
    return result


async def _let_finish(
    proc: asyncio.subprocess.Process, data: bytes | None, talk: asyncio.Future[Any] | None = None
) -> None:
    """A cancelled git call: git may end on its own (up to CANCEL_GRACE_S),
    its input given and its output drained (`talk`, or a new exchange when
    the call was cancelled while git was starting)."""
    talk = talk or asyncio.ensure_future(proc.communicate(data))
    await asyncio.wait({talk}, timeout=CANCEL_GRACE_S)
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
