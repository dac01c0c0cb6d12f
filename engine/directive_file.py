"""Directive files: TOML a person writes -> a checked `DirectiveSpec`.

Loading is pure: it reads the file and looks at the repository folder, and
writes nothing. Any problem raises `DirectiveFileError` with one message that
names the file and the line or the field (`steps[2].depends_on`: list indexes
count from 0), so a person can fix it without reading a traceback. A file
with several problems gets them all, one a line in file order: first the
keys and types; once those are right, the checks that need a whole spec
(steps, texts, edits, verifiers), each problem they can find apart from the
others (a cycle is looked for once the steps' names and dependencies are
sound). A file that would load but could never work is refused the same way,
and so is a setting that would be silently ignored: a planner that writes no
commands with the shell executor (or no attempts with the scripted one),
blank texts, scripted edits that could never apply, verifier settings the
registry would refuse at run time, a step's `command` or `timeout_s` where
no shell runs it, a step naming the judge that `llm_judge = false` switched
off. Whether an API key is set is not the loader's business (the app and
tests create directives to run later); `check_api_key` is for creating and
starting at once.

The shape (every key but `title`, `goal` and `repo` is optional, but with
those three alone the template planner's worded steps meet the shell
executor, which needs commands: the file is refused)::

    title = "Add a --json flag"        # required
    goal = "The CLI can print JSON"    # required
    repo = "../my-project"             # required; relative to this file, ~ expands
    autonomy = "guardrails"            # full_auto | guardrails | manual
    planner = "template"               # template | explicit | anthropic
                                       #   (explicit when [[steps]] are given)
    executor = "shell"                 # shell | scripted | agent | claude_code | noop
    model = "claude-sonnet-5-5"        # Claude model for planner, agent and judge
    requirements = ["Prints valid JSON", "Keeps the text output"]   # ids R1, R2 ...
    # or: requirements = [{ id = "JSON", text = "Prints valid JSON" }]
    acceptance_criteria = ["pytest passes"]

    [thresholds]                       # confidence levels, 0..1, yellow <= green
    green = 0.8
    yellow = 0.5

    [limits]                           # circuit breakers
    max_cost_usd = 10.0                # false: no limit
    max_wall_time_minutes = 120        # false: no limit
    max_rework_cycles = 3
    max_chain_regenerations = 2
    max_parallel_steps = 2
    max_failed_steps = 3

    [verifiers]
    auto_detect = true                 # pytest, ruff, mypy, npm, cargo ... found in repo
    llm_judge = true                   # only with an API key
    llm_judge_weight = 1.0
    [[verifiers.extra]]                # add a verifier, or override a detected one
    name = "docs"
    command = "make docs"              # a string (run by the shell) or a list of args
    parser = "exit_code"               # exit_code | pytest | ruff | mypy | count | lint |
                                       #   tsc | clippy | cargo_test | go_test
    weight = 1.0
    gating = false                     # a new verifier's default; a detected one keeps its own
    timeout_s = 300
    enabled = true

    [[steps]]                          # explicit planner: the chain itself
    name = "tests"
    type = "test"                      # research | design | implement | test | review | docs | shell
    description = "Run the tests"
    depends_on = ["build"]             # names of other steps, anywhere in the file
    requirement_ids = ["R1"]
    executor = "shell"                 # overrides the directive's executor
    command = "python -m pytest -q"    # shell executor only (and required there)
    timeout_s = 600                    # shell executor only (default 1800)
    verifiers = ["pytest"]             # only these verifiers judge the step
    [[steps.attempts]]                 # scripted executor only, and required there:
                                       #   attempt N uses the Nth
    summary = "first try"              #   (the last one repeats)
    fail = "simulated crash"           # optional: the attempt fails with this error
    [[steps.attempts.edits]]
    path = "src/app.py"
    content = "..."                    # write the whole file, or
    replace = "old"                    # replace a string ...
    with = "new"                       # ... with another, or
    delete = true                      # delete the file
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
import types
import typing
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from engine.executors.scripted import EditError, check_edit
from engine.models import (
    DirectiveSpec,
    ExecutorKind,
    FileEdit,
    Limits,
    PlannerKind,
    ScriptedAttempt,
    StepSpec,
    Thresholds,
    VerifierConfig,
    VerifierSpec,
    WorkspaceConfig,
)
from engine.planner import KNOWN_STEP_TYPES, ChainValidationError, validate_chain
from engine.pricing import DEFAULT_MODEL
from engine.text import clip
from engine.verifiers.registry import LLM_JUDGE_NAME, VerifierConfigError, check_config

Loc = tuple[str | int, ...]

# Planners that describe steps in words: their steps have no `command`.
_WORDS_ONLY_PLANNERS = (PlannerKind.TEMPLATE, PlannerKind.ANTHROPIC)

# What needs a Claude API key to run at all (the judge is optional: without
# a key it is left out). claude_code is not here: Claude Code may have its
# own login.
API_KEY_ENV = "ANTHROPIC_API_KEY"
_NEEDS_A_KEY = frozenset({PlannerKind.ANTHROPIC, ExecutorKind.AGENT})

# Limits a person may switch off with `false` (the model's None).
_SWITCHABLE_LIMITS = ("max_cost_usd", "max_wall_time_minutes")

# What a key takes beyond its model type, thanks to the conveniences below;
# a type error there names both. Keys are locs with list indexes as 0.
_ALSO_ACCEPTED: dict[tuple[str | int, ...], str] = {
    ("requirements", 0): "a string or a table",
    **{("limits", k): "a number, or false for no limit" for k in _SWITCHABLE_LIMITS},
}


class DirectiveFileError(ValueError):
    """A directive file that cannot be used; the message says where and why."""

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        field: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        where = source
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")
        self.source, self.problem, self.field = source, problem, field
        self.line, self.column = line, column


# --------------------------------------------------------------------------
# Walking the models: which keys a table takes, what a field holds
# --------------------------------------------------------------------------


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """Key as written in the file (alias if any) -> pydantic FieldInfo."""
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _members(annotation: Any) -> list[Any]:
    """The types inside `X | None`, `list[X]` ... flattened."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _submodel(annotation: Any) -> type[BaseModel] | None:
    return next(
        (m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)),
        None,
    )


def _model_at(path: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = DirectiveSpec
    for part in path:
        if isinstance(part, str):
            info = _fields(model).get(part) if model else None
            model = _submodel(info.annotation) if info else None
    return model


def _clean_loc(loc: Loc, *, keep_last: bool) -> Loc:
    """pydantic's loc without union member tags (`command.str`), which are
    not keys in the file. An unknown key's own name is kept."""
    head, tail = (loc[:-1], loc[-1:]) if keep_last else (loc, ())
    out: list[str | int] = []
    model: type[BaseModel] | None = DirectiveSpec
    for part in head:
        if isinstance(part, int):
            out.append(part)
        elif model is not None and part in _fields(model):
            out.append(part)
            model = _submodel(_fields(model)[part].annotation)
    return (*out, *tail)


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _show(value: Any) -> str:
    """A value as the person wrote it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value) if isinstance(value, float) else str(value)  # 3.0 is not 3


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# --------------------------------------------------------------------------
# pydantic errors -> one sentence each
# --------------------------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "path_type": "a path string",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


@dataclass
class _Problem:
    loc: Loc
    text: str = ""
    expected: tuple[str, ...] = ()  # type errors on one key merge: "a string or a list"
    got: Any = None

    def sentence(self) -> str:
        if self.expected:
            return f"expected {' or '.join(self.expected)}, got {_show(self.got)}"
        return self.text


# The tables a key can belong in, as their headers are written, for a key
# written in the wrong one.
_TABLES: tuple[tuple[str, type[BaseModel]], ...] = (
    ("[[steps]]", StepSpec),
    ("[thresholds]", Thresholds),
    ("[limits]", Limits),
    ("[verifiers]", VerifierConfig),
    ("[[verifiers.extra]]", VerifierSpec),
    ("[workspace]", WorkspaceConfig),
    ("[[steps.attempts]]", ScriptedAttempt),
    ("[[steps.attempts.edits]]", FileEdit),
)


def _top_level_values() -> list[str]:
    """The top-level keys that hold a value, not a table of their own."""
    return [k for k, info in _fields(DirectiveSpec).items() if _submodel(info.annotation) is None]


def _header(table: Loc) -> str:
    """How the table at `table` is written: `[limits]`, `[[steps]]`."""
    dotted = ".".join(str(p) for p in table if isinstance(p, str))
    return f"[[{dotted}]]" if isinstance(table[-1], int) else f"[{dotted}]"


def _unknown_key(loc: Loc) -> str:
    """An unknown key, with what it most likely is: a top-level key written
    below a table header (TOML puts it in that table), a table's key written
    at the top level, or a typo."""
    key, table = str(loc[-1]), loc[:-1]
    # requirements' tables are inline ({ id, text }): no header to be below
    if table and table[0] != "requirements" and key in _top_level_values():
        return (
            f"unknown key in {_header(table)}; `{key}` is a top-level key: move it above the"
            " first [table] (TOML puts keys after a table header inside that table)"
        )
    homes = [header for header, model in _TABLES if key in _fields(model)] if not table else []
    if homes:
        where = f"a {homes[0]} table" if homes[0].startswith("[[") else f"the {homes[0]} table"
        more = f" (or {' or '.join(homes[1:])})" if homes[1:] else ""
        return f"unknown key at the top level; `{key}` goes in {where}{more}"
    model = _model_at(table)
    close = get_close_matches(key, list(_fields(model)), n=1) if model else []
    return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")


def _problem(error: Any) -> _Problem:
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    unknown = kind == "extra_forbidden"
    loc = _clean_loc(tuple(error["loc"]), keep_last=unknown)
    if unknown:
        return _Problem(loc, _unknown_key(loc))
    if kind == "missing":
        return _Problem(loc, "required, but missing")
    if kind in _EXPECTED:
        shape = tuple(0 if isinstance(p, int) else p for p in loc)
        return _Problem(loc, expected=(_ALSO_ACCEPTED.get(shape, _EXPECTED[kind]),), got=value)
    if kind in ("enum", "literal_error"):
        return _Problem(loc, expected=(f"one of {ctx['expected']}",), got=value)
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return _Problem(loc, f"must be {words} {_number(ctx[bound])}, got {_show(value)}")
    if kind == "string_too_short":
        return _Problem(loc, "must not be empty")
    if kind == "value_error":
        return _Problem(loc, str(ctx.get("error", error["msg"])))
    return _Problem(loc, f"{error['msg']}, got {_show(value)}")


def _merge(problems: list[_Problem]) -> list[_Problem]:
    """One problem per key: a union's member errors become one 'a or b'."""
    merged: dict[Loc, _Problem] = {}
    for p in problems:
        first = merged.get(p.loc)
        if first is None:
            merged[p.loc] = p
        elif first.expected and p.expected:
            first.expected = (*first.expected, *p.expected)
    return list(merged.values())


def _validate(data: dict[str, Any]) -> tuple[DirectiveSpec | None, list[ErrorDetails]]:
    """The spec, or pydantic's errors. Strictly: TOML has booleans and
    numbers, so `"off"`, `"5"` or `1` for a boolean, `true` or `"5"` for a
    number, `3.0` for an integer are mistakes, not values to convert (an
    integer where a number is wanted is fine). Enums and paths can only be
    written as strings, which strict validation refuses (it wants the
    instances), so those are judged by the lax pass. The app's form and the
    limits commands convert their own text and validate laxly: this is the
    file's rule only."""
    try:
        return DirectiveSpec.model_validate(data, strict=True), []
    except ValidationError as exc:
        strict = exc.errors(include_url=False)
    try:
        spec, lax = DirectiveSpec.model_validate(data), []
    except ValidationError as exc:
        spec, lax = None, exc.errors(include_url=False)
    from_strings = [tuple(e["loc"]) for e in strict if e["type"] == "is_instance_of"]
    errors = [e for e in strict if e["type"] != "is_instance_of"]
    errors += [e for e in lax if any(tuple(e["loc"])[: len(at)] == at for at in from_strings)]
    # Lax errors elsewhere only follow from a conversion strictness refused
    # (`green = "0.4"` then reads as above `yellow`); without one, they stand.
    errors = errors or lax
    return (None if errors else spec), errors


# --------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------


# A file with more problems than this lists these and counts the rest.
_SHOWN_PROBLEMS = 20


class _Reporter:
    """Builds DirectiveFileErrors for one file, naming steps where it can."""

    def __init__(self, source: str, data: dict[str, Any]) -> None:
        self.source, self.data = source, data

    def field(self, loc: Loc) -> str:
        text = _dotted(loc)
        steps = self.data.get("steps")
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            step = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
            if isinstance(step, dict) and isinstance(step.get("name"), str):
                text += f" (step {step['name']!r})"
        return text

    def error(self, loc: Loc, problem: str) -> DirectiveFileError:
        return DirectiveFileError(self.source, problem, field=self.field(loc) or None)

    def position(self, loc: Loc) -> tuple[int, ...]:
        """Where `loc` is written in the file: each key's place in its table
        (tomllib keeps the file's order), each list index; a key that is not
        written (a missing one) comes after its table's others."""
        at: Any = self.data
        place: list[int] = []
        for part in loc:
            if isinstance(at, dict):
                keys = list(at)
                place.append(keys.index(part) if part in keys else len(keys))
                at = at.get(part)
            elif isinstance(at, list) and isinstance(part, int) and part < len(at):
                place.append(part)
                at = at[part]
            else:
                break
        return tuple(place)

    def all_of(self, problems: Sequence[_Problem]) -> DirectiveFileError:
        """One problem reads as any other error; several are counted, then
        listed one a line in file order (up to _SHOWN_PROBLEMS), each with
        its key, so they can all be fixed in one go."""
        problems = sorted(problems, key=lambda p: self.position(p.loc))
        if len(problems) == 1:
            return self.error(problems[0].loc, problems[0].sentence())
        lines = []
        for p in problems[:_SHOWN_PROBLEMS]:
            field = self.field(p.loc)
            lines.append(f"  {field}: {p.sentence()}" if field else f"  {p.sentence()}")
        if len(problems) > _SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(problems) - _SHOWN_PROBLEMS} more")
        return DirectiveFileError(self.source, f"{len(problems)} problems:\n" + "\n".join(lines))


def _toml_error(exc: tomllib.TOMLDecodeError, text: str, source: str) -> DirectiveFileError:
    """tomllib says 'Invalid value (at line 2, column 5)'; we say
    'file.toml:2:5: invalid TOML: invalid value'."""
    message = getattr(exc, "msg", None) or str(exc)
    line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    if match := re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.S):
        message, line, column = match[1], int(match[2]), int(match[3])
    elif match := re.fullmatch(r"(.*) \(at end of document\)", message, re.S):
        lines = text.splitlines() or [""]
        message, line, column = match[1], len(lines), len(lines[-1]) + 1
    message = message[:1].lower() + message[1:]
    return DirectiveFileError(source, f"invalid TOML: {message}", line=line, column=column)


def _requirement_tables(raw: Any) -> Any:
    """Plain strings become {id: R<n>, text}, numbered by position and
    skipping ids the file already uses."""
    if not isinstance(raw, list):
        return raw
    taken = {r.get("id") for r in raw if isinstance(r, dict)}
    out, number = [], 0
    for item in raw:
        if isinstance(item, str):
            number += 1
            while f"R{number}" in taken:
                number += 1
            taken.add(f"R{number}")
            out.append({"id": f"R{number}", "text": item})
        else:
            out.append(item)
    return out


def _conveniences(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if "requirements" in data:
        data["requirements"] = _requirement_tables(data["requirements"])
    if "steps" in data and "planner" not in data:
        data["planner"] = PlannerKind.EXPLICIT.value
    limits = data.get("limits")
    if isinstance(limits, dict):
        data["limits"] = {
            k: None if k in _SWITCHABLE_LIMITS and v is False else v for k, v in limits.items()
        }
    return data


def _resolve_repo(written: str, base_dir: Path) -> tuple[Path | None, _Problem | None]:
    if not written.strip():
        return None, _Problem(("repo",), "must not be empty")
    path = Path(os.path.expanduser(written))
    path = (path if path.is_absolute() else base_dir / path).resolve()
    if not path.exists():
        return None, _Problem(("repo",), f"{path} does not exist")
    if not path.is_dir():
        return None, _Problem(("repo",), f"{path} is a file, not a folder")
    return path, None


def _check_model(spec: DirectiveSpec) -> Iterator[_Problem]:
    """A blank `model` would be sent to the API as the empty name, and one
    with a space or a line break in it is no model's name."""
    problem = None if spec.model is None else model_name_problem(spec.model)
    if problem:
        yield _Problem(("model",), problem)


MODEL_NAME_MAX = 200  # a model's name, with a provider's prefix or a date at the most


def model_name_problem(model: str) -> str | None:
    """Why `model` cannot be a model's name, or None. Blank, it would be
    sent as the empty name; no name has a space or a control character:
    one that does is a typo the API would answer with 404 only later."""
    if not model.strip():
        return f"must not be blank (leave the key out for the default, {DEFAULT_MODEL})"
    model = model.strip()
    if len(model) > MODEL_NAME_MAX or not model[0].isalnum():
        return (
            f"{clip(model, 40)!r} is not a model name: it is longer than {MODEL_NAME_MAX}"
            " characters or does not start with a letter or digit"
            f" (model names are written like {DEFAULT_MODEL})"
        )
    odd = next((c for c in model if c.isspace() or unicodedata.category(c) == "Cc"), None)
    if odd is None:
        return None
    return (
        f"{model!r} is not a model name: it has {'a space' if odd == ' ' else repr(odd)}"
        f" (model names are written like {DEFAULT_MODEL})"
    )


def _check_chain(steps: Sequence[StepSpec]) -> Iterator[_Problem]:
    """The chain's problems, each at its key: names given twice, unknown
    types, dependencies on the step itself, twice, or on no step. These are
    found apart from each other; a cycle is looked for (by the planner's own
    check) only in a chain without them, where it can be named clearly."""
    first_at: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.name in first_at:
            yield _Problem(
                ("steps", i, "name"),
                f"duplicate step name {step.name!r} (also steps[{first_at[step.name]}])",
            )
        first_at.setdefault(step.name, i)
    found = False
    for i, step in enumerate(steps):
        if step.type not in KNOWN_STEP_TYPES:
            found = True
            yield _Problem(
                ("steps", i, "type"),
                f"unknown type {step.type!r} (known types: {', '.join(KNOWN_STEP_TYPES)})",
            )
        seen: dict[str, int] = {}
        for j, dependency in enumerate(step.depends_on):
            problem = None
            if dependency in seen:
                problem = f"{dependency!r} is listed twice (also depends_on[{seen[dependency]}])"
            elif dependency == step.name:
                problem = "the step depends on itself"
            elif dependency not in first_at:
                close = get_close_matches(dependency, list(first_at), n=1)
                problem = f"unknown step {dependency!r}" + (
                    f" (did you mean {close[0]!r}?)" if close else ""
                )
            seen.setdefault(dependency, j)
            if problem:
                found = True
                yield _Problem(("steps", i, "depends_on", j), problem)
    if found or len(first_at) < len(steps):
        return
    try:
        validate_chain(steps)
    except ChainValidationError as exc:
        yield _Problem(("steps",), str(exc))


def _runs_with(step: StepSpec, spec: DirectiveSpec) -> str:
    """The executor a step runs with, as the file sets it."""
    executor = step.executor or spec.executor
    whose = "" if step.executor else "the directive's "
    return f'{whose}executor = "{executor.value}"'


def _check_steps(spec: DirectiveSpec) -> Iterator[_Problem]:
    planner = spec.planner.value
    if spec.planner is PlannerKind.EXPLICIT and not spec.steps:
        yield _Problem(("planner",), '"explicit" needs at least one [[steps]] table')
    if spec.steps and spec.planner is not PlannerKind.EXPLICIT:
        yield _Problem(
            ("steps",),
            f'[[steps]] are only used by planner = "explicit", but this file says planner = '
            f'"{planner}" (remove the steps or the planner line)',
        )
        return
    if spec.steps:
        yield from _check_chain(spec.steps)
    known = [r.id for r in spec.requirements]
    for i, step in enumerate(spec.steps):
        yield from _check_step_executor(spec, i, step)
        unknown = [r for r in step.requirement_ids if r not in known]
        if unknown:
            listed = ", ".join(known) or "none"
            yield _Problem(
                ("steps", i, "requirement_ids"),
                f"unknown requirement {', '.join(map(repr, unknown))} (known: {listed})",
            )


def _check_step_executor(spec: DirectiveSpec, i: int, step: StepSpec) -> Iterator[_Problem]:
    """What a step says against the executor it runs with: each executor
    reads its own keys, and a key another one would read is never used (a
    `command` on a scripted step never ran, and the step passed)."""
    executor = step.executor or spec.executor
    runs_with = _runs_with(step, spec)
    command = (step.command or "").strip()
    if executor is ExecutorKind.SHELL and not command:
        yield _Problem(("steps", i, "command"), "the shell executor needs a command for this step")
    if executor is not ExecutorKind.SHELL and step.command is not None:
        words = (
            "; the agent takes its instructions from `description`"
            if executor in (ExecutorKind.AGENT, ExecutorKind.CLAUDE_CODE)
            else ""
        )
        yield _Problem(
            ("steps", i, "command"),
            f"only the shell executor runs a step's command, and this step runs with {runs_with},"
            f' so it would never run (remove it, or set executor = "shell" on the step{words})',
        )
    if executor is not ExecutorKind.SHELL and step.timeout_s is not None:
        yield _Problem(
            ("steps", i, "timeout_s"),
            f"only the shell executor uses a step's timeout_s, and this step runs with {runs_with}"
            ' (remove it, or set executor = "shell" on the step; [limits] max_wall_time_minutes'
            " bounds the whole directive)",
        )
    if step.attempts and executor is not ExecutorKind.SCRIPTED:
        yield _Problem(
            ("steps", i, "attempts"),
            "only the scripted executor uses [[steps.attempts]], and this step runs with"
            f' {runs_with} (remove the attempts, or set executor = "scripted")',
        )
    if executor is ExecutorKind.SCRIPTED and not step.attempts and step.command is None:
        yield _Problem(
            ("steps", i, "attempts"),
            f"this step runs with {runs_with}, which only applies the step's"
            " [[steps.attempts]], and it has none: it would pass having done nothing (add"
            ' [[steps.attempts]], set another executor, or executor = "noop" for a step meant'
            " to do nothing)",
        )


def _texts(spec: DirectiveSpec, raw: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """The texts that mean nothing when blank, each with the key it was
    written at (a requirement given as a plain string is its own key)."""
    yield ("title",), spec.title
    yield ("goal",), spec.goal
    written = raw.get("requirements") or []
    for i, requirement in enumerate(spec.requirements):
        if isinstance(written[i], str):
            yield ("requirements", i), requirement.text
        else:
            yield ("requirements", i, "id"), requirement.id
            yield ("requirements", i, "text"), requirement.text
    for i, criterion in enumerate(spec.acceptance_criteria):
        yield ("acceptance_criteria", i), criterion
    for i, step in enumerate(spec.steps):
        yield ("steps", i, "name"), step.name


def _check_texts(spec: DirectiveSpec, raw: dict[str, Any]) -> Iterator[_Problem]:
    blank = set()
    for loc, text in _texts(spec, raw):
        if not text.strip():
            blank.add(loc)
            yield _Problem(loc, "must not be empty" if not text else "must not be blank")
    # Names head one line each (the header, the DAG's boxes, every log line
    # about a step): a line break would split them, and another control
    # character (a tab, an escape sequence) would garble the terminal.
    one_line = [(("title",), spec.title)]
    one_line += [(("steps", i, "name"), s.name) for i, s in enumerate(spec.steps)]
    for loc, text in one_line:
        if loc in blank:  # "\n" alone: said already
            continue
        if any(c in text for c in "\n\r"):
            yield _Problem(loc, "must be one line")
            continue
        control = next((c for c in text if unicodedata.category(c) == "Cc"), None)
        if control is not None:
            yield _Problem(
                loc, f"must not contain control characters (it has U+{ord(control):04X})"
            )


def _check_edits(spec: DirectiveSpec) -> Iterator[_Problem]:
    """Scripted edits that could never apply (no action or two, a path out
    of the repository) are refused now with the executor's own check,
    not at an attempt that has already been stored."""
    for i, step in enumerate(spec.steps):
        for j, attempt in enumerate(step.attempts):
            for k, edit in enumerate(attempt.edits):
                try:
                    check_edit(spec.repo, edit)
                except EditError as exc:
                    yield _Problem(("steps", i, "attempts", j, "edits", k), str(exc))


def _check_verifiers(spec: DirectiveSpec) -> Iterator[_Problem]:
    """The registry's own checks (it stops at its first problem): once for
    `verifiers.extra`, then once per step for the names it lists, against
    the extras' names alone, so each step's problem is found whatever the
    extras' are. Then the judge: a step may always name it, but with
    `llm_judge = false` it never judges, and a step listing only the judge
    passed having been checked by nothing."""
    try:
        check_config(spec.model_copy(update={"steps": []}))
    except VerifierConfigError as exc:
        yield _Problem(exc.loc, str(exc))
    off = {v.name for v in spec.verifiers.extra if not v.enabled}
    names_only = [
        VerifierSpec(name=name, command="true", enabled=name not in off)
        for name in dict.fromkeys(v.name for v in spec.verifiers.extra)
        if name != LLM_JUDGE_NAME
    ]
    verifiers = spec.verifiers.model_copy(update={"extra": names_only})
    for i, step in enumerate(spec.steps):
        try:
            check_config(spec.model_copy(update={"steps": [step], "verifiers": verifiers}))
        except VerifierConfigError as exc:
            yield _Problem(("steps", i, *exc.loc[2:]), str(exc))
        listed = step.verifiers or []
        if LLM_JUDGE_NAME in listed and not spec.verifiers.llm_judge:
            fix = (
                "set llm_judge = true, or list other verifiers ([] for none)"
                if set(listed) == {LLM_JUDGE_NAME}
                else f"set llm_judge = true, or take {LLM_JUDGE_NAME!r} out of the list"
            )
            nothing = (
                ", so nothing would check this step" if set(listed) == {LLM_JUDGE_NAME} else ""
            )
            yield _Problem(
                ("steps", i, "verifiers"),
                f"{LLM_JUDGE_NAME!r} is listed, but llm_judge = false under [verifiers] switches"
                f" the judge off{nothing}: {fix}",
            )


def _setting(raw: dict[str, Any], key: str, value: str) -> str:
    default = "" if key in raw else " (the default)"
    return f'{key} = "{value}"{default}'


def _check_runnable(spec: DirectiveSpec, raw: dict[str, Any]) -> Iterator[_Problem]:
    """A planner that writes steps in words, with an executor that only
    runs what a step spells out (a command, scripted attempts), fails or
    fakes every step it plans: refuse the pair, saying what works. (With
    [[steps]] the planner is refused already.)"""
    if spec.planner not in _WORDS_ONLY_PLANNERS or spec.steps:
        return
    planner = _setting(raw, "planner", spec.planner.value)
    if spec.executor is ExecutorKind.SHELL:
        yield _Problem(
            (),
            f"{planner} plans steps without a command, and {_setting(raw, 'executor', 'shell')}"
            " runs each step's command, so no step could run: write the steps yourself"
            ' ([[steps]] with a `command` each, planner = "explicit"), or set executor = "agent"'
            ' or "claude_code"',
        )
    elif spec.executor is ExecutorKind.SCRIPTED:
        yield _Problem(
            (),
            f'{planner} plans steps without [[steps.attempts]], and executor = "scripted" only'
            " applies each step's attempts, so every step would pass having done nothing: write"
            ' the steps yourself ([[steps]] with [[steps.attempts]] each, planner = "explicit"),'
            ' or set executor = "agent" or "claude_code"',
        )


def _check_requirements(spec: DirectiveSpec) -> Iterator[_Problem]:
    first_at: dict[str, int] = {}
    for i, requirement in enumerate(spec.requirements):
        if requirement.id in first_at:
            yield _Problem(
                ("requirements", i, "id"),
                f"duplicate requirement id {requirement.id!r} "
                f"(also requirements[{first_at[requirement.id]}])",
            )
        first_at.setdefault(requirement.id, i)


def _nul_characters(value: Any, loc: Loc = ()) -> Iterator[Loc]:
    """Where a string holds a NUL (`"\\u0000"` in TOML): no path, command or
    argument can carry one (the OS refuses it), so such a value could never
    be used as written."""
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul_characters(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nul_characters(item, (*loc, i))


def _non_finite_numbers(value: Any, loc: Loc = ()) -> Iterator[tuple[Loc, float]]:
    """Where TOML's `inf` or `nan` is written, but for the limits where
    `inf` means no limit: the spec is stored as JSON, which has neither, so
    such a value is saved as null and the stored directive (and every
    command that lists the database) can no longer be read."""
    if isinstance(value, float) and not math.isfinite(value):
        unlimited = len(loc) == 2 and loc[0] == "limits" and loc[1] in _SWITCHABLE_LIMITS
        if not (unlimited and value == math.inf):
            yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite_numbers(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _non_finite_numbers(item, (*loc, i))


def parse_directive_text(text: str, *, base_dir: Path, source: str = "<text>") -> DirectiveSpec:
    """Parse directive TOML; a relative `repo` is taken from `base_dir`."""
    try:
        raw = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, source) from None
    report = _Reporter(source, raw)
    nul = "must not contain a NUL character (\\u0000)"
    problems = [_Problem(loc, nul) for loc in _nul_characters(raw)]
    problems += [
        _Problem(loc, f"must be a finite number, got {value}")
        for loc, value in _non_finite_numbers(raw)
    ]
    spec, errors = _validate(_conveniences(raw))
    problems = _merge([*problems, *map(_problem, errors)])
    if problems or spec is None:
        raise report.all_of(problems)
    repo, problem = _resolve_repo(raw["repo"], base_dir)
    semantic = [problem] if problem else []
    if repo is not None:
        spec = spec.model_copy(update={"repo": repo})
    semantic += [
        *_check_model(spec),
        *_check_texts(spec, raw),
        *_check_requirements(spec),
        *_check_steps(spec),
        *(_check_edits(spec) if repo is not None else ()),  # edits are checked in the repo
        *_check_verifiers(spec),
        *_check_runnable(spec, raw),
    ]
    if semantic:
        raise report.all_of(semantic)
    if spec.model is not None:
        spec = spec.model_copy(update={"model": spec.model.strip()})
    return spec


# A directive file is a few kilobytes; anything far bigger is the wrong file.
MAX_FILE_BYTES = 10_000_000
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def _read_regular(path: Path) -> bytes:
    """The file's bytes, if it is a regular file of at most MAX_FILE_BYTES.
    A named pipe would block the read for ever (the app's screen with it)
    and /dev/zero would fill the memory, so what is opened is looked at
    first, without blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(info.st_mode):
            raise _NotAFile
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _TooBig
    return data


class _NotAFile(Exception):
    pass


class _TooBig(Exception):
    pass


def load_directive_file(path: Path) -> DirectiveSpec:
    """Read and check a directive file; its `repo` is relative to its folder."""
    source = str(path)
    try:
        data = _read_regular(Path(path))
    except _NotAFile:
        raise DirectiveFileError(
            source, "is not a regular file (a named pipe or a device): give a .toml file"
        ) from None
    except _TooBig:
        raise DirectiveFileError(
            source, f"is over {MAX_FILE_BYTES // 1_000_000} MB: a directive file is a few KB"
        ) from None
    except FileNotFoundError:
        raise DirectiveFileError(source, "no such file") from None
    except IsADirectoryError:
        raise DirectiveFileError(source, "is a folder, not a directive file") from None
    except PermissionError:
        raise DirectiveFileError(source, "cannot read it (permission denied)") from None
    except OSError as exc:
        raise DirectiveFileError(source, f"cannot read it ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        utf16 = " (it is UTF-16: save it as UTF-8)" if data.startswith(_UTF16_MARKS) else ""
        raise DirectiveFileError(
            source, f"not UTF-8 text (byte 0x{bad} at offset {exc.start}){utf16}", line=line
        ) from None
    return parse_directive_text(text, base_dir=Path(path).resolve().parent, source=source)


def api_key_needs(spec: DirectiveSpec) -> list[str]:
    """What in `spec` cannot run without an API key, as the file says it
    (`planner = "anthropic"`, `executor = "agent"`, a step's executor)."""
    chosen = [("planner", spec.planner, "")]
    # The directive's executor runs the steps that name none: an explicit
    # plan whose every step names its own never uses it.
    planned_by_llm = spec.planner is not PlannerKind.EXPLICIT
    if planned_by_llm or any(not s.executor for s in spec.steps):
        chosen.append(("executor", spec.executor, ""))
    chosen += [("executor", s.executor, f" (step {s.name!r})") for s in spec.steps if s.executor]
    return [f'{key} = "{kind.value}"{where}' for key, kind, where in chosen if kind in _NEEDS_A_KEY]


def check_api_key(
    spec: DirectiveSpec, source: str, env: typing.Mapping[str, str] | None = None
) -> None:
    """For `directive-tui run`, which creates and starts the directive at
    once: a missing key is known now, so refuse before anything is written
    rather than store a directive that pauses at planning. Loading itself
    needs no key (the app and tests create directives to run later)."""
    env = os.environ if env is None else env
    needs = api_key_needs(spec)
    if needs and not env.get(API_KEY_ENV, "").strip():
        raise DirectiveFileError(
            source,
            f"{' and '.join(needs)} need{'s' if len(needs) == 1 else ''} {API_KEY_ENV}, "
            "which is not set: set it, or use a planner and executor that need no key "
            '(planner = "explicit" with [[steps]], executor = "shell")',
        )
