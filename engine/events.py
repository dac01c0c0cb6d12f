"""`EngineEvent`: the closed family of records the engine publishes.

Each event carries its directive id and a per-directive sequence number given
by the store when it is written; the same record is persisted in
`directive_events` and put on every subscriber's queue.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from engine.breakers import duration
from engine.flags import NO_VERDICT, flag_text
from engine.models import Actor, ApprovalDecision, Severity, now


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    directive_id: str
    seq: int = 0  # set by the store when written
    ts: float = Field(default_factory=now)
    severity: Severity = Severity.INFO
    actor: Actor = Actor.SYSTEM

    def describe(self) -> str:
        """One human line, used by the headless printer and the event log."""
        return self.type  # type: ignore[attr-defined]


class DirectiveCreated(_Event):
    type: Literal["directive_created"] = "directive_created"
    title: str

    def describe(self) -> str:
        # The id first: a script reading a plain headless run finds it on
        # the first line, as `--json` gives it there.
        return f"directive {self.directive_id} created: {self.title}"


class DirectiveStatusChanged(_Event):
    type: Literal["directive_status_changed"] = "directive_status_changed"
    old_status: str
    new_status: str
    reason: str | None = None

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"directive {self.old_status} -> {self.new_status}{why}"


class StepStatusChanged(_Event):
    type: Literal["step_status_changed"] = "step_status_changed"
    step_id: str
    step_name: str
    old_status: str
    new_status: str
    rework_count: int = 0
    reason: str | None = None

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"step {self.step_name}: {self.old_status} -> {self.new_status}{why}"


class StepOutput(_Event):
    type: Literal["step_output"] = "step_output"
    step_id: str
    step_name: str
    source: str = "executor"  # executor, verifier name, agent
    line: str
    severity: Severity = Severity.DEBUG

    def describe(self) -> str:
        return f"[{self.step_name}:{self.source}] {self.line}"


class EvaluationCompleted(_Event):
    type: Literal["evaluation_completed"] = "evaluation_completed"
    step_id: str
    step_name: str
    evaluation_id: str
    score: float
    level: str
    passed: bool
    verifiers: dict[str, float] = Field(default_factory=dict)  # name -> score
    failed_gating: list[str] = Field(default_factory=list)  # why a high score can be red
    flags: list[str] = Field(default_factory=list)
    # name -> its summary, for the verifiers that did not pass: the log says
    # why ("timed out after 30s"), not only that a score is low
    problems: dict[str, str] = Field(default_factory=dict)

    def describe(self) -> str:
        # A verifier that gave no verdict (its tool is missing, the judge
        # failed) says so where its score would be, not "=0.00".
        silent = {f.partition(": ")[2] for f in self.flags if f.startswith(f"{NO_VERDICT}: ")}
        scores = "".join(
            f"; {k}" + (" no verdict" if k in silent else f"={v:.2f}")
            + (" FAILED (gating)" if k in self.failed_gating else "")
            + (f" [{self.problems[k]}]" if k in self.problems else "")
            for k, v in self.verifiers.items()
        )  # fmt: skip
        shown = [flag_text(f) for f in self.flags if not f.startswith(f"{NO_VERDICT}: ")]
        flags = f" flags: {', '.join(shown)}" if shown else ""
        return f"step {self.step_name} evaluated {self.level} ({self.score:.2f}{scores}){flags}"


class ApprovalRequired(_Event):
    type: Literal["approval_required"] = "approval_required"
    approval_id: str
    kind: str
    step_id: str | None = None
    summary: str = ""

    def describe(self) -> str:
        return f"approval needed [{self.approval_id}] {self.kind}: {self.summary}"


class ApprovalResolved(_Event):
    type: Literal["approval_resolved"] = "approval_resolved"
    approval_id: str
    decision: str
    step_id: str | None = None
    comment: str | None = None

    def describe(self) -> str:
        note = f": {self.comment}" if self.comment else ""
        if self.decision == ApprovalDecision.SUPERSEDED:  # closed by the engine, not answered
            return f"approval [{self.approval_id}] closed unanswered{note}"
        said = self.decision.replace("_", " ")  # "request changes", as a person says it
        return f"approval [{self.approval_id}] {said}{note}"


class CostUpdated(_Event):
    type: Literal["cost_updated"] = "cost_updated"
    step_id: str | None = None
    delta_usd: float
    total_usd: float

    def describe(self) -> str:
        return f"cost +${self.delta_usd:.4f} = ${self.total_usd:.4f}"


class ChainCreated(_Event):
    type: Literal["chain_created"] = "chain_created"
    chain_id: str
    generation: int
    steps: list[str]
    old_chain_id: str | None = None
    reason: str | None = None
    # Each step's layer, in the order of `steps`; absent from events stored
    # before it was recorded, which describe their steps as one line.
    layers: list[int] | None = None

    def describe(self) -> str:
        head = "chain regenerated" if self.old_chain_id else "chain created"
        why = f" ({self.reason})" if self.reason else ""
        return f"{head}: {' -> '.join(self._stages())}{why}"

    def _stages(self) -> list[str]:
        """Steps that may run side by side are shown together, `{a, b}`,
        so the line does not suggest an order the chain does not have."""
        if self.layers is None or len(self.layers) != len(self.steps):
            return list(self.steps)
        grouped: dict[int, list[str]] = {}
        for layer, name in sorted(zip(self.layers, self.steps, strict=True), key=lambda p: p[0]):
            grouped.setdefault(layer, []).append(name)
        return [g[0] if len(g) == 1 else "{" + ", ".join(g) + "}" for g in grouped.values()]


class BreakerTripped(_Event):
    type: Literal["breaker_tripped"] = "breaker_tripped"
    breaker: str  # cost, wall_time, regenerations, failed_steps
    reason: str
    severity: Severity = Severity.WARNING

    def describe(self) -> str:
        return f"breaker {self.breaker} tripped: {self.reason}"


class LimitsChanged(_Event):
    type: Literal["limits_changed"] = "limits_changed"
    limits: dict[str, Any]

    def describe(self) -> str:
        shown = {
            k: "none" if v is None else v for k, v in self.limits.items()
        }  # as `limits` takes it
        return "limits changed: " + ", ".join(f"{k}={v}" for k, v in shown.items())


class CheckpointRecorded(_Event):
    """A passed step merged into the directive's integration branch."""

    type: Literal["checkpoint_recorded"] = "checkpoint_recorded"
    step_id: str
    step_name: str
    sha: str
    fast_forward: bool = False
    artifacts: list[str] = Field(default_factory=list)  # ignored outputs handed on
    changed: bool = True  # False: the step committed nothing, the branch stays
    severity: Severity = Severity.SUCCESS

    def describe(self) -> str:
        handed = f"; hands on {', '.join(self.artifacts)}" if self.artifacts else ""
        if not self.changed:
            return (
                f"checkpoint {self.sha[:10]}: step {self.step_name} changed no file"
                f" (the branch stays){handed}"
            )
        how = "fast-forward" if self.fast_forward else "merge"
        return f"checkpoint {self.sha[:10]}: step {self.step_name} merged ({how}){handed}"


class ClockChanged(_Event):
    """The wall-time clock stopped or ran again with no change of status: it
    runs while an engine works the directive, not while the directive waits
    only for a person or no engine runs it (see `Tx.clock`)."""

    type: Literal["clock_changed"] = "clock_changed"
    running: bool
    used_s: float
    reason: str

    def describe(self) -> str:
        state = "runs again" if self.running else "stopped"
        return f"wall-time clock {state} at {duration(self.used_s)}: {self.reason}"


class Notice(_Event):
    """Anything worth a line in the log that is not a state change: a
    warning about shared trees, a planner retry, an error message."""

    type: Literal["notice"] = "notice"
    message: str
    step_id: str | None = None

    def describe(self) -> str:
        return self.message


EngineEvent = Annotated[
    Union[
        DirectiveCreated,
        DirectiveStatusChanged,
        StepStatusChanged,
        StepOutput,
        EvaluationCompleted,
        ApprovalRequired,
        ApprovalResolved,
        CostUpdated,
        ChainCreated,
        BreakerTripped,
        LimitsChanged,
        CheckpointRecorded,
        ClockChanged,
        Notice,
    ],
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[EngineEvent] = TypeAdapter(EngineEvent)


def event_from_json(data: str | bytes) -> EngineEvent:
    return EVENT_ADAPTER.validate_json(data)
