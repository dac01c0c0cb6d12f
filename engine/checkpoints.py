"""Checkpoints: the integration tip right after each passed step's merge,
kept as hidden refs (`engine.worktree_names`), and the start point, #0,
where the integration branch began. A reset goes back to one of them."""

from __future__ import annotations

from dataclasses import dataclass

from engine.git_repo import GitRepo
from engine.worktree_names import WorktreeNames, step_slug

START_LABEL = "start: before any step"  # how the start point is named to a person


@dataclass(frozen=True)
class Checkpoint:
    seq: int  # 0: the start point, where the integration branch began
    step_slug: str
    attempt: int
    sha: str
    ref: str

    @property
    def is_start(self) -> bool:
        return self.seq == 0


class Checkpoints:
    """The checkpoints of a directive whose integration branch began at `base_sha`."""

    def __init__(self, git: GitRepo, names: WorktreeNames, base_sha: str) -> None:
        self._git = git
        self._names = names
        self._base_sha = base_sha

    async def all(self) -> list[Checkpoint]:
        """One per passed step, oldest first: the integration tip right after
        its merge."""
        found: list[Checkpoint] = []
        prefix = self._names.checkpoints_prefix
        for ref, sha in await self._git.refs(prefix):
            seq, slug, attempt = ref.removeprefix(prefix).split("/")
            found.append(Checkpoint(int(seq), slug, int(attempt), sha, ref))
        return sorted(found, key=lambda c: c.seq)

    async def of_attempt(self, step_name: str, attempt: int) -> Checkpoint | None:
        """The checkpoint the merge of this step's attempt recorded, if any."""
        slug = step_slug(step_name)
        found = [c for c in await self.all() if (c.step_slug, c.attempt) == (slug, attempt)]
        return found[-1] if found else None

    async def next_seq(self) -> int:
        """The number the next checkpoint takes: one past the newest."""
        existing = await self.all()
        return (existing[-1].seq + 1) if existing else 1

    async def record(self, seq: int, step_name: str, attempt: int, sha: str) -> None:
        """Checkpoint `seq`, at `sha` (create-only: never moves one that is there)."""
        ref = self._names.checkpoint_ref(seq, step_name, attempt)
        await self._git.run(self._git.top, "update-ref", ref, sha, "")

    def start_point(self) -> Checkpoint:
        """Where the integration branch began (the user's branch when the
        directive started), as checkpoint 0: resetting to it drops them all."""
        return Checkpoint(seq=0, step_slug="", attempt=0, sha=self._base_sha, ref="")

    async def dropped_by_reset(self, point: str | int) -> tuple[str, list[Checkpoint]]:
        """The commit a reset to `point` moves to and the checkpoints it drops;
        ValueError when `point` is none of ours. Reads only.

        `point` is a checkpoint's number (0: where the directive started, so
        every checkpoint is dropped) or a commit. Steps that commit nothing
        share the commit before them: a commit names the latest checkpoint
        at it, and only a number goes back past the others."""
        cps = await self.all()
        directive_id, base_sha = self._names.directive_id, self._base_sha
        if isinstance(point, int):
            if point == 0:
                return base_sha, cps
            at = [i for i, c in enumerate(cps) if c.seq == point]
            if not at:
                numbers = ", ".join(f"#{c.seq}" for c in cps) or "none yet"
                raise ValueError(
                    f"directive {directive_id} has no checkpoint #{point}"
                    f" (#0 is where it started; checkpoints: {numbers})"
                )
            return cps[at[0]].sha, cps[at[0] + 1 :]
        sha = point
        target = await self._git.rev(sha)
        at = [i for i, c in enumerate(cps) if c.sha == target]
        if at:
            return target, cps[at[-1] + 1 :]
        if target == base_sha:
            return target, cps
        known = ", ".join(c.sha[:12] for c in cps) or "none yet"
        raise ValueError(
            f"{sha} is not a checkpoint of directive {directive_id} "
            f"(base {base_sha[:12]}; checkpoints: {known})"
        )
