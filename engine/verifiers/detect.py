"""Finding the checks a repository already uses.

One `DetectionRule` per verifier: a marker check (does the repository
really use the tool: its config file, its test files), a tool check that
resolves the executable (None when it is not installed), the arguments,
the parser and whether a failure gates the step. A rule yields a
verifier only when the marker holds (none that would check nothing); when
the tool is missing, that verifier gives no verdict and says why (a user
must learn a check of theirs did not run; a missing tool is no fault of
the work).

Weights: test runners 2, checkers and linters 1: a failing test says
more about a step than a style nit.

Python tools run with the project's interpreter, which has the project's
dependencies: the repository's own virtualenv, else the `python3` (then
`python`) on PATH when it can import the tool, and directive-tui's own
interpreter only when neither can (see `python_tool`). A detected pytest
that finds no tests (exit 5) gives no verdict and does not gate (see
`CommandVerifier.no_tests_exit`).
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from engine.procs import child_env
from engine.verifiers.runners import CommandVerifier

# Directories a search for test files never enters: dependencies, builds,
# caches, virtualenvs (and every hidden directory, .git included).
SKIP_DIRS = frozenset(
    {"node_modules", "venv", "env", "__pycache__", "target", "dist", "build", "site-packages"}
)
MAX_SCAN_ENTRIES = 20_000  # files looked at per search; big trees stop early
MAX_SCAN_BYTES = 512_000  # bytes read per file when looking inside it

TEST_TIMEOUT_S = 600.0
CHECK_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------
# Looking at the repository
# --------------------------------------------------------------------------


def _walk_files(repo: Path) -> Iterator[Path]:
    seen = 0
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            seen += 1
            if seen > MAX_SCAN_ENTRIES:
                return
            yield Path(root) / name


def _rel(repo: Path, path: Path) -> str:
    return path.relative_to(repo).as_posix()


def _any_file(repo: Path, *patterns: str) -> str | None:
    """The first file named like one of `patterns`, relative to `repo`."""
    for path in _walk_files(repo):
        if any(fnmatch(path.name, pat) for pat in patterns):
            return _rel(repo, path)
    return None


def _any_file_containing(repo: Path, suffix: str, *needles: str) -> str | None:
    for path in _walk_files(repo):
        if path.suffix != suffix:
            continue
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                text = handle.read(MAX_SCAN_BYTES)
        except OSError:
            continue
        if any(needle in text for needle in needles):
            return _rel(repo, path)
    return None


def _read(repo: Path, name: str) -> str:
    path = repo / name
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return ""


def _has_section(repo: Path, name: str, header: str) -> str | None:
    """The section of config file `name` whose header matches the regex
    `header`, as "[header] in name" (TOML tables and INI sections alike; a
    broken file still says what it is meant to configure)."""
    found = re.search(rf"^\s*\[({header})\]", _read(repo, name), re.M)
    return f"[{found.group(1)}] in {name}" if found else None


def _exists(repo: Path, *names: str) -> str | None:
    return next((name for name in names if (repo / name).exists()), None)


def _package_scripts(repo: Path) -> dict[str, str]:
    try:
        data = json.loads(_read(repo, "package.json") or "{}")
    except json.JSONDecodeError:
        return {}
    scripts = data.get("scripts") if isinstance(data, dict) else None
    if not isinstance(scripts, dict):
        return {}
    return {k: v for k, v in scripts.items() if isinstance(v, str) and v.strip()}


NPM_PLACEHOLDER_TEST = "no test specified"  # what `npm init` writes
# the script of a family to run when the plain one is missing (`test:*`)
NPM_PREFERRED = {"test": "test:unit"}


def npm_script(repo: Path, base: str) -> str | None:
    """The package.json script that runs the project's `base` check: `base`
    itself ("test"), else its preferred variant ("test:unit"), else the one
    `base:*` script when there is exactly one ("lint:js"). Several variants
    and no plain one: none (which of them is the check is a guess)."""
    scripts = _package_scripts(repo)

    def real(name: str) -> bool:
        return name in scripts and NPM_PLACEHOLDER_TEST not in scripts[name]

    preferred = NPM_PREFERRED.get(base)
    if real(base):
        return base
    if preferred and real(preferred):
        return preferred
    variants = [name for name in scripts if name.startswith(f"{base}:") and real(name)]
    return variants[0] if len(variants) == 1 else None


def _makefile_target(repo: Path, target: str) -> str | None:
    # make reads the first of these that exists
    name = next((n for n in ("GNUmakefile", "makefile", "Makefile") if (repo / n).is_file()), "")
    pattern = rf"^(?:[\w./-]+[ \t]+)*{re.escape(target)}(?:[ \t]+[\w./-]+)*[ \t]*::?(?!=)"
    if name and re.search(pattern, _read(repo, name), re.M):
        return f"a {target} target in {name}"
    return None


# --------------------------------------------------------------------------
# Markers: does the repository use the tool? Each says what it found
# ("tests/test_money.py", "[tool.ruff] in pyproject.toml"), or None.
# --------------------------------------------------------------------------

Marker = Callable[[Path], str | None]


def uses_pytest(repo: Path) -> str | None:
    """pytest's configuration, or a file pytest collects by default. Any
    other .py file under tests/ is not enough: pytest would run nothing
    there (a `tests/run.py` that `make test` runs, fixtures of a jest
    suite)."""
    return (
        _exists(repo, "pytest.ini", ".pytest.ini", "conftest.py")
        or _has_section(repo, "pyproject.toml", r"tool\.pytest(\.ini_options)?")
        or _has_section(repo, "setup.cfg", r"tool:pytest")
        or _has_section(repo, "tox.ini", r"pytest")
        or _tox_runs_pytest(repo)
        or _any_file(repo, "test_*.py", "*_test.py")
    )


def _tox_runs_pytest(repo: Path) -> str | None:
    """A tox environment whose commands run pytest (`commands = pytest`)."""
    text = _read(repo, "tox.ini")
    if not text:
        return None
    config = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        config.read_string(text)
    except configparser.Error:
        return None
    for section in config.sections():
        if section != "testenv" and not section.startswith("testenv:"):
            continue
        if re.search(r"\bpy\.?test\b", config.get(section, "commands", fallback="")):
            return f"pytest in [{section}] commands in tox.ini"
    return None


def uses_ruff(repo: Path) -> str | None:
    return _exists(repo, "ruff.toml", ".ruff.toml") or _has_section(
        repo, "pyproject.toml", r"tool\.ruff(\..*)?"
    )


def uses_mypy(repo: Path) -> str | None:
    return (
        _exists(repo, "mypy.ini", ".mypy.ini")
        or _has_section(repo, "pyproject.toml", r"tool\.mypy(\..*)?")
        or _has_section(repo, "setup.cfg", r"mypy(-.*)?")
    )


def uses_npm_script(base: str) -> Marker:
    def check(repo: Path) -> str | None:
        script = npm_script(repo, base)
        return f"a {script} script in package.json" if script else None

    check.__name__ = f"uses_npm_{base}"
    return check


def uses_tsc(repo: Path) -> str | None:
    return _exists(repo, "tsconfig.json")


def uses_cargo(repo: Path) -> str | None:
    return _exists(repo, "Cargo.toml")


def uses_cargo_tests(repo: Path) -> str | None:
    """A crate with tests: cargo test on a crate without any runs nothing."""
    if not uses_cargo(repo):
        return None
    return _any_file_containing(repo, ".rs", "#[test]", "#[cfg(test)]", "::test]")


def uses_go(repo: Path) -> str | None:
    return _exists(repo, "go.mod")


def uses_go_tests(repo: Path) -> str | None:
    return _any_file(repo, "*_test.go") if uses_go(repo) else None


def uses_make_target(target: str) -> Marker:
    def check(repo: Path) -> str | None:
        return _makefile_target(repo, target)

    check.__name__ = f"uses_make_{target}"
    return check


uses_make_test = uses_make_target("test")


# --------------------------------------------------------------------------
# Tools: the executable to run, or None when it is not installed
# --------------------------------------------------------------------------

Tool = Callable[[Path], list[str] | None]


PATH_PYTHONS = ("python3", "python")  # the project's interpreter, as its shell finds it
IMPORT_CHECK_TIMEOUT_S = 5.0
# What each interpreter on PATH imports, by (interpreter, module, the
# Python version the folder pins: a pyenv shim picks its Python by the
# `.python-version` it finds, which every worktree of a repository shares).
# Detection runs on the event loop for each evaluation, in a new worktree
# each attempt: keyed by the folder, the check (a Python start-up, ~0.2 s)
# froze the app at every evaluation. A yes is kept; a no is asked again
# after NO_RECHECK_S (the user may install the tool while the app runs).
_IMPORTS: dict[tuple[str, str, str], tuple[bool, float]] = {}
IMPORTS_KEPT = 1_000
NO_RECHECK_S = 60.0
# '' (the current folder) off sys.path: the repository's own files must
# not pass for the tool, nor run
_IMPORT_CHECK = (
    "import importlib, sys; sys.path[:] = [p for p in sys.path if p]; "
    "importlib.import_module(sys.argv[1])"
)


def can_import(python: str, module: str, repo: Path) -> bool:
    """Whether `python`, started in `repo`, imports `module` (one short
    subprocess, its answer kept: see `_IMPORTS`)."""
    key = (os.path.realpath(python), module, _pinned_version(repo))
    known = _IMPORTS.get(key)
    if known is not None and (known[0] or time.monotonic() - known[1] < NO_RECHECK_S):
        return known[0]
    ok = _imports(python, module, repo)
    if len(_IMPORTS) >= IMPORTS_KEPT:
        _IMPORTS.clear()
    _IMPORTS[key] = (ok, time.monotonic())
    return ok


def _pinned_version(repo: Path) -> str:
    """The Python version pinned for `repo` (the nearest `.python-version`
    up from it), which is what a pyenv shim started there runs."""
    for folder in (repo, *repo.parents):
        pinned = folder / ".python-version"
        if pinned.is_file():
            return pinned.read_text(encoding="utf-8", errors="replace").strip()
    return ""


def _imports(python: str, module: str, repo: Path) -> bool:
    try:
        proc = subprocess.Popen(
            [python, "-c", _IMPORT_CHECK, module],
            cwd=repo,
            env=child_env({"PYTHONDONTWRITEBYTECODE": "1"}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: a timeout ends a shim's children too
        )
    except OSError:
        return False
    try:
        ok = proc.wait(timeout=IMPORT_CHECK_TIMEOUT_S) == 0
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        return False
    return ok


def python_tool(module: str) -> Tool:
    """A Python tool, run with the project's interpreter (it has the
    project's dependencies, which the tests import): the repository's own
    virtualenv (.venv, venv) when it has the tool; else the `python3`, then
    the `python`, on PATH when it can import it; else directive-tui's own
    interpreter; else the tool's console script on PATH. (A console script
    comes last: a pyenv shim for a tool another Python version has exists
    on PATH and fails.)"""

    def resolve(repo: Path) -> list[str] | None:
        for venv in (".venv", "venv"):
            python = repo / venv / "bin" / "python"
            if python.exists() and any((repo / venv).glob(f"lib/python*/site-packages/{module}")):
                return [str(python), "-m", module]
        tried: set[str] = set()
        for name in PATH_PYTHONS:
            found = shutil.which(name)
            if found is None or os.path.realpath(found) in tried:
                continue
            tried.add(os.path.realpath(found))
            if can_import(found, module, repo):
                return [found, "-m", module]
        if importlib.util.find_spec(module) is not None:
            return [sys.executable, "-m", module]
        found = shutil.which(module)
        return [found] if found else None

    resolve.__name__ = f"python_tool_{module}"
    return resolve


def describe_tool(executable: list[str], repo: Path) -> str:
    """What runs a check, for the log: "/usr/bin/python3 -m pytest",
    ".venv/bin/python -m pytest" (the repository's own), or directive-tui's
    own interpreter said as such."""
    head = executable[0]
    try:
        shown = Path(head).relative_to(repo).as_posix()
    except ValueError:
        shown = head
    line = shlex.join([shown, *executable[1:]])
    return f"directive-tui's own Python, {line}" if head == sys.executable else line


def path_tool(executable: str, *requires: str) -> Tool:
    """An executable on PATH; `requires` are further executables it needs
    (cargo clippy needs cargo-clippy)."""

    def resolve(repo: Path) -> list[str] | None:
        found = shutil.which(executable)
        if found is None or any(shutil.which(extra) is None for extra in requires):
            return None
        return [found]

    resolve.__name__ = f"path_tool_{executable}"
    return resolve


def node_tool(executable: str) -> Tool:
    """A node tool: the project's own (node_modules/.bin) or one on PATH."""

    def resolve(repo: Path) -> list[str] | None:
        local = repo / "node_modules" / ".bin" / executable
        if local.exists():
            return [str(local)]
        found = shutil.which(executable)
        return [found] if found else None

    resolve.__name__ = f"node_tool_{executable}"
    return resolve


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionRule:
    name: str
    kind: str
    uses: Marker  # what shows the repository really uses the tool, or None
    tool: Tool  # the executable, or None when not installed
    args: tuple[str, ...]
    parser: str
    gating: bool
    weight: float = 1.0
    timeout_s: float = CHECK_TIMEOUT_S
    # the arguments when they depend on the repository (which npm script);
    # `args` otherwise
    args_for: Callable[[Path], tuple[str, ...]] | None = None
    # the exit code by which the tool says it found no tests: no verdict,
    # and no gate (see CommandVerifier.no_tests_exit)
    no_tests_exit: int | None = None
    # skipped when one of these was detected first: `make test` mostly
    # wraps the same runner, and running a suite twice costs minutes
    unless: tuple[str, ...] = ()

    needs: str = ""  # the program to install, when it is not `kind`

    def detect(self, repo: Path, detected: frozenset[str] = frozenset()) -> CommandVerifier | None:
        if detected.intersection(self.unless):
            return None
        found_by = self.uses(repo)
        if not found_by:
            return None
        executable = self.tool(repo)
        args = self.args_for(repo) if self.args_for else self.args
        return CommandVerifier(
            name=self.name,
            kind=self.kind,
            command=[*(executable or [self.needs or self.kind]), *args],
            parser=self.parser,
            weight=self.weight,
            gating=self.gating,
            timeout_s=self.timeout_s,
            missing="" if executable else self.not_installed(),
            found_by=found_by,
            runs_with=describe_tool(executable, repo) if executable else "",
            no_tests_exit=self.no_tests_exit,
        )

    def not_installed(self) -> str:
        """Why a check the repository uses did not run, and the two ways out."""
        return (
            f"not run: {self.needs or self.kind} is not installed here (this repository "
            f"uses it). Install it, or switch {self.name} off in the directive file: "
            f'[[verifiers.extra]] name = "{self.name}", enabled = false'
        )


TEST_WEIGHT = 2.0
PYTEST_NO_TESTS_EXIT = 5  # pytest's ExitCode.NO_TESTS_COLLECTED
# the runners a `make test` / `make check` mostly wraps
TEST_RUNNERS = ("pytest", "npm_test", "cargo_test", "go_test")


def npm_args(base: str) -> Callable[[Path], tuple[str, ...]]:
    def args(repo: Path) -> tuple[str, ...]:
        script = npm_script(repo, base) or base
        return ("test", "--silent") if script == "test" else ("run", script, "--silent")

    args.__name__ = f"npm_args_{base}"
    return args


RULES: tuple[DetectionRule, ...] = (
    DetectionRule("pytest", "pytest", uses_pytest, python_tool("pytest"),
                  ("-q", "-p", "no:cacheprovider"), "pytest", gating=True,
                  weight=TEST_WEIGHT, timeout_s=TEST_TIMEOUT_S,
                  no_tests_exit=PYTEST_NO_TESTS_EXIT),
    DetectionRule("ruff", "ruff", uses_ruff, python_tool("ruff"),
                  ("check", "--no-cache", "--output-format=concise", "."), "ruff", gating=False),
    DetectionRule("mypy", "mypy", uses_mypy, python_tool("mypy"),
                  (".",), "mypy", gating=False),
    DetectionRule("npm_test", "npm", uses_npm_script("test"), path_tool("npm"),
                  (), "count", gating=True, args_for=npm_args("test"),
                  weight=TEST_WEIGHT, timeout_s=TEST_TIMEOUT_S),
    DetectionRule("npm_lint", "npm", uses_npm_script("lint"), path_tool("npm"),
                  (), "lint", gating=False, args_for=npm_args("lint")),
    DetectionRule("tsc", "tsc", uses_tsc, node_tool("tsc"),
                  ("--noEmit", "--pretty", "false"), "tsc", gating=True),
    DetectionRule("cargo_test", "cargo", uses_cargo_tests, path_tool("cargo"),
                  ("test", "--quiet", "--no-fail-fast"), "cargo_test", gating=True,
                  weight=TEST_WEIGHT, timeout_s=TEST_TIMEOUT_S),
    DetectionRule("cargo_clippy", "cargo", uses_cargo, path_tool("cargo", "cargo-clippy"),
                  ("clippy", "--quiet", "--all-targets"), "clippy", gating=False,
                  needs="cargo-clippy"),
    DetectionRule("go_test", "go", uses_go_tests, path_tool("go"),
                  ("test", "./..."), "go_test", gating=True,
                  weight=TEST_WEIGHT, timeout_s=TEST_TIMEOUT_S),
    DetectionRule("go_vet", "go", uses_go, path_tool("go"),
                  ("vet", "./..."), "exit_code", gating=False),
    DetectionRule("make_test", "make", uses_make_test, path_tool("make"),
                  ("test",), "count", gating=True,
                  weight=TEST_WEIGHT, timeout_s=TEST_TIMEOUT_S,
                  unless=TEST_RUNNERS),
    # `make check`: the GNU name for the self-tests, so a test runner like
    # make_test, and skipped where make test already runs the suite
    DetectionRule("make_check", "make", uses_make_target("check"), path_tool("make"),
                  ("check",), "count", gating=True,
                  weight=TEST_WEIGHT, timeout_s=TEST_TIMEOUT_S,
                  unless=(*TEST_RUNNERS, "make_test")),
    # `make lint`: a linter like npm_lint, skipped where the linter it mostly
    # wraps was found itself
    DetectionRule("make_lint", "make", uses_make_target("lint"), path_tool("make"),
                  ("lint",), "lint", gating=False,
                  unless=("ruff", "npm_lint")),
)  # fmt: skip


def checks_found(verifiers: list[CommandVerifier]) -> str:
    """The detected checks in one line, each with what shows the repository
    uses it: a user learns why a check ran (or why it did not)."""
    said = [
        f"{v.name} ({v.found_by}"
        + ("; not installed here" if v.missing else "")
        + (f"; run with {v.runs_with}" if v.runs_with and not v.missing else "")
        + ")"
        for v in verifiers
    ]
    return "checks found in the repository: " + ", ".join(said)


def auto_detect_verifiers(
    repo: Path, rules: tuple[DetectionRule, ...] = RULES
) -> list[CommandVerifier]:
    """The verifiers `repo` really uses, in table order; those this machine
    cannot run are `missing`, and do not stand in for a rule's `unless`."""
    repo = Path(repo)
    if not repo.is_dir():
        raise ValueError(f"repository not found (not a directory): {repo}")
    found: list[CommandVerifier] = []
    for rule in rules:
        verifier = rule.detect(repo, frozenset(v.name for v in found if not v.missing))
        if verifier is not None:
            found.append(verifier)
    return found
