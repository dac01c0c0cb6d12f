"""Detection on the kinds of repositories a reviewer met, with real
subprocesses: which interpreter runs the project's tests, a tests/ folder
that holds no tests, a pytest that finds none, and the checks a Makefile,
package.json or tox.ini names.

An interpreter on PATH with or without a module is a `python3` wrapper
script in a temporary folder put first on PATH."""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from engine.evaluator import CompositeEvaluator
from engine.flags import NO_VERDICT
from engine.models import ConfidenceLevel, Thresholds, VerifierSpec
from engine.verifiers.base import NoVerdictError
from engine.verifiers.detect import auto_detect_verifiers, checks_found, python_tool
from engine.verifiers.registry import build_verifiers
from tests.test_verifiers import directive_spec, make_ctx, write

APP_TEST = """\
from flaskish import greet

def test_greet():
    assert greet() == "hello"
"""


@pytest.fixture(autouse=True)
def _plain_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # pytest alone: quick


def script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def python_on_path(
    monkeypatch: pytest.MonkeyPatch, folder: Path, *, env: str = "", flags: str = ""
) -> Path:
    """A `python3` first on PATH (and no `python` ahead of it): this test
    run's interpreter with `env` set and `flags` given, logging each start."""
    log = folder / "starts.log"
    body = f'echo "$@" >> {log}\n{env} exec {sys.executable} {flags} "$@"\n'
    wrapper = script(folder, "python3", body)
    script(folder, "python", body)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return wrapper


def project_with_flask_tests(root: Path) -> tuple[Path, Path]:
    """A repository whose tests import a package only the PATH python has."""
    site = write(root / "site", {"flaskish.py": "def greet():\n    return 'hello'\n"})
    repo = write(root / "repo", {"tests/test_app.py": APP_TEST})
    return repo, site


# --------------------------------------------------------------------------
# 1. the project's interpreter, not directive-tui's
# --------------------------------------------------------------------------


async def test_pytest_runs_with_the_path_python_that_has_the_projects_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flask installed for the PATH python, not for directive-tui's venv, no
    .venv in the repository: the step's own `python -m pytest` passed while
    the detected check failed with ModuleNotFoundError and gated the step."""
    repo, site = project_with_flask_tests(tmp_path)
    wrapper = python_on_path(monkeypatch, tmp_path / "bin", env=f"PYTHONPATH={site}")
    (verifier,) = auto_detect_verifiers(repo)
    assert verifier.command[:3] == [str(wrapper), "-m", "pytest"]
    result = await verifier.verify(make_ctx(repo))
    assert (result.passed, result.summary) == (True, "1/1 tests passed")
    # the log says what ran it
    assert checks_found([verifier]) == (
        f"checks found in the repository: pytest (tests/test_app.py; run with {wrapper} -m pytest)"
    )


def test_a_path_python_without_the_tool_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PATH python that cannot import pytest (no site-packages here):
    directive-tui's own interpreter is the last resort, and says so."""
    repo = write(tmp_path / "repo", {"tests/test_x.py": "def test(): pass\n"})
    bin_dir = tmp_path / "bin"
    python_on_path(monkeypatch, bin_dir, flags="-S")
    monkeypatch.setenv("PATH", str(bin_dir))  # no other python to find
    (verifier,) = auto_detect_verifiers(repo)
    assert verifier.command[:3] == [sys.executable, "-m", "pytest"]
    assert verifier.runs_with == f"directive-tui's own Python, {sys.executable} -m pytest"
    assert "pytest" in (bin_dir / "starts.log").read_text()  # it was asked


def test_the_import_check_runs_once_per_interpreter_not_once_per_worktree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Detection runs on the event loop at every evaluation, each attempt in
    a worktree of its own: keyed by the folder, the check (a Python start)
    ran, and froze the app, at every evaluation."""
    wrapper = python_on_path(monkeypatch, tmp_path / "bin")
    for attempt in range(3):  # the same repository, three worktrees
        repo = write(tmp_path / f"attempt-{attempt}", {"tests/test_x.py": "def test(): pass\n"})
        (verifier,) = auto_detect_verifiers(repo)
        assert verifier.command[0] == str(wrapper)
    checks = (tmp_path / "bin" / "starts.log").read_text().splitlines()
    assert len(checks) == 1 and checks[0].endswith("pytest")


def test_the_repository_virtualenv_comes_before_the_path_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write(tmp_path / "repo", {"tests/test_x.py": "def test(): pass\n"})
    (repo / ".venv/bin").mkdir(parents=True)
    (repo / ".venv/bin/python").symlink_to(sys.executable)
    (repo / ".venv/lib/python3.99/site-packages/pytest").mkdir(parents=True)
    python_on_path(monkeypatch, tmp_path / "bin")
    (verifier,) = auto_detect_verifiers(repo)
    assert verifier.command[0] == str(repo / ".venv/bin/python")
    assert verifier.runs_with == ".venv/bin/python -m pytest"
    assert not (tmp_path / "bin" / "starts.log").exists()  # no need to ask


def test_ruff_and_mypy_go_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write(tmp_path / "repo", {"ruff.toml": ""})
    wrapper = python_on_path(monkeypatch, tmp_path / "bin")
    for name in ("ruff", "mypy"):
        if importlib.util.find_spec(name) is None:
            continue  # not installed for the wrapped interpreter either
        assert python_tool(name)(repo) == [str(wrapper), "-m", name]


# --------------------------------------------------------------------------
# 2. pytest only where pytest finds tests; exit 5 is no verdict
# --------------------------------------------------------------------------

MAKEFILE_TEST = ".PHONY: test\ntest:\n\tpython3 tests/run.py\n"
RUN_PY = "print('checked: 3 passed')\n"


async def test_a_tests_folder_without_tests_is_not_pytest_and_make_test_runs(
    tmp_path: Path,
) -> None:
    """`tests/run.py`, run by `make test`, was taken for pytest: pytest ran
    nothing (exit 5), every step was red, and make test was skipped."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = write(tmp_path, {"Makefile": MAKEFILE_TEST, "tests/run.py": RUN_PY})
    detected = auto_detect_verifiers(repo)
    assert [v.name for v in detected] == ["make_test"]
    result = await detected[0].verify(make_ctx(repo))
    assert (result.passed, result.summary) == (True, "3/3 passed")


def test_python_fixtures_of_a_jest_suite_are_not_pytest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write(
        tmp_path / "repo",
        {"package.json": '{"scripts": {"test": "jest"}}', "tests/fixtures.py": "DATA = 1\n"},
    )
    script(tmp_path / "bin", "npm", "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert [v.name for v in auto_detect_verifiers(repo)] == ["npm_test"]


@pytest.mark.parametrize(
    ("files", "found_by"),
    [
        ({"tests/test_a.py": "def test(): pass\n"}, "tests/test_a.py"),
        ({"pkg/a_test.py": "def test(): pass\n"}, "pkg/a_test.py"),
        ({"conftest.py": ""}, "conftest.py"),
        ({".pytest.ini": "[pytest]\n"}, ".pytest.ini"),
        ({"setup.cfg": "[tool:pytest]\n"}, "[tool:pytest] in setup.cfg"),
        ({"tox.ini": "[pytest]\n"}, "[pytest] in tox.ini"),
        (
            {"tox.ini": "[tox]\nenvlist = py3\n[testenv]\ndeps = flask\ncommands =\n  pytest -x\n"},
            "pytest in [testenv] commands in tox.ini",
        ),
        (
            {"tox.ini": "[testenv:unit]\ncommands = {envpython} -m pytest tests\n"},
            "pytest in [testenv:unit] commands in tox.ini",
        ),
    ],
)
def test_what_shows_a_repository_uses_pytest(
    tmp_path: Path, files: dict[str, str], found_by: str
) -> None:
    repo = write(tmp_path, files)
    (verifier,) = auto_detect_verifiers(repo)
    assert (verifier.name, verifier.found_by) == ("pytest", found_by)


def test_tox_without_pytest_is_not_pytest(tmp_path: Path) -> None:
    repo = write(tmp_path, {"tox.ini": "[testenv]\ncommands = python -m unittest\n"})
    assert auto_detect_verifiers(repo) == []


EMPTY_PYTEST_PROJECT = {
    "pyproject.toml": "[project]\nname = 'x'\n\n[tool.pytest.ini_options]\naddopts = '-q'\n",
    "src/x.py": "X = 1\n",
}


async def test_a_detected_pytest_that_finds_no_tests_gives_no_verdict(tmp_path: Path) -> None:
    repo = write(tmp_path, EMPTY_PYTEST_PROJECT)
    (verifier,) = auto_detect_verifiers(repo)
    assert verifier.gating
    with pytest.raises(NoVerdictError, match="pytest found no tests \\(exit 5\\)"):
        await verifier.verify(make_ctx(repo))
    assert not verifier.gating  # for this evaluation: there was nothing to gate on


async def test_no_tests_collected_does_not_block_the_step(tmp_path: Path) -> None:
    """Every step of such a repository was red (a failed gate); now pytest
    is left out of the score and the other checks decide."""
    repo = write(tmp_path, EMPTY_PYTEST_PROJECT)
    spec = directive_spec(repo, VerifierSpec(name="build", command="true", gating=True))
    evaluation = await CompositeEvaluator(build_verifiers(spec, repo), Thresholds()).evaluate(
        make_ctx(repo)
    )
    assert evaluation.level is ConfidenceLevel.GREEN and evaluation.score == 1.0
    pytest_result = evaluation.results[0]
    assert pytest_result.details[NO_VERDICT] and not pytest_result.gating
    assert pytest_result.weight == 0
    assert f"{NO_VERDICT}: pytest" in evaluation.flags
    assert evaluation.rework_instructions is None


async def test_a_pytest_the_directive_configures_still_fails_on_no_tests(tmp_path: Path) -> None:
    """Exit 5 from a runner the user configured (a command, or gating set)
    is a failure, as before: they said tests are there."""
    repo = write(tmp_path, EMPTY_PYTEST_PROJECT)
    (detected,) = auto_detect_verifiers(repo)
    for override in (
        VerifierSpec(name="pytest", command=detected.command),
        VerifierSpec(name="pytest", gating=True),
    ):
        (verifier,) = build_verifiers(directive_spec(repo, override), repo)
        result = await verifier.verify(make_ctx(repo))
        assert (result.passed, result.score, result.exit_code) == (False, 0.0, 5)
        assert verifier.gating


async def test_a_failing_detected_pytest_still_gates(tmp_path: Path) -> None:
    repo = write(tmp_path, {"tests/test_a.py": "def test(): assert False\n"})
    (verifier,) = auto_detect_verifiers(repo)
    result = await verifier.verify(make_ctx(repo))
    assert (result.passed, result.exit_code) == (False, 1)
    assert verifier.gating


# --------------------------------------------------------------------------
# 3. make lint / make check, npm test:* / lint:*
# --------------------------------------------------------------------------

MAKEFILE_CHECKS = """\
.PHONY: lint check
lint:
\t@echo "src/a.py:1:1: F401 'os' imported but unused"
\t@exit 1
check:
\t@echo "4 passed"
"""


async def test_make_lint_and_make_check_are_detected_and_run(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = write(tmp_path, {"Makefile": MAKEFILE_CHECKS})
    detected = {v.name: v for v in auto_detect_verifiers(repo)}
    assert set(detected) == {"make_check", "make_lint"}
    check, lint = detected["make_check"], detected["make_lint"]
    assert (check.gating, check.weight, check.parser) == (True, 2.0, "count")
    assert (lint.gating, lint.weight, lint.parser) == (False, 1.0, "lint")
    assert check.found_by == "a check target in Makefile"
    assert (await check.verify(make_ctx(repo))).summary == "4/4 passed"
    linted = await lint.verify(make_ctx(repo))
    assert (linted.passed, linted.summary, linted.score) == (False, "lint: 1 problem", 0.95)


def test_make_check_and_lint_give_way_to_what_they_wrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script(tmp_path / "bin", "make", "exit 0\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    repo = write(tmp_path / "repo", {"Makefile": MAKEFILE_CHECKS + "test:\n\t@true\n"})
    assert [v.name for v in auto_detect_verifiers(repo)] == ["make_test", "make_lint"]
    write(repo, {"ruff.toml": "", "tests/test_a.py": "def test(): pass\n"})
    names = [v.name for v in auto_detect_verifiers(repo) if not v.missing]
    assert names == ["pytest", "ruff"]


FAKE_NPM = 'echo "npm $*"\necho "3 passing"\n'


async def test_npm_test_and_lint_variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    npm = script(tmp_path / "bin", "npm", FAKE_NPM)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    scripts = '{"scripts": {"test:e2e": "playwright test", "test:unit": "vitest run",'
    scripts += ' "lint:js": "eslint ."}}'
    repo = write(tmp_path / "repo", {"package.json": scripts})
    detected = {v.name: v for v in auto_detect_verifiers(repo)}
    assert detected["npm_test"].command == [str(npm), "run", "test:unit", "--silent"]
    assert detected["npm_test"].found_by == "a test:unit script in package.json"
    assert detected["npm_lint"].command == [str(npm), "run", "lint:js", "--silent"]
    assert (detected["npm_test"].gating, detected["npm_lint"].gating) == (True, False)
    result = await detected["npm_test"].verify(make_ctx(repo))
    assert "npm run test:unit --silent" in result.output_tail
    assert (result.passed, result.summary) == (True, "3/3 passed")


def test_npm_plain_scripts_win_and_several_variants_are_no_guess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm = script(tmp_path / "bin", "npm", FAKE_NPM)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    both = (
        '{"scripts": {"test": "jest", "test:unit": "jest unit", "lint:js": "a", "lint:css": "b"}}'
    )
    repo = write(tmp_path / "repo", {"package.json": both})
    detected = {v.name: v.command for v in auto_detect_verifiers(repo)}
    assert detected == {"npm_test": [str(npm), "test", "--silent"]}
    placeholder = '{"scripts": {"test:unit": "echo \\"Error: no test specified\\" && exit 1"}}'
    write(repo, {"package.json": placeholder})
    assert auto_detect_verifiers(repo) == []
