"""Command verifiers on real subprocesses in real temporary projects,
detection on real directory trees, and the merge of detected + configured."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from engine.models import (
    Directive,
    DirectiveSpec,
    Step,
    StepRun,
    StepSpec,
    VerifierConfig,
    VerifierResult,
    VerifierSpec,
)
from engine.verifiers.base import NoVerdictError, VerifyContext
from engine.verifiers.detect import (
    RULES,
    auto_detect_verifiers,
    checks_found,
    python_tool,
    uses_mypy,
    uses_pytest,
)
from engine.verifiers.registry import (
    DETECTABLE,
    LLM_JUDGE_NAME,
    VerifierConfigError,
    build_verifiers,
    check_config,
    nameable,
)
from engine.verifiers.runners import OUTPUT_TAIL_CHARS, CommandVerifier


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def make_ctx(repo: Path, lines: list[tuple[str, str]] | None = None) -> VerifyContext:
    directive = Directive(spec=DirectiveSpec(title="t", goal="g", repo=repo))
    step = Step(chain_id="c1", directive_id=directive.id, name="impl", spec=StepSpec(name="impl"))
    run = StepRun(step_id=step.id, directive_id=directive.id, attempt=1, executor="shell")
    sink = lines if lines is not None else []
    return VerifyContext(
        directive=directive,
        step=step,
        run=run,
        workdir=repo,
        emit=lambda source, line: sink.append((source, line)),
    )


PASSING = """\
def test_one(): assert 1 + 1 == 2
def test_two(): assert "a".upper() == "A"
def test_three(): assert [1, 2][-1] == 2
def test_four(): assert {1} | {2} == {1, 2}
"""


@pytest.fixture(autouse=True)
def _plain_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest runs these tests start load only pytest itself: the same
    parsing, a second instead of ten (this venv's plugins are slow to import)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def pytest_verifier(repo: Path) -> CommandVerifier:
    detected = {v.name: v for v in auto_detect_verifiers(repo)}
    assert "pytest" in detected, f"pytest not detected in {sorted(os.listdir(repo))}"
    return detected["pytest"]


# --------------------------------------------------------------------------
# CommandVerifier on real projects
# --------------------------------------------------------------------------


async def test_all_tests_pass_scores_one(tmp_path: Path) -> None:
    repo = write(tmp_path, {"tests/test_ok.py": PASSING})
    lines: list[tuple[str, str]] = []
    result = await pytest_verifier(repo).verify(make_ctx(repo, lines))
    assert (result.score, result.passed) == (1.0, True)
    assert result.summary == "4/4 tests passed"
    assert result.gating and result.kind == "pytest"
    assert result.exit_code == 0 and not result.timed_out
    assert "-m pytest" in result.command
    assert any(src == "pytest" and "4 passed" in line for src, line in lines)


async def test_three_of_four_pass(tmp_path: Path) -> None:
    failing = PASSING.replace('"A"', '"B"')
    repo = write(tmp_path, {"tests/test_mixed.py": failing})
    result = await pytest_verifier(repo).verify(make_ctx(repo))
    assert result.score == 0.75
    assert not result.passed
    assert result.summary == "3/4 tests passed, 1 failed"
    assert result.details["failed"] == 1
    assert "test_two" in result.output_tail


async def test_skipped_test_is_not_a_pass(tmp_path: Path) -> None:
    skipping = "import pytest\n" + PASSING.replace(
        "def test_four", '@pytest.mark.skip(reason="later")\ndef test_four'
    )
    repo = write(tmp_path, {"test_skip.py": skipping})
    result = await pytest_verifier(repo).verify(make_ctx(repo))
    assert result.score == 0.75
    assert "1 skipped" in result.summary


async def test_no_tests_collected_is_zero(tmp_path: Path) -> None:
    """For a pytest the directive configures; a detected one gives no verdict
    (test_detection_real_projects.py)."""
    repo = write(tmp_path, {"pytest.ini": "[pytest]\n", "pkg/mod.py": "X = 1\n"})
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = await CommandVerifier("pytest", "pytest", command, parser="pytest").verify(
        make_ctx(repo)
    )
    assert (result.score, result.passed) == (0.0, False)
    assert result.exit_code == 5
    assert result.summary.startswith("no tests ran")


async def test_collection_error_is_zero(tmp_path: Path) -> None:
    repo = write(
        tmp_path, {"tests/test_a.py": "import no_such_module_here\n", "tests/test_b.py": PASSING}
    )
    result = await pytest_verifier(repo).verify(make_ctx(repo))
    assert (result.score, result.passed) == (0.0, False)
    assert result.summary.startswith("collection failed")
    assert "no_such_module_here" in result.output_tail


async def test_output_names_files_relative_to_the_working_tree(tmp_path: Path) -> None:
    """Each attempt runs in its own worktree: an absolute path in the output
    points the next attempt's agent at the last attempt's tree."""
    repo = write(tmp_path / "attempt-1", {"tests/test_a.py": "from pkg import nothing\n"})
    result = await pytest_verifier(repo).verify(make_ctx(repo))
    assert "'tests/test_a.py'" in result.output_tail
    assert str(repo) not in result.output_tail


async def test_hanging_command_times_out(tmp_path: Path) -> None:
    verifier = CommandVerifier(
        name="hang",
        kind="command",
        command=[sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"],
        timeout_s=1,
    )
    result = await verifier.verify(make_ctx(tmp_path))
    assert result.timed_out
    assert (result.score, result.passed) == (0.0, False)
    assert result.summary == "timed out after 1s"
    assert result.exit_code is None


async def test_megabytes_of_output_keep_a_bounded_tail(tmp_path: Path) -> None:
    script = (
        "import sys\nfor i in range(4000): sys.stdout.write(f'line {i} ' + 'x' * 500 + '\\n')\n"
    )
    lines: list[tuple[str, str]] = []
    verifier = CommandVerifier("loud", "command", [sys.executable, "-c", script])
    result = await verifier.verify(make_ctx(tmp_path, lines))
    assert result.details["output_bytes"] > 2_000_000
    assert len(result.output_tail) <= OUTPUT_TAIL_CHARS
    assert result.output_tail.rstrip().endswith("line 3999 " + "x" * 500)
    # A burst of lines is streamed, then a count of the rest and their end
    # (engine.procs): each would be an event row; the result keeps the tail whole.
    assert lines[0] == ("loud", "line 0 " + "x" * 500)
    assert lines[-1] == ("loud", "line 3999 " + "x" * 500)
    assert any(line.startswith("... [") and "lines not shown" in line for _, line in lines)
    assert len(lines) < 1_000
    assert result.passed


async def test_shell_string_command_and_missing_command(tmp_path: Path) -> None:
    ok = CommandVerifier("both", "command", "true && echo fine")
    assert (await ok.verify(make_ctx(tmp_path))).passed
    missing = CommandVerifier("missing", "command", ["definitely-not-a-real-tool-xyz"])
    result = await missing.verify(make_ctx(tmp_path))
    assert (result.score, result.passed, result.exit_code) == (0.0, False, 127)
    assert result.summary.startswith("command not found")


async def test_real_ruff_run_counts_errors(tmp_path: Path) -> None:
    if python_tool("ruff")(tmp_path) is None:
        pytest.skip("ruff is not installed")
    repo = write(
        tmp_path,
        {"ruff.toml": '[lint]\nselect = ["F"]\n', "a.py": "import os\nimport sys\n"},
    )
    (ruff,) = [v for v in auto_detect_verifiers(repo) if v.name == "ruff"]
    result = await ruff.verify(make_ctx(repo))
    assert result.summary == "ruff: 2 errors"
    assert result.score == pytest.approx(0.9)
    assert not result.passed and not result.gating


def test_bad_verifier_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown verifier parser"):
        CommandVerifier("x", "command", "true", parser="nope")
    with pytest.raises(ValueError, match="empty command"):
        CommandVerifier("x", "command", "  ")


# --------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------


def names(repo: Path) -> list[str]:
    """The detected verifiers that can run here."""
    return [v.name for v in auto_detect_verifiers(repo) if not v.missing]


def missing_names(repo: Path) -> list[str]:
    """The ones the repository uses but this machine cannot run."""
    return [v.name for v in auto_detect_verifiers(repo) if v.missing]


def fake_executable(bin_dir: Path, name: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_empty_repo_detects_nothing(tmp_path: Path) -> None:
    assert names(tmp_path) == []


def test_missing_repo_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="repository not found"):
        auto_detect_verifiers(tmp_path / "nope")


@pytest.mark.parametrize(
    "files",
    [
        {"tests/test_x.py": "def test(): pass\n"},
        {"src/pkg/thing_test.py": "def test(): pass\n"},
        {"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n"},
        {"setup.cfg": "[tool:pytest]\n"},
        {"tox.ini": "[tox]\n[pytest]\n"},
    ],
)
def test_pytest_markers(tmp_path: Path, files: dict[str, str]) -> None:
    repo = write(tmp_path, files)
    assert uses_pytest(repo)
    (verifier,) = auto_detect_verifiers(repo)
    assert (verifier.name, verifier.gating, verifier.parser) == ("pytest", True, "pytest")
    assert verifier.command[1:3] == ["-m", "pytest"]


def test_test_files_in_dependency_dirs_do_not_count(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "node_modules/pkg/test_x.py": "",
            ".venv/lib/test_y.py": "",
            "tests/fixtures.json": "{}",
        },
    )
    assert names(repo) == []


def test_repo_virtualenv_is_preferred(tmp_path: Path) -> None:
    repo = write(tmp_path, {"tests/test_x.py": "def test(): pass\n"})
    (repo / ".venv/bin").mkdir(parents=True)
    (repo / ".venv/bin/python").symlink_to(sys.executable)
    (repo / ".venv/lib/python3.99/site-packages/pytest").mkdir(parents=True)
    (verifier,) = auto_detect_verifiers(repo)
    assert verifier.command[0] == str(repo / ".venv/bin/python")


def test_lint_and_type_check_markers(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {"pyproject.toml": "[tool.ruff.lint]\nselect = ['E']\n\n[tool.mypy]\nstrict = true\n"},
    )
    assert uses_mypy(repo)
    detected = {v.name: v for v in auto_detect_verifiers(repo)}
    assert set(detected) == {"ruff", "mypy"}
    assert (not detected["ruff"].missing) == (python_tool("ruff")(repo) is not None)
    assert (not detected["mypy"].missing) == (python_tool("mypy")(repo) is not None)
    assert all(not v.gating for v in detected.values())


PACKAGE_JSON = '{"name": "x", "scripts": {"test": "node --test", "lint": "eslint ."}}'


def test_npm_needs_npm_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write(tmp_path / "repo", {"package.json": PACKAGE_JSON})
    fake_executable(tmp_path / "bin", "npm")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    detected = {v.name: v for v in auto_detect_verifiers(repo)}
    assert set(detected) == {"npm_test", "npm_lint"}
    assert detected["npm_test"].gating and not detected["npm_lint"].gating
    assert detected["npm_lint"].parser == "lint"  # problems counted, not only the exit code
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert names(repo) == []
    assert missing_names(repo) == ["npm_test", "npm_lint"]


async def test_a_tool_used_but_not_installed_is_said_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository set up for a tool this machine lacks: a user must learn
    the check did not run, and a missing tool is no fault of the work."""
    repo = write(tmp_path / "repo", {"package.json": PACKAGE_JSON})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    lint = {v.name: v for v in auto_detect_verifiers(repo)}["npm_lint"]
    with pytest.raises(NoVerdictError) as raised:
        await lint.verify(make_ctx(repo))
    message = str(raised.value)
    assert message.startswith("not run: npm is not installed here")
    assert 'name = "npm_lint", enabled = false' in message


def test_a_command_for_a_tool_not_installed_makes_it_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write(tmp_path / "repo", {"package.json": PACKAGE_JSON})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = directive_spec(
        repo,
        VerifierSpec(name="npm_test", command="node --test"),
        VerifierSpec(name="npm_lint", weight=0.5),
    )
    built = {v.name: v for v in build_verifiers(spec, repo)}
    assert not built["npm_test"].missing and built["npm_test"].command == "node --test"
    assert built["npm_lint"].missing and built["npm_lint"].weight == 0.5


def test_npm_init_placeholder_test_script_is_not_a_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    placeholder = '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'
    repo = write(tmp_path / "repo", {"package.json": placeholder})
    fake_executable(tmp_path / "bin", "npm")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert names(repo) == []


def test_tsc_prefers_the_project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write(tmp_path, {"tsconfig.json": "{}"})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert names(repo) == []
    fake_executable(repo / "node_modules/.bin", "tsc")
    (verifier,) = auto_detect_verifiers(repo)
    assert verifier.name == "tsc" and verifier.gating
    assert verifier.command[0] == str(repo / "node_modules/.bin/tsc")


def test_go_needs_test_files_for_go_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write(
        tmp_path / "repo", {"go.mod": "module example.com/m\n", "main.go": "package main\n"}
    )
    fake_executable(tmp_path / "bin", "go")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert names(repo) == ["go_vet"]
    write(repo, {"main_test.go": "package main\n"})
    assert names(repo) == ["go_test", "go_vet"]


def test_cargo_test_only_with_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write(tmp_path / "repo", {"Cargo.toml": "[package]\nname = 'x'\n", "src/lib.rs": ""})
    for tool in ("cargo", "cargo-clippy"):
        fake_executable(tmp_path / "bin", tool)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert names(repo) == ["cargo_clippy"]
    write(repo, {"src/lib.rs": "#[cfg(test)]\nmod tests { #[test] fn t() {} }\n"})
    assert names(repo) == ["cargo_test", "cargo_clippy"]


def test_make_test_unless_a_runner_covers_it(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = write(tmp_path, {"Makefile": ".PHONY: test\ntest:\n\techo ok\n"})
    assert names(repo) == ["make_test"]
    write(repo, {"tests/test_x.py": "def test(): pass\n"})
    assert names(repo) == ["pytest"]


def test_makefile_variable_named_test_is_not_a_target(tmp_path: Path) -> None:
    repo = write(tmp_path, {"Makefile": "test := 1\nall:\n\techo\n"})
    assert names(repo) == []


def test_rule_table_is_consistent() -> None:
    rule_names = [rule.name for rule in RULES]
    assert len(rule_names) == len(set(rule_names))
    for rule in RULES:
        assert set(rule.unless) <= set(rule_names)


# --------------------------------------------------------------------------
# build_verifiers: detected + configured + step restriction + judge
# --------------------------------------------------------------------------


def directive_spec(repo: Path, *extra: VerifierSpec, auto_detect: bool = True) -> DirectiveSpec:
    return DirectiveSpec(
        title="t",
        goal="g",
        repo=repo,
        verifiers=VerifierConfig(auto_detect=auto_detect, extra=list(extra)),
    )


class FakeJudge:
    name = LLM_JUDGE_NAME
    kind = "llm_judge"
    weight = 1.0
    gating = False

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        return VerifierResult(name=self.name, kind=self.kind, passed=True, score=1.0)


@pytest.fixture
def py_repo(tmp_path: Path) -> Path:
    return write(tmp_path, {"tests/test_x.py": "def test(): pass\n"})


def test_override_changes_only_what_it_sets(py_repo: Path) -> None:
    (detected,) = auto_detect_verifiers(py_repo)
    spec = directive_spec(py_repo, VerifierSpec(name="pytest", weight=5, gating=False, timeout_s=9))
    (verifier,) = build_verifiers(spec, py_repo)
    assert (verifier.weight, verifier.gating, verifier.timeout_s) == (5, False, 9)
    assert verifier.command == detected.command
    assert verifier.parser == "pytest"


def test_override_command_keeps_the_parser(py_repo: Path) -> None:
    spec = directive_spec(py_repo, VerifierSpec(name="pytest", command="pytest -x tests"))
    (verifier,) = build_verifiers(spec, py_repo)
    assert verifier.command == "pytest -x tests"
    assert (verifier.parser, verifier.gating, verifier.weight) == ("pytest", True, 2.0)


def test_disable_removes_a_detected_verifier(py_repo: Path) -> None:
    spec = directive_spec(py_repo, VerifierSpec(name="pytest", enabled=False))
    assert build_verifiers(spec, py_repo) == []


def test_new_name_adds_a_command_verifier(py_repo: Path) -> None:
    spec = directive_spec(py_repo, VerifierSpec(name="build", command=["make", "build"]))
    verifiers = build_verifiers(spec, py_repo)
    assert [v.name for v in verifiers] == ["pytest", "build"]
    build = verifiers[1]
    assert (build.kind, build.parser, build.gating, build.command) == (
        "command",
        "exit_code",
        False,
        ["make", "build"],
    )


def test_new_name_without_command_is_an_error(tmp_path: Path) -> None:
    spec = directive_spec(tmp_path, VerifierSpec(name="pytest", weight=2))
    with pytest.raises(VerifierConfigError, match="'pytest'.*no command"):
        build_verifiers(spec, tmp_path)


def test_duplicate_extra_names_are_an_error(tmp_path: Path) -> None:
    spec = directive_spec(
        tmp_path, VerifierSpec(name="a", command="true"), VerifierSpec(name="a", command="false")
    )
    with pytest.raises(VerifierConfigError, match="twice"):
        build_verifiers(spec, tmp_path)


def test_auto_detect_off_keeps_only_configured(py_repo: Path) -> None:
    spec = directive_spec(py_repo, VerifierSpec(name="lint", command="true"), auto_detect=False)
    assert [v.name for v in build_verifiers(spec, py_repo)] == ["lint"]


def test_step_list_restricts_and_judge_goes_last(py_repo: Path) -> None:
    spec = directive_spec(py_repo, VerifierSpec(name="lint", command="true"))
    judge = FakeJudge()
    everything = build_verifiers(spec, py_repo, llm_judge=judge)
    assert [v.name for v in everything] == ["pytest", "lint", LLM_JUDGE_NAME]
    step = StepSpec(name="s", verifiers=["lint", LLM_JUDGE_NAME])
    assert [v.name for v in build_verifiers(spec, py_repo, step, judge)] == ["lint", "llm_judge"]
    only_tests = StepSpec(name="s", verifiers=["pytest"])
    assert [v.name for v in build_verifiers(spec, py_repo, only_tests, judge)] == ["pytest"]
    assert build_verifiers(spec, py_repo, StepSpec(name="s", verifiers=[])) == []
    # naming the judge when none is configured (no API key) is not an error
    assert build_verifiers(spec, py_repo, StepSpec(name="s", verifiers=[LLM_JUDGE_NAME])) == []


def test_step_naming_an_unknown_verifier_is_an_error(py_repo: Path) -> None:
    spec = directive_spec(py_repo)
    step = StepSpec(name="impl", verifiers=["pytest", "eslint"])
    with pytest.raises(VerifierConfigError, match="step 'impl'.*'eslint'.*pytest"):
        build_verifiers(spec, py_repo, step)


def test_an_empty_override_command_is_a_config_error_at_run_time_too(py_repo: Path) -> None:
    """Specs made without the file loader (the app, a stored directive) meet
    the loader's own check when the step is judged."""
    spec = directive_spec(py_repo, VerifierSpec(name="pytest", command="  "))
    with pytest.raises(VerifierConfigError, match="'pytest' has an empty command") as caught:
        build_verifiers(spec, py_repo)
    assert caught.value.loc == ("verifiers", "extra", 0, "command")


def test_what_a_step_may_name_is_every_detectable_name_and_the_extras() -> None:
    assert DETECTABLE >= {"pytest", "ruff", "mypy", "npm_test", "cargo_test", "go_test"}
    spec = directive_spec(
        Path("."),
        VerifierSpec(name="docs", command="make docs"),
        VerifierSpec(name="ruff", enabled=False),
    )
    assert nameable(spec) == (DETECTABLE - {"ruff"}) | {"docs", LLM_JUDGE_NAME}
    off = directive_spec(Path("."), VerifierSpec(name="docs", command="true"), auto_detect=False)
    assert nameable(off) == {"docs", LLM_JUDGE_NAME}


def test_check_config_names_the_key_of_each_mistake() -> None:
    def loc_of(spec: DirectiveSpec) -> tuple[str | int, ...]:
        with pytest.raises(VerifierConfigError) as caught:
            check_config(spec)
        return caught.value.loc

    twice = [VerifierSpec(name="a", command="true"), VerifierSpec(name="a", command="false")]
    assert loc_of(directive_spec(Path("."), *twice)) == ("verifiers", "extra", 1, "name")
    no_command = VerifierSpec(name="docs")
    assert loc_of(directive_spec(Path("."), no_command)) == ("verifiers", "extra", 0, "command")
    unknown = directive_spec(Path(".")).model_copy(
        update={"steps": [StepSpec(name="a", verifiers=["pytest", "eslint"])]}
    )
    assert loc_of(unknown) == ("steps", 0, "verifiers")
    check_config(directive_spec(Path("."), VerifierSpec(name="pytest", weight=3)))


def test_detection_says_what_shows_the_repository_uses_each_check(tmp_path: Path) -> None:
    """The log named no reason a check ran (or was missing): a stray
    Makefile target or a forgotten mypy.ini ran unexplained."""
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_money.py").write_text("def test_a():\n    pass\n")
    found = auto_detect_verifiers(tmp_path)
    assert {v.name: v.found_by for v in found} == {
        "pytest": "tests/test_money.py",
        "ruff": "[tool.ruff] in pyproject.toml",
    }
    pytest_runs, ruff_runs = (v.runs_with for v in found)
    assert checks_found(found) == (
        f"checks found in the repository: pytest (tests/test_money.py; run with {pytest_runs}),"
        f" ruff ([tool.ruff] in pyproject.toml; run with {ruff_runs})"
    )
    assert pytest_runs.endswith(" -m pytest") and ruff_runs.endswith(" -m ruff")
