"""Parsers on outputs captured from real runs (pytest 8.4, ruff 0.17,
cargo 1.95 / clippy); mypy and go test outputs follow their documented
formats (neither tool is installed on the machine these were captured on)."""

from __future__ import annotations

import typing

import pytest

from engine.models import VerifierSpec
from engine.procs import ProcessResult
from engine.verifiers.parsers import (
    ISSUE_BUDGET,
    PARSERS,
    clean_output,
    get_parser,
    issue_score,
    parse_cargo_test,
    parse_clippy,
    parse_count,
    parse_exit_code,
    parse_go_test,
    parse_lint,
    parse_mypy,
    parse_pytest,
    parse_ruff,
    parse_tsc,
)


def proc(output: str, exit_code: int | None = 0) -> ProcessResult:
    return ProcessResult(
        exit_code=exit_code,
        output=output,
        timed_out=False,
        duration_s=0.1,
        total_bytes=len(output),
    )


PYTEST_MIXED_Q = """\
=================================== FAILURES ===================================
____________________________________ test_3 ____________________________________

>   def test_3(): assert 1 == 2
                  ^^^^^^^^^^^^^
E   assert 1 == 2

tests/test_a.py:4: AssertionError
=========================== short test summary info ============================
FAILED tests/test_a.py::test_3 - assert 1 == 2
ERROR tests/test_a.py::test_7 - RuntimeError: fixture
1 failed, 2 passed, 1 skipped, 1 deselected, 1 xfailed, 1 xpassed, 1 error in 0.58s
"""

PYTEST_MIXED_VERBOSE = """\
FAILED tests/test_a.py::test_3 - assert 1 == 2
ERROR tests/test_a.py::test_7 - RuntimeError: fixture
= 1 failed, 3 passed, 1 skipped, 1 xfailed, 1 xpassed, 1 warning, 1 error in 0.58s =
"""

PYTEST_NO_TESTS = """\
============================= test session starts ==============================
platform linux -- Python 3.11.7, pytest-8.4.2, pluggy-1.7.0
rootdir: /tmp/cap/empty
collected 0 items

============================ no tests ran in 0.52s =============================
"""

PYTEST_COLLECTION_ERROR = """\
==================================== ERRORS ====================================
__________________________ ERROR collecting test_x.py __________________________
ImportError while importing test module '/tmp/cap/collerr/test_x.py'.
E   ModuleNotFoundError: No module named 'nope'
=========================== short test summary info ============================
ERROR test_x.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
1 error in 0.64s
"""


class TestPytest:
    def test_mixed_quiet_run(self) -> None:
        parsed = parse_pytest(proc(PYTEST_MIXED_Q, exit_code=1))
        # counted: 2 passed + 1 failed + 1 error + 1 skipped; xfail/deselected not counted
        assert parsed.score == pytest.approx(2 / 5)
        assert not parsed.passed
        assert parsed.summary.startswith("2/5 tests passed, 1 failed, 1 error, 1 skipped")
        assert "1 deselected" in parsed.summary
        assert parsed.details["deselected"] == 1
        assert parsed.details["xfailed"] == 1
        assert parsed.details["xpassed"] == 1

    def test_the_failing_tests_are_named(self) -> None:
        """What a rework must fix, by id, whatever the output's tail shows."""
        parsed = parse_pytest(proc(PYTEST_MIXED_Q, exit_code=1))
        assert parsed.details["failing"] == ["tests/test_a.py::test_3", "tests/test_a.py::test_7"]
        collection = "ERROR tests/test_b.py\n!!! Interrupted: 1 error during collection !!!\n"
        parsed = parse_pytest(proc(collection + "1 error in 0.2s\n", exit_code=2))
        assert parsed.details["failing"] == ["tests/test_b.py"]
        assert "failing" not in parse_pytest(proc("3 passed in 0.1s\n")).details

    def test_verbose_summary_line_with_equals_signs(self) -> None:
        parsed = parse_pytest(proc(PYTEST_MIXED_VERBOSE, exit_code=1))
        assert parsed.score == pytest.approx(3 / 6)
        assert parsed.details["warning"] == 1

    def test_all_passed(self) -> None:
        parsed = parse_pytest(proc("....\n4 passed in 0.03s\n"))
        assert (parsed.score, parsed.passed, parsed.summary) == (1.0, True, "4/4 tests passed")

    def test_skipped_is_not_a_pass(self) -> None:
        parsed = parse_pytest(proc("3 passed, 1 skipped in 0.10s\n"))
        assert parsed.score == 0.75
        assert parsed.passed  # nothing failed: the gate holds, the score says less
        assert "1 skipped" in parsed.summary

    def test_plural_errors_and_long_duration(self) -> None:
        parsed = parse_pytest(proc("2 passed, 2 errors in 75.20s (0:01:15)\n", exit_code=1))
        assert parsed.details["error"] == 2
        assert parsed.score == 0.5
        assert "2 errors" in parsed.summary

    def test_no_tests_ran_is_zero(self) -> None:
        parsed = parse_pytest(proc(PYTEST_NO_TESTS, exit_code=5))
        assert (parsed.score, parsed.passed) == (0.0, False)
        assert parsed.summary.startswith("no tests ran")

    def test_only_deselected_is_zero(self) -> None:
        parsed = parse_pytest(proc("3 deselected in 0.01s\n", exit_code=5))
        assert parsed.score == 0.0
        assert "3 deselected" in parsed.summary

    def test_collection_error_is_zero(self) -> None:
        parsed = parse_pytest(proc(PYTEST_COLLECTION_ERROR, exit_code=2))
        assert (parsed.score, parsed.passed) == (0.0, False)
        assert parsed.summary.startswith("collection failed: 1 error")
        assert parsed.details["collection_errors"] == 1

    def test_last_summary_line_wins(self) -> None:
        # a test that prints a summary-looking line before the real one
        text = "10 passed in 1.00s\nmore output\n1 failed, 1 passed in 0.20s\n"
        assert parse_pytest(proc(text, exit_code=1)).score == 0.5

    def test_coloured_output(self) -> None:
        text = "\x1b[32m\x1b[1m5 passed\x1b[0m\x1b[32m in 0.04s\x1b[0m\n"
        assert parse_pytest(proc(text)).score == 1.0

    def test_crash_without_summary(self) -> None:
        parsed = parse_pytest(proc("ERROR: usage: pytest [options]\n", exit_code=4))
        assert (parsed.score, parsed.passed) == (0.0, False)
        assert "exit 4" in parsed.summary

    def test_all_passed_but_nonzero_exit_does_not_pass(self) -> None:
        # e.g. a coverage plugin failing the run after every test passed
        parsed = parse_pytest(proc("FAIL Required test coverage not reached\n3 passed in 1s\n", 1))
        assert parsed.score == 1.0
        assert not parsed.passed
        assert "exit 1" in parsed.summary


RUFF_ERRORS = """\
a.py:1:1: I001 [*] Import block is un-sorted or un-formatted
a.py:1:8: F401 [*] `os` imported but unused
a.py:2:8: F401 [*] `sys` imported but unused
b.py:1:8: F401 [*] `json` imported but unused
Found 4 errors.
[*] 4 fixable with `--fix`.
"""

RUFF_CONFIG_ERROR = """\
ruff failed
  Cause: Failed to load configuration `/tmp/cap/r/ruff.toml`
  Cause: Failed to parse /tmp/cap/r/ruff.toml
"""


class TestLinters:
    def test_ruff_errors(self) -> None:
        parsed = parse_ruff(proc(RUFF_ERRORS, exit_code=1))
        assert parsed.score == pytest.approx(1 - 4 / ISSUE_BUDGET)
        assert not parsed.passed
        assert parsed.summary == "ruff: 4 errors"
        assert parsed.details["issues"] == 4

    def test_ruff_one_error(self) -> None:
        parsed = parse_ruff(proc("a.py:1:8: F401 `os` imported but unused\nFound 1 error.\n", 1))
        assert parsed.summary == "ruff: 1 error"

    def test_ruff_clean(self) -> None:
        assert parse_ruff(proc("All checks passed!\n")) == (1.0, True, "ruff: no issues", {
            "issues": 0, "exit_code": 0})  # fmt: skip

    def test_ruff_config_error_is_zero(self) -> None:
        parsed = parse_ruff(proc(RUFF_CONFIG_ERROR, exit_code=2))
        assert (parsed.score, parsed.passed) == (0.0, False)
        # what went wrong is said: the tool's own last words, not only its exit code
        assert parsed.summary == (
            "ruff gave no result summary (exit 2): Cause: Failed to parse /tmp/cap/r/ruff.toml"
        )

    def test_a_lint_script_counts_its_problems(self) -> None:
        """A project's own lint script (npm run lint) scored like ruff: a few
        problems lower the score a little, not to 0 as a bare exit code did."""
        eslint = (
            "/w/src/a.js\n  3:5  error  'x' is defined but never used  no-unused-vars\n"
            "  9:1  warning  Unexpected console statement  no-console\n\n"
            "\u2716 2 problems (1 error, 1 warning)\n"
        )
        parsed = parse_lint(proc(eslint, exit_code=1))
        assert (parsed.score, parsed.passed) == (pytest.approx(1 - 2 / ISSUE_BUDGET), False)
        assert parsed.summary == "lint: 2 problems"
        lines = "src/a.js:3:5: no-unused-vars\nsrc/b.ts:10: missing semicolon\n"
        assert parse_lint(proc(lines, exit_code=1)).details["issues"] == 2
        assert parse_lint(proc("", exit_code=0))[:2] == (1.0, True)
        crashed = parse_lint(proc("sh: 1: eslint: not found\n", exit_code=1))
        assert crashed.score == 0.0 and crashed.summary.endswith("eslint: not found")

    def test_issue_score_floors_at_zero(self) -> None:
        assert issue_score(0) == 1.0
        assert issue_score(ISSUE_BUDGET) == 0.0
        assert issue_score(ISSUE_BUDGET * 3) == 0.0

    def test_mypy(self) -> None:
        clean = parse_mypy(proc("Success: no issues found in 5 source files\n"))
        assert (clean.score, clean.passed) == (1.0, True)
        text = "a.py:3: error: Incompatible types  [assignment]\n" * 3
        text += "Found 3 errors in 2 files (checked 5 source files)\n"
        bad = parse_mypy(proc(text, exit_code=1))
        assert bad.score == pytest.approx(1 - 3 / ISSUE_BUDGET)
        assert bad.summary == "mypy: 3 errors in 2 files"
        assert bad.details["files"] == 2
        crashed = parse_mypy(proc("mypy: error: Cannot find config file\n", exit_code=2))
        assert crashed.score == 0.0
        assert crashed.summary.endswith("(exit 2): mypy: error: Cannot find config file")

    def test_tsc_plain_and_pretty(self) -> None:
        plain = "src/a.ts(1,7): error TS2322: Type 'string' is not assignable to type 'number'.\n"
        assert parse_tsc(proc(plain, exit_code=2)).details["issues"] == 1
        pretty = plain * 2 + "\nFound 2 errors in the same file, starting at: src/a.ts:1\n"
        assert parse_tsc(proc(pretty, exit_code=2)).summary == "tsc: 2 errors"
        assert parse_tsc(proc("")).passed


CARGO_FAILED = """\
running 4 tests
tests::bad --- FAILED
.i.
failures:
---- tests::bad stdout ----
thread 'tests::bad' (4571) panicked at src/lib.rs:7:24:
assertion `left == right` failed
failures:
    tests::bad
test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
error: test failed, to rerun pass `--lib`
running 1 test
.
test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
running 0 tests
test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
error: 1 target failed:
    `--lib`
"""

CARGO_BUILD_FAILED = """\
  --> src/lib.rs:10:9
   |
10 | fn x( {
   |     - -^
error: could not compile `rs` (lib) due to 1 previous error
error: could not compile `rs` (lib test) due to 1 previous error
"""

CLIPPY_WARNINGS = """\
warning: unneeded `return` statement
  --> src/lib.rs:10:51
warning: writing `&Vec` instead of `&[_]` involves a new object where a slice will do
  --> src/lib.rs:10:13
warning: `rs` (lib) generated 2 warnings (run `cargo clippy --fix --lib -p rs -- ` to apply 1 suggestion)
warning: this assertion is always `true`
 --> tests/it.rs:1:22
warning: `rs` (test "it") generated 1 warning
"""  # noqa: E501

CLIPPY_DENIED = """\
error: unneeded `return` statement
error: writing `&Vec` instead of `&[_]` involves a new object where a slice will do
error: could not compile `rs` (lib) due to 2 previous errors
"""


class TestCargo:
    def test_results_are_summed_over_binaries(self) -> None:
        parsed = parse_cargo_test(proc(CARGO_FAILED, exit_code=101))
        assert parsed.details["passed"] == 3
        assert parsed.details["binaries"] == 3
        assert parsed.score == pytest.approx(3 / 5)  # the ignored test counts
        assert parsed.summary.startswith("3/5 tests passed, 1 failed, 1 ignored")
        assert not parsed.passed

    def test_build_failure(self) -> None:
        parsed = parse_cargo_test(proc(CARGO_BUILD_FAILED, exit_code=101))
        assert (parsed.score, parsed.passed) == (0.0, False)
        assert parsed.summary.startswith("cargo test: build failed")

    def test_clippy_warnings_without_tally_lines(self) -> None:
        parsed = parse_clippy(proc(CLIPPY_WARNINGS))
        assert parsed.details["warnings"] == 3
        assert parsed.score == pytest.approx(1 - 3 / ISSUE_BUDGET)
        assert not parsed.passed

    def test_clippy_errors(self) -> None:
        parsed = parse_clippy(proc(CLIPPY_DENIED, exit_code=101))
        assert parsed.details["errors"] == 2
        assert parsed.score == 0.0

    def test_clippy_clean(self) -> None:
        assert parse_clippy(proc("")).passed


GO_OUTPUT = """\
--- FAIL: TestParse (0.00s)
    parse_test.go:12: got 3, want 4
FAIL
FAIL\texample.com/m/parse\t0.004s
ok  \texample.com/m/util\t0.002s
ok  \texample.com/m/api\t(cached)
?   \texample.com/m/cmd\t[no test files]
FAIL
"""


class TestGoAndGeneric:
    def test_go_packages(self) -> None:
        parsed = parse_go_test(proc(GO_OUTPUT, exit_code=1))
        assert parsed.score == pytest.approx(2 / 3)
        assert parsed.details["failed_tests"] == ["TestParse"]
        assert parsed.details["failed_packages"] == ["example.com/m/parse"]
        assert parsed.summary.startswith("2/3 packages passed, 1 failing test")

    def test_go_build_failure_counts_as_failed_package(self) -> None:
        text = "# example.com/m\n./a.go:3:1: syntax error\nFAIL\texample.com/m [build failed]\n"
        parsed = parse_go_test(proc(text, exit_code=1))
        assert (parsed.score, parsed.passed) == (0.0, False)

    def test_exit_code(self) -> None:
        assert parse_exit_code(proc("", 0))[:2] == (1.0, True)
        assert parse_exit_code(proc("", 3))[:3] == (0.0, False, "exit 3")

    @pytest.mark.parametrize(
        ("text", "exit_code", "score"),
        [
            ("Tests:       1 failed, 3 passed, 4 total\n", 1, 0.75),  # jest
            ("  3 passing (5ms)\n  1 failing\n", 1, 0.75),  # mocha
            ("# tests 4\n# pass 4\n# fail 0\n", 0, 1.0),  # node --test
            (" Tests  2 passed | 1 skipped (3)\n", 0, 2 / 3),  # vitest
        ],
    )
    def test_count_shapes(self, text: str, exit_code: int, score: float) -> None:
        assert parse_count(proc(text, exit_code)).score == pytest.approx(score)

    def test_count_falls_back_to_exit_code(self) -> None:
        assert parse_count(proc("all good\n", 0))[:2] == (1.0, True)
        assert parse_count(proc("broken\n", 2))[:2] == (0.0, False)


def test_a_directive_can_name_every_parser_and_only_those() -> None:
    """The lint parser came without its name in the directive file's choices."""
    literal, _none = typing.get_args(VerifierSpec.model_fields["parser"].annotation)
    assert set(typing.get_args(literal)) == set(PARSERS)


def test_unknown_parser_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown verifier parser 'junit'.*pytest"):
        get_parser("junit")


def test_clean_output_strips_colour_and_carriage_returns() -> None:
    assert clean_output("\x1b[31mred\x1b[0m\r\nnext\r") == "red\nnext\n"
