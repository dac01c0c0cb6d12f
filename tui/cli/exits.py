"""What the command exits with: the codes, and the errors that end it.

Exit codes: 0 completed (or command done), 1 failed or stopped, 2 bad input
(fix the command or the file), 3 stopped waiting for an approval, 4 paused
(a circuit breaker, a person, a first plan that could not be made, the
repository folder gone, or the API key refused), 74 the output could not
be written (a full disk), 75 the database busy or in use by another engine
(the same command can succeed later: sysexits' EX_IOERR and EX_TEMPFAIL,
so a script tells "retry" from "fix your input"), 130 interrupted (Ctrl-C),
141 the output was closed (as a process killed by SIGPIPE reports it), 143
terminated (SIGTERM: `kill`, `timeout`, a CI job cancelled) and 129 its
terminal closed (SIGHUP), which stop a run as Ctrl-C does.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_APPROVAL, EXIT_PAUSED = 0, 1, 2, 3, 4
EXIT_OUTPUT_FAILED = 74  # sysexits EX_IOERR
EXIT_TRY_LATER = 75  # sysexits EX_TEMPFAIL
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

OUTCOME_EXIT = {
    "completed": EXIT_OK,
    "failed": EXIT_FAILED,
    "stopped": EXIT_FAILED,
    "awaiting_approval": EXIT_APPROVAL,
    "paused": EXIT_PAUSED,
}


class UsageError(Exception):
    """Bad input from the person at the keyboard: exit 2 with the message."""


class TryLater(Exception):
    """The database is busy past the lock wait, or another live engine
    holds it: nothing is wrong with the command, which can succeed once
    that is over. Exit 75 with the message."""


class OutputFailed(OSError):
    """The standard output could not be written (a full disk): exit 74 with
    why, the run stopped as when its reader goes away. An OSError still, for
    what already ignores a failed write (the note after an interrupted run)."""


class Terminated(Exception):
    """SIGTERM or SIGHUP arrived while a command ran: it was stopped as
    Ctrl-C stops it. `code`: 128 + the signal's number, as a shell reports a
    process the signal ended."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.code = 128 + signum
