"""The engine's side of the directive's git workspace (`engine.worktrees`):
opened once per directive, the views on it (checkpoints, diffs), merging a
passed attempt, the user's fast-forward, and tidying the worktrees when
the directive ends, or later when its repository folder was gone then.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
from collections.abc import Sequence
from pathlib import Path

from engine.attempt_worktrees import linked_environments
from engine.core import EngineCore
from engine.events import Notice
from engine.models import (
    Actor,
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    Directive,
    Severity,
    Step,
    StepRun,
    StepStatus,
)
from engine.refusals import EngineError, MergeFailed, NotIsolated, RepoGone
from engine.transitions import DIRECTIVE_TERMINAL, STEP_ACTIVE
from engine.worktrees import (
    Attempt,
    Checkpoint,
    FastForwardOffer,
    GitError,
    MergeResult,
    StaleAttemptError,
    Workspace,
    submodule_paths,
)

S = StepStatus
log = logging.getLogger(__name__)


class WorkspaceOps(EngineCore):
    """The directive's workspace: opening, views, merges and the end's
    tidying. Needs nothing from the other parts."""

    async def checkpoints(self, directive_id: str) -> list[Checkpoint]:
        return await (await self._require_workspace(directive_id)).checkpoints()

    async def start_point(self, directive_id: str) -> Checkpoint:
        """Checkpoint 0: resetting to it runs every step again."""
        return (await self._require_workspace(directive_id)).start_point()

    async def final_diff(self, directive_id: str, *, stat: bool = False) -> str:
        return await (await self._require_workspace(directive_id)).final_diff(stat=stat)

    async def run_diff(self, run: StepRun) -> str:
        """The diff of one attempt (its start commit to its own commit)."""
        if not (run.base_sha and run.commit_sha):
            return ""
        ws = await self._require_workspace(run.directive_id)
        return await ws.diff(run.base_sha, run.commit_sha)

    async def offer_fast_forward(self, directive_id: str) -> FastForwardOffer:
        return await (await self._require_workspace(directive_id)).offer_fast_forward()

    async def fast_forward_user_branch(self, directive_id: str) -> str:
        """Move the user's branch to the directive's result: only on request."""
        ws = await self._require_workspace(directive_id)
        try:
            sha = await ws.fast_forward_user_branch()
        except (GitError, ValueError) as exc:
            raise EngineError(f"cannot fast-forward your branch: {exc}") from exc
        notice = Notice(
            directive_id=directive_id,
            message=f"your branch {ws.user_branch} fast-forwarded to {sha[:10]}",
            severity=Severity.SUCCESS,
            actor=Actor.USER,
        )
        # The branch has moved: a log line that cannot be written (a database
        # kept busy) must not report the move as failed ("try again" said
        # 'already merged', the old commit and the undo never shown).
        try:
            await self._write(directive_id, lambda tx: tx.emit(notice))
        except Exception:  # noqa: BLE001 - the move stands; only its log line is lost
            log.warning("the fast-forward of %s was not logged", ws.user_branch, exc_info=True)
        return sha

    def _work_dir(self) -> Path:
        return self.services.work_dir or default_work_dir(self.store.path)

    async def _workspace(self, d: Directive) -> Workspace | None:
        """The directive's git workspace, opened once; None means attempts run
        in the repository itself (not a git work tree, or isolation is off).
        An ended directive's is opened to look only, creating nothing in the
        repository (see `Workspace.open`). RepoGone, and nothing kept, while
        the folder is missing: it may come back."""
        rt = self._runtime(d.id)
        async with rt.workspace_lock:
            if rt.workspace_ready:
                return rt.workspace
            require_repo(d)
            rt.workspace_ready = True
            if not (self.services.isolate_steps and d.spec.workspace.isolate):
                rt.workspace_absent = (
                    "it runs in its folder without worktrees ([workspace] isolate is off)"
                )
                return None
            try:
                rt.workspace = await Workspace.open(
                    Path(d.spec.repo),
                    d.id,
                    self._work_dir(),
                    artifacts=d.spec.workspace.artifacts,
                    links=d.spec.workspace.links,
                    look_only=d.status in DIRECTIVE_TERMINAL,
                )
            except (GitError, ValueError) as exc:
                # Never the user's checkout instead: looked at again next time.
                rt.workspace_absent = rt.workspace_refused = str(exc)
                rt.workspace_ready = False
                return None
            rt.workspace_refused = None
            if rt.workspace is None:
                rt.workspace_absent = f"{d.spec.repo} is not a git work tree"
                rt.workspace_notes = [
                    f"{d.spec.repo} is not a git work tree: steps run in it directly"
                    " and parallel steps share one tree"
                ]
            else:
                rt.workspace_notes = await workspace_notes(rt.workspace)
            return rt.workspace

    async def _steps_workspace(self, d: Directive) -> Workspace | None:
        """The workspace an attempt runs in. The folder is looked for every
        time (it can go while the directive runs: RepoGone), and the first
        attempt writes the workspace's warning to the log. NotIsolated when
        the repository is in git but cannot be given worktrees."""
        require_repo(d)
        ws = await self._workspace(d)
        rt = self._runtime(d.id)
        if rt.workspace_refused is not None:
            raise NotIsolated(rt.workspace_refused)
        notes, rt.workspace_notes = rt.workspace_notes, []
        if notes:
            notices = [
                Notice(directive_id=d.id, message=note, severity=Severity.WARNING) for note in notes
            ]
            await self._write(d.id, lambda tx: [tx.emit(notice) for notice in notices])
        return ws

    def _worktrees_dir(self, directive_id: str) -> Path:
        """Where the directive's worktrees live (`Workspace.open` puts them
        there): its presence marks an end not tidied yet."""
        return self._work_dir() / "worktrees" / directive_id

    def _worktrees_left(self, directive_id: str) -> bool:
        return self._worktrees_dir(directive_id).exists()

    def _left_to_tidy(self, d: Directive) -> bool:
        """An ended directive whose worktrees are still there (its end came
        from another process, before a restart, or while its repository
        folder was gone), and whose folder is there to remove them from."""
        return d.status in DIRECTIVE_TERMINAL and self._worktrees_left(d.id) and not missing_repo(d)

    async def _require_workspace(self, directive_id: str) -> Workspace:
        """For the git views and commands (diff, checkpoints, merge, reset):
        they refuse in plain words when there is nothing to show (the views
        write no event; merge and reset log what they did). The first to
        find the folder of a directive that ended while it was gone removes
        the worktrees left (and writes the notice the end could not)."""
        d = await self.store.get_directive(directive_id)
        if self._left_to_tidy(d):
            await self._finish_workspace(directive_id)
        ws = await self._workspace(d)
        if ws is None:
            why = self._runtime(directive_id).workspace_absent
            raise EngineError(f"this directive has no git workspace: {why}")
        return ws

    async def _merged_unrecorded(self, d: Directive, steps: list[Step]) -> list[tuple[str, str]]:
        """(step id, checkpoint) for those of `steps` (as the database has
        them: running or evaluating) whose last attempt's merge is on the
        integration branch all the same (`chains.passed_unrecorded`)."""
        if not steps or missing_repo(d):
            return []
        ws = await self._workspace(d)
        if ws is None:
            return []
        tip = await ws.integration_tip()
        found = []
        for step in steps:
            if step.status not in STEP_ACTIVE or step.attempts < 1:
                continue
            checkpoint = await ws.merged_checkpoint(step.name, step.attempts, tip)
            if checkpoint is not None:
                found.append((step.id, checkpoint.sha))
        return found

    async def _prune_worktrees(self, d: Directive) -> None:
        """After a crash: remove every worktree no step still needs (those
        awaiting approval, and failed or blocked ones kept for inspection)."""
        chain = await self.store.current_chain(d.id)
        if chain is None or missing_repo(d):  # gone: its first attempt pauses it
            return
        ws = await self._workspace(d)
        if ws is None:
            return
        keep_status = (S.AWAITING_APPROVAL, S.BLOCKED, S.FAILED)
        keep = [
            ws.attempt_path(s.name, s.attempts)
            for s in await self.store.steps_in(chain.id, keep_status)
            if s.attempts
        ]
        with contextlib.suppress(GitError):
            await ws.prune(keep=keep)

    async def _merge_approved(
        self, approval: ApprovalRequest, decision: ApprovalDecision
    ) -> tuple[MergeResult | None, str | None, Attempt | None]:
        """Before an answer to a step review is written: approving merges the
        waiting attempt (a conflict turns the approval into a rework)."""
        review = approval.kind is ApprovalKind.STEP_REVIEW
        if not (review and approval.pending and approval.step_id):
            return None, None, None
        ws = await self._workspace(await self.store.get_directive(approval.directive_id))
        if ws is None:
            return None, None, None
        step = await self.store.get_step(approval.step_id)
        if decision is not ApprovalDecision.APPROVE:
            await self._refuse_if_merged(ws, step, approval)
        attempt = await ws.resume_attempt(step.name, step.attempts)
        if attempt is None or decision is not ApprovalDecision.APPROVE:
            return None, None, attempt
        merged, problem = await self._merge(approval.directive_id, attempt)
        return merged, problem, attempt

    async def _refuse_if_merged(self, ws: Workspace, step: Step, approval: ApprovalRequest) -> None:
        """An approve whose merge went through but whose answer's write did
        not (a busy database: exit 75): the request still waits, but the
        work is on the integration branch, where a deny would leave it."""
        checkpoint = await ws.merged_checkpoint(step.name, step.attempts)
        if checkpoint is None:
            return
        raise EngineError(
            f"approval {approval.id} was approved: step {step.name}'s attempt is merged"
            f" (checkpoint #{checkpoint.seq}), though writing the answer was cut off; approve"
            f" it again to record that, then reset to checkpoint #{checkpoint.seq - 1}"
            " to take the work back out"
        )

    async def _merge(
        self, directive_id: str, attempt: Attempt
    ) -> tuple[MergeResult | None, str | None]:
        """Merge a passed attempt into the integration branch. Returns the
        result and, when it could not merge (a conflict, or a reset since it
        started), rework instructions saying why; MergeFailed when git failed
        at it otherwise (for a person, never a rework)."""
        ws = self._runtime(directive_id).workspace
        try:
            result = await ws.merge(attempt)
        except StaleAttemptError as exc:
            return None, f"The attempt passed its checks but could not be merged: {exc}"
        except GitError as exc:
            raise MergeFailed(
                f"step {attempt.step_name} passed its checks but git could not merge it: {exc}"
            ) from exc
        if result.conflicts:
            files = ", ".join(result.conflicts)
            return result, (
                f"Your change passed its checks but conflicts with the integration branch in: "
                f"{files}. Other steps changed these files after your attempt started. The next "
                "attempt starts from the current integration branch with your previous commit "
                "merged in where it applies; redo the change so that it merges cleanly."
            )
        return result, None

    async def _finish_workspace(self, directive_id: str) -> None:
        rt = self._runtime(directive_id)
        async with rt.finish_lock:
            if not rt.finished:
                rt.finished = await self._finish(directive_id)

    async def _finish(self, directive_id: str) -> bool:
        """The directive ended: worktrees go, the integration branch stays,
        and the user is told how to take the result (never done for them).
        Not while the repository folder is gone: the log says so, and the
        engine's folder of worktrees stays, the mark `_left_to_tidy` finds
        once the repository is back. Whether it is done (False: left for the
        folder's return)."""
        gone = missing_repo(await self.store.get_directive(directive_id))
        if gone and self._worktrees_left(directive_id):
            message = (
                f"{gone}, so its worktrees stay: the first command that finds it again"
                " (the app, diff, checkpoints or merge) removes them"
            )
            notice = Notice(directive_id=directive_id, message=message, severity=Severity.WARNING)
            await self._write(directive_id, lambda tx: tx.emit(notice))
            return False
        ws = self._runtime(directive_id).workspace
        if ws is None and self._worktrees_left(directive_id):
            # ended by a command of another process, or before a restart
            with contextlib.suppress(RepoGone):
                ws = await self._workspace(await self.store.get_directive(directive_id))
        if ws is None:
            return True
        try:
            await ws.close()
            offer = await ws.offer_fast_forward()
        except GitError as exc:
            message, severity = f"could not tidy the worktrees: {exc}", Severity.WARNING
        else:
            message, severity = self._result_notice(directive_id, ws, offer), Severity.INFO
        notice = Notice(directive_id=directive_id, message=message, severity=severity)
        await self._write(directive_id, lambda tx: tx.emit(notice))
        return True

    def _result_notice(self, directive_id: str, ws: Workspace, offer: FastForwardOffer) -> str:
        """Where the result is and the command that takes it, with this
        store's database (a bare command would open the default one); a
        directive that committed nothing has no result to point at."""
        if offer.target_sha == ws.base_sha:
            return "no step changed anything: nothing to merge"
        message = f"the result is on branch {ws.integration_branch}"
        db = shlex.quote(str(self.store.path.absolute()))
        merge = f"directive-tui --db {db} merge {directive_id}"
        if offer.blocked_by_checkout:  # the user's checkout to tidy, then merge goes
            return f"{message} ({offer.reason}); then `{merge}` fast-forwards {offer.branch}"
        if not offer.possible:
            return f"{message} ({offer.reason})"
        return f"{message}; `{merge}` fast-forwards {offer.branch}"


def default_work_dir(db: Path) -> Path:
    """Where the worktrees of a database's directives go: a folder beside it
    named after it (`my-work/` for `my.db`), never inside a repository."""
    return db.parent / f"{db.stem}-work"


async def workspace_notes(ws: Workspace) -> list[str]:
    """What the log says of a git workspace before its first attempt."""
    return await checkout_notes(ws.repo, ws.top, ws.dirty_at_open, ws.links)


async def checkout_notes(
    repo: Path, top: Path, dirty: list[str], links: Sequence[str]
) -> list[str]:
    """What the steps' worktrees leave out of the user's checkout at `top`
    or share with it, as the log says it before the first attempt (and
    `directive-tui check` before a run)."""
    notes = []
    if dirty:
        notes.append(
            "uncommitted changes in your tree are not part of this directive: "
            + ", ".join(dirty[:8])
        )
    shared = await linked_environments(repo, links)
    if shared:
        notes.append(
            f"each step's worktree links your {', '.join(shared)} (git-ignored, not a copy):"
            " a step that installs into or deletes it changes yours; `links = []` under"
            " [workspace] in the directive file turns this off"
        )
    modules = submodule_paths(top)
    if modules:
        notes.append(
            f"submodules are not checked out in the steps' worktrees ({', '.join(modules[:8])}):"
            " steps find their folders empty, and changes made inside them are not kept"
        )
    return notes


def missing_repo(d: Directive) -> str | None:
    """Why nothing can be done in the directive's repository: its folder is
    gone (deleted, or moved since the directive was written); else None."""
    repo = Path(d.spec.repo)
    return None if repo.is_dir() else f"the repository folder {repo} is gone"


def require_repo(d: Directive) -> None:
    gone = missing_repo(d)
    if gone:
        raise RepoGone(gone)
