"""A corpus of bad input, each case named, each tried for real.

* Directive files, through the command as a user runs it (a subprocess of
  `python -m tui.cli --db X run bad.toml --headless`): every kind of bad file
  exits 2 with one message on stderr that names the problem (one line, or a
  count of problems and one line each), prints nothing on stdout, and leaves
  a database that already held a directive byte for byte as it was (and
  creates none where there was none).
* Planner output (the anthropic planner on the fake Messages API, driven by
  the same command): not JSON, fields missing, cyclic, empty, a dependency
  on nothing. The directive fails with the planner's reason and the command
  exits 1; nothing but the failure is written.
* Verifier commands: a command that does not exist makes the step red with
  "command not found", never an engine error; one that hangs is killed at
  its timeout together with the children it started.

The agent's tool calls (`..`, absolute paths, symlinks out, huge and binary
files) have their own corpus in tests/test_agent_tools.py and
tests/test_paths.py; megabytes of verifier output in tests/test_procs.py and
tests/test_verifiers.py. `-s` prints how many bad inputs this file tried.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import procs
from engine.models import Directive, DirectiveSpec, Step, StepRun, StepSpec, StepStatus
from engine.verifiers.base import VerifyContext
from engine.verifiers.runners import CommandVerifier
from tests.fake_anthropic import FAKE_KEY, FakeAnthropic
from tests.proc_kit import alive

pytest_plugins = ["tests.conftest_llm"]

ROOT = Path(__file__).resolve().parent.parent
TRIED: Counter[str] = Counter()


@pytest.fixture(autouse=True, scope="module")
def report_figures() -> Iterator[None]:
    yield
    print(f"\nbad input: {sum(TRIED.values())} bad inputs tried ({dict(sorted(TRIED.items()))})")


def command(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command, as a user runs it: a new process, a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DIRECTIVE_"))}
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **(env or {})},
        timeout=60,
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of the database's folder (the .db, any -wal / -shm) with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --------------------------------------------------------------------------
# Directive files
# --------------------------------------------------------------------------

GOOD_HEAD = 'title = "t"\ngoal = "g"\nrepo = "{repo}"\n'
ONE_STEP = '\n[[steps]]\nname = "a"\ncommand = "true"\n'
SCRIPTED_EDIT = (
    'executor = "scripted"\n[[steps]]\nname = "a"\n[[steps.attempts]]\n[[steps.attempts.edits]]\n'
)

# (id, the file's text, what the one line on stderr must say). `{repo}` is a
# real git repository, `{file}` a regular file, `{missing}` a path to nothing.
DIRECTIVE_FILES: list[tuple[str, str | bytes, str]] = [
    ("empty-file", "", "title: required, but missing"),
    ("unterminated-string", 'title = "t\n', "invalid TOML"),
    ("missing-equals", 'title "t"\n', "invalid TOML"),
    ("duplicate-key", GOOD_HEAD + 'title = "again"\n', "invalid TOML"),
    ("unclosed-table", GOOD_HEAD + "[limits\n", "invalid TOML"),
    ("not-utf8", b'title = "caf\xe9"\ngoal = "g"\n', "UTF-8"),
    ("title-is-a-number", 'title = 3\ngoal = "g"\nrepo = "{repo}"\n', "title"),
    ("goal-is-a-table", 'title = "t"\nrepo = "{repo}"\n[goal]\nx = 1\n', "goal"),
    ("limit-is-a-string", GOOD_HEAD + '[limits]\nmax_cost_usd = "five"\n', "max_cost_usd"),
    ("limit-is-a-boolean", GOOD_HEAD + "[limits]\nmax_rework_cycles = true\n", "max_rework_cycles"),
    # TOML has numbers and booleans: text that reads as one is still text
    (
        "limit-is-a-quoted-number",
        GOOD_HEAD + ONE_STEP + '[limits]\nmax_cost_usd = "5"\n',
        "max_cost_usd: expected a number, or false for no limit, got '5'",
    ),
    (
        "switch-is-a-word",
        GOOD_HEAD + ONE_STEP + '[workspace]\nisolate = "off"\n',
        "workspace.isolate: expected true or false, got 'off'",
    ),
    (
        "switch-is-an-integer",
        GOOD_HEAD + ONE_STEP + "[verifiers]\nllm_judge = 0\n",
        "verifiers.llm_judge: expected true or false, got 0",
    ),
    ("steps-is-a-string", GOOD_HEAD + 'steps = "a, b"\n', "steps"),
    ("depends-on-is-a-string", GOOD_HEAD + ONE_STEP + 'depends_on = "b"\n', "depends_on"),
    ("unknown-top-level-key", GOOD_HEAD + 'titel = "typo"\n', "titel"),
    ("unknown-limits-key", GOOD_HEAD + "[limits]\nmax_cost = 5\n", "max_cost"),
    ("unknown-step-key", GOOD_HEAD + ONE_STEP + 'comand = "x"\n', "comand"),
    ("unknown-autonomy", GOOD_HEAD + 'autonomy = "yolo"\n', "autonomy"),
    ("unknown-planner", GOOD_HEAD + 'planner = "oracle"\n', "planner"),
    ("negative-cost-limit", GOOD_HEAD + "[limits]\nmax_cost_usd = -1.0\n", "max_cost_usd"),
    (
        "negative-rework-cycles",
        GOOD_HEAD + "[limits]\nmax_rework_cycles = -1\n",
        "max_rework_cycles",
    ),
    ("negative-wall-time", GOOD_HEAD + "[limits]\nmax_wall_time_minutes = -5\n", "max_wall_time"),
    ("zero-parallel-steps", GOOD_HEAD + "[limits]\nmax_parallel_steps = 0\n", "max_parallel_steps"),
    (
        "thresholds-out-of-order",
        GOOD_HEAD + "[thresholds]\ngreen = 0.4\nyellow = 0.6\n",
        "yellow",
    ),
    ("threshold-above-one", GOOD_HEAD + "[thresholds]\ngreen = 1.5\n", "green"),
    ("missing-title", 'goal = "g"\nrepo = "{repo}"\n', "title"),
    ("missing-goal", 'title = "t"\nrepo = "{repo}"\n', "goal"),
    ("empty-title", 'title = ""\ngoal = "g"\nrepo = "{repo}"\n', "title"),
    (
        "repo-does-not-exist",
        'title = "t"\ngoal = "g"\nrepo = "{missing}"\nexecutor = "agent"\n',
        "does not exist",
    ),
    (
        "repo-is-a-file",
        'title = "t"\ngoal = "g"\nrepo = "{file}"\nexecutor = "agent"\n',
        "not a folder",
    ),
    (
        "explicit-planner-without-steps",
        GOOD_HEAD + 'planner = "explicit"\n',
        "steps",
    ),
    (
        "cyclic-steps",
        GOOD_HEAD
        + '[[steps]]\nname = "a"\ncommand = "true"\ndepends_on = ["b"]\n'
        + '[[steps]]\nname = "b"\ncommand = "true"\ndepends_on = ["a"]\n',
        "cycle",
    ),
    ("self-dependency", GOOD_HEAD + ONE_STEP + 'depends_on = ["a"]\n', "depends on itself"),
    ("dangling-dependency", GOOD_HEAD + ONE_STEP + 'depends_on = ["ghost"]\n', "'ghost'"),
    ("duplicate-step-names", GOOD_HEAD + ONE_STEP + ONE_STEP, "duplicate step name 'a'"),
    ("unknown-step-type", GOOD_HEAD + ONE_STEP + 'type = "dance"\n', "dance"),
    ("shell-step-without-command", GOOD_HEAD + '[[steps]]\nname = "a"\n', "command"),
    # files that would load but whose steps could never work
    ("title-and-goal-alone", GOOD_HEAD, 'planner = "template" (the default) plans steps without'),
    ("planner-writes-no-commands", GOOD_HEAD + 'planner = "anthropic"\n', "without a command"),
    (
        "blank-title",
        'title = "  "\ngoal = "g"\nrepo = "{repo}"\nexecutor = "agent"\n',
        "title: must not be blank",
    ),
    ("empty-requirement", GOOD_HEAD + 'requirements = [""]\n' + ONE_STEP, "requirements[0]"),
    (
        "step-names-an-unknown-verifier",
        GOOD_HEAD + ONE_STEP + 'verifiers = ["nonexistent"]\n',
        "unknown verifier(s) 'nonexistent'",
    ),
    (
        "extra-verifier-with-empty-command",
        GOOD_HEAD + ONE_STEP + '[[verifiers.extra]]\nname = "x"\ncommand = ""\n',
        "verifier 'x' has an empty command",
    ),
    (
        "extra-verifier-twice",
        GOOD_HEAD + ONE_STEP + '[[verifiers.extra]]\nname = "x"\ncommand = "true"\n' * 2,
        "verifier 'x' appears twice",
    ),
    # a NUL can be written in TOML ("\\u0000") but no path, command or argument carries one
    (
        "nul-in-repo",
        'title = "t"\ngoal = "g"\nrepo = "{repo}\\u0000"\n',
        "repo: must not contain a NUL",
    ),
    (
        "nul-in-command",
        GOOD_HEAD + '[[steps]]\nname = "a"\ncommand = "echo a\\u0000b"\n',
        "steps[0].command (step 'a'): must not contain a NUL",
    ),
    (
        "escape-in-title",
        'title = "t\\u001b[2J"\ngoal = "g"\nrepo = "{repo}"\n' + ONE_STEP,
        "U+001B",
    ),
    ("tab-in-step-name", GOOD_HEAD + '[[steps]]\nname = "a\\tb"\ncommand = "true"\n', "U+0009"),
    # JSON (the stored spec) has no infinity: saved as null, no directive could be read back
    (
        "infinite-verifier-weight",
        GOOD_HEAD + ONE_STEP + '[[verifiers.extra]]\nname = "x"\ncommand = "true"\nweight = inf\n',
        "verifiers.extra[0].weight: must be a finite number, got inf",
    ),
    (
        "infinite-step-timeout",
        GOOD_HEAD + ONE_STEP + "timeout_s = inf\n",
        "steps[0].timeout_s (step 'a'): must be a finite number, got inf",
    ),
    (
        "model-with-a-space",
        GOOD_HEAD + ONE_STEP.replace("\n[[", 'model = "claude sonnet"\n[[', 1),
        "not a model name",
    ),
    (
        "attempts-on-a-shell-step",
        GOOD_HEAD + ONE_STEP + '[[steps.attempts]]\nsummary = "x"\n',
        "only the scripted executor uses [[steps.attempts]]",
    ),
    # settings that would be silently ignored: a step "passed" having done nothing
    (
        "command-on-a-scripted-step",
        GOOD_HEAD + 'executor = "scripted"' + ONE_STEP + '[[steps.attempts]]\nsummary = "x"\n',
        "steps[0].command (step 'a'): only the shell executor runs a step's command, and this"
        ' step runs with the directive\'s executor = "scripted", so it would never run',
    ),
    (
        "command-on-a-noop-step",
        GOOD_HEAD + ONE_STEP + 'executor = "noop"\n',
        'this step runs with executor = "noop", so it would never run',
    ),
    (
        "timeout-on-an-agent-step",
        GOOD_HEAD + 'executor = "agent"\n[[steps]]\nname = "a"\ntimeout_s = 5\n',
        "steps[0].timeout_s (step 'a'): only the shell executor uses a step's timeout_s",
    ),
    (
        "worded-plan-for-the-scripted-executor",
        GOOD_HEAD + 'executor = "scripted"\n',
        'planner = "template" (the default) plans steps without [[steps.attempts]]',
    ),
    (
        "scripted-step-without-attempts",
        GOOD_HEAD + '[[steps]]\nname = "a"\nexecutor = "scripted"\n',
        "it would pass having done nothing",
    ),
    (
        "step-judged-only-by-a-judge-switched-off",
        GOOD_HEAD + ONE_STEP + 'verifiers = ["llm_judge"]\n[verifiers]\nllm_judge = false\n',
        "steps[0].verifiers (step 'a'): 'llm_judge' is listed, but llm_judge = false under"
        " [verifiers] switches the judge off, so nothing would check this step",
    ),
    # keys in the wrong table
    (
        "top-level-key-below-a-table",
        GOOD_HEAD + ONE_STEP + '[limits]\nexecutor = "shell"\n',
        "limits.executor: unknown key in [limits]; `executor` is a top-level key: move it above"
        " the first [table] (TOML puts keys after a table header inside that table)",
    ),
    (
        "command-at-the-top-level",
        GOOD_HEAD + 'executor = "agent"\ncommand = "make"\n',
        "command: unknown key at the top level; `command` goes in a [[steps]] table",
    ),
    *(
        (f"scripted-edit-{name}", GOOD_HEAD + SCRIPTED_EDIT + lines, says)
        for name, lines, says in [
            ("content-and-delete", 'path = "f"\ncontent = "x"\ndelete = true\n', "exactly one"),
            ("no-action", 'path = "f"\n', "exactly one of content, replace or delete"),
            ("outside-the-repo", 'path = "../x"\ncontent = "x"\n', "leads outside"),
            ("absolute-path", 'path = "/tmp/x"\ncontent = "x"\n', "absolute paths"),
        ]
    ),
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A git repository, and a database that already holds one directive,
    run to completion by the command itself."""
    root = tmp_path_factory.mktemp("seeded")
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "T")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    good = root / "good.toml"
    good.write_text(
        GOOD_HEAD.format(repo=repo)
        + 'executor = "shell"\n[verifiers]\nauto_detect = false\nllm_judge = false\n'
        + ONE_STEP
    )
    db = root / "db" / "held.db"
    db.parent.mkdir()
    done = command("--db", str(db), "run", str(good), "--headless")
    assert done.returncode == 0, done.stdout + done.stderr
    return repo, db


def write_case(tmp_path: Path, repo: Path, text: str | bytes) -> Path:
    (tmp_path / "plain-file.txt").write_text("not a folder\n")
    path = tmp_path / "bad.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(
            text.format(
                repo=repo, file=tmp_path / "plain-file.txt", missing=tmp_path / "no" / "such"
            )
        )
    return path


@pytest.mark.parametrize(
    ("text", "says"),
    [pytest.param(text, says, id=name) for name, text, says in DIRECTIVE_FILES],
)
def test_a_bad_directive_file_exits_2_with_one_message_and_the_database_untouched(
    seeded: tuple[Path, Path], tmp_path: Path, text: str | bytes, says: str
) -> None:
    repo, held = seeded
    db = tmp_path / "db" / held.name
    shutil.copytree(held.parent, db.parent)
    before = folder_bytes(db.parent)
    bad = write_case(tmp_path, repo, text)

    result = command("--db", str(db), "run", str(bad), "--headless")

    TRIED["directive files"] += 1
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    first, *more = result.stderr.splitlines()
    assert first.startswith(f"directive-tui: {bad}"), first  # names the file
    if more:  # several problems: counted, then one indented line each; no traceback
        assert first == f"directive-tui: {bad}: {len(more)} problems:", result.stderr
        assert all(line.startswith("  ") for line in more), result.stderr
    assert says in result.stderr, result.stderr
    assert folder_bytes(db.parent) == before


def test_a_directive_file_with_several_problems_lists_every_one(
    seeded: tuple[Path, Path], tmp_path: Path
) -> None:
    """Fixed in one go, not one run per problem."""
    repo, _ = seeded
    bad = write_case(
        tmp_path,
        repo,
        'title = ""\ngoal = ""\nrepo = "{repo}"\nautonomy = "yolo"\nexecutor = "bash"\n'
        "[limits]\nmax_cost_usd = -1\nmax_rework_cycles = 1.5\nmax_parallel_steps = 0\n"
        '[[steps]]\nname = "a"\ncommand = "true"\n',
    )

    result = command("--db", str(tmp_path / "new.db"), "run", str(bad), "--headless")

    TRIED["directive files"] += 1
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"directive-tui: {bad}: 7 problems:",
        "  title: must not be empty",
        "  goal: must not be empty",
        "  autonomy: expected one of 'full_auto', 'guardrails' or 'manual', got 'yolo'",
        "  executor: expected one of 'shell', 'scripted', 'agent', 'claude_code' or 'noop',"
        " got 'bash'",
        "  limits.max_cost_usd: must be greater than 0, got -1",
        "  limits.max_rework_cycles: expected an integer, got 1.5",
        "  limits.max_parallel_steps: must be at least 1, got 0",
    ]


def test_a_directive_file_with_several_step_problems_lists_every_one(
    seeded: tuple[Path, Path], tmp_path: Path
) -> None:
    """An unknown dependency, a step with no command, an unknown verifier and
    a name given twice: only the name given twice was reported, counted from
    1 ("steps 2 and 3") where every other message counts from 0."""
    repo, _ = seeded
    bad = write_case(
        tmp_path,
        repo,
        GOOD_HEAD + "[verifiers]\nauto_detect = false\n"
        '[[steps]]\nname = "a"\ncommand = "true"\ndepends_on = ["ghost"]\n'
        '[[steps]]\nname = "b"\n'
        '[[steps]]\nname = "b"\ncommand = "true"\nverifiers = ["lint"]\n',
    )

    result = command("--db", str(tmp_path / "new.db"), "run", str(bad), "--headless")

    TRIED["directive files"] += 1
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"directive-tui: {bad}: 4 problems:",
        "  steps[0].depends_on[0] (step 'a'): unknown step 'ghost'",
        "  steps[1].command (step 'b'): the shell executor needs a command for this step",
        "  steps[2].name (step 'b'): duplicate step name 'b' (also steps[1])",
        "  steps[2].verifiers (step 'b'): step 'b' lists unknown verifier(s) 'lint'; it can"
        " name: llm_judge",
    ]
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize(
    "name", ["unterminated-string", "repo-does-not-exist", "cyclic-steps", "not-a-file"]
)
def test_a_bad_directive_file_creates_no_database(
    seeded: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    repo, _ = seeded
    if name == "not-a-file":
        bad, says = tmp_path / "missing.toml", "missing.toml"
    else:
        text, says = next((t, s) for n, t, s in DIRECTIVE_FILES if n == name)
        bad = write_case(tmp_path, repo, text)
    db = tmp_path / "fresh" / "new.db"
    db.parent.mkdir()

    result = command("--db", str(db), "run", str(bad), "--headless")

    TRIED["directive files, no database yet"] += 1
    assert (result.returncode, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1 and says in result.stderr
    assert list(db.parent.iterdir()) == []


def test_every_directive_file_case_names_a_different_problem() -> None:
    """The corpus is a corpus: no case is an accidental copy of another."""
    names = [name for name, _, _ in DIRECTIVE_FILES]
    texts = [text for _, text, _ in DIRECTIVE_FILES]
    assert len(set(names)) == len(names)
    assert len(set(texts)) == len(texts)


# --------------------------------------------------------------------------
# Planner output
# --------------------------------------------------------------------------


def plan_step(name: str, deps: list[str]) -> dict[str, object]:
    return {
        "name": name,
        "type": "implement",
        "description": f"do {name}",
        "depends_on": deps,
        "requirement_ids": [],
    }


# (id, the planner's every answer, what the failure must say)
PLANNER_OUTPUT: list[tuple[str, str, str]] = [
    ("prose-not-json", "Sure! First I will look at the code, then fix it.", "not a valid"),
    ("truncated-json", '{"rationale": "x", "steps": [{"name": "a"', "not a valid"),
    ("json-array", json.dumps([plan_step("a", [])]), "not a valid"),
    ("steps-missing", json.dumps({"rationale": "x"}), "not a valid"),
    ("step-without-type", json.dumps({"rationale": "x", "steps": [{"name": "a"}]}), "not a valid"),
    ("no-steps", json.dumps({"rationale": "x", "steps": []}), "no steps"),
    (
        "cyclic",
        json.dumps({"rationale": "x", "steps": [plan_step("a", ["b"]), plan_step("b", ["a"])]}),
        "cycle: a -> b -> a",
    ),
    (
        "dangling-dependency",
        json.dumps({"rationale": "x", "steps": [plan_step("a", ["ghost"])]}),
        "unknown step 'ghost'",
    ),
]


@pytest.mark.parametrize(
    ("answer", "says"),
    [pytest.param(answer, says, id=name) for name, answer, says in PLANNER_OUTPUT],
)
def test_bad_planner_output_pauses_the_directive_with_the_reason(
    seeded: tuple[Path, Path], tmp_path: Path, fake_api: FakeAnthropic, answer: str, says: str
) -> None:
    """Still bad after the corrections: the directive pauses (exit 4) with
    the reason, no chain is saved, and resuming plans again."""
    repo, _ = seeded
    for _ in range(10):  # the same bad answer to every correction the planner asks for
        fake_api.reply(answer)
    directive = tmp_path / "plan.toml"
    directive.write_text(
        GOOD_HEAD.format(repo=repo) + 'planner = "anthropic"\nexecutor = "agent"\n'
    )
    db = tmp_path / "plan.db"
    env = {
        "ANTHROPIC_API_KEY": FAKE_KEY,
        "ANTHROPIC_BASE_URL": fake_api.base_url,
        "DIRECTIVE_LLM_MAX_RETRIES": "0",
    }

    result = command("--db", str(db), "run", str(directive), "--headless", "--json", env=env)

    TRIED["planner outputs"] += 1
    assert result.returncode == 4, result.stdout + result.stderr
    assert fake_api.requests and all(r.authorized for r in fake_api.requests)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    paused = [
        e for e in events if e["type"] == "directive_status_changed" and e["new_status"] == "paused"
    ]
    assert len(paused) == 1, events
    assert "planning failed" in paused[0]["reason"] and says in paused[0]["reason"]
    assert paused[0]["reason"].endswith("(resume to plan again)")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM directive_chains").fetchone() == (0,)
        assert conn.execute("SELECT status FROM directives").fetchall() == [("paused",)]


# --------------------------------------------------------------------------
# Verifier commands
# --------------------------------------------------------------------------

MISSING_COMMANDS = {
    "no-such-program": "no-such-tool-0d5e1c",
    "no-such-path": "./bin/not-here --check",
    "shell-line-with-missing-program": "true && no-such-tool-0d5e1c --all",
}


@pytest.mark.parametrize("line", list(MISSING_COMMANDS.values()), ids=list(MISSING_COMMANDS))
def test_a_missing_verifier_command_makes_the_step_red_not_an_engine_error(
    seeded: tuple[Path, Path], tmp_path: Path, line: str
) -> None:
    repo, _ = seeded
    directive = tmp_path / "verify.toml"
    directive.write_text(
        GOOD_HEAD.format(repo=repo)
        + 'executor = "shell"\n[verifiers]\nauto_detect = false\nllm_judge = false\n'
        + f'[[verifiers.extra]]\nname = "check"\ncommand = {json.dumps(line)}\n'
        + "[limits]\nmax_rework_cycles = 0\n"
        + ONE_STEP
    )
    db = tmp_path / "verify.db"

    result = command("--db", str(db), "run", str(directive), "--headless", "--json")

    TRIED["verifier commands"] += 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 3, result.stdout + result.stderr  # escalated to a person
    (evaluation,) = [e for e in events if e["type"] == "evaluation_completed"]
    assert evaluation["level"] == "red", evaluation
    with sqlite3.connect(db) as conn:
        (verifiers_json,) = conn.execute("SELECT results FROM directive_evaluations").fetchone()
        (status,) = conn.execute("SELECT status FROM chain_steps").fetchone()
    (check,) = [v for v in json.loads(verifiers_json) if v["name"] == "check"]
    assert (check["passed"], check["exit_code"]) == (False, 127)
    assert "not found" in check["summary"] or "not found" in check["output_tail"], check
    assert status == StepStatus.BLOCKED
    assert not [e for e in events if "engine error" in json.dumps(e)]


HANGS = {
    # the verifier itself loops; its child sleeps on
    "child-sleeps": "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "open('pids', 'w').write(f'{child.pid}\\n')\n"
    "while True: time.sleep(0.1)\n",
    # the child ignores SIGTERM, and so does the verifier
    "deaf-to-sigterm": "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'])\n"
    "open('pids', 'w').write(f'{child.pid}\\n')\n"
    "while True: time.sleep(0.1)\n",
    # a grandchild in the background of a shell, the verifier waiting on it
    "shell-grandchild": "import subprocess\n"
    "p = subprocess.Popen('sleep 300 & echo $! > pids; wait', shell=True)\n"
    "p.wait()\n",
}


@pytest.mark.parametrize("script", list(HANGS.values()), ids=list(HANGS))
async def test_a_hanging_verifier_is_killed_at_its_timeout_with_its_children(
    tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(procs, "TERM_GRACE_S", 0.25)  # 2 s: the deaf ones wait it out
    verifier = CommandVerifier("hang", "command", [sys.executable, "-c", script], timeout_s=1)
    directive = Directive(spec=DirectiveSpec(title="t", goal="g", repo=tmp_path))
    step = Step(chain_id="c", directive_id=directive.id, name="s", spec=StepSpec(name="s"))
    run = StepRun(step_id=step.id, directive_id=directive.id, attempt=1, executor="shell")
    ctx = VerifyContext(directive=directive, step=step, run=run, workdir=tmp_path)
    started = time.monotonic()

    result = await verifier.verify(ctx)

    TRIED["hanging verifiers"] += 1
    assert time.monotonic() - started < 10
    assert result.timed_out and not result.passed and result.summary == "timed out after 1s"
    child = int((tmp_path / "pids").read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(child):  # do not leave it behind, but say so
        os.kill(child, signal.SIGKILL)
        pytest.fail(f"the verifier's child {child} outlived the timeout")
