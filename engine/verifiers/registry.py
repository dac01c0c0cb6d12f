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
from engine.verifiers.detect import auto_detect_verifiers
from engine.verifiers.runners import CommandVerifier

LLM_JUDGE_NAME = "llm_judge"  # a step may list it even when no judge is configured
EXTRA_KIND = "command"

# what an override may change: VerifierSpec and CommandVerifier share these names
OVERRIDABLE = ("command", "parser", "weight", "gating", "timeout_s")


class VerifierConfigError(ValueError):
    """The directive's verifier configuration cannot be applied."""


def _command(spec: VerifierSpec) -> str | list[str] | None:
    return list(spec.command) if isinstance(spec.command, list) else spec.command


def _override(verifier: CommandVerifier, spec: VerifierSpec) -> CommandVerifier:
    """`verifier` with the fields `spec` sets explicitly (defaults do not count)."""
    changes = {
        key: getattr(spec, key)
        for key in OVERRIDABLE
        if key in spec.model_fields_set and getattr(spec, key) is not None
    }
    if "command" in changes:
        changes["command"] = _command(spec)
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
    seen: set[str] = set()
    for spec in extra:
        if spec.name in seen:
            raise VerifierConfigError(f"verifier {spec.name!r} appears twice in verifiers.extra")
        seen.add(spec.name)
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
    known = {v.name for v in verifiers} | {LLM_JUDGE_NAME}
    unknown = [name for name in step.verifiers if name not in known]
    if unknown:
        available = ", ".join(sorted(known)) or "none"
        raise VerifierConfigError(
            f"step {step.name!r} lists unknown verifier(s) {', '.join(map(repr, unknown))}; "
            f"configured verifiers: {available}"
        )
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
            raise VerifierConfigError(
                f"verifier name {llm_judge.name!r} is taken by the LLM judge; rename the other one"
            )
        verifiers.append(llm_judge)
    return _restrict(verifiers, step) if step is not None else verifiers
