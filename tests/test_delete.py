"""Deleting a directive that has ended (or never started) removes it for
good: its rows and events, and in the repository its worktrees, hidden refs
and integration branch. A result that lives only on that branch is not
thrown away unless asked, and nothing that runs or waits can be deleted.
Before that, the end itself: its worktrees are tidied and the result's
notice written once, however many views ask for the result meanwhile."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import (
    DirectiveEngine,
    EngineError,
    EngineServices,
    NeedsForce,
    Outcome,
    ResultOnlyHere,
)
from engine.invariants import check_invariants
from engine.models import (
    Autonomy,
    DirectiveSpec,
    ExecutorKind,
    FileEdit,
    PlannerKind,
    ScriptedAttempt,
    StepSpec,
    VerifierConfig,
)
from engine.store import Store
from tests.conftest import git
from tests.test_cli import STEP_OK, YELLOW, directive_file, only_directive, run_cli

WRITE = StepSpec(
    name="write", attempts=[ScriptedAttempt(edits=[FileEdit(path="new.txt", content="hi\n")])]
)


def spec(repo: Path, *steps: StepSpec) -> DirectiveSpec:
    return DirectiveSpec(
        title="write a file",
        goal="new.txt says hi",
        repo=repo,
        autonomy=Autonomy.FULL_AUTO,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SCRIPTED,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
        steps=list(steps or [WRITE]),
    )


@pytest.fixture
async def engine(store: Store):
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    await engine.start()
    yield engine
    await engine.close()


async def completed(engine: DirectiveEngine, repo: Path) -> str:
    d = await engine.create_directive(spec(repo))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    return d.id


def commit_of_yours(repo: Path) -> None:
    """Your branch moves on past where the directive started."""
    (repo / "mine.txt").write_text("mine\n")
    git(repo, "add", "mine.txt")
    git(repo, "commit", "-qm", "mine")


def run_by_the_cli(tmp_path: Path, repo: Path) -> tuple[str, str]:
    """A directive writing new.txt, run to its end by `directive-tui run
    --headless`: its database and id."""
    writes = '[[steps]]\nname = "write"\ncommand = "echo hi > new.txt"\n'
    db = str(tmp_path / "x.db")
    assert (
        run_cli("--db", db, "run", str(directive_file(tmp_path, repo, writes)), "--headless")[0]
        == 0
    )
    return db, only_directive(db)


def directive_refs(repo: Path, did: str) -> list[str]:
    found = git(repo, "for-each-ref", "--format=%(refname)", f"refs/directive-tui/{did}/")
    branches = git(repo, "branch", "--list", f"directive/{did}/*")
    return found.split() + branches.split()


def worktree_folder(store: Store, did: str) -> Path:
    return store.path.with_name(store.path.stem + "-work") / "worktrees" / did


async def test_a_merged_directive_is_deleted_with_everything_it_left_in_git(
    engine: DirectiveEngine, store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    did = await completed(engine, repo)
    await engine.fast_forward_user_branch(did)
    assert directive_refs(repo, did)

    said = await engine.delete_directive(did)

    assert said[0] == f"deleted 'write a file' ({did})"
    assert said[1] == f"removed branch directive/{did}/integration and the directive's refs"
    assert await store.list_directives() == []
    assert directive_refs(repo, did) == []
    assert not worktree_folder(store, did).exists()
    assert git(repo, "show", "HEAD:new.txt") == "hi\n"  # the user's branch keeps the result
    assert await check_invariants(store.path) == []


async def test_a_result_merged_nowhere_is_kept_unless_forced(
    engine: DirectiveEngine, store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    did = await completed(engine, repo)

    with pytest.raises(
        EngineError, match=f"is on branch directive/{did}/integration and nowhere else"
    ):
        await engine.delete_directive(did)
    assert [d.id for d in await store.list_directives()] == [did]
    assert f"directive/{did}/integration" in git(repo, "branch", "--list")
    assert await store.list_events(did)  # nothing of it was lost

    await engine.delete_directive(did, force=True)
    assert await store.list_directives() == [] and directive_refs(repo, did) == []


async def test_a_result_kept_by_a_tag_is_deleted_without_force(
    engine: DirectiveEngine, store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """Tagged (or pushed), the result was still called on its branch only,
    and delete asked for --force."""
    repo = make_git_repo()
    did = await completed(engine, repo)
    git(repo, "tag", "kept", f"directive/{did}/integration")

    await engine.delete_directive(did)
    assert await store.list_directives() == []
    assert git(repo, "show", "kept:new.txt") == "hi\n"  # the tag keeps the result


async def test_a_result_your_branch_cannot_fast_forward_to_says_how_to_merge_it(
    engine: DirectiveEngine, make_git_repo: Callable[..., Path]
) -> None:
    """The refusal offered `merge ID`, which then refused too: the user's
    branch had moved on since the directive started."""
    repo = make_git_repo()
    did = await completed(engine, repo)
    commit_of_yours(repo)

    with pytest.raises(ResultOnlyHere) as refused:
        await engine.delete_directive(did)
    assert not refused.value.fast_forward
    assert f"merge directive/{did}/integration into it yourself" in str(refused.value)


async def test_a_branch_the_user_has_checked_out_is_not_deleted_even_forced(
    engine: DirectiveEngine, store: Store, make_git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """Git would delete it from under the checkout, which would then stand on
    a branch with no commit (every file staged as new); `git branch -D`
    refuses that too."""
    repo = make_git_repo()
    did = await completed(engine, repo)
    await engine.fast_forward_user_branch(did)  # merged: no force needed otherwise
    branch = f"directive/{did}/integration"
    git(repo, "checkout", "-q", branch)

    for force in (False, True):
        with pytest.raises(EngineError, match=f"branch {branch} is checked out at {repo}"):
            await engine.delete_directive(did, force=force)
    assert [d.id for d in await store.list_directives()] == [did]
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == branch

    git(repo, "checkout", "-q", "-")
    inspect = tmp_path / "inspect"
    git(repo, "worktree", "add", "-q", str(inspect), branch)  # a worktree of the user's
    with pytest.raises(EngineError, match=f"is checked out at {inspect.resolve()}"):
        await engine.delete_directive(did, force=True)
    assert directive_refs(repo, did)  # git untouched too

    git(repo, "worktree", "remove", str(inspect))
    await engine.delete_directive(did)
    assert await store.list_directives() == [] and directive_refs(repo, did) == []


async def test_a_running_or_paused_directive_is_not_deleted(
    engine: DirectiveEngine, store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    d = await engine.create_directive(spec(repo))
    await engine.start_directive(d.id)
    await engine.pause_directive(d.id)
    with pytest.raises(EngineError, match="is paused: stop it first"):
        await engine.delete_directive(d.id)
    assert (await store.get_directive(d.id)).status.value == "paused"


async def test_a_draft_and_a_directive_whose_folder_is_gone_are_deleted_forced(
    engine: DirectiveEngine, store: Store, make_git_repo: Callable[..., Path]
) -> None:
    draft = await engine.create_directive(spec(make_git_repo(name="draft")))
    assert await engine.delete_directive(draft.id) == [f"deleted 'write a file' ({draft.id})"]

    repo = make_git_repo(name="moved")
    did = await completed(engine, repo)
    shutil.rmtree(repo)
    with pytest.raises(NeedsForce, match="is gone: put it back, so that its branch and refs go"):
        await engine.delete_directive(did)
    said = await engine.delete_directive(did, force=True)
    assert (
        said[1] == f"the repository folder {repo} is gone: its branch directive/{did}/integration"
        f" and refs under refs/directive-tui/{did}/ stay in it"
    )
    assert await store.list_directives() == []
    assert not worktree_folder(store, did).exists()


async def test_a_directive_that_changed_nothing_needs_no_force(
    engine: DirectiveEngine, store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """Its one attempt failed halfway (that work is on the attempt's own
    ref), then it was stopped: the integration branch is where it began."""
    repo = make_git_repo()
    half = ScriptedAttempt(edits=[FileEdit(path="new.txt", content="h")], fail="gave up")
    d = await engine.create_directive(spec(repo, StepSpec(name="write", attempts=[half])))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    await engine.stop_directive(d.id)
    await engine.delete_directive(d.id)
    assert await store.list_directives() == [] and directive_refs(repo, d.id) == []


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


def test_the_delete_command_keeps_a_result_until_merged_or_forced(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    db, did = run_by_the_cli(tmp_path, repo)

    code, out, err = run_cli("--db", db, "delete", did[:6])
    assert code == 2 and out == ""
    assert err == (
        f"directive-tui: the result of 'cli test' is on branch directive/{did}/integration"
        f" and nowhere else: take it first (`directive-tui --db {db} merge {did}`),"
        " or add --force to drop it\n"
    )
    assert only_directive(db) == did

    assert run_cli("--db", db, "merge", did)[0] == 0
    code, out, _ = run_cli("--db", db, "delete", did)
    assert code == 0
    assert out.splitlines() == [
        f"deleted 'cli test' ({did})",
        f"removed branch directive/{did}/integration and the directive's refs",
    ]
    assert run_cli("--db", db, "list", "--json")[1].strip() == "[]"
    assert git(repo, "branch", "--list", "directive/*") == ""


def test_the_delete_command_says_how_to_merge_a_result_your_branch_moved_away_from(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """Its hint was `merge ID`, which refused in turn: the branch had moved on."""
    repo = make_git_repo()
    db, did = run_by_the_cli(tmp_path, repo)
    commit_of_yours(repo)

    code, _, err = run_cli("--db", db, "delete", did)
    assert code == 2
    assert f"merge directive/{did}/integration into it yourself): take it first, or add" in err
    assert " merge " + did not in err


def test_the_delete_command_refuses_a_directive_that_waits(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), YELLOW)
    assert run_cli("--db", db, "run", str(path), "--headless")[0] == 3  # waits for a person
    did = only_directive(db)
    code, _, err = run_cli("--db", db, "delete", did, "--force")
    assert code == 2
    assert (
        err
        == "directive-tui: 'cli test' is active: stop it first (deleting removes its history for good)\n"
    )
    assert only_directive(db) == did


async def test_the_end_is_tidied_and_said_once_while_views_ask_for_the_result(
    engine: DirectiveEngine, store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """The app asks for the checkpoints the moment a directive completes
    (to announce the result) while the driver tidies the end: one notice."""
    import asyncio

    repo = make_git_repo()
    d = await engine.create_directive(spec(repo))
    await engine.start_directive(d.id)

    async def keep_looking() -> None:
        for _ in range(200):
            await engine.checkpoints(d.id)
            if (await store.get_directive(d.id)).status.value == "completed":
                await asyncio.gather(*(engine.checkpoints(d.id) for _ in range(3)))
                return
            await asyncio.sleep(0)

    await keep_looking()
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    await asyncio.sleep(0.2)
    said = [e.message for e in await store.list_events(d.id) if e.type == "notice"]
    assert len([n for n in said if n.startswith("the result is on branch")]) == 1


def test_the_delete_command_on_a_directive_whose_folder_is_gone_needs_force(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo()
    db = str(tmp_path / "x.db")
    assert (
        run_cli("--db", db, "run", str(directive_file(tmp_path, repo, STEP_OK)), "--headless")[0]
        == 0
    )
    did = only_directive(db)
    shutil.rmtree(repo)
    code, _, err = run_cli("--db", db, "delete", did)
    assert code == 2
    assert err == (
        f"directive-tui: the repository folder {repo} is gone: put it back, so that its"
        " branch and refs go with it; or add --force to delete it anyway\n"
    )
    assert run_cli("--db", db, "delete", did, "--force")[0] == 0
    assert run_cli("--db", db, "list", "--json")[1].strip() == "[]"
