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
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

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
    return (
        _exists(repo, "pytest.ini", "conftest.py")
        or _has_section(repo, "pyproject.toml", r"tool\.pytest(\.ini_options)?")
        or _has_section(repo, "setup.cfg", r"tool:pytest")
        or _has_section(repo, "tox.ini", r"pytest")
        or _any_file(repo, "test_*.py", "*_test.py")
        or _python_under_tests(repo)
    )


def _python_under_tests(repo: Path) -> str | None:
    if not (repo / "tests").is_dir():
        return None
    found = next((p for p in _walk_files(repo / "tests") if p.suffix == ".py"), None)
    return _rel(repo, found) if found else None


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


def uses_npm_script(script: str) -> Marker:
    def check(repo: Path) -> str | None:
        command = _package_scripts(repo).get(script)
        if command is None or NPM_PLACEHOLDER_TEST in command:
            return None
        return f"a {script} script in package.json"

    check.__name__ = f"uses_npm_{script}"
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


def uses_make_test(repo: Path) -> str | None:
    return _makefile_target(repo, "test")


# --------------------------------------------------------------------------
# Tools: the executable to run, or None when it is not installed
# --------------------------------------------------------------------------

Tool = Callable[[Path], list[str] | None]


def python_tool(module: str) -> Tool:
    """A Python tool, run with the interpreter that has it: the repository's
    own virtualenv first (it has the project's dependencies), then this
    interpreter, then a console script on PATH."""

    def resolve(repo: Path) -> list[str] | None:
        for venv in (".venv", "venv"):
            python = repo / venv / "bin" / "python"
            if python.exists() and any((repo / venv).glob(f"lib/python*/site-packages/{module}")):
                return [str(python), "-m", module]
        if importlib.util.find_spec(module) is not None:
            return [sys.executable, "-m", module]
        found = shutil.which(module)
        return [found] if found else None

    resolve.__name__ = f"python_tool_{module}"
    return resolve


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
        return CommandVerifier(
            name=self.name,
            kind=self.kind,
            command=[*(executable or [self.needs or self.kind]), *self.args],
            parser=self.parser,
            weight=self.weight,
            gating=self.gating,
            timeout_s=self.timeout_s,
            missing="" if executable else self.not_installed(),
            found_by=found_by,
        )

    def not_installed(self) -> str:
        """Why a check the repository uses did not run, and the two ways out."""
        return (
            f"not run: {self.needs or self.kind} is not installed here (this repository "
            f"uses it). Install it, or switch {self.name} off in the directive file: "
            f'[[verifiers.extra]] name = "{self.name}", enabled = false'
        )


TEST_WEIGHT = 2.0

RULES: tuple[DetectionRule, ...] = (
    DetectionRule("pytest", "pytest", uses_pytest, python_tool("pytest"),
                  ("-q", "-p", "no:cacheprovider"), "pytest", gating=True,
                  weight=TEST_WEIGHT, timeout_s=TEST_TIMEOUT_S),
    DetectionRule("ruff", "ruff", uses_ruff, python_tool("ruff"),
                  ("check", "--no-cache", "--output-format=concise", "."), "ruff", gating=False),
    DetectionRule("mypy", "mypy", uses_mypy, python_tool("mypy"),
                  (".",), "mypy", gating=False),
    DetectionRule("npm_test", "npm", uses_npm_script("test"), path_tool("npm"),
                  ("test", "--silent"), "count", gating=True,
                  weight=TEST_WEIGHT, timeout_s=TEST_TIMEOUT_S),
    DetectionRule("npm_lint", "npm", uses_npm_script("lint"), path_tool("npm"),
                  ("run", "lint", "--silent"), "lint", gating=False),
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
                  unless=("pytest", "npm_test", "cargo_test", "go_test")),
)  # fmt: skip


def checks_found(verifiers: list[CommandVerifier]) -> str:
    """The detected checks in one line, each with what shows the repository
    uses it: a user learns why a check ran (or why it did not)."""
    said = [
        f"{v.name} ({v.found_by}" + ("; not installed here" if v.missing else "") + ")"
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
