"""Chain validation, the template and explicit planners, replan composition
and the planner registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.models import Directive, DirectiveSpec, Requirement, Step, StepSpec
from engine.planner import (
    PLANNERS,
    ChainValidationError,
    ExplicitPlanner,
    PlannerUnavailableError,
    ReplanContext,
    TemplatePlanner,
    compose_replan,
    make_planner,
    validate_chain,
)


def s(name: str, *deps: str, type: str = "implement") -> StepSpec:
    return StepSpec(name=name, depends_on=list(deps), type=type)


def invalid(steps: list[StepSpec]) -> str:
    with pytest.raises(ChainValidationError) as caught:
        validate_chain(steps)
    return str(caught.value)


def directive(tmp_path: Path, **spec: object) -> Directive:
    fields = {"title": "T", "goal": "Print JSON", "repo": tmp_path, **spec}
    return Directive(spec=DirectiveSpec(**fields))


# -- validate_chain ----------------------------------------------------------


def test_order_keeps_file_order_when_it_is_valid():
    assert validate_chain([s("a"), s("b", "a"), s("c"), s("d", "b", "c")]) == ["a", "b", "c", "d"]


def test_order_puts_dependencies_first_ties_in_file_order():
    steps = [s("test", "impl"), s("docs"), s("impl", "research"), s("research")]
    assert validate_chain(steps) == ["docs", "research", "impl", "test"]


def test_empty_chain():
    assert invalid([]) == "the chain has no steps"


def test_duplicate_names_name_every_one():
    message = invalid([s("x"), s("x"), s("y"), s("z"), s("x"), s("y")])
    assert (
        message
        == "duplicate step name 'x' (steps 1, 2 and 5); duplicate step name 'y' (steps 3 and 6)"
    )


def test_unknown_dependency():
    message = invalid([s("a"), s("b", "zz"), s("c", "a", "yy")])
    assert message == "step 'b' depends on unknown step 'zz'; step 'c' depends on unknown step 'yy'"


def test_self_dependency():
    assert invalid([s("a", "a"), s("b")]) == "step 'a' depends on itself"


def test_cycle_is_written_in_running_order_from_the_first_step():
    # b needs a, c needs b, a needs c
    message = invalid([s("x"), s("a", "c"), s("b", "a"), s("c", "b")])
    assert message == "cycle: a -> b -> c -> a"


def test_every_separate_cycle_is_named():
    message = invalid([s("a", "b"), s("b", "a"), s("ok"), s("c", "d"), s("d", "c")])
    assert "cycle: a -> b -> a" in message
    assert "cycle: c -> d -> c" in message


def test_unknown_step_type_names_type_and_step():
    message = invalid([s("a"), s("b", type="cook"), s("c", type="bake")])
    assert message.startswith("step 'b' has unknown type 'cook'; step 'c' has unknown type 'bake'")
    assert "(known types: research, design, implement, test, review, docs, shell)" in message


def test_every_known_step_type_is_accepted():
    from engine.models import StepType

    steps = [s(t.value, type=t.value) for t in StepType]
    assert validate_chain(steps) == [t.value for t in StepType]


# -- planners ------------------------------------------------------------------


async def test_template_planner_builds_research_implement_test(tmp_path):
    d = directive(
        tmp_path,
        requirements=[Requirement(id="R1", text="valid JSON"), Requirement(id="R2", text="flag")],
        acceptance_criteria=["pytest passes"],
    )
    chain = await TemplatePlanner().plan(d)
    research, implement, test = chain.steps
    assert [st.name for st in chain.steps] == ["research", "implement", "test"]
    assert [st.type for st in chain.steps] == ["research", "implement", "test"]
    assert implement.depends_on == ["research"] and test.depends_on == ["implement"]
    assert research.requirement_ids == []
    assert implement.requirement_ids == test.requirement_ids == ["R1", "R2"]
    assert all("Print JSON" in st.description for st in chain.steps)
    assert "R1: valid JSON" in implement.description
    assert "pytest passes" in test.description
    assert validate_chain(chain.steps) == ["research", "implement", "test"]


async def test_template_replan_gives_the_same_steps_and_says_why(tmp_path):
    d = directive(tmp_path)
    first = await TemplatePlanner().plan(d)
    again = await TemplatePlanner().plan(d, ReplanContext(reason="tests kept failing"))
    assert again.steps == first.steps
    assert "tests kept failing" in again.rationale


async def test_explicit_planner_returns_the_file_steps(tmp_path):
    steps = [s("build"), s("check", "build", type="shell")]
    d = directive(tmp_path, planner="explicit", steps=steps)
    chain = await ExplicitPlanner().plan(d)
    assert chain.steps == steps
    chain.steps[0].description = "changed"
    assert d.spec.steps[0].description == ""  # a copy, not the directive's own
    replanned = await ExplicitPlanner().plan(d, ReplanContext(reason="blocked"))
    assert replanned.steps == steps


async def test_explicit_planner_without_steps(tmp_path):
    with pytest.raises(ChainValidationError, match=r"needs steps: add \[\[steps\]\]"):
        await ExplicitPlanner().plan(directive(tmp_path))


async def test_explicit_planner_validates(tmp_path):
    d = directive(tmp_path, steps=[s("a", "b"), s("b", "a")])
    with pytest.raises(ChainValidationError, match="cycle: a -> b -> a"):
        await ExplicitPlanner().plan(d)


# -- compose_replan ------------------------------------------------------------


def test_replan_keeps_passed_steps_first_and_unchanged():
    kept = [s("research"), s("implement", "research")]
    planned = [
        s("research"),
        s("implement", "research", type="design"),
        s("fix", "implement"),
        s("test", "fix"),
    ]
    chain = compose_replan(kept, planned)
    assert [st.name for st in chain] == ["research", "implement", "fix", "test"]
    assert chain[0] is kept[0] and chain[1] is kept[1]
    assert chain[1].type == "implement"  # the kept one, not the planned one


def test_replan_drops_kept_dependencies_the_new_chain_lacks():
    kept = [s("b", "skipped")]
    chain = compose_replan(kept, [s("c", "b")])
    assert chain[0].depends_on == []
    assert kept[0].depends_on == ["skipped"]  # the caller's step is not changed


def test_replan_rejects_a_chain_that_becomes_cyclic():
    kept = [s("a", "b")]  # passed after b, which was skipped
    planned = [s("b", "a")]  # the new plan puts b after a
    with pytest.raises(ChainValidationError, match="cycle: a -> b -> a"):
        compose_replan(kept, planned)


def test_replan_rejects_a_planned_cycle():
    with pytest.raises(ChainValidationError, match="cycle: x -> y -> x"):
        compose_replan([s("a")], [s("x", "a", "y"), s("y", "x")])


def test_replan_rejects_unknown_dependency():
    with pytest.raises(ChainValidationError, match="step 'x' depends on unknown step 'gone'"):
        compose_replan([s("a")], [s("x", "gone")])


async def test_replan_context_with_stored_steps(tmp_path):
    """The engine hands kept Steps; their specs compose with a new plan."""
    d = directive(tmp_path)
    first = await TemplatePlanner().plan(d)
    kept = [Step(chain_id="c", directive_id=d.id, name="research", spec=first.steps[0])]
    again = await TemplatePlanner().plan(d, ReplanContext(reason="r", kept=kept))
    chain = compose_replan([k.spec for k in kept], again.steps)
    assert [st.name for st in chain] == ["research", "implement", "test"]


# -- registry --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "cls"), [("template", TemplatePlanner), ("explicit", ExplicitPlanner)]
)
def test_make_planner_by_kind(kind, cls):
    planner = make_planner(kind)
    assert isinstance(planner, cls) and planner.kind == kind


def test_every_planner_kind_is_registered():
    from engine.models import PlannerKind

    assert set(PLANNERS) == set(PlannerKind)


def test_unknown_planner_kind():
    with pytest.raises(ValueError, match=r"unknown planner kind 'magic' \(known: template"):
        make_planner("magic")


def test_anthropic_planner_needs_a_client():
    with pytest.raises(PlannerUnavailableError, match="needs ANTHROPIC_API_KEY"):
        make_planner("anthropic")


def test_importing_the_planner_does_not_import_anthropic():
    code = "import sys, engine.planner; print('anthropic' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.stdout.strip() == "False"
