"""The refusals the engine's commands raise: each says why in words a
person can act on, and the front ends show it as it is."""

from __future__ import annotations


class EngineError(RuntimeError):
    """A command the engine refuses, with the reason a person can act on."""


class ApprovalAlreadyResolved(EngineError):
    pass


class NeedsForce(EngineError):
    """A delete that would lose work or leave refs behind is refused unless
    forced; each front end names its own way to force it."""


class ResultOnlyHere(NeedsForce):
    """The directive's result is on its integration branch and no other.
    `fast_forward`: whether `merge` can take it to the user's branch (else
    the message says how to merge it by hand)."""

    def __init__(self, message: str, *, fast_forward: bool) -> None:
        super().__init__(message)
        self.fast_forward = fast_forward


class RepoGone(EngineError):
    """The directive's repository folder no longer exists."""


class MergeFailed(EngineError):
    """A passed attempt git could not merge for a reason of git's own (a ref
    locked by a concurrent `git gc`, say), not a conflict: no fault of the
    attempt's, and a rework would apply its change a second time on top."""


class NotIsolated(EngineError):
    """The repository is in git, but its steps cannot have worktrees of their
    own (no commit yet, a folder git does not track, the data folder inside
    it, a branch in the way): they would run in the user's checkout, over
    uncommitted work, so the directive pauses saying why instead."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"steps cannot run in worktrees of their own: {why}. Put that right, then resume;"
            " or run the directive file again with `isolate = false` under [workspace] to run"
            " the steps in the folder itself"
        )
