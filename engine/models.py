"""Pydantic records for everything the engine stores and passes around.

These are the edges of the system: the store returns them, the engine and
the screen read them, the directive file is parsed into `DirectiveSpec`.
"""

from __future__ import annotations

import math
import time
import uuid
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def new_id() -> str:
    """Short unique ids: readable in logs and typed by hand in the CLI."""
    return uuid.uuid4().hex[:12]


def now() -> float:
    return time.time()


class Strict(BaseModel):
    """Base for input models: unknown keys are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------
# Statuses and levels
# --------------------------------------------------------------------------


class DirectiveStatus(StrEnum):
    DRAFT = "draft"
    PLANNING = "planning"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


# Statuses whose time counts against the wall-time limit: the directive is
# working (planning its first chain is work, as a replan is).
CLOCK_RUNNING = frozenset({DirectiveStatus.PLANNING, DirectiveStatus.ACTIVE})


class StepStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    EVALUATING = "evaluating"
    AWAITING_APPROVAL = "awaiting_approval"
    REWORK = "rework"
    PASSED = "passed"
    BLOCKED = "blocked"
    FAILED = "failed"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"


class ConfidenceLevel(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class Autonomy(StrEnum):
    FULL_AUTO = "full_auto"
    GUARDRAILS = "guardrails"
    MANUAL = "manual"


class PlannerKind(StrEnum):
    TEMPLATE = "template"
    EXPLICIT = "explicit"
    ANTHROPIC = "anthropic"


class ExecutorKind(StrEnum):
    SHELL = "shell"
    SCRIPTED = "scripted"
    AGENT = "agent"
    CLAUDE_CODE = "claude_code"
    NOOP = "noop"


class StepType(StrEnum):
    RESEARCH = "research"
    DESIGN = "design"
    IMPLEMENT = "implement"
    TEST = "test"
    REVIEW = "review"
    DOCS = "docs"
    SHELL = "shell"


class ApprovalKind(StrEnum):
    STEP_REVIEW = "step_review"  # a yellow (or, in manual, any) step result
    ESCALATION = "escalation"  # a blocked step: retry / skip / replan / stop
    PLAN = "plan"  # manual autonomy: the plan before any step runs


class Worded(StrEnum):
    """A value the engine's messages name in words: `changes_requested`
    reads "changes requested", whatever a front end calls it."""

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class ApprovalStatus(Worded):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CHANGES_REQUESTED = "changes_requested"
    RESOLVED = "resolved"  # an escalation answered with one of its options
    SUPERSEDED = "superseded"  # closed unanswered: a stop, a replan or a reset made it moot


class ApprovalDecision(Worded):
    """What a person can answer. Step reviews and plans take the first three,
    escalations the next four. `superseded` is no one's answer: the engine
    records it for an approval a stop, a replan or a reset closed unanswered
    (it is never among an approval's options)."""

    APPROVE = "approve"
    DENY = "deny"
    REQUEST_CHANGES = "request_changes"
    RETRY = "retry"
    SKIP = "skip"
    REPLAN = "replan"
    STOP = "stop"
    SUPERSEDED = "superseded"


class Severity(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


class Actor(StrEnum):
    SYSTEM = "system"
    USER = "user"
    AGENT = "agent"


# --------------------------------------------------------------------------
# The directive as written by a person
# --------------------------------------------------------------------------


class Thresholds(Strict):
    green: float = Field(0.8, ge=0.0, le=1.0)
    yellow: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.yellow > self.green:
            raise ValueError(
                f"yellow threshold ({self.yellow}) must not be above green ({self.green})"
            )
        return self


# The largest value each limit takes. Past these a number is no longer a
# limit anyone means, only a typo or a way to say "no limit" (1e300 minutes
# was taken, and the header then showed a 78-digit number, pushing the other
# budgets off the screen). Cost and wall time can be switched off (none)
# instead; the counts cannot, so theirs are generous.
LIMIT_BOUNDS: dict[str, int] = {
    "max_cost_usd": 1_000_000,  # a million dollars: far past any real budget
    "max_wall_time_minutes": 365 * 24 * 60,  # a year of working time (525,600)
    "max_rework_cycles": 1_000,  # each cycle is a new attempt of one step
    "max_chain_regenerations": 1_000,  # each replan is a planner call
    "max_parallel_steps": 1_000,  # each runs a process in its own git worktree
    "max_failed_steps": 1_000,  # a chain is a few dozen steps, not thousands
}


class Limits(Strict):
    # allow_inf_nan=False: nan is refused as not a number (it read "must be
    # at most 1000000, got nan"); inf is None before this check.
    max_cost_usd: float | None = Field(
        10.0, gt=0, le=LIMIT_BOUNDS["max_cost_usd"], allow_inf_nan=False
    )
    max_wall_time_minutes: float | None = Field(
        120.0, gt=0, le=LIMIT_BOUNDS["max_wall_time_minutes"], allow_inf_nan=False
    )
    max_rework_cycles: int = Field(3, ge=0, le=LIMIT_BOUNDS["max_rework_cycles"])
    max_chain_regenerations: int = Field(2, ge=0, le=LIMIT_BOUNDS["max_chain_regenerations"])
    max_parallel_steps: int = Field(2, ge=1, le=LIMIT_BOUNDS["max_parallel_steps"])
    max_failed_steps: int = Field(3, ge=1, le=LIMIT_BOUNDS["max_failed_steps"])

    @field_validator("max_cost_usd", "max_wall_time_minutes", mode="before")
    @classmethod
    def _infinite_is_no_limit(cls, value: Any) -> Any:
        """`inf` (TOML's, the dialog's, a float's) means no limit: None, as
        the spec is stored (JSON has no infinity; it was written as null
        while the live event still said `inf`)."""
        if not isinstance(value, str | float):  # text: the lax path, a form's or a command's
            return value
        try:
            return None if float(value) == math.inf else value
        except ValueError:  # not a number: the field's own check says so
            return value


class Requirement(Strict):
    id: str
    text: str


class FileEdit(Strict):
    """One edit the scripted executor applies: write a whole file, replace a
    string in it, or delete it."""

    path: str
    content: str | None = None
    replace: str | None = None
    with_: str | None = Field(None, alias="with")
    delete: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ScriptedAttempt(Strict):
    """What the scripted executor does on one attempt of a step."""

    summary: str = ""
    edits: list[FileEdit] = Field(default_factory=list)
    fail: str | None = None  # make the attempt fail with this error


class VerifierSpec(Strict):
    """A verifier a directive adds, or an override of a detected one (same name)."""

    name: str
    command: str | list[str] | None = None
    parser: (
        Literal[
            "exit_code",
            "pytest",
            "ruff",
            "mypy",
            "count",
            "lint",
            "tsc",
            "clippy",
            "cargo_test",
            "go_test",
        ]
        | None
    ) = None
    # allow_inf_nan=False on these: a spec is stored as JSON, which has no
    # infinity, and one written as null could not be read back (every
    # command listing that database failed on it).
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)
    gating: bool | None = None
    timeout_s: float = Field(300.0, gt=0, allow_inf_nan=False)
    enabled: bool = True


class VerifierConfig(Strict):
    auto_detect: bool = True
    llm_judge: bool = True  # only used when an API key is configured
    llm_judge_weight: float = Field(1.0, ge=0, allow_inf_nan=False)
    extra: list[VerifierSpec] = Field(default_factory=list)


class StepSpec(Strict):
    """A step as planned: written in the directive file (`explicit`) or made
    by a planner. Executor-specific fields are optional."""

    name: str = Field(min_length=1)
    type: str = StepType.IMPLEMENT.value
    description: str = ""
    depends_on: list[str] = Field(default_factory=list)
    requirement_ids: list[str] = Field(default_factory=list)
    executor: ExecutorKind | None = None  # overrides the directive's executor
    command: str | None = None  # shell executor
    timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    # scripted executor: attempt N uses attempts[min(N, len) - 1]
    attempts: list[ScriptedAttempt] = Field(default_factory=list)
    verifiers: list[str] | None = None  # restrict to these verifier names


class WorkspaceConfig(Strict):
    """How attempts get their working tree when the repo is a git work tree."""

    isolate: bool = True  # each attempt in its own worktree, merged when it passes
    # A red or failed attempt's commit is the next attempt's (or retry's) start.
    carry_rework: bool = False
    # Git-ignored outputs (a build/ folder) a passed step hands on to the
    # steps after it: commits carry everything else.
    artifacts: list[str] = Field(default_factory=list)
    # Git-ignored environment folders each worktree links to (not copies:
    # a step that deletes or installs into one changes the user's); [] for
    # none. The default is engine.attempt_worktrees.DEFAULT_LINKS.
    links: list[str] = Field(default_factory=lambda: [".venv", "venv", "node_modules"])

    @field_validator("artifacts", "links")
    @classmethod
    def _inside_repo(cls, paths: list[str]) -> list[str]:
        """Paths relative to the repo folder, inside it, as `a/b` (no `./`,
        no trailing `/`): the worktree code matches them against git's."""
        clean = []
        for raw in paths:
            path = PurePosixPath(raw.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts or not path.parts or str(path) == ".":
                raise ValueError(
                    f"{raw!r} is not a path inside the repository: give it relative to `repo`"
                    " (like 'build' or 'dist/app.whl')"
                )
            clean.append(str(path))
        return clean


class DirectiveSpec(Strict):
    title: str = Field(min_length=1)
    goal: str = Field(min_length=1)
    repo: Path
    requirements: list[Requirement] = Field(default_factory=list)
    acceptance_criteria: list[str] = Field(default_factory=list)
    autonomy: Autonomy = Autonomy.GUARDRAILS
    thresholds: Thresholds = Field(default_factory=Thresholds)
    limits: Limits = Field(default_factory=Limits)
    planner: PlannerKind = PlannerKind.TEMPLATE
    executor: ExecutorKind = ExecutorKind.SHELL
    model: str | None = None  # Claude model for planner, agent and judge
    verifiers: VerifierConfig = Field(default_factory=VerifierConfig)
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    steps: list[StepSpec] = Field(default_factory=list)


# --------------------------------------------------------------------------
# Stored records
# --------------------------------------------------------------------------


class Directive(BaseModel):
    id: str = Field(default_factory=new_id)
    spec: DirectiveSpec
    status: DirectiveStatus = DirectiveStatus.DRAFT
    total_cost_usd: float = 0.0  # every attempt's cost plus planning_cost_usd
    planning_cost_usd: float = 0.0
    regenerations: int = 0  # chains made by replanning (the first chain is not one)
    failed_steps: int = 0
    wall_time_used_s: float = 0.0  # working time accumulated before `active_since`
    active_since: float | None = None
    last_seq: int = 0
    pause_reason: str | None = None
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def replans_left(self) -> int:
        """Chain regenerations its limit still allows: the one rule the
        breaker, the engine's answers and the front ends' offers share."""
        return max(self.spec.limits.max_chain_regenerations - self.regenerations, 0)

    def wall_time_s(self, at: float | None = None) -> float:
        """Working wall time (planning or active): paused time does not
        count against the limit."""
        running = (at or now()) - self.active_since if self.active_since else 0.0
        return self.wall_time_used_s + max(running, 0.0)


class Progress(BaseModel):
    """A directive's current chain at a glance (the home screen, `list`):
    passed and skipped steps counted apart, so a skip never reads as a pass."""

    passed: int = 0
    skipped: int = 0
    total: int = 0
    pending_approvals: int = 0

    @property
    def done(self) -> int:
        """Steps nothing waits on any more: their dependents can run."""
        return self.passed + self.skipped


class Chain(BaseModel):
    id: str = Field(default_factory=new_id)
    directive_id: str
    generation: int = 0
    planner: str = PlannerKind.TEMPLATE.value
    reason: str | None = None
    superseded: bool = False
    cost_usd: float = 0.0  # what planning this chain cost
    created_at: float = Field(default_factory=now)


class Step(BaseModel):
    id: str = Field(default_factory=new_id)
    chain_id: str
    directive_id: str
    name: str
    spec: StepSpec
    status: StepStatus = StepStatus.PENDING
    depends_on: list[str] = Field(default_factory=list)  # step ids
    rework_count: int = 0
    attempts: int = 0
    confidence: float | None = None
    level: ConfidenceLevel | None = None
    rework_instructions: str | None = None
    layer: int = 0
    row: int = 0
    carried_from: str | None = None  # id of the passed step this one keeps
    carry_sha: str | None = None  # the next attempt builds on this commit
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)

    @property
    def type(self) -> str:
        return self.spec.type


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            **{k: getattr(self, k) + getattr(other, k) for k in TokenUsage.model_fields}
        )


class StepRun(BaseModel):
    """One attempt of a step by an executor."""

    id: str = Field(default_factory=new_id)
    step_id: str
    directive_id: str
    attempt: int
    executor: str
    status: Literal["running", "succeeded", "failed", "cancelled"] = "running"
    summary: str = ""
    error: str | None = None
    modified_files: list[str] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    rework_instructions: str | None = None
    base_sha: str | None = None  # the integration commit the attempt started from
    commit_sha: str | None = None  # the attempt's own commit (its diff: base..commit)
    started_at: float = Field(default_factory=now)
    finished_at: float | None = None


class VerifierResult(BaseModel):
    name: str
    kind: str = "command"  # pytest, ruff, mypy, llm_judge, command ...
    command: str = ""
    passed: bool
    score: float = Field(ge=0.0, le=1.0)
    weight: float = 1.0
    gating: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    summary: str = ""
    output_tail: str = ""
    cost_usd: float = 0.0
    details: dict[str, Any] = Field(default_factory=dict)


class Evaluation(BaseModel):
    id: str = Field(default_factory=new_id)
    directive_id: str
    step_id: str
    run_id: str | None = None
    score: float
    level: ConfidenceLevel
    passed: bool
    results: list[VerifierResult] = Field(default_factory=list)
    summary: str = ""
    rework_instructions: str | None = None
    flags: list[str] = Field(default_factory=list)  # e.g. "tests_modified"
    created_at: float = Field(default_factory=now)


class ApprovalRequest(BaseModel):
    id: str = Field(default_factory=new_id)
    directive_id: str
    step_id: str | None = None
    kind: ApprovalKind
    status: ApprovalStatus = ApprovalStatus.PENDING
    summary: str
    evaluation_id: str | None = None
    options: list[ApprovalDecision] = Field(default_factory=list)
    decision: ApprovalDecision | None = None
    comment: str | None = None
    created_at: float = Field(default_factory=now)
    resolved_at: float | None = None

    @property
    def pending(self) -> bool:
        return self.status is ApprovalStatus.PENDING


REVIEW_OPTIONS = [
    ApprovalDecision.APPROVE,
    ApprovalDecision.REQUEST_CHANGES,
    ApprovalDecision.DENY,
]
ESCALATION_OPTIONS = [
    ApprovalDecision.RETRY,
    ApprovalDecision.SKIP,
    ApprovalDecision.REPLAN,
    ApprovalDecision.STOP,
]
