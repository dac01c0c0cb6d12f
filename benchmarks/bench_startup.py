"""Start-up: the real `directive-tui` command to its first frame.

Each command runs in a pseudo-terminal (120x40, TERM=xterm-256color), as a
person would start it; the first frame is the moment the home screen's text
reaches the terminal. Side by side, in the same run and the same way:

* floor: `python -c "import textual.app"`, spawn to exit (the target's floor);
* a minimal Textual app (one Static) to its first frame: what Textual itself
  needs to paint, so the app's own share can be read off.

Systems are interleaved, each repetition a fresh process and a fresh
database; medians reported.

    python benchmarks/bench_startup.py [--reps N]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    PYTHON,
    REPO,
    Verdict,
    median,
    print_machine,
    print_verdicts,
    table,
)

TARGET_S = 0.3
COLS, ROWS = 120, 40
FRAME_TIMEOUT_S = 20.0
ANSI = re.compile(rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|.)")
# Text only the home screen's first frame paints (the terminal title, which
# Textual sets before any frame, is an escape sequence and is stripped).
HOME_TEXT = re.compile(rb"Opening the database|No directives yet|Pending approvals")
MINIMAL_APP = (
    "from textual.app import App\n"
    "from textual.widgets import Static\n"
    "class Minimal(App):\n"
    "    def compose(self):\n"
    "        yield Static('minimal first frame')\n"
    "Minimal().run()\n"
)
MINIMAL_TEXT = re.compile(rb"minimal first frame")
DIRECTIVE_TUI = Path(PYTHON).with_name("directive-tui")


def spawn_in_pty(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO, start_new_session=True
    )
    os.close(slave)
    return proc, master


def time_to_text(argv: list[str], marker: re.Pattern[bytes], env: dict[str, str]) -> float:
    """Seconds from spawn until `marker` shows in the terminal's text."""
    t0 = time.perf_counter()
    proc, master = spawn_in_pty(argv, env)
    seen = b""
    try:
        while True:
            left = FRAME_TIMEOUT_S - (time.perf_counter() - t0)
            if left <= 0:
                raise RuntimeError(f"no first frame after {FRAME_TIMEOUT_S} s: {seen[-400:]!r}")
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                raise RuntimeError(f"exited before its first frame: {seen[-400:]!r}") from None
            seen += chunk
            if marker.search(ANSI.sub(b"", seen)):
                return time.perf_counter() - t0
    finally:
        _quit(proc, master)


def time_to_exit(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc, master = spawn_in_pty(argv, env)
    try:
        while proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        proc.wait(timeout=FRAME_TIMEOUT_S)
        return time.perf_counter() - t0
    finally:
        _quit(proc, master)


def _quit(proc: subprocess.Popen[bytes], master: int) -> None:
    """Ctrl+Q as a person would, then the process itself if it lingers."""
    if proc.poll() is None:
        try:
            os.write(master, b"\x11")
            deadline = time.monotonic() + 5
            while proc.poll() is None and time.monotonic() < deadline:
                if select.select([master], [], [], 0.05)[0]:
                    os.read(master, 65536)
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    os.close(master)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    if not DIRECTIVE_TUI.exists():
        sys.exit(f"{DIRECTIVE_TUI} not found: pip install -e . into this interpreter's venv")

    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLS), "LINES": str(ROWS)}
    env.pop("ANTHROPIC_API_KEY", None)  # the offline start-up everyone gets
    systems = {
        "floor: python -c 'import textual.app'": lambda db: time_to_exit(
            [PYTHON, "-c", "import textual.app"], env
        ),
        "minimal Textual app, first frame": lambda db: time_to_text(
            [PYTHON, "-c", MINIMAL_APP], MINIMAL_TEXT, env
        ),
        "directive-tui, first frame": lambda db: time_to_text(
            [str(DIRECTIVE_TUI), "--db", str(db)], HOME_TEXT, env
        ),
    }
    print_machine()
    runs: dict[str, list[float]] = {name: [] for name in systems}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        for rep in range(args.reps + 1):  # the first round warms the OS file cache
            for name, measure in systems.items():
                seconds = measure(Path(tmp) / f"r{rep}.db")
                if rep:
                    runs[name].append(seconds)

    floor_name, app_name = next(iter(systems)), "directive-tui, first frame"
    floor = median(runs[floor_name])
    rows = [
        [name, median(v), min(v), max(v), median(v) / floor, median(v) - floor]
        for name, v in runs.items()
    ]
    print()
    print(f"start-up (median of {args.reps}, after one warm-up round; seconds)")
    print(table(["command", "median s", "best s", "worst s", "x floor", "- floor s"], rows))
    over = median(runs[app_name]) - floor
    print_verdicts(
        [
            Verdict(
                f"directive-tui first frame within {TARGET_S} s of the floor",
                f"+{over:.3f} s",
                over <= TARGET_S,
            )
        ]
    )


if __name__ == "__main__":
    main()
