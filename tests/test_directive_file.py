"""Directive files: valid ones load whole, each kind of mistake gets one
message naming the file and the line, key or steps."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from engine import directive_file
from engine.directive_file import (
    MAX_FILE_BYTES,
    DirectiveFileError,
    api_key_needs,
    check_api_key,
    load_directive_file,
    parse_directive_text,
)
from engine.models import (
    Autonomy,
    DirectiveSpec,
    ExecutorKind,
    Limits,
    PlannerKind,
    Requirement,
    Thresholds,
    VerifierConfig,
    VerifierSpec,
    WorkspaceConfig,
)
from engine.verifiers.parsers import PARSERS
from engine.verifiers.registry import DETECTABLE

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "project").mkdir()
    return tmp_path / "project"


HEAD = 'title = "T"\ngoal = "G"\nrepo = "project"\n'
# The least that can run: the template planner's steps are words, so an
# executor that works from words.
MINIMAL = HEAD + 'executor = "agent"\n'


def parse(text: str, base: Path) -> DirectiveSpec:
    return parse_directive_text(text, base_dir=base, source="d.toml")


def error(text: str, base: Path) -> str:
    with pytest.raises(DirectiveFileError) as caught:
        parse(text, base)
    return str(caught.value)


# -- valid files -----------------------------------------------------------


FULL = """
title = "Add JSON"
goal = "Print JSON"
repo = "project"
autonomy = "full_auto"
executor = "scripted"
model = "claude-sonnet-5-5"
requirements = ["valid JSON", { id = "TXT", text = "text output stays" }]
acceptance_criteria = ["tests pass"]

[thresholds]
green = 0.9
yellow = 0.6

[limits]
max_cost_usd = 1.5
max_wall_time_minutes = false
max_rework_cycles = 0
max_chain_regenerations = 1
max_parallel_steps = 4
max_failed_steps = 2

[verifiers]
auto_detect = false
llm_judge = false
llm_judge_weight = 0.5

[[verifiers.extra]]
name = "lint"
command = ["ruff", "check", "."]
parser = "ruff"
weight = 2.0
gating = true
timeout_s = 30

[[steps]]
name = "build"
type = "implement"
requirement_ids = ["R1"]

[[steps.attempts]]
summary = "first"
fail = "boom"

[[steps.attempts]]
summary = "second"

[[steps.attempts.edits]]
path = "a.py"
replace = "x"
with = "y"

[[steps.attempts.edits]]
path = "b.py"
delete = true

[[steps]]
name = "check"
type = "shell"
executor = "shell"
command = "true"
depends_on = ["build"]
requirement_ids = ["TXT"]
timeout_s = 5
verifiers = ["lint"]
"""


def test_full_file_loads_every_key(tmp_path, repo):
    spec = parse(FULL, tmp_path)
    assert spec.repo == repo.resolve()
    assert spec.autonomy is Autonomy.FULL_AUTO
    assert spec.planner is PlannerKind.EXPLICIT  # implied by [[steps]]
    assert spec.executor is ExecutorKind.SCRIPTED
    assert spec.requirements == [
        Requirement(id="R1", text="valid JSON"),
        Requirement(id="TXT", text="text output stays"),
    ]
    assert (spec.thresholds.green, spec.thresholds.yellow) == (0.9, 0.6)
    assert spec.limits.max_wall_time_minutes is None  # false = no limit
    assert spec.limits.max_parallel_steps == 4
    assert spec.verifiers.extra[0].command == ["ruff", "check", "."]
    build, check = spec.steps
    assert build.attempts[0].fail == "boom"
    assert build.attempts[1].edits[0].with_ == "y"
    assert build.attempts[1].edits[1].delete is True
    assert check.depends_on == ["build"] and check.verifiers == ["lint"]


def test_round_trip_through_the_model(tmp_path, repo):
    spec = parse(FULL, tmp_path)
    again = DirectiveSpec.model_validate(spec.model_dump(by_alias=True))
    assert again == spec


def test_minimal_file_gets_defaults(tmp_path, repo):
    spec = parse(MINIMAL, tmp_path)
    assert spec.planner is PlannerKind.TEMPLATE
    assert spec.autonomy is Autonomy.GUARDRAILS
    assert spec.steps == [] and spec.requirements == []


def test_string_requirements_get_free_ids(tmp_path, repo):
    spec = parse(MINIMAL + 'requirements = ["a", { id = "R1", text = "b" }, "c"]\n', tmp_path)
    assert [(r.id, r.text) for r in spec.requirements] == [("R2", "a"), ("R1", "b"), ("R3", "c")]


def test_repo_path_expands_home(tmp_path, repo, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = parse(MINIMAL.replace('"project"', '"~/project"'), Path("/"))
    assert spec.repo == repo.resolve()


def test_absolute_repo_path(tmp_path, repo):
    spec = parse(MINIMAL.replace('"project"', f'"{repo}"'), Path("/"))
    assert spec.repo == repo.resolve()


def test_load_file_resolves_repo_from_its_folder(tmp_path, repo, monkeypatch):
    path = tmp_path / "d.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    monkeypatch.chdir("/")
    assert load_directive_file(path).repo == repo.resolve()


def test_byte_order_mark_is_accepted(tmp_path, repo):
    path = tmp_path / "d.toml"
    path.write_bytes("\ufeff".encode() + MINIMAL.encode())
    assert load_directive_file(path).title == "T"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_examples_load(path):
    spec = load_directive_file(path)
    assert spec.repo == (EXAMPLES / "sample-project").resolve()


def test_shell_pipeline_example_is_explicit_and_runs_unattended():
    spec = load_directive_file(EXAMPLES / "shell-pipeline.toml")
    assert spec.planner is PlannerKind.EXPLICIT
    assert spec.autonomy is Autonomy.FULL_AUTO
    assert all(step.command for step in spec.steps)


def test_the_smallest_files_the_format_shows_load(tmp_path):
    """examples/README.md's minimal files are ones that run, not the bare three keys."""
    text = (EXAMPLES / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    specs = [parse(block, tmp_path) for block in blocks]
    assert [(s.planner, s.executor) for s in specs] == [
        (PlannerKind.TEMPLATE, ExecutorKind.AGENT),
        (PlannerKind.EXPLICIT, ExecutorKind.SHELL),
    ]


def test_the_format_lists_every_detectable_verifier():
    text = " ".join((EXAMPLES / "README.md").read_text().split())
    assert all(f"`{name}`" in text for name in DETECTABLE)


def _written_lines(text: str) -> Iterator[tuple[str, str, str]]:
    """(table, key, comment) for each `key = value  # comment` line of a TOML
    file, the comment with the indented comment lines under it."""
    lines = text.splitlines()
    table = ""
    for i, line in enumerate(lines):
        if header := re.fullmatch(r"\[\[?([\w.]+)\]\]?.*", line):
            table = header[1]
        elif written := re.fullmatch(r"(\w+) = [^#]*?(?:#(.*))?", line):
            comment = [written[2] or ""]
            for more in lines[i + 1 :]:
                if not (more[:1].isspace() and more.strip().startswith("#")):
                    break
                comment.append(more.split("#", 1)[1])
            yield table, written[1], " ".join(comment)


GUARDRAILS_MODELS: dict[str, type[BaseModel]] = {
    "": DirectiveSpec,
    "thresholds": Thresholds,
    "limits": Limits,
    "verifiers": VerifierConfig,
    "verifiers.extra": VerifierSpec,
    "workspace": WorkspaceConfig,
}


def test_guardrails_example_shows_defaults_unless_its_comment_says_otherwise():
    """It says the values it shows are the defaults unless the comment says
    otherwise, but showed weight = 0.5, gating = true and timeout_s = 60 for
    an extra verifier, whose defaults are 1.0, false and 300."""
    text = (EXAMPLES / "guardrails.toml").read_text()
    data = tomllib.loads(text)
    checked = 0
    for table, key, comment in _written_lines(text):
        model = GUARDRAILS_MODELS[table]
        info = model.model_fields.get(key)
        if info is None or info.is_required():
            continue
        at: Any = data
        for part in filter(None, table.split(".")):
            at = at[part]
        value = (at[0] if isinstance(at, list) else at)[key]
        # a verifier's gating is None for "a new one does not gate"
        default = (
            False
            if (model, key) == (VerifierSpec, "gating")
            else info.get_default(call_default_factory=True)
        )
        if default is None or isinstance(value, (list, dict)):
            continue
        checked += 1
        if value != default:
            assert "default" in comment, f"{table}.{key} = {value!r}: {comment!r}"
    assert checked >= 20


def test_the_parser_lists_name_every_parser():
    guardrails = " ".join((EXAMPLES / "guardrails.toml").read_text().split())
    docstring = " ".join((directive_file.__doc__ or "").split())
    for text in (guardrails, docstring):
        listed = re.search(r"parser = \S+ #((?: #? ?\w+ \|)+ #? ?\w+)", text)
        assert listed, text
        assert set(re.findall(r"\w+", listed[1])) == set(PARSERS)


def test_loading_writes_nothing(tmp_path, repo):
    path = tmp_path / "d.toml"
    path.write_text(FULL, encoding="utf-8")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    load_directive_file(path)
    with pytest.raises(DirectiveFileError):
        parse_directive_text("title = ", base_dir=tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


# -- syntax and reading ----------------------------------------------------


def test_syntax_error_names_line_and_column(tmp_path, repo):
    message = error('title = "T"\n\ngoal = \n', tmp_path)
    assert message == "d.toml:3:8: invalid TOML: invalid value"


def test_syntax_error_at_end_of_document(tmp_path, repo):
    assert error("x = [1,\n  2,", tmp_path).startswith("d.toml:2:5: invalid TOML: ")


def test_duplicate_key_is_a_syntax_error(tmp_path, repo):
    assert error(HEAD + 'title = "again"\n', tmp_path).startswith("d.toml:4:")


def test_missing_file(tmp_path):
    with pytest.raises(DirectiveFileError, match=r"nope\.toml: no such file"):
        load_directive_file(tmp_path / "nope.toml")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DirectiveFileError, match="is a folder, not a directive file"):
        load_directive_file(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text(HEAD)
    path.chmod(0)
    with pytest.raises(DirectiveFileError, match="permission denied"):
        load_directive_file(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "d.toml"
    path.write_bytes(b'title = "T"\ngoal = "caf\xe9"\n')
    with pytest.raises(DirectiveFileError) as caught:
        load_directive_file(path)
    assert str(caught.value) == f"{path}:2: not UTF-8 text (byte 0xe9 at offset 23)"


def test_utf16_is_named(tmp_path):
    path = tmp_path / "d.toml"
    path.write_bytes(HEAD.encode("utf-16"))
    with pytest.raises(DirectiveFileError) as caught:
        load_directive_file(path)
    assert str(caught.value) == (
        f"{path}:1: not UTF-8 text (byte 0xff at offset 0) (it is UTF-16: save it as UTF-8)"
    )


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["named pipe", "device"])
def test_a_pipe_or_device_is_refused_without_reading_it(tmp_path, kind):
    """A named pipe blocked the read for ever (`run` hung, and so would the
    app's new-directive screen), and /dev/zero filled the memory."""
    path = tmp_path / "d.toml"
    if kind == "named pipe":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    with pytest.raises(DirectiveFileError) as caught:
        load_directive_file(path)
    assert str(caught.value) == (
        f"{path}: is not a regular file (a named pipe or a device): give a .toml file"
    )


def test_a_huge_file_is_refused_unread(tmp_path):
    path = tmp_path / "d.toml"
    with path.open("wb") as handle:
        handle.write(HEAD.encode())
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(DirectiveFileError) as caught:
        load_directive_file(path)
    assert str(caught.value) == f"{path}: is over 10 MB: a directive file is a few KB"


# -- keys and types ----------------------------------------------------------


def test_unknown_key_is_named_with_a_suggestion(tmp_path, repo):
    message = error(HEAD + "[limits]\nmax_cost = 3\n", tmp_path)
    assert message == "d.toml: limits.max_cost: unknown key (did you mean 'max_cost_usd'?)"


def test_unknown_top_level_key(tmp_path, repo):
    assert error(HEAD + 'colour = "red"\n', tmp_path) == "d.toml: colour: unknown key"


TOP_LEVEL_BELOW_A_TABLE = (
    "`{key}` is a top-level key: move it above the first [table] (TOML puts keys after a"
    " table header inside that table)"
)


@pytest.mark.parametrize(
    ("lines", "field", "header", "key"),
    [
        ('[limits]\nexecutor = "shell"', "limits.executor", "[limits]", "executor"),
        ('[verifiers]\nmodel = "m"', "verifiers.model", "[verifiers]", "model"),
        (
            '[[steps]]\nname = "a"\ncommand = "true"\ntitle = "T2"',
            "steps[0].title (step 'a')",
            "[[steps]]",
            "title",
        ),
        (
            '[[verifiers.extra]]\nname = "x"\ncommand = "true"\nautonomy = "manual"',
            "verifiers.extra[0].autonomy",
            "[[verifiers.extra]]",
            "autonomy",
        ),
    ],
)
def test_a_top_level_key_below_a_table_says_to_move_it(tmp_path, repo, lines, field, header, key):
    """TOML puts it in the table above it: "limits.executor: unknown key"
    alone left the person looking for a typo."""
    message = error(HEAD + lines + "\n", tmp_path)
    hint = TOP_LEVEL_BELOW_A_TABLE.format(key=key)
    assert message == f"d.toml: {field}: unknown key in {header}; {hint}"


@pytest.mark.parametrize(
    ("line", "home"),
    [
        ('command = "make"', "a [[steps]] table (or [[verifiers.extra]])"),
        ('depends_on = ["a"]', "a [[steps]] table"),
        ("max_cost_usd = 5", "the [limits] table"),
        ("isolate = false", "the [workspace] table"),
    ],
)
def test_a_tables_key_at_the_top_level_says_which_table(tmp_path, repo, line, home):
    key = line.split()[0]
    message = error(MINIMAL + line + "\n", tmp_path)
    assert message == f"d.toml: {key}: unknown key at the top level; `{key}` goes in {home}"


def test_wrong_type_names_field_and_value(tmp_path, repo):
    message = error(HEAD + '[limits]\nmax_parallel_steps = "two"\n', tmp_path)
    assert message == "d.toml: limits.max_parallel_steps: expected an integer, got 'two'"


def test_boolean_is_not_a_number(tmp_path, repo):
    message = error(HEAD + "[limits]\nmax_rework_cycles = true\n", tmp_path)
    assert message == "d.toml: limits.max_rework_cycles: expected an integer, got true"
    message = error(HEAD + "[limits]\nmax_cost_usd = true\n", tmp_path)
    assert message.endswith("max_cost_usd: expected a number, or false for no limit, got true")


# TOML has booleans and numbers: a string, or 0/1, where one is wanted is a
# mistake to name, not a value to convert ("off" would have read as false).
ONE_STEP = '[[steps]]\nname = "a"\ncommand = "true"\n'


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('[workspace]\nisolate = "off"', "workspace.isolate: expected true or false, got 'off'"),
        ("[workspace]\ncarry_rework = 1", "workspace.carry_rework: expected true or false, got 1"),
        ("[verifiers]\nllm_judge = 0", "verifiers.llm_judge: expected true or false, got 0"),
        (
            '[limits]\nmax_cost_usd = "5"',
            "limits.max_cost_usd: expected a number, or false for no limit, got '5'",
        ),
        (
            '[limits]\nmax_rework_cycles = "7"',
            "limits.max_rework_cycles: expected an integer, got '7'",
        ),
        (
            "[limits]\nmax_rework_cycles = 3.0",
            "limits.max_rework_cycles: expected an integer, got 3.0",
        ),
        ('[thresholds]\ngreen = "0.9"', "thresholds.green: expected a number, got '0.9'"),
        (
            '[[verifiers.extra]]\nname = "x"\ngating = "yes"',
            "verifiers.extra[0].gating: expected true or false, got 'yes'",
        ),
        (
            '[[verifiers.extra]]\nname = "x"\nweight = "2"',
            "verifiers.extra[0].weight: expected a number, got '2'",
        ),
        (
            '[[verifiers.extra]]\nname = "x"\nenabled = "n"',
            "verifiers.extra[0].enabled: expected true or false, got 'n'",
        ),
        ('timeout_s = "60"', "steps[0].timeout_s (step 'a'): expected a number, got '60'"),
    ],
)
def test_strings_and_integers_are_not_booleans_or_numbers(tmp_path, repo, lines, message):
    assert error(HEAD + ONE_STEP + lines + "\n", tmp_path) == f"d.toml: {message}"


def test_an_integer_is_a_number_and_choices_and_paths_are_strings(tmp_path, repo):
    text = MINIMAL + (
        'autonomy = "manual"\n[limits]\nmax_cost_usd = 5\nmax_wall_time_minutes = 30\n'
        "[thresholds]\ngreen = 1\nyellow = 0\n"
        '[[verifiers.extra]]\nname = "x"\ncommand = "true"\nparser = "pytest"\nweight = 2\n'
    )
    spec = parse(text, tmp_path)
    assert spec.autonomy is Autonomy.MANUAL and spec.repo == repo.resolve()
    assert (spec.limits.max_cost_usd, spec.limits.max_wall_time_minutes) == (5.0, 30.0)
    assert (spec.thresholds.green, spec.verifiers.extra[0].weight) == (1.0, 2.0)
    assert spec.verifiers.extra[0].parser == "pytest"


def test_enum_value_lists_the_choices(tmp_path, repo):
    message = error(HEAD + 'autonomy = "yolo"\n', tmp_path)
    assert message == (
        "d.toml: autonomy: expected one of 'full_auto', 'guardrails' or 'manual', got 'yolo'"
    )


def test_union_type_error_is_one_sentence(tmp_path, repo):
    message = error(HEAD + '[[verifiers.extra]]\nname = "x"\ncommand = 5\n', tmp_path)
    assert message == "d.toml: verifiers.extra[0].command: expected a string or a list, got 5"


def test_list_index_and_step_name_in_the_path(tmp_path, repo):
    text = HEAD + '[[steps]]\nname = "a"\ncommand = "x"\n[[steps]]\nname = "b"\ndepends_on = "a"\n'
    message = error(text, tmp_path)
    assert message == "d.toml: steps[1].depends_on (step 'b'): expected a list, got 'a'"


def test_nested_alias_key(tmp_path, repo):
    text = (
        HEAD + 'executor = "scripted"\n[[steps]]\nname = "a"\n[[steps.attempts]]\n'
        '[[steps.attempts.edits]]\npath = "f"\nwith = 3\n'
    )
    message = error(text, tmp_path)
    assert message == (
        "d.toml: steps[0].attempts[0].edits[0].with (step 'a'): expected a string, got 3"
    )


def test_requirement_of_wrong_type(tmp_path, repo):
    message = error(HEAD + "requirements = [5]\n", tmp_path)
    assert message == "d.toml: requirements[0]: expected a string or a table, got 5"


def test_several_problems_are_all_listed_in_file_order(tmp_path, repo):
    text = (
        'title = ""\ngoal = "G"\nrepo = "project"\nautonmy = "manual"\nexecutor = "bash"\n'
        '[limits]\nmax_cost_usd = -1\nmax_parallel_steps = "two"\nmax_cost = 1\n'
        '[[steps]]\nname = "a"\ncommand = "true"\ntimeout_s = "60"\n'
    )
    assert error(text, tmp_path) == (
        "d.toml: 7 problems:\n"
        "  title: must not be empty\n"
        "  autonmy: unknown key (did you mean 'autonomy'?)\n"
        "  executor: expected one of 'shell', 'scripted', 'agent', 'claude_code' or 'noop',"
        " got 'bash'\n"
        "  limits.max_cost_usd: must be greater than 0, got -1\n"
        "  limits.max_parallel_steps: expected an integer, got 'two'\n"
        "  limits.max_cost: unknown key (did you mean 'max_cost_usd'?)\n"
        "  steps[0].timeout_s (step 'a'): expected a number, got '60'"
    )


def test_missing_keys_are_listed_after_the_written_ones(tmp_path, repo):
    message = error('repo = "project"\ncolour = "red"\n', tmp_path)
    assert message == (
        "d.toml: 3 problems:\n"
        "  colour: unknown key\n"
        "  title: required, but missing\n"
        "  goal: required, but missing"
    )


def test_a_nul_character_is_listed_with_the_other_problems(tmp_path, repo):
    message = error(
        HEAD + 'acceptance_criteria = ["a\\u0000b"]\n[limits]\nmax_cost_usd = "5"\n', tmp_path
    )
    assert message.splitlines() == [
        "d.toml: 2 problems:",
        "  acceptance_criteria[0]: must not contain a NUL character (\\u0000)",
        "  limits.max_cost_usd: expected a number, or false for no limit, got '5'",
    ]


def test_a_long_list_of_problems_is_cut_and_counted(tmp_path, repo):
    text = HEAD + "".join(f"typo{i:02} = 1\n" for i in range(25))
    lines = error(text, tmp_path).splitlines()
    assert lines[0] == "d.toml: 25 problems:"
    assert lines[1:3] == ["  typo00: unknown key", "  typo01: unknown key"]
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  ... and 5 more"


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("max_rework_cycles = -1", "limits.max_rework_cycles: must be at least 0, got -1"),
        ("max_cost_usd = -5", "limits.max_cost_usd: must be greater than 0, got -5"),
        ("max_parallel_steps = 0", "limits.max_parallel_steps: must be at least 1, got 0"),
    ],
)
def test_out_of_range_limits(tmp_path, repo, limit, message):
    assert error(HEAD + f"[limits]\n{limit}\n", tmp_path) == f"d.toml: {message}"


SHELL_STEP = '[[steps]]\nname = "a"\ncommand = "true"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SHELL_STEP + "timeout_s = inf\n",
            "steps[0].timeout_s (step 'a'): must be a finite number, got inf",
        ),
        (
            SHELL_STEP + "timeout_s = nan\n",
            "steps[0].timeout_s (step 'a'): must be a finite number, got nan",
        ),
        (
            "[verifiers]\nllm_judge_weight = inf\n" + SHELL_STEP,
            "verifiers.llm_judge_weight: must be a finite number, got inf",
        ),
        (
            SHELL_STEP + '[[verifiers.extra]]\nname = "x"\ncommand = "true"\nweight = inf\n',
            "verifiers.extra[0].weight: must be a finite number, got inf",
        ),
        (
            SHELL_STEP + '[[verifiers.extra]]\nname = "x"\ncommand = "true"\ntimeout_s = -inf\n',
            "verifiers.extra[0].timeout_s: must be a finite number, got -inf",
        ),
        (
            "[limits]\nmax_cost_usd = nan\n" + SHELL_STEP,
            "limits.max_cost_usd: must be a finite number, got nan",
        ),
        (
            "[limits]\nmax_wall_time_minutes = -inf\n" + SHELL_STEP,
            "limits.max_wall_time_minutes: must be a finite number, got -inf",
        ),
    ],
)
def test_infinity_and_nan_are_refused_where_they_could_not_be_stored(tmp_path, repo, text, message):
    """JSON, which stores the spec, has neither: `weight = inf` was saved as
    null, and the database's directives could no longer be read at all."""
    assert error(HEAD + text, tmp_path) == f"d.toml: {message}"


def test_infinite_limits_mean_no_limit_and_survive_storage(tmp_path, repo):
    text = HEAD + "[limits]\nmax_cost_usd = inf\nmax_wall_time_minutes = inf\n" + SHELL_STEP
    spec = parse(text, tmp_path)
    assert (spec.limits.max_cost_usd, spec.limits.max_wall_time_minutes) == (None, None)
    assert DirectiveSpec.model_validate_json(spec.model_dump_json()) == spec


def test_thresholds_out_of_order(tmp_path, repo):
    message = error(HEAD + "[thresholds]\ngreen = 0.4\nyellow = 0.6\n", tmp_path)
    assert message == "d.toml: thresholds: yellow threshold (0.6) must not be above green (0.4)"


def test_threshold_above_one(tmp_path, repo):
    message = error(HEAD + "[thresholds]\ngreen = 1.5\n", tmp_path)
    assert message == "d.toml: thresholds.green: must be at most 1, got 1.5"


@pytest.mark.parametrize("path", ["../shared", "/tmp/out", "."])
def test_artifacts_outside_the_repository_are_refused(tmp_path, repo, path):
    message = error(HEAD + f'[workspace]\nartifacts = ["build", "{path}"]\n', tmp_path)
    assert message.startswith(f"d.toml: workspace.artifacts: '{path}' is not a path inside")


def test_artifacts_are_kept_as_plain_relative_paths(tmp_path, repo):
    path = tmp_path / "d.toml"
    path.write_text(MINIMAL + '[workspace]\nartifacts = ["build/", "./dist/app.whl"]\n')
    assert load_directive_file(path).workspace.artifacts == ["build", "dist/app.whl"]


@pytest.mark.parametrize("key", ["title", "goal", "repo"])
def test_missing_required_key(tmp_path, repo, key):
    text = "".join(line + "\n" for line in HEAD.splitlines() if not line.startswith(key))
    assert error(text, tmp_path) == f"d.toml: {key}: required, but missing"


def test_empty_title(tmp_path, repo):
    assert error(HEAD.replace('"T"', '""'), tmp_path) == "d.toml: title: must not be empty"


@pytest.mark.parametrize("model", ['""', '"   "'])
def test_blank_model(tmp_path, repo, model):
    assert error(MINIMAL + f"model = {model}\n", tmp_path) == (
        "d.toml: model: must not be blank (leave the key out for the default, claude-sonnet-5-5)"
    )


@pytest.mark.parametrize(
    ("model", "has"),
    [
        ('"claude sonnet"', "a space"),
        ('"claude\\nsonnet"', "'\\n'"),
        ('"claude\\u001b[2J"', "'\\x1b'"),
    ],
)
def test_a_model_name_with_a_space_or_control_character_is_refused(tmp_path, repo, model, has):
    """Caught when the file is read, not as a 404 once planning has begun."""
    message = error(MINIMAL + f"model = {model}\n", tmp_path)
    assert message.startswith("d.toml: model: '")
    assert message.endswith(
        f"is not a model name: it has {has} (model names are written like claude-sonnet-5-5)"
    )


@pytest.mark.parametrize("model", ['"-"', '"' + "c" * 5000 + '"'])
def test_a_model_name_no_model_could_have_is_refused(tmp_path, repo, model):
    """'-' and 5,000 characters were taken, and the whole name went into
    every log line and request."""
    message = error(MINIMAL + f"model = {model}\n", tmp_path)
    assert message.startswith("d.toml: model: '")
    assert message.endswith(
        "is not a model name: it is longer than 200 characters or does not start with a"
        " letter or digit (model names are written like claude-sonnet-5-5)"
    )
    assert len(message) < 300


def test_model_is_trimmed(tmp_path, repo):
    assert parse(MINIMAL + 'model = " claude-haiku-5-5 "\n', tmp_path).model == "claude-haiku-5-5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL.replace('"T"', '"   "'), "title: must not be blank"),
        (MINIMAL.replace('"G"', '"\\t"'), "goal: must not be blank"),
        (MINIMAL + 'requirements = ["ok", ""]\n', "requirements[1]: must not be empty"),
        (MINIMAL + 'requirements = [{ id = " ", text = "x" }]\n', "requirements[0].id: must not be blank"),
        (MINIMAL + 'requirements = [{ id = "A", text = "" }]\n', "requirements[0].text: must not be empty"),
        (MINIMAL + 'acceptance_criteria = [" "]\n', "acceptance_criteria[0]: must not be blank"),
        (HEAD + '[[steps]]\nname = " "\ncommand = "true"\n', "steps[0].name (step ' '): must not be blank"),
    ],
    ids=["title", "goal", "requirement", "requirement-id", "requirement-text", "criterion", "step-name"],
)  # fmt: skip
def test_blank_texts_are_refused(tmp_path, repo, text, message):
    assert error(text, tmp_path) == f"d.toml: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL.replace('"T"', '"two\\nlines"'), "title: must be one line"),
        (HEAD + '[[steps]]\nname = "a\\rb"\ncommand = "true"\n', "steps[0].name (step 'a\\rb'): must be one line"),
    ],
    ids=["title", "step-name"],
)  # fmt: skip
def test_names_with_line_breaks_are_refused(tmp_path, repo, text, message):
    assert error(text, tmp_path) == f"d.toml: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL.replace('"T"', '"\\u001b[31mred"'), "title: must not contain control characters (it has U+001B)"),
        (HEAD + '[[steps]]\nname = "a\\tb"\ncommand = "true"\n', "steps[0].name (step 'a\\tb'): must not contain control characters (it has U+0009)"),
    ],
    ids=["escape-in-title", "tab-in-step-name"],
)  # fmt: skip
def test_names_with_control_characters_are_refused(tmp_path, repo, text, message):
    """Printed raw on every log line, an escape sequence would recolour or
    clear the terminal of whoever reads the log."""
    assert error(text, tmp_path) == f"d.toml: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('title = "T"\ngoal = "G"\nrepo = ".\\u0000"\n', "repo: must not contain a NUL character (\\u0000)"),
        (HEAD + '[[steps]]\nname = "a"\ncommand = "echo \\u0000"\n', "steps[0].command (step 'a'): must not contain a NUL character (\\u0000)"),
        (MINIMAL + '[[verifiers.extra]]\nname = "v"\ncommand = ["echo", "\\u0000"]\n', "verifiers.extra[0].command[1]: must not contain a NUL character (\\u0000)"),
    ],
    ids=["repo", "step-command", "verifier-argument"],
)  # fmt: skip
def test_a_nul_character_is_refused_where_it_is_written(tmp_path, repo, text, message):
    """The OS takes no NUL in a path or an argument: the repo's folder
    could not be looked up (it raised), a command could only fail."""
    assert error(text, tmp_path) == f"d.toml: {message}"


def test_attempts_on_a_step_that_is_not_scripted_are_refused(tmp_path, repo):
    text = HEAD + '[[steps]]\nname = "a"\ncommand = "true"\n[[steps.attempts]]\nsummary = "x"\n'
    assert error(text, tmp_path) == (
        "d.toml: steps[0].attempts (step 'a'): only the scripted executor uses"
        ' [[steps.attempts]], and this step runs with the directive\'s executor = "shell"'
        ' (remove the attempts, or set executor = "scripted")'
    )


def test_duplicate_requirement_ids(tmp_path, repo):
    text = MINIMAL + 'requirements = [{ id = "A", text = "x" }, { id = "A", text = "y" }]\n'
    message = error(text, tmp_path)
    assert (
        message == "d.toml: requirements[1].id: duplicate requirement id 'A' (also requirements[0])"
    )


# -- repo ----------------------------------------------------------------------


def test_repo_that_does_not_exist(tmp_path):
    message = error('title = "T"\ngoal = "G"\nrepo = "x/y"\nexecutor = "agent"\n', tmp_path)
    assert message == f"d.toml: repo: {tmp_path.resolve() / 'x' / 'y'} does not exist"


def test_repo_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    message = error('title = "T"\ngoal = "G"\nrepo = "f"\nexecutor = "agent"\n', tmp_path)
    assert message == f"d.toml: repo: {tmp_path.resolve() / 'f'} is a file, not a folder"


def test_empty_repo(tmp_path):
    assert (
        error('title = "T"\ngoal = "G"\nrepo = ""\nexecutor = "agent"\n', tmp_path)
        == "d.toml: repo: must not be empty"
    )


# -- planner and steps -----------------------------------------------------


def step(name: str, *extra: str) -> str:
    return "[[steps]]\n" + f'name = "{name}"\ncommand = "true"\n' + "".join(e + "\n" for e in extra)


def test_explicit_planner_without_steps(tmp_path, repo):
    message = error(HEAD + 'planner = "explicit"\n', tmp_path)
    assert message == 'd.toml: planner: "explicit" needs at least one [[steps]] table'


def test_steps_with_another_planner_are_refused(tmp_path, repo):
    message = error(HEAD + 'planner = "template"\n' + step("a"), tmp_path)
    assert message.startswith('d.toml: steps: [[steps]] are only used by planner = "explicit"')
    assert '"template"' in message


def test_cyclic_steps(tmp_path, repo):
    text = HEAD + step("a", 'depends_on = ["c"]') + step("b", 'depends_on = ["a"]')
    text += step("c", 'depends_on = ["b"]')
    assert error(text, tmp_path) == "d.toml: steps: cycle: a -> b -> c -> a"


def test_dangling_dependency(tmp_path, repo):
    text = HEAD + step("a") + step("b", 'depends_on = ["a", "zz"]')
    assert error(text, tmp_path) == "d.toml: steps[1].depends_on[1] (step 'b'): unknown step 'zz'"


def test_duplicate_steps(tmp_path, repo):
    """Counted from 0, as every other `steps[i]` is (it said "steps 1 and 3")."""
    text = HEAD + step("a") + step("b") + step("a")
    assert error(text, tmp_path) == (
        "d.toml: steps[2].name (step 'a'): duplicate step name 'a' (also steps[0])"
    )


def test_unknown_step_type(tmp_path, repo):
    message = error(HEAD + step("a", 'type = "cook"'), tmp_path)
    assert message == (
        "d.toml: steps[0].type (step 'a'): unknown type 'cook' (known types: research, design,"
        " implement, test, review, docs, shell)"
    )


def test_shell_step_needs_a_command(tmp_path, repo):
    text = HEAD + step("a") + '[[steps]]\nname = "b"\n'
    message = error(text, tmp_path)
    assert (
        message
        == "d.toml: steps[1].command (step 'b'): the shell executor needs a command for this step"
    )


def test_step_requirement_must_exist(tmp_path, repo):
    text = HEAD + 'requirements = ["x"]\n' + step("a", 'requirement_ids = ["R1", "R7"]')
    message = error(text, tmp_path)
    assert (
        message
        == "d.toml: steps[0].requirement_ids (step 'a'): unknown requirement 'R7' (known: R1)"
    )


NO_COMMANDS = (
    'plans steps without a command, and executor = "shell" (the default) runs each step\'s '
    "command, so no step could run: write the steps yourself ([[steps]] with a `command` each, "
    'planner = "explicit"), or set executor = "agent" or "claude_code"'
)


def test_the_bare_minimum_is_refused_saying_what_would_run(tmp_path, repo):
    """title, goal and repo alone mean the template planner's worded steps
    handed to the shell executor, which needs a command for each."""
    assert error(HEAD, tmp_path) == f'd.toml: planner = "template" (the default) {NO_COMMANDS}'


def test_the_anthropic_planner_writes_no_commands_either(tmp_path, repo):
    message = error(HEAD + 'planner = "anthropic"\n', tmp_path)
    assert message == f'd.toml: planner = "anthropic" {NO_COMMANDS}'


@pytest.mark.parametrize(
    "choice",
    [
        'executor = "agent"',
        'executor = "claude_code"',
        'planner = "anthropic"\nexecutor = "agent"',
        'executor = "shell"\n[[steps]]\nname = "a"\ncommand = "true"',
    ],
)
def test_planners_and_executors_that_fit_load(tmp_path, repo, choice):
    assert parse(HEAD + choice + "\n", tmp_path).title == "T"


# -- settings that would be silently ignored ---------------------------------

NO_ATTEMPTS = (
    'plans steps without [[steps.attempts]], and executor = "scripted" only applies each '
    "step's attempts, so every step would pass having done nothing: write the steps yourself "
    '([[steps]] with [[steps.attempts]] each, planner = "explicit"), or set executor = "agent" '
    'or "claude_code"'
)


@pytest.mark.parametrize(
    ("planner", "said"),
    [
        ("", 'planner = "template" (the default)'),
        ('planner = "anthropic"\n', 'planner = "anthropic"'),
    ],
)
def test_a_worded_plan_for_the_scripted_executor_is_refused(tmp_path, repo, planner, said):
    """Its steps have no attempts: each one "passed" having done nothing."""
    message = error(HEAD + planner + 'executor = "scripted"\n', tmp_path)
    assert message == f"d.toml: {said} {NO_ATTEMPTS}"


def test_a_worded_plan_for_the_noop_executor_loads(tmp_path, repo):
    """noop is the executor that does nothing on purpose (benchmarks, tests)."""
    assert parse(HEAD + 'executor = "noop"\n', tmp_path).executor is ExecutorKind.NOOP


SCRIPTED_STEP_WITH_COMMAND = (
    "d.toml: steps[0].command (step 'a'): only the shell executor runs a step's command, and "
    'this step runs with {whose}executor = "{kind}", so it would never run (remove it, or set '
    'executor = "shell" on the step{agent})'
)
AGENT_WORDS = "; the agent takes its instructions from `description`"


@pytest.mark.parametrize("kind", ["scripted", "noop", "agent", "claude_code"])
def test_a_command_on_a_step_no_shell_runs_is_refused(tmp_path, repo, kind):
    """With executor = "scripted" the command never ran and the step passed."""
    attempts = '[[steps.attempts]]\nsummary = "x"\n' if kind == "scripted" else ""
    text = HEAD + f'executor = "{kind}"\n' + ONE_STEP + attempts
    agent = AGENT_WORDS if kind in ("agent", "claude_code") else ""
    assert error(text, tmp_path) == SCRIPTED_STEP_WITH_COMMAND.format(
        kind=kind, whose="the directive's ", agent=agent
    )


def test_a_command_on_a_step_whose_own_executor_is_not_shell_is_refused(tmp_path, repo):
    text = HEAD + ONE_STEP + 'executor = "noop"\n'
    assert error(text, tmp_path) == SCRIPTED_STEP_WITH_COMMAND.format(
        kind="noop", whose="", agent=""
    )


def test_a_shell_step_overriding_another_executor_keeps_its_command(tmp_path, repo):
    text = HEAD + 'executor = "noop"\n' + ONE_STEP + 'executor = "shell"\n'
    assert parse(text, tmp_path).steps[0].command == "true"


def test_a_step_timeout_no_shell_uses_is_refused(tmp_path, repo):
    text = HEAD + 'executor = "agent"\n[[steps]]\nname = "a"\ntimeout_s = 60\n'
    assert error(text, tmp_path) == (
        "d.toml: steps[0].timeout_s (step 'a'): only the shell executor uses a step's timeout_s,"
        ' and this step runs with the directive\'s executor = "agent" (remove it, or set'
        ' executor = "shell" on the step; [limits] max_wall_time_minutes bounds the whole'
        " directive)"
    )


def test_a_scripted_step_without_attempts_is_refused(tmp_path, repo):
    text = HEAD + '[[steps]]\nname = "a"\nexecutor = "scripted"\n'
    assert error(text, tmp_path) == (
        "d.toml: steps[0].attempts (step 'a'): this step runs with executor = \"scripted\","
        " which only applies the step's [[steps.attempts]], and it has none: it would pass"
        " having done nothing (add [[steps.attempts]], set another executor, or executor ="
        ' "noop" for a step meant to do nothing)'
    )


JUDGE_OFF = "[verifiers]\nllm_judge = false\n"


def test_a_step_judged_only_by_a_judge_switched_off_is_refused(tmp_path, repo):
    """It passed green, checked by nothing."""
    text = HEAD + ONE_STEP + 'verifiers = ["llm_judge"]\n' + JUDGE_OFF
    assert error(text, tmp_path) == (
        "d.toml: steps[0].verifiers (step 'a'): 'llm_judge' is listed, but llm_judge = false"
        " under [verifiers] switches the judge off, so nothing would check this step: set"
        " llm_judge = true, or list other verifiers ([] for none)"
    )


def test_a_step_listing_a_judge_switched_off_among_others_is_refused(tmp_path, repo):
    text = HEAD + ONE_STEP + 'verifiers = ["pytest", "llm_judge"]\n' + JUDGE_OFF
    assert error(text, tmp_path) == (
        "d.toml: steps[0].verifiers (step 'a'): 'llm_judge' is listed, but llm_judge = false"
        " under [verifiers] switches the judge off: set llm_judge = true, or take 'llm_judge'"
        " out of the list"
    )


def test_a_step_may_list_the_judge_while_it_is_on(tmp_path, repo):
    text = HEAD + ONE_STEP + 'verifiers = ["llm_judge"]\n'
    assert parse(text, tmp_path).steps[0].verifiers == ["llm_judge"]


# -- several problems past the keys and types --------------------------------


def test_every_problem_the_checks_can_find_is_listed_at_once(tmp_path, repo):
    """An unknown dependency, a step with no command, an unknown verifier and
    a name given twice: the file was fixed one run per problem, as only the
    name given twice was reported."""
    text = HEAD + step("a", 'depends_on = ["ghost"]') + '[[steps]]\nname = "b"\n'
    text += step("b", 'verifiers = ["nonexistent"]')
    assert error(text, tmp_path) == (
        "d.toml: 4 problems:\n"
        "  steps[0].depends_on[0] (step 'a'): unknown step 'ghost'\n"
        "  steps[1].command (step 'b'): the shell executor needs a command for this step\n"
        "  steps[2].name (step 'b'): duplicate step name 'b' (also steps[1])\n"
        "  steps[2].verifiers (step 'b'): step 'b' lists unknown verifier(s) 'nonexistent';"
        f" it can name: {', '.join(sorted({*DETECTABLE, 'llm_judge'}))}"
    )


def test_problems_of_texts_requirements_repo_and_planner_are_listed_together(tmp_path):
    text = (
        'title = " "\ngoal = "G"\nrepo = "nowhere"\nmodel = ""\n'
        'requirements = [{ id = "A", text = "x" }, { id = "A", text = "y" }]\n'
    )
    assert error(text, tmp_path) == (
        "d.toml: 5 problems:\n"
        '  planner = "template" (the default) ' + NO_COMMANDS + "\n"
        "  title: must not be blank\n"
        f"  repo: {tmp_path.resolve() / 'nowhere'} does not exist\n"
        "  model: must not be blank (leave the key out for the default, claude-sonnet-5-5)\n"
        "  requirements[1].id: duplicate requirement id 'A' (also requirements[0])"
    )


def test_each_dependency_problem_is_named_at_its_place_in_the_list(tmp_path, repo):
    text = HEAD + step("build") + step("test", 'depends_on = ["biuld", "test", "build", "build"]')
    assert error(text, tmp_path) == (
        "d.toml: 3 problems:\n"
        "  steps[1].depends_on[0] (step 'test'): unknown step 'biuld' (did you mean 'build'?)\n"
        "  steps[1].depends_on[1] (step 'test'): the step depends on itself\n"
        "  steps[1].depends_on[3] (step 'test'): 'build' is listed twice (also depends_on[2])"
    )


def test_a_cycle_is_looked_for_once_the_chain_is_otherwise_sound(tmp_path, repo):
    """A cycle search among unknown names would only confuse."""
    text = HEAD + step("a", 'depends_on = ["b"]') + step("b", 'depends_on = ["a", "zz"]')
    assert error(text, tmp_path) == "d.toml: steps[1].depends_on[1] (step 'b'): unknown step 'zz'"


def test_a_dependency_on_a_later_step_is_fine(tmp_path, repo):
    """Steps run in dependency order, not file order."""
    spec = parse(HEAD + step("b", 'depends_on = ["a"]') + step("a"), tmp_path)
    assert [s.name for s in spec.steps] == ["b", "a"]


def test_several_scripted_edits_are_all_named(tmp_path, repo):
    text = edit('path = "../x"', 'content = "x"') + '[[steps.attempts.edits]]\npath = "f"\n'
    assert error(text, tmp_path) == (
        "d.toml: 2 problems:\n"
        "  steps[0].attempts[0].edits[0] (step 'a'): refused: '../x': '..' leads outside the"
        " repository\n"
        "  steps[0].attempts[0].edits[1] (step 'a'): edit of 'f' must give exactly one of"
        " content, replace or delete"
    )


# -- scripted edits --------------------------------------------------------


def edit(*lines: str) -> str:
    return (
        HEAD + 'executor = "scripted"\n[[steps]]\nname = "a"\n[[steps.attempts]]\n'
        "[[steps.attempts.edits]]\n" + "".join(line + "\n" for line in lines)
    )


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (['path = "f"', 'content = "x"', "delete = true"],
         "edit of 'f' must give exactly one of content, replace or delete (it gives content, delete)"),
        (['path = "f"'], "edit of 'f' must give exactly one of content, replace or delete"),
        (['path = "f"', 'replace = "x"'], "edit of 'f': `replace` needs `with` (the new text)"),
        (['path = "f"', 'content = "x"', 'with = "y"'], "edit of 'f': `with` only goes with `replace`"),
        (['path = "../out.txt"', 'content = "x"'],
         "refused: '../out.txt': '..' leads outside the repository"),
        (['path = "/tmp/out.txt"', 'content = "x"'],
         "refused: '/tmp/out.txt': absolute paths are not allowed; give a path relative to the repository"),
        (['path = "."', "delete = true"], "edit of '.' names the repository itself, not a file"),
        (['path = ".git/HEAD"', 'content = "x"'],
         "edit of '.git/HEAD' goes into .git: steps never write there"),
        (['path = "sub/.GIT/config"', 'content = "x"'],
         "edit of 'sub/.GIT/config' goes into .git: steps never write there"),
    ],
    ids=["two-actions", "no-action", "replace-without-with", "with-without-replace",
         "dot-dot", "absolute", "the-repo-itself", "into-git", "into-git-any-case"],
)  # fmt: skip
def test_edits_that_could_never_apply_are_refused(tmp_path, repo, lines, problem):
    assert (
        error(edit(*lines), tmp_path)
        == f"d.toml: steps[0].attempts[0].edits[0] (step 'a'): {problem}"
    )


def test_an_edit_through_a_symlink_out_of_the_repo_is_refused(tmp_path, repo):
    (repo / "link").symlink_to(tmp_path, target_is_directory=True)
    message = error(edit('path = "link/x.txt"', 'content = "x"'), tmp_path)
    assert "link is a symlink to" in message and "outside the repository" in message


def test_edits_inside_the_repo_load(tmp_path, repo):
    spec = parse(edit('path = "./src/../new.txt"', 'content = "x"'), tmp_path)
    assert spec.steps[0].attempts[0].edits[0].path == "./src/../new.txt"


# -- verifiers ---------------------------------------------------------------


def extra(*tables: str) -> str:
    return "".join(f"[[verifiers.extra]]\n{t}\n" for t in tables)


def test_a_step_naming_a_verifier_that_cannot_exist_is_refused(tmp_path, repo):
    text = HEAD + ONE_STEP + 'verifiers = ["lint", "nonexistent"]\n'
    text += "[verifiers]\nauto_detect = false\n" + extra('name = "lint"\ncommand = "true"')
    assert error(text, tmp_path) == (
        "d.toml: steps[0].verifiers (step 'a'): step 'a' lists unknown verifier(s) "
        "'nonexistent'; it can name: lint, llm_judge"
    )


@pytest.mark.parametrize("names", [["pytest", "llm_judge"], ["ruff"], []])
def test_a_step_may_name_what_detection_can_find(tmp_path, repo, names):
    """Whether pytest is there is known when the step is judged, not now."""
    text = HEAD + ONE_STEP + f"verifiers = {json.dumps(names)}\n"
    assert parse(text, tmp_path).steps[0].verifiers == names


def test_detectable_names_are_unknown_with_auto_detect_off(tmp_path, repo):
    text = HEAD + ONE_STEP + 'verifiers = ["pytest"]\n[verifiers]\nauto_detect = false\n'
    assert "lists unknown verifier(s) 'pytest'; it can name: llm_judge" in error(text, tmp_path)


def test_a_step_naming_a_switched_off_verifier_is_refused(tmp_path, repo):
    text = HEAD + ONE_STEP + 'verifiers = ["pytest"]\n'
    text += "[verifiers]\n" + extra('name = "pytest"\nenabled = false')
    assert "lists unknown verifier(s) 'pytest'" in error(text, tmp_path)


@pytest.mark.parametrize("command", ['""', '"   "', "[]", '[""]'])
def test_an_empty_verifier_command_is_refused(tmp_path, repo, command):
    text = HEAD + ONE_STEP + "[verifiers]\n" + extra(f'name = "x"\ncommand = {command}')
    assert error(text, tmp_path) == (
        "d.toml: verifiers.extra[0].command: verifier 'x' has an empty command: give one, "
        "or leave the key out to change only other fields of a detected verifier"
    )


def test_a_verifier_named_twice_is_refused(tmp_path, repo):
    text = HEAD + ONE_STEP + "[verifiers]\n"
    text += extra('name = "x"\ncommand = "true"', 'name = "x"\ncommand = "false"')
    assert error(text, tmp_path) == (
        "d.toml: verifiers.extra[1].name: verifier 'x' appears twice in verifiers.extra "
        "(also verifiers.extra[0])"
    )


def test_the_judges_name_is_taken(tmp_path, repo):
    text = HEAD + ONE_STEP + "[verifiers]\n" + extra('name = "llm_judge"\ncommand = "true"')
    assert error(text, tmp_path) == (
        "d.toml: verifiers.extra[0].name: verifier name 'llm_judge' is taken by the LLM judge; "
        "rename the other one"
    )


@pytest.mark.parametrize(
    ("setting", "why"),
    [("", "no tool of that name is detected"), ("auto_detect = false\n", "auto_detect is off")],
)
def test_a_verifier_without_a_command_needs_detection_to_supply_one(tmp_path, repo, setting, why):
    name = "docs" if not setting else "pytest"
    text = HEAD + ONE_STEP + "[verifiers]\n" + setting + extra(f'name = "{name}"\nweight = 2')
    assert error(text, tmp_path) == (
        f"d.toml: verifiers.extra[0].command: verifier {name!r} has no command, and {why}: "
        "give it a command"
    )


def test_overriding_a_detectable_verifier_needs_no_command(tmp_path, repo):
    text = HEAD + ONE_STEP + "[verifiers]\n" + extra('name = "pytest"\nweight = 3')
    assert parse(text, tmp_path).verifiers.extra[0].command is None


# -- the API key -------------------------------------------------------------


def test_what_needs_an_api_key_is_named_as_the_file_says_it(tmp_path, repo):
    keyless = parse(HEAD + 'executor = "claude_code"\n', tmp_path)
    assert api_key_needs(keyless) == []  # Claude Code may have its own login
    text = HEAD + 'planner = "explicit"\nexecutor = "agent"\n[[steps]]\nname = "a"\n'
    text += '[[steps]]\nname = "b"\nexecutor = "agent"\n'
    assert api_key_needs(parse(text, tmp_path)) == [
        'executor = "agent"',
        "executor = \"agent\" (step 'b')",
    ]


def test_a_directive_executor_every_step_overrides_needs_no_key(tmp_path, repo):
    text = HEAD + 'planner = "explicit"\nexecutor = "agent"\n'
    text += '[[steps]]\nname = "a"\nexecutor = "shell"\ncommand = "true"\n'
    assert api_key_needs(parse(text, tmp_path)) == []


def test_running_without_a_key_is_refused_before_anything_is_written(tmp_path, repo):
    spec = parse(HEAD + 'planner = "anthropic"\nexecutor = "agent"\n', tmp_path)
    with pytest.raises(DirectiveFileError) as refused:
        check_api_key(spec, "d.toml", env={"ANTHROPIC_API_KEY": " "})
    assert str(refused.value) == (
        'd.toml: planner = "anthropic" and executor = "agent" need ANTHROPIC_API_KEY, which is '
        "not set: set it, or use a planner and executor that need no key "
        '(planner = "explicit" with [[steps]], executor = "shell")'
    )
    check_api_key(spec, "d.toml", env={"ANTHROPIC_API_KEY": "sk-test-not-real"})
    check_api_key(parse(HEAD + ONE_STEP, tmp_path), "d.toml", env={})


def test_shell_pipeline_example_completes_in_a_git_checkout(tmp_path):
    """The example as a user runs it from a clone: the headless command on a
    committed copy of the sample project completes (exit 0) with no approval,
    the report reaches the directive's integration branch through the steps'
    worktrees, and the user's own tree is left as it was."""
    repo = tmp_path / "sample-project"
    shutil.copytree(
        EXAMPLES / "sample-project",
        repo,
        ignore=shutil.ignore_patterns("build", "reports", "__pycache__", ".*cache"),
    )
    shutil.copy(EXAMPLES / "shell-pipeline.toml", tmp_path / "shell-pipeline.toml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "sample")
    db = tmp_path / "example.db"
    run = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--db", str(db), "run",
         str(tmp_path / "shell-pipeline.toml"), "--headless"],
        env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert "approval needed" not in run.stdout
    (branch,) = git("for-each-ref", "--format=%(refname:short)", "refs/heads/directive/").split()
    assert git("show", f"{branch}:reports/report.md").startswith("# README.md")
    assert '"lines"' in git("show", f"{branch}:reports/readme-stats.json")
    assert git("status", "--porcelain") == ""
    assert not (repo / "reports").exists()


@pytest.mark.parametrize(
    "spec",
    [
        {"verifiers": {"llm_judge_weight": math.inf}},
        {"verifiers": {"extra": [{"name": "lint", "command": "true", "weight": math.inf}]}},
        {"verifiers": {"extra": [{"name": "lint", "command": "true", "timeout_s": math.nan}]}},
        {"steps": [{"name": "build", "timeout_s": math.inf}]},
    ],
)
def test_a_spec_built_in_code_refuses_what_its_json_could_not_hold(spec: dict[str, Any]) -> None:
    """Not only directive files: a spec from the app's form or from code is
    stored as JSON, which has no infinity; one saved as null could not be
    read back, and every command listing the database failed on it."""
    with pytest.raises(ValidationError, match="finite number"):
        DirectiveSpec.model_validate({"title": "t", "goal": "g", "repo": "/tmp", **spec})
