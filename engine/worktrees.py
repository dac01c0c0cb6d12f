"""One git worktree per step attempt, merged back only when the step passes.

Why: parallel steps editing one tree trample each other, and a red attempt's
half-done edits would leak into the next step. Here every attempt works in a
fresh worktree on its own branch, cut from the directive's *integration
branch*; a passed attempt is merged into that branch (fast-forward when
possible, else a real merge commit) and a conflict is reported, never hidden.

The user's own checkout is never touched: the integration branch is created
with `update-ref` (no checkout), merges happen in a dedicated integration
worktree under the engine's data folder, status reads run with optional locks
off (so not even the user's index is refreshed). Only
`fast_forward_user_branch`, called on the user's say-so, moves their branch.

`Workspace` is what the engine holds. It opens the directive's workspace,
merges, resets and shows diffs itself, and hands the rest to its parts:

    engine.git                 the git runner: every call goes through `run_git`
    engine.git_repo            git's answers about one repository
    engine.worktree_names      the names of the branches, folders and hidden refs
    engine.integration_branch  where the directive started; the integration worktree
    engine.attempt_worktrees   one worktree per attempt
    engine.checkpoints         the integration tip after each passed step
    engine.artifacts           ignored outputs a checkpoint hands on
    engine.user_branch         fast-forwarding the user's branch
    engine.worktree_cleanup    crash cleanup, the end, the delete
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.artifacts import ArtifactCopies
from engine.attempt_worktrees import DEFAULT_LINKS, Attempt, AttemptWorktrees
from engine.checkpoints import Checkpoint, Checkpoints
from engine.git import DEFAULT_IDENTITY, GitError, git_env, run_git
from engine.git_repo import GitRepo
from engine.integration_branch import IntegrationBranch
from engine.paths import is_under
from engine.user_branch import FastForwardOffer, fast_forward_as_offered, offer_fast_forward
from engine.workspace_lock import WorkspaceLock
from engine.worktree_cleanup import PruneReport, WorktreeCleanup
from engine.worktree_names import WorktreeNames


class StaleAttemptError(RuntimeError):
    """The integration branch was reset after this attempt started: merging it
    would bring back the work the reset removed."""


@dataclass(frozen=True)
class MergeResult:
    merged: bool
    sha: str | None  # integration tip after the merge (None on conflict)
    fast_forward: bool
    conflicts: list[str]
    previous_sha: str  # integration tip before
    artifacts: list[str] = field(default_factory=list)  # ignored outputs kept for later steps


class Workspace:
    """The git side of one directive. Build it with `await Workspace.open(...)`.
    A method that only hands over to a part is documented there."""

    def __init__(
        self,
        *,
        repo: Path,
        prefix: str,
        git: GitRepo,
        names: WorktreeNames,
        integration: IntegrationBranch,
        base_sha: str,
        user_branch: str | None,
        links: tuple[str, ...],
        artifacts: tuple[str, ...],
    ) -> None:
        self.repo = repo
        self.top = git.top
        self.prefix = prefix
        self.directive_id = names.directive_id
        self.root = names.root
        self.base_sha = base_sha
        self.user_branch = user_branch
        self.dirty_at_open: list[str] = []
        self.links = links
        self.artifacts = artifacts  # top-relative
        self.integration_branch = names.integration_branch
        self.integration_path = names.integration_path
        self.artifacts_path = names.artifacts_path
        self._git = git
        self._names = names
        self._integration = integration
        self._checkpoints = Checkpoints(git, names, base_sha)
        self._artifact_copies = ArtifactCopies(
            git, artifacts, names.artifacts_path, self._checkpoints
        )
        # Merges, resets and pruning go one at a time, across processes too.
        self._lock = WorkspaceLock(names.root.parent / f"{names.directive_id}.lock")
        self._attempts = AttemptWorktrees(
            git=git,
            names=names,
            integration=integration,
            artifact_copies=self._artifact_copies,
            repo=repo,
            prefix=prefix,
            links=links,
            lock=self._lock,
        )
        self._cleanup = WorktreeCleanup(git, names, integration, base_sha, self._lock)

    # ------------------------------------------------------------------ open

    @classmethod
    async def open(
        cls,
        repo: Path,
        directive_id: str,
        data_dir: Path,
        *,
        links: Sequence[str] = DEFAULT_LINKS,
        artifacts: Sequence[str] = (),
        identity: tuple[str, str] = DEFAULT_IDENTITY,
        look_only: bool = False,
    ) -> Workspace | None:
        """The directive's workspace, or None when `repo` is not in a git work
        tree. Idempotent: reopening (after a restart) keeps the base, the
        user's branch and the integration branch recorded the first time.
        `artifacts`: git-ignored paths, relative to `repo`, that a passed
        attempt hands on to the attempts started after it.

        `look_only` (a directive that has ended): for diffs, checkpoints and
        taking the result, which need only refs. It creates nothing, no
        folder, worktree or branch, so reading leaves the user's repository
        as the end left it; ValueError when the directive has no branch there.

        Raises ValueError when the repo is in git but cannot be isolated (no
        commit yet, the folder is not in the last commit, a bare repository,
        the data folder inside the repository) or for an unsafe id, and
        GitError when git fails at it (a branch `directive` in the way)."""
        repo = Path(repo).resolve()
        if not repo.is_dir():
            raise ValueError(f"repository folder not found: {repo}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", directive_id):
            raise ValueError(f"directive id {directive_id!r} is not usable in a branch name")
        env = git_env(identity)
        root = (Path(data_dir).resolve() / "worktrees" / directive_id).resolve()
        found = await _place_in_git(repo, env, root, look_only=look_only)
        if found is None:
            return None
        top, prefix, head = found
        git, names = GitRepo(top, env), WorktreeNames(directive_id, root)
        integration = IntegrationBranch(git, names)
        if look_only:
            base_sha, user_branch = await integration.recorded_start()
        else:
            base_sha, user_branch = await integration.record_start(head)
        ws = cls(
            repo=repo,
            prefix=prefix,
            git=git,
            names=names,
            integration=integration,
            base_sha=base_sha,
            user_branch=user_branch,
            links=tuple(links),
            artifacts=tuple(f"{prefix}{a}" for a in artifacts),
        )
        if look_only:
            return ws
        ws.dirty_at_open = await git.dirty(top)
        root.mkdir(parents=True, exist_ok=True)
        async with ws._lock:
            await integration.ensure_worktree()
        return ws

    # ------------------------------------------------------------- attempts

    async def start_attempt(
        self, step_name: str, attempt: int, *, from_commit: str | None = None
    ) -> Attempt:
        return await self._attempts.start(step_name, attempt, from_commit=from_commit)

    async def commit_attempt(self, attempt: Attempt, message: str) -> str | None:
        return await self._attempts.commit(attempt, message)

    def attempt_path(self, step_name: str, attempt: int) -> Path:
        return self._attempts.path(step_name, attempt)

    async def resume_attempt(self, step_name: str, attempt: int) -> Attempt | None:
        return await self._attempts.resume(step_name, attempt)

    async def remove_attempt(self, attempt: Attempt, *, keep: bool = False) -> None:
        await self._attempts.remove(attempt, keep=keep)

    # ---------------------------------------------------------------- merge

    async def merge(self, attempt: Attempt) -> MergeResult:
        """Merge a committed attempt into the integration branch (ff when
        possible, else a merge commit) inside the integration worktree, and
        record a checkpoint. On conflict nothing changes: `merged` is False
        and `conflicts` names the files."""
        if not attempt.committed:
            raise ValueError(
                f"step {attempt.step_name!r} attempt {attempt.attempt} is not committed: "
                "call commit_attempt first"
            )
        async with self._lock:
            await self._integration.ensure_worktree()
            before = await self._git.rev("HEAD", self.integration_path)
            done = await self.merged_checkpoint(attempt.step_name, attempt.attempt, before)
            if done is not None:
                # Merged before, and the write of its verdict or answer was
                # lost (a kill, a busy database): not merged nor counted twice.
                return MergeResult(True, done.sha, False, [], attempt.base_sha)
            if not await self._git.is_ancestor(attempt.base_sha, before):
                raise StaleAttemptError(
                    f"step {attempt.step_name!r} attempt {attempt.attempt} started from "
                    f"{attempt.base_sha[:12]}, which the integration branch no longer "
                    "contains (it was reset since): start a new attempt"
                )
            # No commit means HEAD is still the base: merging is a no-op.
            target = attempt.commit_sha or attempt.base_sha
            if not await self._git.is_ancestor(target, before):
                message = (
                    f"directive {self.directive_id}: merge step {attempt.step_name} "
                    f"attempt {attempt.attempt}"
                )
                conflicts = await self._git.merge_into(self.integration_path, target, message)
                if conflicts:
                    return MergeResult(False, None, False, conflicts, before)
            after = await self._git.rev("HEAD", self.integration_path)
            fast_forward = after == target and after != before
            kept = await self._add_checkpoint(attempt, after)
            return MergeResult(True, after, fast_forward, [], before, kept)

    # ---------------------------------------------------------- checkpoints

    async def _add_checkpoint(self, attempt: Attempt, sha: str) -> list[str]:
        """Record the checkpoint, its artifacts first (a crash between the two
        leaves a folder the next checkpoint of that number empties, never a
        checkpoint without its artifacts). Returns the artifacts kept."""
        seq = await self._checkpoints.next_seq()
        kept = await self._artifact_copies.keep(attempt, seq)
        await self._checkpoints.record(seq, attempt.step_name, attempt.attempt, sha)
        return kept

    async def checkpoints(self) -> list[Checkpoint]:
        return await self._checkpoints.all()

    async def merged_checkpoint(
        self, step_name: str, attempt: int, tip: str | None = None
    ) -> Checkpoint | None:
        """The checkpoint this attempt's merge recorded, while the branch (at
        `tip`, default its tip now) still holds it: the attempt is merged,
        whatever the database has heard of it."""
        done = await self._checkpoints.of_attempt(step_name, attempt)
        if done is None:
            return None
        return done if await self.holds(done.sha, tip or await self._integration.tip()) else None

    def start_point(self) -> Checkpoint:
        return self._checkpoints.start_point()

    async def dropped_by_reset(self, point: str | int) -> tuple[str, list[Checkpoint]]:
        return await self._checkpoints.dropped_by_reset(point)

    async def reset_to(self, point: str | int) -> list[Checkpoint]:
        """Move the integration branch back to a checkpoint (by number or
        commit, see `dropped_by_reset`) and drop the checkpoints after it,
        which are returned: their steps must run again. Attempts started
        from a commit the reset removed can no longer be merged
        (StaleAttemptError)."""
        _, dropped = await self.move_back(point)
        await self.forget_checkpoints(dropped)
        return dropped

    async def move_back(self, point: str | int) -> tuple[str, list[Checkpoint]]:
        """The first half of `reset_to`: the branch moves, the checkpoints it
        drops stay until `forget_checkpoints`, so a reset cut off before the
        database heard of it can still tell what it dropped (`unreached`)."""
        async with self._lock:
            target, dropped = await self.dropped_by_reset(point)
            await self._integration.ensure_worktree()
            await self._git.run(self.integration_path, "reset", "--hard", "-q", target)
            return target, dropped

    async def forget_checkpoints(self, dropped: list[Checkpoint]) -> None:
        async with self._lock:
            await self._git.delete_refs(c.ref for c in dropped)
            for c in dropped:
                await self._artifact_copies.drop(c.seq)

    async def unreached(self) -> tuple[str, list[Checkpoint]]:
        """The integration tip, and the checkpoints it no longer holds: a
        reset moved the branch, and was cut off (a kill, a busy database)
        before the database heard of it."""
        tip = await self._integration.tip()
        # One git call, not one per checkpoint: this runs at every start.
        prefix = self._names.checkpoints_prefix
        out = await self._git.run(
            self.top, "for-each-ref", f"--no-merged={tip}", "--format=%(refname)", prefix
        )
        refs = set(out.out.split())
        return tip, [c for c in await self.checkpoints() if c.ref in refs]

    # ---------------------------------------------------------------- diffs

    async def diff(self, base: str, sha: str, *, stat: bool = False) -> str:
        args = ["diff", "--no-color", "--no-ext-diff", "-M"]
        if stat:
            args.append("--stat")
        return (await self._git.run(self.top, *args, base, sha, "--")).out

    async def left_out(self, attempt: Attempt) -> list[str]:
        return await self._artifact_copies.left_out(attempt)

    async def changed_files(self, base: str, sha: str) -> list[str]:
        out = await self._git.run(self.top, "diff", "--name-only", "-z", "-M", base, sha, "--")
        return [p for p in out.out.split("\0") if p]

    async def attempt_diff(self, attempt: Attempt) -> str:
        """What the attempt changed relative to the integration tip it
        started from (carried-over work included)."""
        return await self.diff(attempt.base_sha, attempt.commit_sha or attempt.start_sha)

    async def integration_tip(self) -> str:
        return await self._integration.tip()

    async def holds(self, sha: str, tip: str) -> bool:
        """Whether `tip`'s history holds `sha`: an attempt started from
        `sha` can still be merged into a branch at `tip` (see `merge`)."""
        try:
            return await self._git.is_ancestor(sha, tip)
        except GitError:  # a commit git does not know: not there
            return False

    async def final_diff(self, *, stat: bool = False) -> str:
        """Everything the directive did: base .. integration tip."""
        return await self.diff(self.base_sha, await self._integration.tip(), stat=stat)

    # ----------------------------------------------------- the user's branch

    async def offer_fast_forward(self) -> FastForwardOffer:
        tip = await self._integration.tip()
        return await offer_fast_forward(self._git, self.user_branch, self.integration_branch, tip)

    async def fast_forward_user_branch(self) -> str:
        return await fast_forward_as_offered(self._git, await self.offer_fast_forward())

    # -------------------------------------------------------------- cleanup

    async def prune(self, keep: Iterable[Attempt | Path] = ()) -> PruneReport:
        return await self._cleanup.prune(keep)

    async def close(self) -> None:
        await self._cleanup.close()

    async def result_only_here(self) -> bool:
        return await self._cleanup.result_only_here()

    async def checked_out_by_user(self) -> Path | None:
        return await self._cleanup.checked_out_by_user()

    async def discard(self) -> None:
        await self._cleanup.discard()


def submodule_paths(top: Path) -> list[str]:
    """The submodule paths `.gitmodules` lists: an attempt's worktree has
    their folders empty (checking them out may need the network)."""
    listed = top / ".gitmodules"
    if not listed.is_file():
        return []
    lines = listed.read_text(encoding="utf-8", errors="replace").splitlines()
    pairs = (line.strip().partition("=") for line in lines)
    return [value.strip() for key, _, value in pairs if key.strip() == "path" and value.strip()]


async def placement(repo: Path, data_dir: Path) -> tuple[Path, str, list[str]] | None:
    """Where a directive's steps on `repo` would run, as `Workspace.open`
    finds it, creating nothing (for `directive-tui check`): None outside a
    git work tree; else the work tree's top, the commit HEAD names and what
    the checkout has uncommitted. ValueError (or GitError) naming why its
    steps could not have worktrees of their own."""
    repo = Path(repo).resolve()
    if not repo.is_dir():
        raise ValueError(f"repository folder not found: {repo}")
    env = git_env(DEFAULT_IDENTITY)
    root = (Path(data_dir).resolve() / "worktrees").resolve()
    found = await _place_in_git(repo, env, root, look_only=False)
    if found is None:
        return None
    top, _, head = found
    return top, head, await GitRepo(top, env).dirty(top)


async def _place_in_git(
    repo: Path, env: dict[str, str], root: Path, *, look_only: bool
) -> tuple[Path, str, str] | None:
    """Where `repo` sits in git: its work tree's top, its path from there
    (`prefix`, "" at the top) and the commit HEAD names ("" when there is
    none yet, which only `look_only` accepts). None outside a work tree.
    Refused: worktrees inside the repository, a folder git does not track."""
    inside = await run_git(repo, "rev-parse", "--is-inside-work-tree", env=env, check=False)
    if inside.code != 0 and "not a git repository" in inside.err:
        return None
    if inside.code != 0:  # a repository git refuses (dubious ownership, say): never in place
        why = " ".join(inside.err.split()) or f"exit {inside.code}"
        raise ValueError(f"git refuses {repo}: {why}")
    if inside.out.strip() != "true":  # a bare repository, or a .git folder itself
        raise ValueError(
            f"{repo} is a git repository's own data, not a work tree (a bare repository or a"
            " .git folder): point `repo` at a checkout of it"
        )
    top = Path((await run_git(repo, "rev-parse", "--show-toplevel", env=env)).out.strip())
    top = top.resolve()
    prefix = (await run_git(repo, "rev-parse", "--show-prefix", env=env)).out.strip()
    if is_under(root, top):
        raise ValueError(
            f"the folder for the steps' worktrees, {root}, is inside the repository {top}"
            " (it goes beside the database): use a database outside the repository (--db)"
        )
    head = await run_git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}", env=env, check=False)
    if head.code != 0 and not look_only:
        raise ValueError(
            f"{top} has no commit yet: commit once so the directive has a base to branch from"
        )
    if prefix:
        tracked = await run_git(top, "ls-tree", "-d", "HEAD", "--", prefix.rstrip("/"), env=env)
        if not tracked.out.strip():
            raise ValueError(f"{repo} is not in the last commit of {top}: commit it first")
    return top, prefix, head.out.strip() if head.code == 0 else ""
