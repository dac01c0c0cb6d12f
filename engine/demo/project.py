"""The demo's repository: `tally`, a tiny invoicing library, in a new git repo.

Small on purpose: six tests that run in well under a second, and a
docs checker (`tools/check_docs.py`) the directive adds as its own
verifier. Everything here is written to disk as it stands, then committed,
so the demo's steps start from a clean work tree.
"""

from __future__ import annotations

from importlib.metadata import entry_points, version
from pathlib import Path

from engine.procs import run_process

REPO_NAME = "tally"
GIT_TIMEOUT_S = 30.0
# The demo runs in a new repository: who commits there must not depend on
# the user's git configuration (a missing name, signing, hooks).
GIT_IDENTITY = {
    "user.name": "directive-tui demo",
    "user.email": "demo@directive-tui.invalid",
    "commit.gpgsign": "false",
}
FIRST_COMMIT = "tally 0.1.0: line items, subtotals, money formatting"


class DemoError(RuntimeError):
    """The demo cannot be set up here; the message says what is missing."""


def pytest_addopts() -> str:
    """Options that keep the demo's test runs fast: no plugins from the
    environment directive-tui is installed in (they can take seconds to
    import and the demo's tests need none). pytest 8.4 has a flag for
    this; older versions block each installed plugin by name."""
    major, minor = (int(part) for part in version("pytest").split(".")[:2])
    if (major, minor) >= (8, 4):
        return "--disable-plugin-autoload"
    return " ".join(f"-p no:{ep.name}" for ep in entry_points(group="pytest11"))


def project_files() -> dict[str, str]:
    """Path (relative to the repository) -> content of every first file."""
    return {
        ".gitignore": GITIGNORE,
        "README.md": README,
        "pyproject.toml": PYPROJECT.replace("{addopts}", pytest_addopts()),
        "tally/__init__.py": PACKAGE_INIT,
        "tally/money.py": MONEY,
        "tally/invoice.py": INVOICE,
        "tests/test_money.py": TEST_MONEY,
        "tests/test_invoice.py": TEST_INVOICE,
        "tools/check_docs.py": CHECK_DOCS,
    }


async def _git(repo: Path, *args: str) -> str:
    result = await run_process(["git", *args], cwd=repo, timeout_s=GIT_TIMEOUT_S)
    if result.exit_code != 0:
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        raise DemoError(f"git {' '.join(args)} failed in {repo} ({why}): {result.output.strip()}")
    return result.output


async def create_project(root: Path) -> Path:
    """Write `tally` to `root/tally`, make it a git repository with one
    commit, and return its path. `root` may exist; `root/tally` must not,
    or must be empty."""
    repo = Path(root).expanduser().resolve() / REPO_NAME
    if repo.exists() and (not repo.is_dir() or any(repo.iterdir())):
        raise DemoError(f"cannot create the demo project: {repo} already exists and is not empty")
    for rel, content in project_files().items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    await _git(repo, "init", "-q")
    for key, value in GIT_IDENTITY.items():
        await _git(repo, "config", key, value)
    await _git(repo, "add", "-A")
    await _git(repo, "commit", "-q", "--no-verify", "-m", FIRST_COMMIT)
    return repo


# --------------------------------------------------------------------------
# The files
# --------------------------------------------------------------------------

GITIGNORE = """\
__pycache__/
*.pyc
.pytest_cache/
.ruff_cache/
"""

README = """\
# tally

A tiny invoicing library: line items in, amounts due out. Amounts are whole
cents (ints), so nothing is lost to floating point.

```python
from tally.invoice import LineItem, subtotal
from tally.money import format_money

items = [LineItem("Notebook", 450, quantity=2), LineItem("Pen", 120)]
format_money(subtotal(items))  # '$10.20'
```

## Development

    python -m pytest              # the tests
    python tools/check_docs.py    # every public function documented and typed
"""

PYPROJECT = """\
[project]
name = "tally"
version = "0.1.0"
description = "A tiny invoicing library"
requires-python = ">=3.11"

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
# fast, quiet runs: none of the surrounding environment's pytest plugins
addopts = "{addopts}"

[tool.ruff]
line-length = 100
"""

PACKAGE_INIT = '''\
"""tally: a tiny invoicing library. Amounts are whole cents."""

__version__ = "0.1.0"
'''

MONEY = '''\
"""Money as whole cents, formatted for people."""


def format_money(cents: int, symbol: str = "$") -> str:
    """`cents` as a price: 1234 -> '$12.34', -5 -> '-$0.05'."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{rest:02d}"
'''

INVOICE = '''\
"""Invoice lines and the subtotal they add up to."""

from dataclasses import dataclass


@dataclass(frozen=True)
class LineItem:
    """One line of an invoice: what was sold, its unit price in cents, how many."""

    description: str
    unit_price: int
    quantity: int = 1

    def amount(self) -> int:
        """The line's amount in cents: unit price times quantity."""
        return self.unit_price * self.quantity


def subtotal(items: list[LineItem]) -> int:
    """The sum of the lines' amounts, in cents."""
    return sum(item.amount() for item in items)
'''

TEST_MONEY = """\
from tally.money import format_money


def test_formats_cents_as_dollars():
    assert format_money(1234) == "$12.34"


def test_pads_small_amounts():
    assert format_money(5) == "$0.05"


def test_negative_amounts_and_thousands():
    assert format_money(-123456) == "-$1,234.56"
"""

TEST_INVOICE = """\
from tally.invoice import LineItem, subtotal


def test_line_amount_is_price_times_quantity():
    assert LineItem("Notebook", 450, quantity=2).amount() == 900


def test_subtotal_adds_the_lines():
    items = [LineItem("Notebook", 450, quantity=2), LineItem("Pen", 120)]
    assert subtotal(items) == 1020


def test_empty_invoice_is_zero():
    assert subtotal([]) == 0
"""

CHECK_DOCS = '''\
"""Check that every public function, method and class in `tally/` has a
docstring, and every public function and method full type hints.

Usage: python tools/check_docs.py [PACKAGE_DIR]
Prints one line per problem and a summary; exits 1 when there is a problem.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SELF_NAMES = {"self", "cls"}


def _public(name: str) -> bool:
    return not name.startswith("_")


def _missing_hints(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = fn.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    missing = [a.arg for a in params if a.annotation is None and a.arg not in SELF_NAMES]
    if fn.returns is None:
        missing.append("return")
    return missing


def _check_function(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    problems = []
    if ast.get_docstring(fn) is None:
        problems.append("no docstring")
    missing = _missing_hints(fn)
    if missing:
        problems.append("no type hints for " + ", ".join(missing))
    return problems


def check_file(path: Path) -> tuple[int, list[str]]:
    """(public definitions checked, one line per definition with problems)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    checked, lines = 0, []

    def report(node: ast.AST, label: str, problems: list[str]) -> None:
        if problems:
            lines.append(f"{path.as_posix()}:{node.lineno}: {label}: {'; '.join(problems)}")

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
            checked += 1
            report(node, node.name, _check_function(node))
        elif isinstance(node, ast.ClassDef) and _public(node.name):
            checked += 1
            report(node, node.name, [] if ast.get_docstring(node) else ["no docstring"])
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(
                    item.name
                ):
                    checked += 1
                    report(item, f"{node.name}.{item.name}", _check_function(item))
    return checked, lines


def main(argv: list[str]) -> int:
    package = Path(argv[0] if argv else "tally")
    if not package.is_dir():
        print(f"check_docs: no package directory {package}")
        return 2
    total, problems = 0, []
    files = sorted(package.rglob("*.py"))
    for path in files:
        checked, lines = check_file(path)
        total += checked
        problems += lines
    for line in problems:
        print(line)
    if problems:
        print(f"check_docs: {len(problems)} of {total} public definitions need work")
        return 1
    print(f"check_docs: all {total} public definitions in {len(files)} files documented and typed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''
