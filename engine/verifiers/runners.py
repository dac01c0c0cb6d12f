"""`CommandVerifier`: a verifier that is one subprocess and a parser.

Tests, linters, type checkers and builds all look the same from here: run
a command in the working tree with a timeout (the whole process group dies
with it), stream its lines to the screen, keep a bounded tail, and let a
named parser from `parsers.PARSERS` turn the output into a score.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.models import VerifierResult
from engine.procs import ProcessResult, run_process
from engine.verifiers.base import NoVerdictError, VerifyContext
from engine.verifiers.parsers import Parsed, get_parser

OUTPUT_TAIL_CHARS = 4_000  # what a result keeps of the output for screens and rework
MAX_CAPTURE = 64_000  # what the process runner keeps in memory (head + tail)
NOT_FOUND_EXIT = 127

# Tools write plain, non-interactive output under these: no colour codes,
# no watch mode (jest and friends honour CI), no bytecode left in the repo.
VERIFIER_ENV: dict[str, str] = {
    "CI": "true",
    "NO_COLOR": "1",
    "PY_COLORS": "0",
    "FORCE_COLOR": "0",
    "CARGO_TERM_COLOR": "never",
    "RUST_BACKTRACE": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "TERM": "dumb",
}


def describe_command(command: str | Sequence[str]) -> str:
    """The command as a person would type it."""
    return command if isinstance(command, str) else shlex.join(command)


def tail_text(text: str, max_chars: int = OUTPUT_TAIL_CHARS) -> str:
    """The end of `text`, cut at a line start when one is near the cut."""
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    newline = tail.find("\n")
    return tail[newline + 1 :] if 0 <= newline < 200 else tail


def relative_paths(text: str, workdir: Path) -> str:
    """`text` with the working tree's own prefix cut from paths: each
    attempt has its own tree, so an absolute path would send the next
    attempt to the last one's files."""
    for root in dict.fromkeys((str(workdir), str(workdir.resolve()))):
        if root.strip("/"):  # never "/", which would cut every path
            text = text.replace(root.rstrip("/") + "/", "")
    return text


def _outcome(result: ProcessResult, parser: str, timeout_s: float) -> Parsed:
    """Timeouts and missing commands mean the same for every tool, so they
    are settled here; everything else is the parser's to read."""
    if result.timed_out:
        return Parsed(0.0, False, f"timed out after {timeout_s:g}s", {"timed_out": True})
    if result.exit_code == NOT_FOUND_EXIT:
        first = result.output.strip().splitlines()[-1:] or [""]
        return Parsed(
            0.0, False, f"command not found (exit 127): {first[0][:200]}", {"exit_code": 127}
        )
    return get_parser(parser)(result)


@dataclass
class CommandVerifier:
    """A verifier that runs `command` in the step's working tree.

    `command` as a list runs without a shell; as a string it runs through
    the shell (pipes, `&&`), as a person writes it in a directive file.
    `missing` says why it cannot run here (the repository uses the tool,
    this machine lacks it): it then gives no verdict instead of a failure.
    `found_by`: what detection found that shows the repository uses it;
    `runs_with`: what detection found to run it ("/usr/bin/python3 -m pytest").

    `no_tests_exit`: the exit code by which a test runner detection found
    says it found no tests (pytest's 5). Detection guessed the runner from
    the repository's files, and a run that collects nothing is no verdict
    on the work, so it gives none (left out of the score) and stops gating
    for this evaluation: a shut gate would make every step red for a
    person. Verifiers are built afresh for each evaluation
    (registry.build_verifiers), so the lifted gate does not outlive it. A
    command or gating the directive file gives clears it: a runner the user
    configured that runs nothing fails as before.
    """

    name: str
    kind: str
    command: str | list[str]
    parser: str = "exit_code"
    weight: float = 1.0
    gating: bool = False
    timeout_s: float = 300.0
    env: dict[str, str] = field(default_factory=lambda: dict(VERIFIER_ENV))
    missing: str = ""
    found_by: str = ""
    runs_with: str = ""
    no_tests_exit: int | None = None

    def __post_init__(self) -> None:
        get_parser(self.parser)  # an unknown parser is an error now, not after a run
        if not describe_command(self.command).strip():
            raise ValueError(f"verifier {self.name!r} has an empty command")
        if self.timeout_s <= 0:
            raise ValueError(f"verifier {self.name!r}: timeout_s must be > 0")
        if self.weight < 0:
            raise ValueError(f"verifier {self.name!r}: weight must be >= 0")

    @property
    def command_line(self) -> str:
        return describe_command(self.command)

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        if self.missing:
            raise NoVerdictError(self.missing)
        result = await run_process(
            self.command,
            cwd=ctx.workdir,
            env=self.env,
            timeout_s=self.timeout_s,
            on_line=lambda line: ctx.emit(self.name, line),
            max_output=MAX_CAPTURE,
        )
        if (
            self.no_tests_exit is not None
            and not result.timed_out
            and result.exit_code == self.no_tests_exit
        ):
            self.gating = False  # read by the evaluator with the no verdict: see the docstring
            raise NoVerdictError(
                f"{self.name} found no tests (exit {result.exit_code}): left out of the score, "
                "and no gate until there are tests to run"
            )
        parsed = _outcome(result, self.parser, self.timeout_s)
        return VerifierResult(
            name=self.name,
            kind=self.kind,
            command=self.command_line,
            passed=parsed.passed,
            score=min(max(parsed.score, 0.0), 1.0),
            weight=self.weight,
            gating=self.gating,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            duration_s=result.duration_s,
            summary=parsed.summary,
            output_tail=tail_text(relative_paths(result.output, ctx.workdir)),
            details={**parsed.details, "parser": self.parser, "output_bytes": result.total_bytes},
        )
