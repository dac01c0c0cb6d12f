"""The verifiers one step is evaluated with.

Detected verifiers (when the directive keeps `auto_detect`), merged with
the directive's `verifiers.extra`: an entry with a detected name overrides
only the fields it sets (command, parser, weight, gating, timeout) or, with
`enabled = false`, removes it; a new name adds a command verifier (parser
`exit_code`, not gating, unless it says otherwise). A step's own
`verifiers` list then keeps only the names it lists. The LLM judge, when
one is given, goes last.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from engine.models import DirectiveSpec, StepSpec, VerifierSpec
from engine.verifiers.base import Verifier
from engine.verifiers.detect import RULES, auto_detect_verifiers
from engine.verifiers.runners import CommandVerifier

LLM_JUDGE_NAME = "llm_judge"  # a step may list it even when no judge is configured
EXTRA_KIND = "command"
DETECTABLE = frozenset(rule.name for rule in RULES)  # what auto_detect can ever find

Loc = tuple[str | int, ...]

# what an override may change: VerifierSpec and CommandVerifier share these names
OVERRIDABLE = ("command", "parser", "weight", "gating", "timeout_s")


class VerifierConfigError(ValueError):
    """The directive's verifier configuration cannot be applied. `loc` is the
    key of the directive file it is about, so the loader can name it."""

    def __init__(self, message: str, loc: Loc = ()) -> None:
        super().__init__(message)
        self.loc = loc


# --------------------------------------------------------------------------
# Mistakes visible before anything runs: the directive file loader refuses
# them (check_config), and build_verifiers meets the same ones at run time
# --------------------------------------------------------------------------


def _check_unique(extra: list[VerifierSpec]) -> None:
    first: dict[str, int] = {}
    for i, spec in enumerate(extra):
        if spec.name in first:
            raise VerifierConfigError(
                f"verifier {spec.name!r} appears twice in verifiers.extra "
                f"(also verifiers.extra[{first[spec.name]}])",
                ("verifiers", "extra", i, "name"),
            )
        first[spec.name] = i


def _blank(command: str | list[str] | None) -> bool:
    """Given, but empty: `""`, `"  "`, `[]`, `[""]` (None is not given)."""
    if command is None:
        return False
    return not "".join([command] if isinstance(command, str) else command).strip()


def _check_blank(extra: list[VerifierSpec]) -> None:
    """An empty command would run nothing and score as a failure."""
    for i, spec in enumerate(extra):
        if _blank(spec.command):
            raise VerifierConfigError(
                f"verifier {spec.name!r} has an empty command: give one, or leave the key "
                "out to change only other fields of a detected verifier",
                ("verifiers", "extra", i, "command"),
            )


def _judge_name_taken(loc: Loc = ()) -> VerifierConfigError:
    return VerifierConfigError(
        f"verifier name {LLM_JUDGE_NAME!r} is taken by the LLM judge; rename the other one", loc
    )


def _unknown_names(step: StepSpec, known: set[str], loc: Loc = ()) -> None:
    unknown = [name for name in step.verifiers or () if name not in known]
    if unknown:
        available = ", ".join(sorted(known)) or "none"
        raise VerifierConfigError(
            f"step {step.name!r} lists unknown verifier(s) {', '.join(map(repr, unknown))}; "
            f"it can name: {available}",
            loc,
        )


def nameable(spec: DirectiveSpec) -> set[str]:
    """Every verifier name a step of `spec` may list, wherever it runs: what
    detection can find (when it is on) and the extras, less the extras
    switched off, and the judge."""
    extra = spec.verifiers.extra
    detectable = DETECTABLE if spec.verifiers.auto_detect else frozenset()
    off = {v.name for v in extra if not v.enabled}
    return (detectable | {v.name for v in extra}) - off | {LLM_JUDGE_NAME}


def check_config(spec: DirectiveSpec) -> None:
    """Refuse the verifier mistakes a directive shows before anything runs:
    a name given twice or taken by the judge, an empty command, an extra
    with no command that detection can never supply, a step naming a
    verifier that cannot exist. Each VerifierConfigError carries its key."""
    extra = spec.verifiers.extra
    _check_unique(extra)
    _check_blank(extra)
    detectable = DETECTABLE if spec.verifiers.auto_detect else frozenset()
    for i, v in enumerate(extra):
        if v.name == LLM_JUDGE_NAME:
            raise _judge_name_taken(("verifiers", "extra", i, "name"))
        if v.command is None and v.enabled and v.name not in detectable:
            why = (
                "auto_detect is off" if v.name in DETECTABLE else "no tool of that name is detected"
            )
            raise VerifierConfigError(
                f"verifier {v.name!r} has no command, and {why}: give it a command",
                ("verifiers", "extra", i, "command"),
            )
    known = nameable(spec)
    for i, step in enumerate(spec.steps):
        _unknown_names(step, known, ("steps", i, "verifiers"))


# --------------------------------------------------------------------------
# Building them
# --------------------------------------------------------------------------


def _command(spec: VerifierSpec) -> str | list[str] | None:
    return list(spec.command) if isinstance(spec.command, list) else spec.command


def _override(verifier: CommandVerifier, spec: VerifierSpec) -> CommandVerifier:
    """`verifier` with the fields `spec` sets explicitly (defaults do not count)."""
    changes = {
        key: getattr(spec, key)
        for key in OVERRIDABLE
        if key in spec.model_fields_set and getattr(spec, key) is not None
    }
    if "command" in changes:  # the user's own command: runnable, tool found or not
        changes["command"] = _command(spec)
        changes["missing"] = ""
        changes["runs_with"] = ""
    if "command" in changes or "gating" in changes:
        # the user's own runner: one that runs no test fails, as its parser says
        changes["no_tests_exit"] = None
    return replace(verifier, env=dict(verifier.env), **changes)


def _new(spec: VerifierSpec, repo: Path) -> CommandVerifier:
    command = _command(spec)
    if not command:
        raise VerifierConfigError(
            f"verifier {spec.name!r} in verifiers.extra has no command, and no verifier of "
            f"that name was detected in {repo} (is the tool used there and installed?); "
            "give it a command"
        )
    return CommandVerifier(
        name=spec.name,
        kind=EXTRA_KIND,
        command=command,
        parser=spec.parser or "exit_code",
        weight=spec.weight,
        gating=bool(spec.gating),
        timeout_s=spec.timeout_s,
    )


def _merge(
    detected: list[CommandVerifier], extra: list[VerifierSpec], repo: Path
) -> list[CommandVerifier]:
    _check_unique(extra)
    _check_blank(extra)
    by_name = {v.name: v for v in detected}
    overrides = {s.name: s for s in extra if s.name in by_name}
    merged = [
        _override(v, overrides[v.name]) if v.name in overrides else v
        for v in detected
        if overrides.get(v.name) is None or overrides[v.name].enabled
    ]
    merged += [_new(s, repo) for s in extra if s.name not in by_name and s.enabled]
    return merged


def _restrict(verifiers: list[Verifier], step: StepSpec) -> list[Verifier]:
    if step.verifiers is None:
        return verifiers
    _unknown_names(step, {v.name for v in verifiers} | {LLM_JUDGE_NAME})
    wanted = set(step.verifiers)
    return [v for v in verifiers if v.name in wanted]


def build_verifiers(
    spec: DirectiveSpec,
    repo: Path,
    step: StepSpec | None = None,
    llm_judge: Verifier | None = None,
) -> list[Verifier]:
    """The verifiers for `step` (or the whole directive when no step):
    detected + configured, restricted to the step's list, judge last.

    A step that lists verifiers lists the judge by its name too; one that
    lists none (`[]`) is evaluated by none.
    """
    detected = auto_detect_verifiers(repo) if spec.verifiers.auto_detect else []
    verifiers: list[Verifier] = list(_merge(detected, spec.verifiers.extra, Path(repo)))
    if llm_judge is not None:
        if any(v.name == llm_judge.name for v in verifiers):
            raise _judge_name_taken()
        verifiers.append(llm_judge)
    return _restrict(verifiers, step) if step is not None else verifiers
