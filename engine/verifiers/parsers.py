"""Turning a verifier command's output into a score.

Each parser reads one finished `ProcessResult` and returns a `Parsed`
(score in [0, 1], passed, a one-line summary, counts for `details`).
They are found by name in `PARSERS`, so a directive file picks one by
writing its name and a new tool is one more entry, not another branch.

Scoring rules (the choices a reader would otherwise have to guess):

* Test runners score the pass fraction. Skipped / ignored tests count in
  the denominator: a skipped test is not evidence that the step works.
  Deselected tests (excluded by `-k`/`-m` on purpose) and xfail-marked tests
  (the suite's declared known failures, xfailed or xpassed) count on neither
  side; they are reported in `details` and the summary.
* No test counted (nothing collected, exit 5, collection error) is score 0:
  a test verifier that ran nothing proves nothing.
* Linters and type checkers: no issues is 1.0, otherwise
  `max(0, 1 - issues / ISSUE_BUDGET)`, so a few lint errors lower the score
  a little and twenty or more take it to 0; `passed` only with no issues.
* Output with no recognisable result falls back to the exit code where
  that is meaningful (`count`), and is score 0 otherwise: a crashed tool
  must not look like a passing one.

Test runners that name their failures (pytest, go test) list them in
`details["failing"]`: the rework instructions name each one, however long
the output.

Timeouts and missing commands are decided before a parser runs (see
`runners.py`), so parsers only see processes that finished.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.text import clip, plural

if TYPE_CHECKING:
    from engine.procs import ProcessResult

ISSUE_BUDGET = 20  # lint/type issues that take a checker's score to 0

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class Parsed(NamedTuple):
    score: float
    passed: bool
    summary: str
    details: dict[str, Any]


Parser = Callable[["ProcessResult"], Parsed]


def clean_output(text: str) -> str:
    """Output without colour codes or carriage returns, ready for regexes."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def issue_score(issues: int) -> float:
    return 1.0 if issues <= 0 else max(0.0, 1.0 - issues / ISSUE_BUDGET)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in clean_output(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _no_result(tool: str, result: ProcessResult) -> Parsed:
    """A tool that crashed or refused its configuration: its last line says
    why ("unknown field `line-lenght`"), which the exit code alone does not."""
    last = _last_line(result.output)
    said = f": {clip(last, 160)}" if last else ""
    return Parsed(
        0.0,
        False,
        f"{tool} gave no result summary (exit {result.exit_code}){said}",
        {"exit_code": result.exit_code},
    )


def _exit_note(result: ProcessResult, failures: int = 0) -> str:
    """The exit code, when it says something the counts do not: a run that
    failed with no failing test (a plugin, a coverage floor, a crash)."""
    return "" if result.exit_code == 0 or failures else f" (exit {result.exit_code})"


# --------------------------------------------------------------------------
# exit code
# --------------------------------------------------------------------------


def parse_exit_code(result: ProcessResult) -> Parsed:
    ok = result.exit_code == 0
    return Parsed(
        1.0 if ok else 0.0, ok, f"exit {result.exit_code}", {"exit_code": result.exit_code}
    )


# --------------------------------------------------------------------------
# pytest
# --------------------------------------------------------------------------

# The last line of a run, with or without -q:
#   "===== 1 failed, 3 passed, 1 skipped, 1 warning in 0.58s ====="
#   "no tests ran in 0.52s"      "2 passed in 1.20s (0:00:01)"
_PYTEST_SUMMARY = re.compile(
    r"^=*\s*(?P<body>no tests ran|\d+ \w+(?:, \d+ \w+)*)\s+in\s+[\d.]+s\b.*$", re.M
)
_PYTEST_COUNT = re.compile(r"(\d+) (\w+)")
_PYTEST_SINGULAR = {"errors": "error", "warnings": "warning", "reruns": "rerun"}
_PYTEST_COUNTED = ("passed", "failed", "error", "skipped")
_PYTEST_REPORTED = ("deselected", "xfailed", "xpassed")
_COLLECTION_ERRORS = re.compile(r"Interrupted: (\d+) errors? during collection")
# The short summary's lines ("FAILED tests/a.py::test_x - assert 1 == 2",
# "ERROR tests/b.py"): the ids a rework must fix, long output or not.
_PYTEST_FAILING = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.M)


def _pytest_counts(body: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for number, word in _PYTEST_COUNT.findall(body):
        key = _PYTEST_SINGULAR.get(word, word)
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def _pytest_label(key: str, n: int) -> str:
    return plural(n, "error") if key == "error" else f"{n} {key}"


def parse_pytest(result: ProcessResult) -> Parsed:
    text = clean_output(result.output)
    matches = list(_PYTEST_SUMMARY.finditer(text))
    if not matches:
        return _no_result("pytest", result)
    found = _pytest_counts(matches[-1].group("body"))
    counts = {k: found.get(k, 0) for k in (*_PYTEST_COUNTED, *_PYTEST_REPORTED)}
    counted = sum(counts[k] for k in _PYTEST_COUNTED)
    details: dict[str, Any] = {**counts, **found, "exit_code": result.exit_code}
    collection = _COLLECTION_ERRORS.search(text)
    if collection:
        details["collection_errors"] = int(collection.group(1))
    failing = list(dict.fromkeys(_PYTEST_FAILING.findall(text)))
    if failing:
        details["failing"] = failing

    bad = ", ".join(
        _pytest_label(k, counts[k]) for k in ("failed", "error", "skipped") if counts[k]
    )
    reported = ", ".join(f"{counts[k]} {k}" for k in _PYTEST_REPORTED if counts[k])
    if collection:
        summary = f"collection failed: {plural(details['collection_errors'], 'error')}"
    elif counted == 0:
        summary = "no tests ran"
    else:
        summary = f"{counts['passed']}/{counted} tests passed" + (f", {bad}" if bad else "")
    failures = counts["failed"] + counts["error"]
    summary += (f" ({reported})" if reported else "") + _exit_note(result, failures)
    if collection or counted == 0:
        return Parsed(0.0, False, summary, details)
    passed = result.exit_code == 0 and failures == 0
    return Parsed(counts["passed"] / counted, passed, summary, details)


# --------------------------------------------------------------------------
# Linters and type checkers: an issue count
# --------------------------------------------------------------------------


def _issues(tool: str, result: ProcessResult, issues: int, noun: str = "error") -> Parsed:
    details = {"issues": issues, "exit_code": result.exit_code}
    if issues == 0 and result.exit_code == 0:
        return Parsed(1.0, True, f"{tool}: no issues", details)
    if issues == 0:  # failed without reporting anything countable
        return _no_result(tool, result)
    return Parsed(issue_score(issues), False, f"{tool}: {plural(issues, noun)}", details)


_RUFF_FOUND = re.compile(r"^Found (\d+) errors?\b", re.M)
_RUFF_CLEAN = re.compile(r"^All checks passed!", re.M)


def parse_ruff(result: ProcessResult) -> Parsed:
    """`ruff check`: "Found 4 errors." or "All checks passed!"."""
    text = clean_output(result.output)
    found = _RUFF_FOUND.findall(text)
    if found:
        return _issues("ruff", result, int(found[-1]))
    if _RUFF_CLEAN.search(text):
        return _issues("ruff", result, 0)
    return _no_result("ruff", result)


_MYPY_FOUND = re.compile(r"^Found (\d+) errors? in (\d+) files?", re.M)
_MYPY_CLEAN = re.compile(r"^Success: no issues found", re.M)


def parse_mypy(result: ProcessResult) -> Parsed:
    """mypy: "Success: no issues found in 5 source files" or
    "Found 3 errors in 2 files (checked 5 source files)"."""
    text = clean_output(result.output)
    found = _MYPY_FOUND.findall(text)
    if found:
        errors, files = (int(n) for n in found[-1])
        parsed = _issues("mypy", result, errors)
        parsed.details["files"] = files
        return parsed._replace(
            summary=f"mypy: {plural(errors, 'error')} in {plural(files, 'file')}"
        )
    if _MYPY_CLEAN.search(text):
        return _issues("mypy", result, 0)
    return _no_result("mypy", result)


_ESLINT_PROBLEMS = re.compile(r"^\u2716 (\d+) problems? \(", re.M)
_FILE_LINE = re.compile(r"^[\w./@-]+\.\w+:\d+(?::\d+)?[:\s]", re.M)


def parse_lint(result: ProcessResult) -> Parsed:
    """A project's own lint script (`npm run lint`): eslint's "✖ 3 problems
    (...)" or one "path:line[:col]" line per problem, scored like ruff; a
    failure that shows neither scores 0."""
    text = clean_output(result.output)
    found = _ESLINT_PROBLEMS.findall(text)
    issues = int(found[-1]) if found else len(_FILE_LINE.findall(text))
    return _issues("lint", result, issues, noun="problem")


_TSC_FOUND = re.compile(r"^Found (\d+) errors?\b", re.M)
_TSC_ERROR = re.compile(r"\berror TS\d+:")


def parse_tsc(result: ProcessResult) -> Parsed:
    """tsc: "Found N errors" (pretty output) or one "error TSnnnn:" per error."""
    text = clean_output(result.output)
    found = _TSC_FOUND.findall(text)
    issues = int(found[-1]) if found else len(_TSC_ERROR.findall(text))
    return _issues("tsc", result, issues)


_RUST_DIAGNOSTIC = re.compile(r"^(warning|error)(?:\[[\w:]+\])?: (.*)$", re.M)
_RUST_NOT_A_DIAGNOSTIC = re.compile(
    r"generated \d+ warnings?|could not compile|aborting due to|build failed"
    r"|\d+ warnings? emitted|test failed, to rerun|\d+ targets? failed"
)


def parse_clippy(result: ProcessResult) -> Parsed:
    """cargo clippy: one "warning: ..." / "error: ..." line per diagnostic,
    less cargo's own tally lines ("generated 3 warnings", "could not compile")."""
    text = clean_output(result.output)
    kinds = [
        kind
        for kind, message in _RUST_DIAGNOSTIC.findall(text)
        if not _RUST_NOT_A_DIAGNOSTIC.search(message)
    ]
    errors, warnings = kinds.count("error"), kinds.count("warning")
    if result.exit_code != 0:
        if errors == 0:
            return _no_result("clippy", result)
        return Parsed(
            0.0,
            False,
            f"clippy: {plural(errors, 'error')}, {plural(warnings, 'warning')}",
            {"errors": errors, "warnings": warnings, "exit_code": result.exit_code},
        )
    parsed = _issues("clippy", result, warnings, noun="warning")
    parsed.details.update(errors=0, warnings=warnings)
    return parsed


# --------------------------------------------------------------------------
# cargo test, go test
# --------------------------------------------------------------------------

_CARGO_RESULT = re.compile(
    r"^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored;", re.M
)


def parse_cargo_test(result: ProcessResult) -> Parsed:
    """cargo test: one "test result: ok. 3 passed; 0 failed; 1 ignored; ..."
    line per test binary, summed. Ignored tests count like skipped ones. A
    build failure prints none of them and scores 0."""
    text = clean_output(result.output)
    rows = _CARGO_RESULT.findall(text)
    if not rows:
        compile_failed = "could not compile" in text
        parsed = _no_result("cargo test", result)
        return (
            parsed._replace(summary="cargo test: build failed" + _exit_note(result))
            if compile_failed
            else parsed
        )
    passed, failed, ignored = (sum(int(row[i]) for row in rows) for i in range(3))
    counted = passed + failed + ignored
    details = {
        "passed": passed,
        "failed": failed,
        "ignored": ignored,
        "binaries": len(rows),
        "exit_code": result.exit_code,
    }
    if counted == 0:
        return Parsed(0.0, False, "no tests ran", details)
    summary = f"{passed}/{counted} tests passed"
    summary += "".join(
        f", {n} {word}" for n, word in ((failed, "failed"), (ignored, "ignored")) if n
    )
    ok = result.exit_code == 0 and failed == 0
    return Parsed(passed / counted, ok, summary + _exit_note(result, failed), details)


_GO_PACKAGE = re.compile(r"^(ok|FAIL)[ \t]+(\S+)", re.M)
_GO_FAILED_TEST = re.compile(r"^\s*--- FAIL: (\S+)", re.M)


def parse_go_test(result: ProcessResult) -> Parsed:
    """go test ./...: package lines ("ok  pkg 0.01s", "FAIL pkg 0.02s",
    "FAIL pkg [build failed]"); the score is the fraction of tested packages
    that pass; failing tests ("--- FAIL: TestX") are listed in details."""
    text = clean_output(result.output)
    packages = _GO_PACKAGE.findall(text)
    ok = sum(1 for status, _ in packages if status == "ok")
    failed_pkgs = [pkg for status, pkg in packages if status == "FAIL"]
    failed_tests = _GO_FAILED_TEST.findall(text)
    details = {
        "packages_ok": ok,
        "packages_failed": len(failed_pkgs),
        "failed_packages": failed_pkgs,
        "failed_tests": failed_tests,
        "exit_code": result.exit_code,
    }
    if failed_tests:
        details["failing"] = failed_tests
    total = ok + len(failed_pkgs)
    if total == 0:
        return Parsed(0.0, False, "go test: no tested packages" + _exit_note(result), details)
    summary = f"{ok}/{total} packages passed"
    if failed_tests:
        summary += f", {plural(len(failed_tests), 'failing test')}"
    passed = result.exit_code == 0 and not failed_pkgs
    note = _exit_note(result, len(failed_pkgs))
    return Parsed(ok / total, passed, summary + note, details)


# --------------------------------------------------------------------------
# count: generic "N passed / M failed" for runners without their own parser
# --------------------------------------------------------------------------

# Summary shapes of common runners: jest/vitest ("3 passed", "1 failed"),
# mocha ("3 passing", "1 failing"), node --test / TAP ("# pass 3"), pytest.
_COUNT_PATTERNS: Mapping[str, tuple[re.Pattern[str], ...]] = {
    "passed": (re.compile(r"\b(\d+) (?:passed|passing)\b"), re.compile(r"^# pass (\d+)", re.M)),
    "failed": (re.compile(r"\b(\d+) (?:failed|failing)\b"), re.compile(r"^# fail (\d+)", re.M)),
    "errors": (re.compile(r"\b(\d+) errors?\b(?! during)"),),
    "skipped": (
        re.compile(r"\b(\d+) (?:skipped|pending|todo)\b"),
        re.compile(r"^# (?:skip|todo) (\d+)", re.M),
    ),
}


def _last_count(text: str, patterns: tuple[re.Pattern[str], ...]) -> int | None:
    """The count from the match nearest the end of the output (the summary)."""
    best: tuple[int, int] | None = None
    for pattern in patterns:
        for match in pattern.finditer(text):
            if best is None or match.start() > best[0]:
                best = (match.start(), int(match.group(1)))
    return None if best is None else best[1]


def parse_count(result: ProcessResult) -> Parsed:
    """Pass fraction from generic "N passed" / "M failed" lines; the exit
    code when the output has no such counts."""
    text = clean_output(result.output)
    found = {key: _last_count(text, patterns) for key, patterns in _COUNT_PATTERNS.items()}
    if found["passed"] is None and found["failed"] is None:
        parsed = parse_exit_code(result)
        return parsed._replace(details={**parsed.details, "counts": "none found"})
    counts = {key: value or 0 for key, value in found.items()}
    bad = counts["failed"] + counts["errors"]
    counted = counts["passed"] + bad + counts["skipped"]
    details = {**counts, "exit_code": result.exit_code}
    if counted == 0:
        return Parsed(0.0, False, "no tests ran" + _exit_note(result), details)
    summary = f"{counts['passed']}/{counted} passed"
    summary += "".join(f", {counts[k]} {k}" for k in ("failed", "errors", "skipped") if counts[k])
    passed = result.exit_code == 0 and bad == 0
    note = _exit_note(result, bad)
    return Parsed(counts["passed"] / counted, passed, summary + note, details)


PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "exit_code": parse_exit_code,
        "pytest": parse_pytest,
        "ruff": parse_ruff,
        "mypy": parse_mypy,
        "count": parse_count,
        "lint": parse_lint,
        "tsc": parse_tsc,
        "clippy": parse_clippy,
        "cargo_test": parse_cargo_test,
        "go_test": parse_go_test,
    }
)


def get_parser(name: str) -> Parser:
    try:
        return PARSERS[name]
    except KeyError:
        known = ", ".join(sorted(PARSERS))
        raise ValueError(f"unknown verifier parser {name!r}; known parsers: {known}") from None
