"""run_process with real subprocesses: streaming, trimming, group kills, and
the app's credentials kept from the children."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from engine import procs
from engine.procs import (
    END_LINES,
    LINE_BURST,
    SECRET_ENV,
    ProcessResult,
    run_process,
    skipped_note,
    start_process,
    trim_output,
)
from tests.proc_kit import alive, wait_for_file, wait_gone

PY = sys.executable


pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see pids")


async def test_lines_stream_to_the_callback_and_output_is_combined(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_process(
        "echo one; echo two >&2; printf 'three\\r\\nno-newline'; exit 3",
        cwd=tmp_path,
        on_line=lines.append,
    )
    assert lines == ["one", "two", "three", "no-newline"]
    assert result.exit_code == 3 and not result.ok and not result.timed_out
    assert result.output == "one\ntwo\nthree\r\nno-newline"
    assert result.total_bytes == len(result.output.encode())


async def test_lines_arrive_while_the_process_runs(tmp_path: Path) -> None:
    seen = asyncio.Event()
    result_task = asyncio.create_task(
        run_process(
            [PY, "-u", "-c", "import time; print('ready', flush=True); time.sleep(30)"],
            cwd=tmp_path,
            on_line=lambda line: seen.set() if line == "ready" else None,
        )
    )
    await asyncio.wait_for(seen.wait(), 10)
    assert not result_task.done()
    result_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await result_task


async def test_env_is_added_cwd_is_used_and_argv_runs_without_a_shell(tmp_path: Path) -> None:
    result = await run_process(
        [PY, "-c", "import os; print(os.environ['EXTRA'], os.environ['PATH'] != '', os.getcwd())"],
        cwd=tmp_path,
        env={"EXTRA": "a b $HOME"},
    )
    assert result.ok
    assert result.output.split() == ["a", "b", "$HOME", "True", str(tmp_path.resolve())]


KEY = "sk-ant-test-0123456789abcdef-procs"
TOKEN = "sk-ant-test-auth-token-fedcba9876543210"


async def test_children_get_no_credentials_unless_a_caller_passes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # not a secret: inherited
    lines: list[str] = []
    plain = await run_process("env", cwd=tmp_path, on_line=lines.append)
    assert plain.ok and "ANTHROPIC_BASE_URL=http://127.0.0.1:9" in plain.output
    names = {line.partition("=")[0] for line in plain.output.splitlines()}
    assert names.isdisjoint(SECRET_ENV)
    assert KEY not in plain.output and TOKEN not in "\n".join(lines)
    # A component that needs the key passes it; the child has it, its output does not.
    passed = await run_process(
        'test "$ANTHROPIC_API_KEY" = "$EXPECTED" && echo "has it: $ANTHROPIC_API_KEY"',
        cwd=tmp_path,
        env={"ANTHROPIC_API_KEY": KEY, "EXPECTED": KEY},
        on_line=lines.append,
    )
    assert passed.ok
    assert passed.output == "has it: [redacted]\n" and lines[-1] == "has it: [redacted]"


async def test_a_flood_of_lines_reaches_the_callback_bounded_and_counted(tmp_path: Path) -> None:
    """Each line is an event row and a screen line: a step running
    `seq 1 1000000` took 105 s, 1.4 GB of memory and a 310 MB database.
    Now the callback gets a burst, then a steady rate, and a note of how
    many lines it did not get, then the last END_LINES of them (how a
    command failed is at its end); the output keeps its head and tail."""
    lines: list[str] = []
    result = await run_process("seq 1 100000", cwd=tmp_path, on_line=lines.append)
    assert result.ok and result.output.endswith("\n99999\n100000\n")
    assert lines[:LINE_BURST] == [str(n) for n in range(1, LINE_BURST + 1)]
    shown = [line for line in lines if not line.startswith("... [")]
    notes = [line for line in lines if line.startswith("... [")]
    skipped = sum(int(note.removeprefix("... [").split()[0]) for note in notes)
    assert len(shown) + skipped == 100_000
    end = [str(n) for n in range(100_001 - END_LINES, 100_001)]
    assert lines[-END_LINES:] == end  # after the count of the lines left out
    assert lines[-END_LINES - 1] == notes[-1] == skipped_note(skipped - sum(
        int(note.removeprefix("... [").split()[0]) for note in notes[:-1]))  # fmt: skip
    assert len(lines) < LINE_BURST + 200 + END_LINES


async def test_a_slow_command_shows_every_line(tmp_path: Path) -> None:
    """The rate refills: a command printing now and then is never cut."""
    lines: list[str] = []
    script = "import time\nfor i in range(5):\n    print(i, flush=True)\n    time.sleep(0.1)"
    await run_process([PY, "-c", script], cwd=tmp_path, on_line=lines.append)
    assert lines == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("limit", ["rate", "cap"])
async def test_lines_past_the_rate_or_the_cap_are_counted_before_the_next_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    monkeypatch.setattr(procs, "LINE_BURST", 3 if limit == "rate" else 100)
    monkeypatch.setattr(procs, "LINES_PER_S", 20.0)
    monkeypatch.setattr(procs, "MAX_LINES", 1_000 if limit == "rate" else 4)
    lines: list[str] = []
    # the ten lines in one write: they arrive together, with no time between
    # them for the rate to refill (under -u, each print is a write of its own)
    script = "import sys, time\nsys.stdout.write(''.join(f'{i}\\n' for i in range(10)))\ntime.sleep(0.3)\nprint('late')"
    await run_process([PY, "-u", "-c", script], cwd=tmp_path, on_line=lines.append)
    if limit == "rate":  # refilled while it slept: the late line is shown, after the count
        assert lines == ["0", "1", "2", skipped_note(7), "late"]
    else:  # the cap is for good: what it left out comes at the end
        assert lines == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "late"]


async def test_the_end_of_a_flood_comes_after_the_count_of_what_was_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build printing 1,500 lines, then its error: lines 501-1,495 were
    stored nowhere and the error's one line was line 1,497 of the build."""
    monkeypatch.setattr(procs, "LINE_BURST", 5)
    monkeypatch.setattr(procs, "END_LINES", 3)
    lines: list[str] = []
    script = "import sys\nsys.stdout.write(''.join(f'{i}\\n' for i in range(100)))\nsys.stdout.write('FATAL: disk quota exceeded\\n')"
    await run_process([PY, "-c", script], cwd=tmp_path, on_line=lines.append)
    assert lines == [
        "0",
        "1",
        "2",
        "3",
        "4",
        skipped_note(93),
        "98",
        "99",
        "FATAL: disk quota exceeded",
    ]


async def test_a_long_flood_gets_a_note_now_and_then_not_one_per_line_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the burst, every line let through at the steady rate came with
    its own note of the lines left out before it: the flood doubled."""
    monkeypatch.setattr(procs, "LINE_BURST", 3)
    monkeypatch.setattr(procs, "LINES_PER_S", 100.0)
    monkeypatch.setattr(procs, "NOTE_EVERY_S", 0.5)
    lines: list[str] = []
    script = "import time\nend = time.time() + 1.2\nwhile time.time() < end: print('x')"
    await run_process([PY, "-u", "-c", script], cwd=tmp_path, on_line=lines.append)
    notes = [line for line in lines if line.startswith("... [")]
    shown = len(lines) - len(notes)
    assert shown > 50  # the steady rate went on letting lines through
    assert 2 <= len(notes) <= 5  # the first at once, then every 0.5 s, and the end's


async def test_megabytes_are_trimmed_with_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow steady rate: what it adds stays a few lines however long a
    # loaded machine takes over the 20 MB (at 20 a second, 7 s added 140).
    monkeypatch.setattr(procs, "LINES_PER_S", 2.0)
    script = "import sys\nline = 'x' * 99 + '\\n'\nfor i in range(200_000): sys.stdout.write(line)\nsys.stdout.write('THE END\\n')"
    count = 0

    def on_line(line: str) -> None:
        nonlocal count
        count += 1

    tracemalloc.start()
    try:
        result = await run_process(
            [PY, "-c", script], cwd=tmp_path, on_line=on_line, max_output=10_000
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = 200_000 * 100 + len("THE END\n")
    assert result.ok
    assert result.total_bytes == expected
    assert LINE_BURST < count < LINE_BURST + 100  # the burst, what the rate adds, one note
    assert len(result.output) < 10_100
    assert result.output.startswith("x" * 99 + "\n")
    assert result.output.endswith("THE END\n")
    assert f"[{expected - 10_000} bytes trimmed]" in result.output
    assert peak < 2_000_000  # 20 MB went through; only a few chunks were ever held


async def test_long_lines_are_cut_for_the_callback_only(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_process(
        [PY, "-c", "print('y' * 50_000); print('short')"], cwd=tmp_path, on_line=lines.append
    )
    assert lines[1] == "short"
    assert lines[0].startswith("y" * 2_000) and lines[0].endswith("[line truncated]")
    assert len(lines[0]) < 2_100
    assert result.total_bytes == 50_001 + 6


async def test_timeout_kills_the_whole_group_including_a_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    result = await run_process(
        f"sleep 1000 & echo $! > {pidfile}; echo started; sleep 1000",
        cwd=tmp_path,
        timeout_s=0.5,
    )
    assert result.timed_out and result.exit_code is None and not result.ok
    assert "started" in result.output
    grandchild = int(pidfile.read_text())
    assert await wait_gone(grandchild)


async def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shell and its sleep (ignored signals are inherited) are deaf to
    # SIGTERM within milliseconds of starting, well before the timeout. The
    # TERM -> KILL grace is 2 s; a quarter second here.
    monkeypatch.setattr(procs, "TERM_GRACE_S", 0.25)
    result = await run_process("trap '' TERM; echo armed; sleep 1000", cwd=tmp_path, timeout_s=0.5)
    assert result.timed_out
    assert "armed" in result.output


async def test_cancellation_kills_the_group_and_reraises(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    started = asyncio.Event()
    task = asyncio.create_task(
        run_process(
            f"sleep 1000 & echo $! > {pidfile}; echo started; sleep 1000",
            cwd=tmp_path,
            on_line=lambda line: started.set(),
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_gone(int(pidfile.read_text()))


async def test_a_start_cancelled_half_way_hands_the_live_process_to_its_cleanup(
    tmp_path: Path,
) -> None:
    """asyncio forks, then waits for the pipes; cancelled in that wait it
    would SIGKILL the child alone. The cleanup gets it alive instead."""
    handed: list[asyncio.subprocess.Process] = []

    async def cleanup(proc: asyncio.subprocess.Process) -> None:
        handed.append(proc)
        assert proc.returncode is None  # still running: nobody killed it
        proc.terminate()
        await proc.wait()

    spawn = asyncio.create_subprocess_exec(
        "sleep", "1000", cwd=tmp_path, stdout=asyncio.subprocess.PIPE
    )
    task = asyncio.create_task(start_process(spawn, cleanup))
    await asyncio.sleep(0)  # forked; waiting for its pipe
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(handed) == 1 and handed[0].returncode == -15
    assert not alive(handed[0].pid)


async def test_background_children_do_not_outlive_a_finished_command(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    result = await run_process(f"sleep 1000 & echo $! > {pidfile}; echo done", cwd=tmp_path)
    assert result.ok and result.output == "done\n"
    assert await wait_gone(int(pidfile.read_text()))


async def test_missing_executable_is_127_with_a_message(tmp_path: Path) -> None:
    result = await run_process(["definitely-not-a-command-xyz", "--flag"], cwd=tmp_path)
    assert result == ProcessResult(
        exit_code=127,
        output="command not found: definitely-not-a-command-xyz",
        timed_out=False,
        duration_s=result.duration_s,
        total_bytes=0,
    )
    via_shell = await run_process("definitely-not-a-command-xyz", cwd=tmp_path)
    assert via_shell.exit_code == 127 and "not found" in via_shell.output


async def test_string_without_shell_is_split(tmp_path: Path) -> None:
    result = await run_process(f"{PY} -c 'print(\"a  b\")'", cwd=tmp_path, shell=False)
    assert result.ok and result.output == "a  b\n"


async def test_missing_cwd_and_empty_command(tmp_path: Path) -> None:
    result = await run_process("echo hi", cwd=tmp_path / "nope")
    assert result.exit_code == 127 and "working directory not found" in result.output
    with pytest.raises(ValueError, match="empty command"):
        await run_process([], cwd=tmp_path)


async def test_callback_errors_propagate_after_the_process_is_stopped(tmp_path: Path) -> None:
    def boom(line: str) -> None:
        raise RuntimeError(f"bad line {line}")

    with pytest.raises(RuntimeError, match="bad line first"):
        await run_process("echo first; sleep 1000", cwd=tmp_path, on_line=boom)


def test_trim_output_keeps_head_and_tail() -> None:
    text = "H" * 100 + "M" * 1000 + "T" * 100
    trimmed = trim_output(text, 200)
    assert trimmed == "H" * 100 + "\n... [1000 bytes trimmed] ...\n" + "T" * 100
    assert trim_output("short", 200) == "short"
    with pytest.raises(ValueError, match="max_chars"):
        trim_output("x", -1)


RUNS_A_STEP = """
import asyncio, sys
from pathlib import Path
from engine.procs import run_process
here = Path(sys.argv[1])
asyncio.run(run_process("echo $$ > group.pid; sleep 30; touch late.txt", cwd=here))
"""


async def test_a_command_outlives_no_engine_killed_with_sigkill(tmp_path: Path) -> None:
    """A step's command runs in a session of its own: when the process
    running it was killed (kill -9, a crash) it ran on, and the step ran
    again beside it once an engine started. Its guard ends it."""
    import signal
    import subprocess

    runner = subprocess.Popen([PY, "-c", RUNS_A_STEP, str(tmp_path)], cwd=Path.cwd())
    try:
        group = int(wait_for_file(tmp_path / "group.pid", timeout=20))
        assert alive(group)
        # The guard starts just after the command: killed before it, the
        # runner would leave the group with nobody to end it.
        deadline = time.monotonic() + 20
        while not _guards(of=runner.pid, group=group):
            assert time.monotonic() < deadline, "no guard started beside the command"
            await asyncio.sleep(0.02)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
        assert await wait_gone(group, tries=200), "the command outlived its engine"
        await asyncio.sleep(0.3)
        assert not (tmp_path / "late.txt").exists()
    finally:
        if runner.poll() is None:
            runner.kill()
        with contextlib.suppress(ProcessLookupError, ValueError, OSError):
            os.killpg(int((tmp_path / "group.pid").read_text()), signal.SIGKILL)


async def test_a_command_that_ends_leaves_no_guard_behind(tmp_path: Path) -> None:
    """The guard goes with its command (killed before its pipe closes, so it
    never signals a group whose number has been reused)."""
    for command in ("echo ok", "exit 3", "sleep 5"):
        await run_process(command, cwd=tmp_path, timeout_s=0.5)
    assert _guards(of=os.getpid()) == []


def _guards(of: int, group: int | None = None) -> list[int]:
    """The live guards process `of` started (for `group`, or any)."""
    arg = "" if group is None else f"{group}\0"
    return [
        int(p.name) for p in Path("/proc").iterdir()
        if p.name.isdigit() and f"\0directive-tui-guard\0{arg}" in _cmdline(p)
        and _parent(p) == of and alive(int(p.name))
    ]  # fmt: skip


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_text()
    except OSError:
        return ""


def _parent(p: Path) -> int:
    try:
        return int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
