"""A reset drops checkpoints; a step it leaves alone may hold a carried
commit (the start of its next attempt) built on top of them. That carry is
dropped too, or the next attempt would bring the dropped work back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.models import ApprovalDecision, StepSpec
from engine.store import Store
from tests.conftest import git
from tests.test_engine_worktrees import BASE, OK, edit, integration, run_to_rest, scripted

RED = {"name": "red", "command": "exit 1"}


async def test_a_carry_built_on_a_dropped_checkpoint_is_dropped(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo(BASE)
    steps = [
        StepSpec(name="first", attempts=[edit("a.txt", "FIRST\n")], verifiers=["ok"]),
        # Not after `first` in the chain, but started after it merged (one
        # step at a time): red twice, so blocked, carrying its attempt.
        StepSpec(
            name="second",
            attempts=[edit("b.txt", "2\n"), edit("b.txt", "22\n"), edit("b.txt", "222\n")],
            verifiers=["red"],
        ),
    ]
    spec = scripted(
        repo, steps, [OK, RED], limits={"max_rework_cycles": 1}, workspace={"carry_rework": True}
    )
    spec = spec.model_copy(
        update={"limits": spec.limits.model_copy(update={"max_parallel_steps": 1})}
    )
    engine, did, _ = await run_to_rest(store, spec)
    second = next(s for s in await engine.store.list_steps((await store.current_chain(did)).id)
                  if s.name == "second")  # fmt: skip
    assert second.status.value == "blocked" and second.carry_sha
    assert git(repo, "show", f"{second.carry_sha}:a.txt") == "FIRST\n"  # built on `first`

    rerun = await engine.reset_to_checkpoint(did, 0)

    assert rerun == ["first"]
    second = await store.get_step(second.id)
    assert second.status.value == "blocked" and second.carry_sha is None
    notices = [e.message for e in await store.list_events(did) if e.type == "notice"]
    assert any(n.startswith("step second starts its next attempt afresh") for n in notices)
    assert integration(repo, did, "a.txt") == "one\ntwo\nthree\n"
    (escalation,) = [a for a in await store.pending_approvals(did) if a.step_id == second.id]
    await engine.resolve_approval(escalation.id, ApprovalDecision.STOP)
    await engine.close()
