"""Property tests (hypothesis): random chains through validation and layout,
and random sequences of engine commands that must never leave an illegal
state.

Chains: a valid DAG (in any file order) is accepted with a running order
that respects every edge, and laid out with every edge pointing to a later
layer; an injected cycle, self-dependency, dangling dependency or duplicate
name is refused with a message that names it (a reported cycle is a real
cycle of the graph).

Commands: a state machine drives the real engine (real store on a real
SQLite file; the scripted executor and verifier of tests/engine_kit.py) with
start, pause, resume, stop, approve, deny, request changes, retry, skip,
replan, raise limits and letting time pass, in any order. A command may be
refused, but only with the engine's own clear errors; after every command
the database passes `check_invariants`, no engine task has crashed (nothing
logged at ERROR, no background task failed unseen) and a pause holds until
someone resumes; after the engine is closed nothing is left mid-attempt and
the event log holds no "engine error". A second machine runs the same
commands on a directive in a git repository (attempts in worktrees, a
checkpoint per pass) and adds resets to any checkpoint.

The machines found nine engine bugs (races between a command and the
driver, mostly around planning and replanning) and one wrong rule in the
checker, now fixed; each is pinned by a deterministic test of its
interleaving (at the bottom of this file, or beside the feature it touches).
CI runs 60 and 20 examples; `PROPERTY_EXAMPLES=800` hunts longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import re
import string
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from engine.bus import EventBus
from engine.directive_file import DirectiveFileError, parse_directive_text
from engine.engine import ApprovalAlreadyResolved, DirectiveEngine, EngineError
from engine.events import EngineEvent, Notice
from engine.invariants import check_invariants_sync, describe
from engine.layout import count_crossings, layout_chain
from engine.models import (
    ApprovalKind,
    Autonomy,
    DirectiveStatus,
    Severity,
    StepSpec,
)
from engine.planner import ChainValidationError, ExplicitPlanner, validate_chain
from engine.store import NotFound, Store
from engine.transitions import DIRECTIVE_TERMINAL, InvalidTransition
from tests.conftest import init_git_repo
from tests.engine_kit import Script, chain_spec, services

FIGURES: Counter[str] = Counter()


@pytest.fixture(autouse=True, scope="module")
def report_figures() -> Iterator[None]:
    """`-s` shows what was checked (docs/RELIABILITY.md quotes it)."""
    yield
    commands = {k: v for k, v in sorted(FIGURES.items()) if k.endswith(("accepted", "refused"))}
    endings = {k[17:]: v for k, v in sorted(FIGURES.items()) if k.startswith("sequences ending")}
    print(
        f"\nproperties: {FIGURES['chains']} random chains checked; "
        f"{FIGURES['command_sequences']} command sequences, {FIGURES['commands']} commands, "
        f"{FIGURES['invariant checks']} database checks; ended {endings}; {commands}"
    )


# --------------------------------------------------------------------------
# Random chains
# --------------------------------------------------------------------------

NAME = st.text(alphabet=string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=8)


@st.composite
def dags(draw: st.DrawFn, max_steps: int = 24) -> list[StepSpec]:
    """A DAG: each step depends only on steps drawn before it, then the
    file order is shuffled (a valid file need not be in running order)."""
    names = draw(st.lists(NAME, min_size=1, max_size=max_steps, unique=True))
    deps = {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=4)) if i else []
        for i, name in enumerate(names)
    }
    order = draw(st.permutations(names))
    return [StepSpec(name=n, type="implement", depends_on=deps[n]) for n in order]


def edges(steps: list[StepSpec]) -> list[tuple[str, str]]:
    return [(dep, s.name) for s in steps for dep in s.depends_on]


def ancestors(steps: list[StepSpec], name: str) -> set[str]:
    by_name = {s.name: s for s in steps}
    seen: set[str] = set()
    todo = list(by_name[name].depends_on)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(by_name[n].depends_on)
    return seen


@settings(max_examples=150, deadline=None)
@given(dags())
def test_a_valid_chain_is_accepted_in_an_order_that_respects_every_edge(
    steps: list[StepSpec],
) -> None:
    order = validate_chain(steps)
    assert sorted(order) == sorted(s.name for s in steps)
    position = {name: i for i, name in enumerate(order)}
    for dep, step in edges(steps):
        assert position[dep] < position[step], (dep, step, order)
    # a file already in running order comes back unchanged
    by_name = {s.name: s for s in steps}
    assert validate_chain([by_name[n] for n in order]) == order
    FIGURES["chains"] += 1


@settings(max_examples=150, deadline=None)
@given(dags())
def test_layout_puts_every_edge_forward_on_longest_path_layers(steps: list[StepSpec]) -> None:
    positions = layout_chain(steps)
    assert positions == layout_chain(steps)  # the same chain, the same picture
    by_name = {s.name: s for s in steps}
    for name, (layer, _) in positions.items():
        deps = by_name[name].depends_on
        assert layer == 1 + max((positions[d][0] for d in deps), default=-1)
    rows: dict[int, list[int]] = {}
    for layer, row in positions.values():
        rows.setdefault(layer, []).append(row)
    for layer, taken in rows.items():
        assert sorted(taken) == list(range(len(taken))), (layer, taken)
    # never worse than the file order it starts from
    file_order: dict[str, tuple[int, int]] = {}
    counts: dict[int, int] = {}
    for s in steps:
        layer = positions[s.name][0]
        file_order[s.name] = (layer, counts.get(layer, 0))
        counts[layer] = counts.get(layer, 0) + 1
    assert count_crossings(steps, positions) <= count_crossings(steps, file_order)
    FIGURES["chains"] += 1


def reported_cycles(message: str) -> list[list[str]]:
    return [part.split(" -> ") for part in re.findall(r"cycle: ([^;()]+?)(?: \(|;|$)", message)]


@settings(max_examples=150, deadline=None)
@given(dags(), st.data())
def test_an_injected_cycle_is_refused_naming_a_real_cycle(
    steps: list[StepSpec], data: st.DataObject
) -> None:
    candidates = [s.name for s in steps if ancestors(steps, s.name)]
    if not candidates:  # no edge to close into a cycle: make the smallest one
        a = steps[0].name
        steps[0] = steps[0].model_copy(update={"depends_on": [a]})
        with pytest.raises(
            ChainValidationError, match=f"step {re.escape(repr(a))} depends on itself"
        ):
            validate_chain(steps)
        return
    low = data.draw(st.sampled_from(sorted(candidates)))
    high = data.draw(st.sampled_from(sorted(ancestors(steps, low))))
    # `high` already comes before `low`; making `high` wait for `low` closes a cycle
    steps = [
        s.model_copy(update={"depends_on": [*s.depends_on, low]}) if s.name == high else s
        for s in steps
    ]
    with pytest.raises(ChainValidationError) as refused:
        validate_chain(steps)
    message = str(refused.value)
    cycles = reported_cycles(message)
    assert cycles, message
    needs = {(dep, s.name) for s in steps for dep in s.depends_on}
    for cycle in cycles:
        assert cycle[0] == cycle[-1], message
        for before, after in zip(cycle, cycle[1:], strict=False):
            assert (before, after) in needs, f"{before} -> {after} is not an edge: {message}"
    FIGURES["chains"] += 1


@settings(max_examples=100, deadline=None)
@given(dags(), NAME, st.data())
def test_a_dangling_dependency_is_refused_naming_it(
    steps: list[StepSpec], missing: str, data: st.DataObject
) -> None:
    missing = "x" + missing if any(s.name == missing for s in steps) else missing
    if any(s.name == missing for s in steps):
        return
    index = data.draw(st.integers(0, len(steps) - 1))
    victim = steps[index]
    steps[index] = victim.model_copy(update={"depends_on": [*victim.depends_on, missing]})
    with pytest.raises(ChainValidationError) as refused:
        validate_chain(steps)
    assert f"step {victim.name!r} depends on unknown step {missing!r}" in str(refused.value)
    FIGURES["chains"] += 1


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_a_duplicate_name_is_refused_naming_it(steps: list[StepSpec], data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(steps))
    copy = original.model_copy(update={"depends_on": []})
    at = data.draw(st.integers(0, len(steps)))
    steps.insert(at, copy)
    with pytest.raises(ChainValidationError) as refused:
        validate_chain(steps)
    assert f"duplicate step name {original.name!r}" in str(refused.value)
    FIGURES["chains"] += 1


def directive_toml(steps: list[StepSpec], repo: Path) -> str:
    head = (
        f'title = "random chain"\ngoal = "parse"\nrepo = "{repo}"\nexecutor = "noop"\n'
        "[verifiers]\nauto_detect = false\n"
    )
    body = "".join(
        f'\n[[steps]]\nname = "{s.name}"\ndepends_on = [{", ".join(repr(d) for d in s.depends_on)}]\n'
        for s in steps
    )
    return head + body.replace("'", '"')


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(max_steps=12), st.booleans())
def test_directive_files_with_random_chains_are_accepted_or_refused_at_the_boundary(
    steps: list[StepSpec], close_a_cycle: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        if close_a_cycle:
            first = steps[0]
            steps[0] = first.model_copy(update={"depends_on": [*first.depends_on, first.name]})
            with pytest.raises(DirectiveFileError) as refused:
                parse_directive_text(directive_toml(steps, repo), base_dir=repo, source="d.toml")
            assert str(refused.value) == (
                f"d.toml: steps[0].depends_on[{len(first.depends_on)}] (step {first.name!r}):"
                " the step depends on itself"
            )
        else:
            spec = parse_directive_text(directive_toml(steps, repo), base_dir=repo)
            assert [s.name for s in spec.steps] == [s.name for s in steps]
            assert [s.depends_on for s in spec.steps] == [s.depends_on for s in steps]
    FIGURES["chains"] += 1


# --------------------------------------------------------------------------
# Random engine commands
# --------------------------------------------------------------------------

# The refusals a command may answer with: each carries a message for a person.
REFUSALS = (EngineError, InvalidTransition, ApprovalAlreadyResolved, NotFound)
STEPS = [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])]
SETTLE_S = 10.0
SCORES = st.lists(st.sampled_from([1.0, 0.9, 0.6, 0.3]), min_size=1, max_size=3)


class EngineErrors(logging.Handler):
    """What the engine logs when one of its own tasks crashed (a driver or a
    step attempt): a bug, never a way of answering a command."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [
            r.getMessage() + (f": {r.exc_info[1]!r}" if r.exc_info else "") for r in self.records
        ]


def engine_error_notices(events: list[EngineEvent]) -> list[str]:
    """The 'engine error' lines a crashed task leaves in the event log."""
    return [
        e.message
        for e in events
        if isinstance(e, Notice)
        and e.severity is Severity.ERROR
        and e.message.startswith("engine error")
    ]


class EngineCommands(RuleBasedStateMachine):
    """One directive, one engine, any order of commands, given at any moment
    (while planning, while a step runs, while a replan is being made)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.db = Path(self.tmp.name) / "commands.db"
        self.refused: list[str] = []
        self.errors = EngineErrors()
        logging.getLogger("engine").addHandler(self.errors)
        # a background task (full_auto's own replan) that failed unseen
        self.loop.set_exception_handler(lambda loop, context: self.lost.append(context))
        self.lost: list[dict[str, Any]] = []
        self.held_by_pause = False  # a person paused it and nobody resumed since

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @initialize(
        scores=st.fixed_dictionaries({name: SCORES for name, _ in STEPS}),
        failing=st.sets(st.sampled_from([name for name, _ in STEPS]), max_size=1),
        autonomy=st.sampled_from(list(Autonomy)),
        delay=st.sampled_from([0.0, 0.01]),
        max_failed_steps=st.integers(1, 3),
        started=st.sampled_from([True, True, True, False]),  # three in four
    )
    def setup(
        self,
        scores: dict[str, list[float]],
        failing: set[str],
        autonomy: Autonomy,
        delay: float,
        max_failed_steps: int,
        started: bool,
    ) -> None:
        self.script = Script(
            scores=scores,
            fail={name: "scripted failure" for name in failing},
            delay={name: delay for name, _ in STEPS},
            costs={"a": 0.01, "d": 0.02},
            writes=self.in_git,
        )
        self.store = self.run(Store.open(self.db))
        self.engine = DirectiveEngine(self.store, EventBus(), services(self.script))
        spec = chain_spec(
            self.repo(),
            STEPS,
            autonomy=autonomy,
            max_rework_cycles=1,
            max_chain_regenerations=2,
            max_failed_steps=max_failed_steps,
        )
        self.run(self.engine.start())
        self.did = self.run(self.engine.create_directive(spec)).id
        if started:  # most sequences begin with a running directive, to get further
            self.command("start", self.engine.start_directive(self.did))

    # -- helpers ---------------------------------------------------------------

    in_git = False  # steps run in the folder itself

    def repo(self) -> Path:
        return Path(self.tmp.name)

    def command(self, name: str, coro) -> bool:  # type: ignore[no-untyped-def]
        """Run one command; a refusal must be one of the engine's own, with a
        message. Returns whether it was accepted."""
        FIGURES["commands"] += 1
        try:
            self.run(coro)
        except REFUSALS as exc:
            assert str(exc).strip(), f"{name} refused without a message"
            self.refused.append(f"{name}: {exc}")
            note(f"{name} refused: {exc}")
            FIGURES[f"{name} refused"] += 1
            return False
        note(f"{name} accepted")
        FIGURES[f"{name} accepted"] += 1
        return True

    def status(self) -> DirectiveStatus:
        return self.run(self.store.get_directive(self.did)).status

    def pending(self, kind: ApprovalKind | None = None):  # type: ignore[no-untyped-def]
        found = self.run(self.store.pending_approvals(self.did))
        return [a for a in found if kind is None or a.kind is kind]

    def steps_in(self, *statuses: str) -> list[str]:
        chain = self.run(self.store.current_chain(self.did))
        if chain is None:
            return []
        return [s.id for s in self.run(self.store.list_steps(chain.id)) if s.status in statuses]

    # -- the commands ------------------------------------------------------------

    @rule()
    def start(self) -> None:
        if self.command("start", self.engine.start_directive(self.did)):
            self.held_by_pause = False

    @rule()
    def pause(self) -> None:
        if self.command("pause", self.engine.pause_directive(self.did)):
            self.held_by_pause = True

    @rule()
    def resume(self) -> None:
        if self.command("resume", self.engine.resume_directive(self.did)):
            self.held_by_pause = False

    @rule(now=st.integers(0, 3))
    def stop(self, now: int) -> None:
        """One draw in four: stopping ends the sequence's interest early."""
        if now == 0:
            self.command("stop", self.engine.stop_directive(self.did))

    @rule(
        decision=st.sampled_from(["approve", "deny", "request_changes"]),
        which=st.integers(0, 3),
        look_first=st.booleans(),
    )
    def answer_a_review(self, decision: str, which: int, look_first: bool) -> None:
        """Answer a step review or the plan, at once or once the engine rests
        (as a person who looks at the screen first)."""
        if look_first:
            self.settle()
        reviews = self.pending(ApprovalKind.STEP_REVIEW) + self.pending(ApprovalKind.PLAN)
        if not reviews:
            return
        approval = reviews[which % len(reviews)]
        comment = "please add a test" if decision == "request_changes" else None
        self.command(decision, self.engine.resolve_approval(approval.id, decision, comment))

    @rule(decision=st.sampled_from(["retry", "skip", "replan", "stop"]), look_first=st.booleans())
    def answer_an_escalation(self, decision: str, look_first: bool) -> None:
        if look_first:
            self.settle()
        escalations = self.pending(ApprovalKind.ESCALATION)
        if escalations:
            self.command(decision, self.engine.resolve_approval(escalations[0].id, decision))

    @rule(
        review=st.sampled_from(["approve", "deny", "request_changes"]),
        escalation=st.sampled_from(["retry", "skip", "replan", "stop"]),
    )
    def answer_what_it_asks(self, review: str, escalation: str) -> None:
        """As a person at the keyboard: start it if need be, let it work
        until it rests, then answer the oldest question it asks. Without
        this rule few sequences got as far as a question."""
        if self.status() is DirectiveStatus.DRAFT:
            self.command("start", self.engine.start_directive(self.did))
        self.settle()
        for approval in self.pending()[:1]:
            decision = escalation if approval.kind is ApprovalKind.ESCALATION else review
            comment = "please add a test" if decision == "request_changes" else None
            self.command(decision, self.engine.resolve_approval(approval.id, decision, comment))

    @rule()
    def answer_twice(self) -> None:
        """A second answer to the same approval is refused and changes nothing."""
        approvals = self.run(self.store.list_approvals(self.did))
        resolved = [a for a in approvals if not a.pending]
        if resolved:
            ended = self.status() in DIRECTIVE_TERMINAL
            if ended:  # its last writes land first (a git workspace's closing notice)
                self.settle()
            before = self.run(self.store.get_directive(self.did)).last_seq
            a = resolved[-1]
            with pytest.raises(ApprovalAlreadyResolved):
                self.run(self.engine.resolve_approval(a.id, a.options[0], "again"))
            FIGURES["answer twice refused"] += 1
            if ended:  # nothing else is writing
                assert self.run(self.store.get_directive(self.did)).last_seq == before

    @rule()
    def retry_a_step(self) -> None:
        stuck = self.steps_in("blocked", "failed")
        if stuck:
            self.command("retry", self.engine.retry_step(stuck[0]))

    @rule()
    def skip_a_step(self) -> None:
        stuck = self.steps_in("blocked", "failed", "pending")
        if stuck:
            self.command("skip", self.engine.skip_step(stuck[-1]))

    @rule()
    def replan(self) -> None:
        self.command("replan", self.engine.regenerate_chain(self.did, "replan requested"))

    @rule()
    def raise_limits(self) -> None:
        d = self.run(self.store.get_directive(self.did))
        self.command(
            "raise limits",
            self.engine.raise_limits(self.did, max_failed_steps=d.spec.limits.max_failed_steps + 1),
        )

    @rule(seconds=st.sampled_from([0.0, 0.01, 0.05]))
    def let_time_pass(self, seconds: float) -> None:
        self.run(asyncio.sleep(seconds))

    @rule()
    def settle(self) -> None:
        """Wait until the engine rests; it must not hang."""
        if self.status() is DirectiveStatus.DRAFT:
            return
        try:
            self.run(self.engine.wait_settled(self.did, timeout=SETTLE_S))
        except TimeoutError:
            pytest.fail(f"the engine never settled: {self.describe_state()}")

    def describe_state(self) -> str:
        d = self.run(self.store.get_directive(self.did))
        chain = self.run(self.store.current_chain(self.did))
        steps = self.run(self.store.list_steps(chain.id)) if chain else []
        shown = ", ".join(f"{s.name}={s.status.value}" for s in steps)
        pending = ", ".join(f"{a.kind.value}:{a.step_id}" for a in self.pending())
        return (
            f"directive {d.status.value} ({d.pause_reason}); steps {shown}; "
            f"pending approvals [{pending}]; refused: {'; '.join(self.refused)}"
        )

    # -- after every command ---------------------------------------------------

    @invariant()
    def database_is_sound(self) -> None:
        if not hasattr(self, "store"):
            return
        violations = check_invariants_sync(self.db)
        assert not violations, describe(violations) + "\nrefused: " + "; ".join(self.refused)
        FIGURES["invariant checks"] += 1

    @invariant()
    def no_engine_task_crashed(self) -> None:
        assert not self.errors.records, "\n".join(self.errors.lines())
        assert not self.lost, [c.get("exception") or c["message"] for c in self.lost]

    @invariant()
    def a_pause_holds_until_resumed(self) -> None:
        if hasattr(self, "store") and self.held_by_pause:
            assert self.status() in (DirectiveStatus.PAUSED, DirectiveStatus.STOPPED), (
                self.describe_state()
            )

    def teardown(self) -> None:
        try:
            if hasattr(self, "engine"):
                self.run(self.engine.close())
                # a clean close leaves nothing mid-attempt, as a recovery would
                violations = check_invariants_sync(self.db, after_recovery=True)
                assert not violations, describe(violations)
                gc.collect()  # a failed task nobody awaited is reported when collected
                self.no_engine_task_crashed()
                events = self.run(self.store.list_events(self.did))
                assert not engine_error_notices(events), engine_error_notices(events)
                FIGURES[f"sequences ending {self.status().value}"] += 1
                FIGURES["command_sequences"] += 1
        finally:
            logging.getLogger("engine").removeHandler(self.errors)
            if hasattr(self, "store"):
                self.run(self.store.close())
            self.loop.close()
            self.tmp.cleanup()


# 60 in CI; a longer hunt (`PROPERTY_EXAMPLES=800 ... --timeout 0`, about
# three minutes here) found two races the CI setting had not.
EngineCommands.TestCase.settings = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_engine_commands_never_leave_an_illegal_state = EngineCommands.TestCase


class GitEngineCommands(EngineCommands):
    """The same commands on a directive in a git repository (each attempt in
    its own worktree, merged when it passes, a checkpoint per pass), plus a
    reset to any checkpoint at any moment, steps running or not."""

    in_git = True

    def repo(self) -> Path:
        repo = Path(self.tmp.name) / "repo"
        return repo if repo.exists() else init_git_repo(repo, {})

    @rule(which=st.integers(0, 4), look_first=st.booleans())
    def reset_to_a_checkpoint(self, which: int, look_first: bool) -> None:
        """Back to checkpoint `which` (0: where it started), by number."""
        if look_first:
            self.settle()
        self.command("reset", self.engine.reset_to_checkpoint(self.did, which))


GitEngineCommands.TestCase.settings = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")) // 3,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_commands_in_a_git_repository_never_leave_an_illegal_state = GitEngineCommands.TestCase


# --------------------------------------------------------------------------
# Engine bugs the command machine found (now fixed), one interleaving each
# --------------------------------------------------------------------------


class SlowPlanner:
    """The explicit planner, taking its time (a model would): the window in
    which the driver, a pause or a second replan can interleave."""

    def __init__(self, seconds: float, *, replans_only: bool = False) -> None:
        self.seconds, self.replans_only = seconds, replans_only

    async def plan(self, directive, replan=None):  # type: ignore[no-untyped-def]
        if replan is not None or not self.replans_only:
            await asyncio.sleep(self.seconds)
        return await ExplicitPlanner().plan(directive, replan)


@contextlib.asynccontextmanager
async def slow_planning_engine(
    tmp_path: Path, script: Script, planner: SlowPlanner, **spec: Any
) -> AsyncIterator[tuple[DirectiveEngine, str]]:
    store = await Store.open(tmp_path / "engine.db")
    svc = dataclasses.replace(services(script), planner=lambda kind, llm: planner)
    engine = DirectiveEngine(store, EventBus(), svc)
    await engine.start()
    did = (await engine.create_directive(chain_spec(tmp_path, STEPS, **spec))).id
    try:
        yield engine, did
    finally:
        await engine.close()
        await store.close()


async def no_engine_errors(engine: DirectiveEngine, did: str, caplog: Any) -> None:
    crashed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not crashed, crashed
    assert not engine_error_notices(await engine.store.list_events(did))


async def test_replanning_a_draft_directive_leaves_it_startable(tmp_path: Path, caplog) -> None:
    async with slow_planning_engine(tmp_path, Script(), SlowPlanner(0.0)) as (engine, did):
        with contextlib.suppress(EngineError):  # refusing it would be fine too
            await engine.regenerate_chain(did, "replan before starting")
        await engine.start_directive(did)
        assert await engine.wait_settled(did, timeout=3) == "completed"
        await no_engine_errors(engine, did, caplog)


async def test_replanning_while_the_first_plan_is_made_gives_one_chain_per_generation(
    tmp_path: Path, caplog
) -> None:
    async with slow_planning_engine(tmp_path, Script(), SlowPlanner(0.1)) as (engine, did):
        await engine.start_directive(did)
        with contextlib.suppress(EngineError):
            await engine.regenerate_chain(did, "replan while planning")
        assert await engine.wait_settled(did, timeout=5) == "completed"
        generations = [c.generation for c in await engine.store.list_chains(did)]
        assert len(set(generations)) == len(generations)
        await no_engine_errors(engine, did, caplog)


async def test_a_pause_during_planning_holds(tmp_path: Path, caplog) -> None:
    script = Script()
    async with slow_planning_engine(tmp_path, script, SlowPlanner(0.1)) as (engine, did):
        await engine.start_directive(did)
        await engine.pause_directive(did)
        await asyncio.sleep(0.4)
        assert (await engine.store.get_directive(did)).status is DirectiveStatus.PAUSED
        assert script.calls == []
        await no_engine_errors(engine, did, caplog)


class HeldPlanner:
    """The explicit planner, holding its plan until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def plan(self, directive, replan=None):  # type: ignore[no-untyped-def]
        await self.release.wait()
        return await ExplicitPlanner().plan(directive, replan)


async def test_a_resume_while_the_paused_first_plan_lands_plans_once(
    tmp_path: Path, caplog
) -> None:
    """Paused while planning, then resumed just as the plan landed: resume
    read "no chain yet", the plan committed, and resume's write put the
    directive back to planning, so the driver planned it a second time and
    crashed on the duplicate generation. Resume now decides in the
    transaction that writes."""
    planner = HeldPlanner()
    async with slow_planning_engine(tmp_path, Script(), planner) as (engine, did):  # type: ignore[arg-type]
        await engine.start_directive(did)
        await engine.pause_directive(did)
        store_chain = engine.store.current_chain

        async def chain_read_just_before_the_plan_lands(directive_id: str):  # type: ignore[no-untyped-def]
            seen = await store_chain(directive_id)
            planner.release.set()
            while await store_chain(directive_id) is None:
                await asyncio.sleep(0.005)
            return seen

        engine.store.current_chain = chain_read_just_before_the_plan_lands  # type: ignore[method-assign]
        await engine.resume_directive(did)
        planner.release.set()
        engine.store.current_chain = store_chain  # type: ignore[method-assign]
        assert await engine.wait_settled(did, timeout=5) == "completed"
        assert [c.generation for c in await engine.store.list_chains(did)] == [0]
        await no_engine_errors(engine, did, caplog)


async def test_a_start_on_a_directive_paused_since_it_was_read_resumes_it(
    tmp_path: Path, caplog
) -> None:
    """`start` read the directive active (so: plan it), a breaker paused it,
    and the write moved it from paused to planning: a second first chain.
    Start and resume now decide in the transaction that writes; here the
    read before the write is made stale on purpose."""
    manual = {"autonomy": Autonomy.MANUAL}
    async with slow_planning_engine(tmp_path, Script(), SlowPlanner(0.0), **manual) as (
        engine,
        did,
    ):
        await engine.start_directive(did)
        assert await engine.wait_settled(did, timeout=5) == "awaiting_approval"  # the plan
        read = engine.store.get_directive
        active = await read(did)
        await engine.pause_directive(did, reason="cost limit reached")

        async def read_before_the_pause(directive_id: str):  # type: ignore[no-untyped-def]
            return active if directive_id == did else await read(directive_id)

        engine.store.get_directive = read_before_the_pause  # type: ignore[method-assign]
        await engine.start_directive(did)
        engine.store.get_directive = read  # type: ignore[method-assign]
        assert (await read(did)).status is DirectiveStatus.ACTIVE
        while await engine.wait_settled(did, timeout=5) == "awaiting_approval":
            for approval in await engine.store.pending_approvals(did):  # the plan, then steps
                await engine.resolve_approval(approval.id, "approve")
        assert (await read(did)).status is DirectiveStatus.COMPLETED
        assert [c.generation for c in await engine.store.list_chains(did)] == [0]
        await no_engine_errors(engine, did, caplog)


async def test_a_stop_during_planning_is_quiet(tmp_path: Path, caplog) -> None:
    async with slow_planning_engine(tmp_path, Script(), SlowPlanner(0.1)) as (engine, did):
        await engine.start_directive(did)
        await engine.stop_directive(did)
        await asyncio.sleep(0.3)
        assert (await engine.store.get_directive(did)).status is DirectiveStatus.STOPPED
        await no_engine_errors(engine, did, caplog)


async def test_no_step_of_the_old_chain_starts_while_a_replan_is_planned(
    tmp_path: Path, caplog
) -> None:
    script = Script(delay={name: 0.05 for name, _ in STEPS})
    planner = SlowPlanner(0.3, replans_only=True)
    async with slow_planning_engine(tmp_path, script, planner) as (engine, did):
        await engine.start_directive(did)
        while not script.calls:  # step a is running
            await asyncio.sleep(0.005)
        asked = time.time()
        await engine.regenerate_chain(did, "replan while a step runs")
        assert await engine.wait_settled(did, timeout=5) == "completed"
        old = next(c for c in await engine.store.list_chains(did) if c.superseded)
        for step in await engine.store.list_steps(old.id):
            for run in await engine.store.list_runs(step.id):
                assert run.started_at < asked, f"{step.name} started during the replan"
        await no_engine_errors(engine, did, caplog)


async def test_two_replans_at_once_make_two_generations(tmp_path: Path, caplog) -> None:
    planner = SlowPlanner(0.1, replans_only=True)
    manual = {"autonomy": Autonomy.MANUAL}
    async with slow_planning_engine(tmp_path, Script(), planner, **manual) as (engine, did):
        await engine.start_directive(did)
        assert await engine.wait_settled(did, timeout=5) == "awaiting_approval"  # the plan
        results = await asyncio.gather(
            engine.regenerate_chain(did, "first"),
            engine.regenerate_chain(did, "second"),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(r, EngineError) for r in refused), refused
        chains = await engine.store.list_chains(did)
        assert [c.generation for c in chains] == list(range(len(chains)))
        assert sum(not c.superseded for c in chains) == 1
        await no_engine_errors(engine, did, caplog)


async def test_a_pending_step_skipped_while_its_dependency_runs_is_never_started(
    tmp_path: Path, caplog
) -> None:
    """The step that passes promotes its dependents in its own transaction:
    a skip that landed before must hold, and what depends on the skipped
    step still runs."""
    script = Script(delay={"a": 0.2})
    async with slow_planning_engine(tmp_path, script, SlowPlanner(0.0)) as (engine, did):
        await engine.start_directive(did)
        while not script.calls:  # a is running
            await asyncio.sleep(0.005)
        chain = await engine.store.current_chain(did)
        b = next(s for s in await engine.store.list_steps(chain.id) if s.name == "b")
        await engine.skip_step(b.id)
        assert await engine.wait_settled(did, timeout=5) == "completed"
        statuses = {s.name: s.status for s in await engine.store.list_steps(chain.id)}
        assert statuses == {"a": "passed", "b": "skipped", "c": "passed", "d": "passed"}
        assert [name for name, _, _ in script.calls] == ["a", "c", "d"]
        await no_engine_errors(engine, did, caplog)


async def test_a_replan_finished_after_the_directive_was_stopped_adds_no_chain(
    tmp_path: Path, caplog
) -> None:
    """The replan writes only its notice (and charges its cost), and before
    `wait_settled` says "stopped": settled means nothing of it is still at
    work (the git command machine saw the notice land after the answer,
    when a test counted events)."""
    planner = SlowPlanner(0.3, replans_only=True)
    manual = {"autonomy": Autonomy.MANUAL}
    async with slow_planning_engine(tmp_path, Script(), planner, **manual) as (engine, did):
        await engine.start_directive(did)
        assert await engine.wait_settled(did, timeout=5) == "awaiting_approval"  # the plan
        replan = asyncio.create_task(engine.regenerate_chain(did, "replan, then stop"))
        await asyncio.sleep(0.05)  # the planner is at work
        await engine.stop_directive(did)
        assert not replan.done()
        assert await engine.wait_settled(did, timeout=5) == "stopped"
        assert replan.done()
        assert await replan is None
        assert len(await engine.store.list_chains(did)) == 1
        notices = [e.message for e in await engine.store.list_events(did) if e.type == "notice"]
        assert any("new chain was not used" in m for m in notices)
        assert (await engine.store.get_directive(did)).status == "stopped"
        await no_engine_errors(engine, did, caplog)
