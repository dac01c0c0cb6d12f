"""`directive-tui check FILE`: what running a directive file would do,
told without running it or writing anything. Mistakes a run would meet
only later (a step naming a check the repository lacks, a missing key, a
repository git cannot give worktrees) are refused here as `run` refuses a
malformed file (exit 2); what only deserves a word (a tool not installed,
uncommitted changes, shared environments) is said."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tui.cli.exits import EXIT_OK, UsageError


class _Judge:
    """Stands in for the LLM judge when choosing a step's checks: only its
    name counts there, and no client is built for a check."""

    name = kind = "llm_judge"


async def check_command(db: Path, path: Path, out: Any) -> int:
    """Print what `run FILE` would do; exit 2 naming every problem found."""
    from engine.directive_file import DirectiveFileError, api_key_needs, check_api_key
    from engine.text import plural
    from engine.workspace_ops import default_work_dir
    from tui.cli.entry import load_spec

    spec = load_spec(path)  # a malformed file: the same message as `run`
    problems: list[str] = []
    try:
        check_api_key(spec, str(path))
    except DirectiveFileError as exc:
        problems.append(str(exc).removeprefix(f"{path}: "))
    placed, where = await _placement(spec, default_work_dir(db), problems)
    lines = [
        f"  repo      {where}",
        f"  runs      planner {spec.planner.value}, executor {spec.executor.value},"
        f" autonomy {spec.autonomy.value}",
    ]
    needs = api_key_needs(spec)
    if needs or spec.verifiers.llm_judge:
        lines.append(f"  claude    {_claude(spec, needs)}")
    lines.append(f"  limits    {_limits(spec)}")
    every, checks = _checks(spec, problems)
    lines += checks
    lines += [f"  note      {note}" for note in await _notes(spec, every, placed)]
    if problems:
        count = plural(len(problems), "problem")
        raise UsageError(f"{path}: cannot run ({count}):\n" + "\n".join(f"  {p}" for p in problems))
    print(f"{path}: ready to run (nothing was written)", file=out)
    for line in lines:
        print(line, file=out)
    return EXIT_OK


async def _placement(
    spec: Any, work_dir: Path, problems: list[str]
) -> tuple[tuple[Path, str, list[str]] | None, str]:
    """Where the steps would run (`engine.worktrees.placement`), in words."""
    from engine.git import GitError
    from engine.worktrees import placement

    repo = Path(spec.repo)
    if not spec.workspace.isolate:
        return None, f"{repo} (steps run in the folder itself: isolate = false)"
    try:
        found = await placement(repo, work_dir)
    except (GitError, ValueError) as exc:
        problems.append(f"steps cannot run in worktrees of their own: {exc}")
        return None, f"{repo} (in git, but no worktree can be made)"
    if found is None:
        return None, f"{repo} (not a git work tree: steps run in it directly, sharing one tree)"
    return found, f"{repo} (git, at {found[1][:12]}: each attempt in a worktree of its own)"


def _claude(spec: Any, needs: list[str]) -> str:
    model = _model(spec)
    if not needs and not _key_set():
        return "not used: the LLM judge is off without ANTHROPIC_API_KEY"
    uses = ", ".join([*needs, *(["the LLM judge"] if spec.verifiers.llm_judge else [])])
    return f"{model} for {uses} (ANTHROPIC_API_KEY {'set' if _key_set() else 'not set'})"


def _model(spec: Any) -> str:
    from engine.pricing import DEFAULT_MODEL

    return spec.model or os.environ.get("DIRECTIVE_MODEL", "").strip() or DEFAULT_MODEL


def _limits(spec: Any) -> str:
    from tui.cli.limits import LIMIT_OPTIONS, NO_LIMIT

    values = ((name, getattr(spec.limits, name)) for name, _, _ in LIMIT_OPTIONS)
    return ", ".join(f"{name} {NO_LIMIT if v is None else f'{v:g}'}" for name, v in values)


def _checks(spec: Any, problems: list[str]) -> tuple[list[Any], list[str]]:
    """Every check the directive has, and the lines saying them: those
    found in the repository, the plan when the file gives it, and what
    would judge each step."""
    from engine.layout import layers_line
    from engine.services import judged_as
    from engine.verifiers.detect import checks_found
    from engine.verifiers.registry import build_verifiers

    judge = _Judge() if spec.verifiers.llm_judge and _key_set() else None
    judge_off = spec.verifiers.llm_judge and judge is None
    repo = Path(spec.repo)
    try:
        every = build_verifiers(spec, repo, None, llm_judge=judge)
    except (ValueError, OSError) as exc:  # VerifierConfigError; a folder it may not read
        problems.append(f"verifiers: {exc}")
        return [], []
    lines = []
    detected = [v for v in every if getattr(v, "found_by", "")]
    if detected:
        lines.append(f"  checks    {checks_found(detected).removeprefix('checks found in the ')}")
    elif spec.verifiers.auto_detect:
        lines.append("  checks    none found in the repository")
    if not spec.steps:
        lines.append(f"  steps     planned by the {spec.planner.value} planner when it runs")
        lines.append(f"  judged by {_names(every, judge_off)}")
        return every, lines
    lines.append(f"  steps     {layers_line(spec.steps)}")
    for step in spec.steps:
        judged = judged_as(step)
        try:
            chosen = build_verifiers(spec, repo, judged, llm_judge=judge)
        except (ValueError, OSError) as exc:  # a ValueError's message names the step
            problems.append(
                str(exc) if isinstance(exc, ValueError) else f"step {step.name!r}: {exc}"
            )
            continue
        wants_judge = judged.verifiers is None or "llm_judge" in judged.verifiers
        said = _names(chosen, judge_off and wants_judge)
        if not chosen and judged is not step:  # a reading step with no judge
            said = "llm_judge (off here: no ANTHROPIC_API_KEY): a person looks if it changes files"
        lines.append(f"  {step.name:<9} {said}")
    return every, lines


def _names(verifiers: list[Any], judge_off: bool) -> str:
    """The checks by name, the gating ones marked; none, what that means."""
    names = [v.name + (" (gates)" if getattr(v, "gating", False) else "") for v in verifiers]
    if judge_off:
        names.append("llm_judge (off here: no ANTHROPIC_API_KEY)")
    if not verifiers:
        none = "no other check" if judge_off else "no check"
        return ", ".join([*names, f"{none}: passes on its command's result"])
    return ", ".join(names)


def _key_set() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY", "").strip())


async def _notes(
    spec: Any, every: list[Any], placed: tuple[Path, str, list[str]] | None
) -> list[str]:
    """What a run would say before its first step: a check whose tool is
    missing here, uncommitted changes left out, environments shared with
    the worktrees, empty submodules."""
    from engine.directive_file import api_key_needs
    from engine.pricing import model_warnings
    from engine.workspace_ops import checkout_notes

    notes = [
        f"{v.name} is used by the repository but cannot run here: {v.missing}"
        for v in every
        if getattr(v, "missing", "")
    ]
    if api_key_needs(spec) or (spec.verifiers.llm_judge and _key_set()):
        notes += model_warnings(_model(spec))  # no price known, retiring soon
    if placed is None:
        return notes
    top, _, dirty = placed
    return notes + await checkout_notes(Path(spec.repo), top, dirty, spec.workspace.links)
