"""The command line: `directive-tui`'s commands, their options and help."""

from __future__ import annotations

import argparse
from pathlib import Path

from tui.cli.limits import LIMIT_OPTIONS, NO_LIMIT, switchable_limit

EXIT_CODES_HELP = """\
exit codes:
  0    completed (or the command did what it was asked)
  1    the directive failed or was stopped
  2    bad input: a malformed directive file (nothing is written), an unknown
       id, no database at --db, an answer the approval does not take
  3    stopped waiting for an approval: answer it, then `resume ID --headless`
  4    paused: a breaker tripped (raise it with `limits`), a person paused it,
       the first plan could not be made, the repository folder is gone, or
       the API refused the key; then `resume ID --headless`
  74   the output could not be written (a full disk)
  75   try again later: the database is busy, or another engine runs on it
  130  interrupted (Ctrl-C): the run stopped; `resume` carries on
  143  terminated (SIGTERM): the run stopped as for Ctrl-C; `resume` carries on
       (`timeout` reports its own 124 unless given --preserve-status)
  129  its terminal closed (SIGHUP): the same
  141  the output was closed (`| head`): the run stopped; `resume` carries on
`events --follow` exits as the directive's run would once it ends (0, 1).
"""

ID_HELP = "directive id (or a unique prefix)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="directive-tui",
        description="Hand a goal to AI coding agents and supervise them with guardrails.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--db",
        type=_db_path,
        help="database file (default: $DIRECTIVE_TUI_DB, else under your user data dir);"
        " also taken after the command",
    )
    p.add_argument(
        "--no-bell",
        dest="bell",
        action="store_false",
        help="the app does not ring the terminal bell when an approval is needed"
        " or a directive pauses or ends by itself",
    )
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="create a directive from a TOML file and start it")
    run.add_argument("file", type=Path, help="a directive file (TOML; see examples/README.md)")
    _headless_flags(run)

    demo = sub.add_parser("demo", help="the offline demo: no key, no network")
    demo.add_argument(
        "--auto",
        action="store_true",
        help="answer every approval by itself: approve plans and reviews, skip a step that escalates (recordings, CI)",
    )
    _headless_flags(demo)

    resume = sub.add_parser("resume", help="resume a directive (paused, or left waiting)")
    resume.add_argument("id", help=ID_HELP)
    _headless_flags(resume)

    ls = sub.add_parser("list", help="list directives")
    ls.add_argument("--json", action="store_true", help="a JSON list")

    ap = sub.add_parser("approvals", help="list pending approvals")
    ap.add_argument("--json", action="store_true", help="a JSON list")

    for name, helptext in (
        ("approve", "approve a pending approval"),
        ("deny", "deny a pending approval"),
        ("request-changes", "send a step back for rework with a comment"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("id", help="approval id (or a unique prefix)")
        cmd.add_argument("-m", "--comment", required=name == "request-changes")

    dec = sub.add_parser("decide", help="answer an escalation: retry, skip, replan or stop")
    dec.add_argument("id", help="approval id (or a unique prefix)")
    dec.add_argument("decision", choices=["retry", "skip", "replan", "stop"])
    dec.add_argument("-m", "--comment")

    for name in ("pause", "stop"):
        cmd = sub.add_parser(name, help=f"{name} a directive")
        cmd.add_argument("id", help=ID_HELP)

    chk = sub.add_parser(
        "check",
        help="what running a directive file would do, without running it (exit 2: it cannot run)",
    )
    chk.add_argument("file", type=Path, help="directive file (TOML)")

    mod = sub.add_parser(
        "model",
        help="show a directive's Claude model, or change it (then `resume` after a 404)",
    )
    mod.add_argument("id", help=ID_HELP)
    mod.add_argument(
        "name", nargs="?", help="the model for its next calls: planning, the agent, the judge"
    )
    mod.add_argument(
        "--default", action="store_true", help="back to DIRECTIVE_MODEL, or the default model"
    )

    lim = sub.add_parser(
        "limits",
        help="show a directive's limits, or change them (then `resume` after a breaker)",
    )
    lim.add_argument("id", help=ID_HELP)
    for name, kind, what in LIMIT_OPTIONS:
        off = f"; {NO_LIMIT}: no limit" if kind is switchable_limit else ""
        lim.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=what + off)
    lim.add_argument("--json", action="store_true", help="a JSON object (after any change)")

    diff = sub.add_parser(
        "diff",
        help="the directive's result so far, as a diff from where your branch was when it started",
    )
    diff.add_argument("id", help=ID_HELP)
    diff.add_argument("--stat", action="store_true", help="files changed, not the diff")

    cps = sub.add_parser(
        "checkpoints", help="where the directive started, then a commit per passed step"
    )
    cps.add_argument("id", help=ID_HELP)

    reset = sub.add_parser("reset", help="reset the directive's branch to a checkpoint")
    reset.add_argument("id", help=ID_HELP)
    reset.add_argument(
        "point",
        type=_reset_point,
        help="a checkpoint's number (0: where the directive started) or commit; see `checkpoints`",
    )
    reset.add_argument(
        "--yes", action="store_true", help="do it (without it, only say what would run again)"
    )

    merge = sub.add_parser("merge", help="fast-forward your branch to the directive's result")
    merge.add_argument("id", help=ID_HELP)

    rm = sub.add_parser(
        "delete",
        help="delete a directive that has ended or never started, with its branch and refs",
    )
    rm.add_argument("id", help=ID_HELP)
    rm.add_argument(
        "--force", action="store_true", help="even when its result is on no other branch"
    )

    ev = sub.add_parser("events", help="print a directive's event log")
    ev.add_argument("id", help=ID_HELP)
    ev.add_argument("--json", action="store_true", help="JSON lines")
    ev.add_argument("--after", type=int, default=0, help="only events after this sequence number")
    ev.add_argument(
        "--last", type=_count, metavar="N", help="only the last N events (a long log floods)"
    )
    ev.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new events (the app's or a headless run's) until the directive"
        " ends, then exit as its run would: 0 completed, 1 failed or stopped",
    )
    for command in sub.choices.values():  # `list --db X` is a common slip: take it there too
        command.add_argument(
            "--db", type=_db_path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return p


def _db_path(text: str) -> Path:
    """`--db ""` would be the current folder: say what was given instead."""
    if not text.strip():
        raise argparse.ArgumentTypeError("it is empty: give a database file, such as directives.db")
    return Path(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2 ...)")
    return int(text)


def _reset_point(text: str) -> str | int:
    """`2` or `#2` is checkpoint number 2 (git takes no commit abbreviation
    under four characters, so short numbers are never commits)."""
    number = text.removeprefix("#")
    return int(number) if number.isdigit() and len(number) < 4 else text


def _headless_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headless", action="store_true", help="no screen: print one line per event")
    p.add_argument("--json", action="store_true", help="with --headless: JSON lines")
