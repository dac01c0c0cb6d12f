"""What every part of the engine shares: the store it writes through, the
bus it publishes on, its services, and each directive's in-memory runtime.

Every change goes through `_submit`: one transaction with its events,
published after the commit. The engine's parts (`engine.following`,
`engine.planning`, `engine.attempts`, `engine.workspace_ops`,
`engine.resets`) are mixins on this base, put together as
`engine.engine.DirectiveEngine`; they call each other through `self`,
and what they call is declared on `EngineCore` (for readers and type
checkers) with where it is defined.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import pricing
from engine.bus import EventBus
from engine.chains import Claim
from engine.events import EngineEvent, StepOutput
from engine.models import Directive, Severity, Step
from engine.refusals import EngineError
from engine.services import EngineServices
from engine.store import Store, Tx
from engine.worktrees import Workspace

if TYPE_CHECKING:
    from engine.chains import DriverView
    from engine.models import Chain
    from engine.worktrees import Attempt, MergeResult

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What one directive has in memory: its tasks, its opened workspace and
    client, and the locks and flags that order them. Nothing here is state
    the database lacks: a fresh engine starts with an empty one."""

    driver: asyncio.Task[None] | None = None
    steps: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    output: list[EngineEvent] = field(default_factory=list)
    flush: asyncio.TimerHandle | None = None
    llm: Any | None = None
    llm_ready: bool = False
    llm_model: str | None = None  # the directive's `model` the client was built for
    workspace: Workspace | None = None  # git worktrees, when the repo is a git work tree
    workspace_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    workspace_ready: bool = False
    # Said in the log before the first attempt runs (read-only views write
    # nothing): the tree is shared, holds changes the directive leaves out,
    # links the user's environments, has submodules the worktrees lack.
    workspace_notes: list[str] = field(default_factory=list)
    # Why there is no git workspace, for the views that need one.
    workspace_absent: str = ""
    # Why a repository in git could not be given worktrees: no step may run
    # until that is put right (looked at again each time).
    workspace_refused: str | None = None
    # The detected checks the log has named (each once per engine, when a
    # step first uses it).
    checks_said: set[str] = field(default_factory=set)
    # Held while a replan is made: the driver launches no step of the old
    # chain, and a second replan waits for the first (each reads the chain
    # it replaces).
    replan_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Whether the driver must look at every pending step: after anything from
    # outside the step tasks (a start, an answer, a skip, a replan). A step
    # that passes promotes its own dependents (`_judge` in engine.attempts).
    rescan: bool = True
    # Claimed by the driver (running in the database) but their task has not
    # begun: a cancel then never reaches the attempt's own clean-up.
    unstarted: dict[str, Claim] = field(default_factory=dict)
    # The end's tidying ran (worktrees gone, the result's notice written):
    # the driver, a view of the result and the app's announcement may each
    # ask for it at the end, and it is done and said once.
    finish_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    finished: bool = False

    @property
    def replanning(self) -> bool:
        return self.replan_lock.locked()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The driver and the running step attempts."""
        return [t for t in (self.driver, *self.steps.values()) if t is not None]


def _report_failure(task: asyncio.Task[Any]) -> None:
    """A background task (full_auto's own replan, a breaker trip) that ended
    in an error: a refusal is logged as such, anything else as the bug it is."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    if isinstance(exc, EngineError):
        log.warning("background command refused: %s", exc)
    else:
        log.error("background task failed", exc_info=exc)


class EngineCore:
    """State and the one way to write, shared by the engine's parts."""

    def __init__(
        self,
        store: Store,
        bus: EventBus | None = None,
        services: EngineServices | None = None,
        *,
        drives: bool = True,
    ) -> None:
        """`drives=False`: an engine that carries out one command (the
        command line's) and runs no step: what the command starts is left
        for the engine that runs the database, or for `resume`."""
        self.store = store
        self._drives = drives
        self.bus = bus or EventBus()
        self.services = services or EngineServices()
        self._rt: dict[str, Runtime] = {}
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self._inflight: set[asyncio.Future[Any]] = set()  # writes not yet committed
        self._lease: Any | None = None  # engine.lease.EngineLease once started
        self._watcher: asyncio.Task[None] | None = None
        self._seen: dict[str, int] = {}  # directive id -> last event seq published here
        self._only: list[str] | None = None
        self._label = "engine"
        # Who runs this database when this engine only watches (None: we do),
        # and who wants to know when that changes (the app's title line).
        self.watching: str | None = None
        self.on_role_change: Callable[[str | None], None] | None = None
        # Who wants to know of directives another process deleted (they leave
        # no event behind: their log goes with them).
        self.on_directives_gone: Callable[[list[str]], None] | None = None

    if TYPE_CHECKING:
        # What the parts call on one another, declared here for readers and
        # type checkers (nothing at run time): each is defined where named.

        # engine.engine (the driver and the commands)
        def _wake(self, directive_id: str) -> None: ...
        def _launch_driver(self, directive_id: str) -> None: ...
        def _start_claims(self, view: DriverView) -> None: ...
        async def _cancel_steps(self, directive_id: str) -> None: ...
        async def _trip(self, directive_id: str, breaker: str, reason: str) -> None: ...
        async def _recover(self, d: Directive) -> None: ...
        async def _recover_all(self) -> None: ...
        async def record_note(
            self, directive_id: str, message: str, severity: Severity = Severity.INFO
        ) -> None: ...

        # engine.planning
        async def regenerate_chain(
            self, directive_id: str, reason: str, failed_step_id: str | None = None
        ) -> Chain | None: ...

        # engine.workspace_ops
        async def _steps_workspace(self, d: Directive) -> Workspace | None: ...
        async def _require_workspace(self, directive_id: str) -> Workspace: ...
        async def _merge(
            self, directive_id: str, attempt: Attempt
        ) -> tuple[MergeResult | None, str | None]: ...
        async def _merged_unrecorded(
            self, d: Directive, steps: list[Step]
        ) -> list[tuple[str, str]]: ...

        # engine.resets
        async def _finish_cut_off_reset(self, d: Directive) -> None: ...

        # engine.following
        async def _another_engine_lives(self) -> bool: ...

    @property
    def runs_steps(self) -> bool:
        """Whether this engine carries out directives (it holds the lease,
        or was told not to take one), rather than watching another or
        serving one command."""
        return self._drives and self.watching is None

    def _runtime(self, directive_id: str) -> Runtime:
        rt = self._rt.get(directive_id)
        if rt is None:
            rt = self._rt[directive_id] = Runtime()
        return rt

    async def _set_clock(self, directive_id: str, *, running: bool, reason: str) -> Directive:
        """`Tx.clock` in a transaction of its own, on the directive as it is
        then; the directive as it is after."""
        return await self._write(
            directive_id,
            lambda tx: tx.clock(tx.directive(directive_id), running=running, reason=reason),
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_report_failure)

    async def _write(
        self,
        directive_id: str,
        fn: Callable[[Tx], Any],
        then: Callable[[Any], None] | None = None,
    ) -> Any:
        """`_submit`, waited for: what `fn` returned."""
        result, _ = await self._submit(directive_id, fn, then)
        return result

    def _submit(
        self,
        directive_id: str,
        fn: Callable[[Tx], Any],
        then: Callable[[Any], None] | None = None,
    ) -> asyncio.Future[tuple[Any, list[EngineEvent]]]:
        """One transaction, queued now (writes queued before the caller
        yields share a commit): buffered output lines of this directive
        first (so sequence numbers follow what happened), then `fn`; publish
        after commit, then `then(result)`. Both run from the commit itself,
        so a waiter that is cancelled never leaves a write half-known
        (committed on the database thread but never published)."""
        rt = self._runtime(directive_id)
        pending, rt.output = rt.output, []
        if rt.flush is not None:
            rt.flush.cancel()
            rt.flush = None

        def work(tx: Tx) -> Any:
            for ev in pending:
                tx.emit(ev)
            return fn(tx)

        written = self.store.submit(work)
        landed: asyncio.Future[tuple[Any, list[EngineEvent]]] = (
            asyncio.get_running_loop().create_future()
        )

        def on_commit(f: asyncio.Future[Any]) -> None:
            self._inflight.discard(f)
            if f.cancelled():  # the loop is going away
                landed.cancel()
                return
            outcome: BaseException | tuple[Any, list[EngineEvent]]
            if f.exception() is not None:
                rt.output[:0] = pending  # not written: keep them for the next write
                outcome = f.exception()
            else:
                result, events = outcome = f.result()
                self.bus.publish_many(events)
                if events:
                    seen = self._seen.get(directive_id, 0)
                    self._seen[directive_id] = max(seen, events[-1].seq)
                try:
                    if then is not None:
                        then(result)
                except Exception as exc:
                    outcome = exc
            if landed.done():  # its waiter was cancelled
                if isinstance(outcome, Exception):
                    log.error("a write failed after its caller stopped waiting", exc_info=outcome)
            elif isinstance(outcome, BaseException):
                landed.set_exception(outcome)
            else:
                landed.set_result(outcome)

        self._inflight.add(written)
        written.add_done_callback(on_commit)
        return landed

    def _emitter(self, directive_id: str, step: Step) -> Callable[..., None]:
        rt = self._runtime(directive_id)
        loop = asyncio.get_running_loop()

        def emit(line: str, severity: Severity = Severity.DEBUG, source: str = "executor") -> None:
            rt.output.append(
                StepOutput(
                    directive_id=directive_id,
                    step_id=step.id,
                    step_name=step.name,
                    source=source,
                    line=line[:2000],
                    severity=severity,
                )
            )
            if rt.flush is None:
                rt.flush = loop.call_later(self.services.output_flush_s, self._flush, directive_id)

        return emit

    def _flush(self, directive_id: str) -> None:
        rt = self._runtime(directive_id)
        rt.flush = None
        if rt.output:
            self._spawn(self._write(directive_id, lambda tx: None))

    def _llm(self, d: Directive) -> Any | None:
        rt = self._runtime(d.id)
        if not rt.llm_ready or rt.llm_model != d.spec.model:  # `model` changed it
            rt.llm = self.services.llm_provider(d.spec)
            rt.llm_ready, rt.llm_model = True, d.spec.model
            model = getattr(rt.llm, "model", None)
            # Said once in the log, where the app's users look (stderr is
            # under the screen): no price known (costed at the highest
            # rate), or the model retires soon.
            for message in pricing.model_warnings(model) if isinstance(model, str) else []:
                self._spawn(self.record_note(d.id, message, Severity.WARNING))
        return rt.llm
