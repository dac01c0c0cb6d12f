"""Where a directive's git things are: its branches, folders and hidden refs.

Names (directive `d`, step slug `s`, attempt `n`):

    branches   directive/<d>/integration          the directive's result
               directive/<d>/step/<s>/<n>         one attempt (deleted with it)
    folders    <data_dir>/worktrees/<d>/_integration
               <data_dir>/worktrees/<d>/<s>-<n>
               <data_dir>/worktrees/<d>/_artifacts/<seq>   ignored outputs a checkpoint hands on
    refs       refs/directive-tui/<d>/base        the user's HEAD at the start
               refs/directive-tui/<d>/user        -> the user's branch (symbolic)
               refs/directive-tui/<d>/checkpoints/<seq>/<s>/<n>
               refs/directive-tui/<d>/attempts/<s>/<n>/{base,start,head}

The hidden refs keep every checkpoint and attempt commit reachable (so `git
gc` never drops the history the step detail shows) without cluttering
`git branch`; `Workspace.discard()` deletes them with the directive.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "refs/directive-tui"
INTEGRATION_DIR = "_integration"
ARTIFACTS_DIR = "_artifacts"
SLUG_MAX = 40


def step_slug(name: str) -> str:
    """A branch- and folder-safe name for a step. Lower case (refs are files,
    and some file systems ignore case); a short hash of the real name is
    added whenever the slug differs from it, so two names never collide."""
    if not name.strip():
        raise ValueError("step name is empty")
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower())
    slug = re.sub(r"\.{2,}", ".", slug).strip(".-_")[:SLUG_MAX].rstrip(".-_")
    if slug.endswith(".lock"):
        slug = slug[: -len(".lock")] + "-lock"
    slug = slug or "step"
    if slug != name:
        slug += "-" + hashlib.sha1(name.encode()).hexdigest()[:6]
    return slug


@dataclass(frozen=True)
class WorktreeNames:
    """The names above for directive `directive_id`, whose folders are under
    `root` (`<data_dir>/worktrees/<d>`)."""

    directive_id: str
    root: Path

    @property
    def integration_branch(self) -> str:
        return f"directive/{self.directive_id}/integration"

    @property
    def integration_ref(self) -> str:
        return f"refs/heads/{self.integration_branch}"

    @property
    def integration_path(self) -> Path:
        return self.root / INTEGRATION_DIR

    @property
    def artifacts_path(self) -> Path:
        return self.root / ARTIFACTS_DIR

    @property
    def hidden(self) -> str:
        """The prefix of the directive's hidden refs."""
        return f"{NAMESPACE}/{self.directive_id}"

    @property
    def base_ref(self) -> str:
        return f"{self.hidden}/base"

    @property
    def user_ref(self) -> str:
        return f"{self.hidden}/user"

    @property
    def checkpoints_prefix(self) -> str:
        return f"{self.hidden}/checkpoints/"

    def checkpoint_ref(self, seq: int, step_name: str, attempt: int) -> str:
        return f"{self.checkpoints_prefix}{seq:04d}/{step_slug(step_name)}/{attempt}"

    @property
    def step_branches(self) -> str:
        """The prefix of every attempt branch's full ref name."""
        return f"refs/heads/directive/{self.directive_id}/step/"

    def attempt(self, step_name: str, attempt: int) -> tuple[Path, str]:
        """The attempt's worktree folder and branch."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        slug = step_slug(step_name)
        return (
            self.root / f"{slug}-{attempt}",
            f"directive/{self.directive_id}/step/{slug}/{attempt}",
        )

    def attempt_refs(self, step_name: str, attempt: int) -> str:
        """The prefix of the attempt's hidden refs (`base`, `start`, `head`)."""
        return f"{self.hidden}/attempts/{step_slug(step_name)}/{attempt}"
