"""Running subprocesses without leaks: bounded output, whole-group kills.

Steps and verifiers run arbitrary commands (test suites, builds, agents'
shell calls). Each runs in its own session, so a timeout or a cancelled task
can kill the command *and everything it started* with one `killpg`; and a
small `sh` guard beside each group ends it if this process dies first
(SIGKILL, a crash), so a step's command never runs on beside the attempt a
restarted engine makes. Its output is streamed line by line to a callback
but only a bounded head and tail are kept, so megabytes of log never sit in
memory.

Children never get the app's own Anthropic credentials: every command a
step, a verifier or an agent runs gets the environment without
`SECRET_ENV`, so `echo $ANTHROPIC_API_KEY` or a test printing `os.environ`
cannot put the key into output that becomes events, database rows and the
model's context. A component that needs them (Claude Code) passes them
itself. As a second line, the credentials' values are replaced by
[redacted] in everything a command's output turns into here (it could
still read them elsewhere, e.g. from this process's /proc/PID/environ).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shlex
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

READ_CHUNK = 64 * 1024
LINE_LIMIT = 2_000  # characters passed to on_line per line
# Lines passed to on_line: a burst, then a steady rate, and a cap per
# command. Each line becomes an event row and a line on the screen: a step
# running `seq 1 1000000` took 105 s, 1.4 GB of memory and 310 MB of
# database for lines nobody could read. The output's head and tail are kept
# whole in the result either way.
LINE_BURST = 500
LINES_PER_S = 20.0
MAX_LINES = 5_000
NOTE_EVERY_S = 5.0  # a note of the lines left out, at most this often (and at the end)
# Lines left out at the end of the output, passed on when the command ends:
# how it failed is usually there (a flood's end was 5 lines in the error).
END_LINES = 20
TERM_GRACE_S = 2.0  # SIGTERM -> SIGKILL
DRAIN_GRACE_S = 0.5  # after exit, how long a background child may hold the pipe
POLL_S = 0.05

# The credentials the app reads for itself: `engine.llm` reads the API key,
# and the `anthropic` SDK falls back to the auth token.
SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
MIN_SECRET_CHARS = 8  # shorter values would redact ordinary words
REDACTED = "[redacted]"


@dataclass
class ProcessResult:
    exit_code: int | None  # None if killed by timeout or cancellation
    output: str  # combined stdout+stderr, trimmed to head + marker + tail
    timed_out: bool
    duration_s: float
    total_bytes: int  # bytes the process wrote in all

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def trim_marker(trimmed: int) -> str:
    return f"\n... [{trimmed} bytes trimmed] ...\n"


def trim_output(text: str, max_chars: int) -> str:
    """Keep the head and the tail of `text` within about `max_chars`: the
    start says what ran, the end says how it failed."""
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0, got {max_chars}")
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - head
    cut = len(text) - head - tail
    return text[:head] + trim_marker(cut) + (text[-tail:] if tail else "")


def skipped_note(count: int) -> str:
    return (
        f"... [{count} lines not shown: the command writes faster than it can be followed;"
        " its last lines come when it ends]"
    )


class _LineGate:
    """Which lines reach the callback: LINE_BURST at once, then LINES_PER_S,
    at most MAX_LINES in all. The lines left out are counted, and said in a
    note before the next line shown, at most every NOTE_EVERY_S (a note
    before each line let through at the steady rate doubled the flood),
    and at the end."""

    def __init__(self) -> None:
        self.tokens = float(LINE_BURST)
        self.last = time.monotonic()
        self.shown = 0
        self.skipped = 0
        self.noted_at = -math.inf

    def admit(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(LINE_BURST), self.tokens + (now - self.last) * LINES_PER_S)
        self.last = now
        if self.tokens < 1 or self.shown >= MAX_LINES:
            self.skipped += 1
            return False
        self.tokens -= 1
        self.shown += 1
        return True

    def note(self, *, final: bool = False) -> str | None:
        """The note for the lines skipped since the last one, if any is due."""
        now = time.monotonic()
        if not self.skipped or (not final and now - self.noted_at < NOTE_EVERY_S):
            return None
        skipped, self.skipped, self.noted_at = self.skipped, 0, now
        return skipped_note(skipped)


class _Capture:
    """Bounded head + ring-buffer tail of a byte stream, plus line splitting
    for the callback. Memory stays O(max_output + LINE_LIMIT)."""

    def __init__(self, max_output: int, on_line: Callable[[str], None] | None) -> None:
        self.head_limit = max(max_output // 2, 0)
        self.tail_limit = max(max_output - self.head_limit, 0)
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.total = 0
        self.on_line = on_line
        self.partial = bytearray()
        self.partial_overflow = False
        self.gate = _LineGate()
        # The lines left out since the last one shown (its end, at most
        # END_LINES): passed on when the output ends.
        self.unshown_end: deque[tuple[bytearray, bool]] = deque(maxlen=END_LINES)

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_limit:
            self._push_tail(chunk)

    def _push_tail(self, chunk: bytes) -> None:
        if len(chunk) >= self.tail_limit:
            self.tail.clear()
            self.tail.append(bytes(chunk[-self.tail_limit :]))
            self.tail_len = self.tail_limit
            return
        self.tail.append(bytes(chunk))
        self.tail_len += len(chunk)
        while self.tail_len > self.tail_limit:
            excess = self.tail_len - self.tail_limit
            first = self.tail[0]
            if len(first) <= excess:
                self.tail.popleft()
                self.tail_len -= len(first)
            else:
                self.tail[0] = first[excess:]
                self.tail_len -= excess

    def split_lines(self, chunk: bytes) -> None:
        if self.on_line is None:
            return
        pieces = chunk.split(b"\n")
        for piece in pieces[:-1]:
            self._add_partial(piece)
            self._emit_partial()
        self._add_partial(pieces[-1])

    def _add_partial(self, piece: bytes) -> None:
        # Bytes, not chars: 4 bytes per char at most, so this never cuts a
        # line the callback would still see whole.
        room = LINE_LIMIT * 4 - len(self.partial)
        if len(piece) > room:
            self.partial += piece[: max(room, 0)]
            self.partial_overflow = True
        else:
            self.partial += piece

    def _emit_partial(self) -> None:
        assert self.on_line is not None
        admitted = self.gate.admit()
        if admitted and (note := self.gate.note()):
            self.on_line(note)
        raw, overflow = self.partial, self.partial_overflow
        self.partial = bytearray()
        self.partial_overflow = False
        if not admitted:
            self.unshown_end.append((raw, overflow))
            return
        self.unshown_end.clear()
        self.on_line(_line(raw, overflow))

    def finish(self) -> None:
        """The last partial line, the count of the lines left out, then
        the last of those: a flood's end says how the command ended."""
        if self.on_line is None:
            return
        if self.partial or self.partial_overflow:
            self._emit_partial()
        end = list(self.unshown_end)
        self.gate.skipped -= len(end)
        if note := self.gate.note(final=True):
            self.on_line(note)
        for raw, overflow in end:
            self.on_line(_line(raw, overflow))

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = b"".join(self.tail)
        trimmed = self.total - len(self.head) - len(tail)
        if trimmed <= 0:
            return (bytes(self.head) + tail).decode("utf-8", errors="replace")
        return head + trim_marker(trimmed) + tail.decode("utf-8", errors="replace")

    async def pump(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(READ_CHUNK):
            self.feed(chunk)
            self.split_lines(chunk)
        self.finish()


def _line(raw: bytes | bytearray, overflow: bool) -> str:
    """One output line as the callback gets it: decoded, cut at LINE_LIMIT."""
    line = raw.decode("utf-8", errors="replace").rstrip("\r")
    if overflow or len(line) > LINE_LIMIT:
        line = line[:LINE_LIMIT] + " ... [line truncated]"
    return line


def credentials(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `SECRET_ENV` variables set in `env` (default: this process's), for
    the component that hands them on deliberately."""
    source = os.environ if env is None else env
    return {name: source[name] for name in SECRET_ENV if source.get(name, "").strip()}


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without `SECRET_ENV`, plus `extra` (which
    may name a credential on purpose)."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env.update(extra or {})
    return env


def secret_values(extra: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The credential values to redact from a command's output: the app's,
    and any `extra` passes on."""
    values = {*credentials().values(), *credentials(extra or {}).values()}
    return tuple(sorted(v for v in values if len(v) >= MIN_SECRET_CHARS))


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with each of `secrets` replaced by [redacted]."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed identity; still there
    return True


def _live_members(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie. Killed children
    stay zombies until their new parent reaps them (some container inits do
    that only now and then), and `killpg(pgid, 0)` still counts those."""
    if not _signal_group(pgid, 0):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        # after "(comm)": state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


async def kill_process_group(pgid: int, grace_s: float | None = None) -> None:
    """SIGTERM the group, give it `grace_s` (TERM_GRACE_S) to go, then
    SIGKILL what is left."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + (TERM_GRACE_S if grace_s is None else grace_s)
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            if not _live_members(pgid):
                return
    finally:
        # Also reached when cancelled again mid-grace: never leave the group.
        _signal_group(pgid, signal.SIGKILL)


def _argv(cmd: str | Sequence[str], shell: bool) -> str | list[str]:
    if isinstance(cmd, str):
        if not cmd.strip():
            raise ValueError("empty command")
        return cmd if shell else shlex.split(cmd)
    argv = [str(part) for part in cmd]
    if not argv:
        raise ValueError("empty command")
    return shlex.join(argv) if shell else argv


def _failed(code: int, message: str, started: float) -> ProcessResult:
    return ProcessResult(
        exit_code=code,
        output=message,
        timed_out=False,
        duration_s=time.monotonic() - started,
        total_bytes=0,
    )


async def start_process(
    spawn: Coroutine[object, object, asyncio.subprocess.Process],
    on_cancel: Callable[[asyncio.subprocess.Process], Awaitable[None]],
) -> asyncio.subprocess.Process:
    """Start a process that a cancellation cannot cut in half.

    asyncio forks the child, then waits for its pipes to connect; a
    cancellation landing in that wait makes it SIGKILL the child alone (a
    git killed mid-write leaves lock files; a shell's own children live on)
    and reap it behind its child watcher's back. Here the start finishes,
    `on_cancel` ends the process the caller's way, then the cancellation
    goes on. A start that fails raises as usual."""
    start = asyncio.ensure_future(spawn)
    try:
        return await asyncio.shield(start)
    except asyncio.CancelledError:
        await asyncio.wait({start})
        if not start.cancelled() and start.exception() is None:
            await on_cancel(start.result())
        raise


async def _end_group(proc: asyncio.subprocess.Process) -> None:
    """The whole session goes, and asyncio's watcher reaps the child."""
    await kill_process_group(proc.pid)
    await asyncio.wait({asyncio.ensure_future(proc.wait())}, timeout=DRAIN_GRACE_S)


# This process may die without ending a command's group (SIGKILL, a crash):
# the group lived on, and the step ran again beside it once an engine
# started. A guard beside each group waits on a pipe that only this process
# holds open; when the process is gone the pipe reads end-of-file and the
# guard ends the group. A command that ends normally has its guard killed
# first, so a guard never signals a group whose number was reused.
GUARD_SCRIPT = (
    'read _; kill -s TERM -- -"$1" 2>/dev/null && sleep 2 && kill -s KILL -- -"$1"; exit 0'
)


@dataclass
class _Guard:
    proc: asyncio.subprocess.Process
    held: int  # the pipe's write end: open while this process lives


async def _guard_group(pgid: int) -> _Guard | None:
    """A guard that ends group `pgid` if this process dies first; None
    where no `sh` can be started (the group is ended as before, only not
    after a crash)."""
    waits, held = os.pipe()  # not inherited by other children (PEP 446)
    try:
        spawn = asyncio.create_subprocess_exec(
            "sh", "-c", GUARD_SCRIPT, "directive-tui-guard", str(pgid),
            stdin=waits, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # not in the group it guards, nor the terminal's
        )  # fmt: skip
        proc = await start_process(spawn, _stop_guard_process)
    except OSError:
        os.close(held)
        return None
    except BaseException:
        os.close(held)
        raise
    finally:
        os.close(waits)
    return _Guard(proc, held)


async def _stop_guard_process(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


async def _release(guard: _Guard | None) -> None:
    """The command's group has been ended here: the guard goes first, then
    its pipe (closing the pipe first would make it signal)."""
    if guard is None:
        return
    try:
        await _stop_guard_process(guard.proc)
    finally:
        os.close(guard.held)


async def _spawn(
    argv: str | list[str], cwd: Path, env: dict[str, str]
) -> asyncio.subprocess.Process:
    common = dict(
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    if isinstance(argv, str):
        spawn = asyncio.create_subprocess_shell(argv, **common)
    else:
        spawn = asyncio.create_subprocess_exec(*argv, **common)
    return await start_process(spawn, _end_group)


def _close_pipe(proc: asyncio.subprocess.Process) -> None:
    """Let go of the output pipe a child that left the session (`setsid cmd
    &`) still holds open: left to the garbage collector, asyncio's transport
    closes it after the loop has closed, and prints 'Exception ignored ...
    Event loop is closed' as the program exits."""
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()


def _scrubbed(on_line: Callable[[str], None], secrets: Sequence[str]) -> Callable[[str], None]:
    return lambda line: on_line(scrub(line, secrets))


async def run_process(
    cmd: str | Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    on_line: Callable[[str], None] | None = None,
    max_output: int = 64_000,
    shell: bool | None = None,
) -> ProcessResult:
    """Run `cmd` in `cwd` and return its exit code and trimmed output.

    `env` is added to `os.environ` less the app's credentials (see the
    module docstring), whose values are also redacted from the output and
    the lines. A string runs through the shell unless
    `shell=False` (then it is split like a shell would). The command runs in
    its own session: on timeout, on cancellation, or when it exits leaving
    background children behind, the whole group is terminated. A missing
    executable is exit code 127, not an exception.
    """
    started = time.monotonic()
    use_shell = isinstance(cmd, str) if shell is None else shell
    argv = _argv(cmd, use_shell)
    cwd = Path(cwd)
    if not cwd.is_dir():
        return _failed(127, f"working directory not found: {cwd}", started)
    full_env = child_env(env)
    secrets = secret_values(env)
    if on_line is not None and secrets:
        on_line = _scrubbed(on_line, secrets)
    try:
        proc = await _spawn(argv, cwd, full_env)
    except FileNotFoundError:
        return _failed(127, f"command not found: {argv[0]}", started)
    except PermissionError as exc:
        return _failed(126, f"permission denied: {argv[0]} ({exc.strerror})", started)

    try:
        guard = await _guard_group(proc.pid)
    except BaseException:
        await kill_process_group(proc.pid)
        _close_pipe(proc)
        raise
    try:
        return await _follow(proc, started, timeout_s, on_line, max_output, secrets)
    finally:
        await _release(guard)


async def _follow(
    proc: asyncio.subprocess.Process,
    started: float,
    timeout_s: float | None,
    on_line: Callable[[str], None] | None,
    max_output: int,
    secrets: Sequence[str],
) -> ProcessResult:
    """`run_process` from the start of its command to its result."""
    capture = _Capture(max_output, on_line)
    assert proc.stdout is not None
    reader = asyncio.create_task(capture.pump(proc.stdout))
    # On 3.11 `proc.wait()` only returns once the pipe is closed too, which a
    # background child can hold open; `proc.returncode` is set on exit itself.
    waiter = asyncio.create_task(proc.wait())
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout_s):
                pending: set[asyncio.Task[object]] = {waiter, reader}
                while pending and proc.returncode is None:
                    done, pending = await asyncio.wait(
                        pending, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED
                    )
                    if reader in done and reader.exception() is not None:
                        raise reader.exception()  # type: ignore[misc]
        except TimeoutError:
            timed_out = True
        else:
            # Exited: let output still in the pipe arrive before cleaning up.
            await asyncio.wait({reader}, timeout=DRAIN_GRACE_S)
        # Whatever the command left running (on timeout: all of it) goes too.
        await kill_process_group(proc.pid)
        await asyncio.wait({reader, waiter}, timeout=DRAIN_GRACE_S)
    except BaseException:
        await kill_process_group(proc.pid)
        reader.cancel()
        waiter.cancel()
        _close_pipe(proc)
        raise
    if not waiter.done():
        waiter.cancel()
    if reader.done():
        if reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]
    else:
        reader.cancel()  # a child that left the session still holds the pipe
        capture.finish()
        _close_pipe(proc)
    return ProcessResult(
        exit_code=None if timed_out else proc.returncode,
        output=scrub(capture.text(), secrets),
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        total_bytes=capture.total,
    )
