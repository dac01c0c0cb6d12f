"""Text cut to fit a record says it was cut: a step's failure reason ended
mid-path (`…/worktrees/ae5f61797ef9/a`), naming a folder that does not exist."""

from pathlib import Path

from engine.bus import EventBus
from engine.engine import DirectiveEngine, Outcome
from engine.store import Store
from engine.text import clip
from tests.engine_kit import Script, chain_spec, services


def test_text_that_fits_is_kept_whole() -> None:
    assert clip("command exited with 1", 200) == "command exited with 1"
    assert clip("x" * 200, 200) == "x" * 200


def test_text_cut_short_ends_with_an_ellipsis_within_the_limit() -> None:
    cut = clip("its files are kept in /tmp/work/worktrees/ae5f61797ef9/a-1/sample", 40)
    assert cut == "its files are kept in /tmp/work/worktre…"
    assert len(cut) == 40


async def test_a_long_failure_reason_is_marked_cut_in_the_step_s_event(
    store: Store, tmp_path: Path
) -> None:
    error = "tool crashed (its files are kept in " + "/deep" * 60 + ")"
    engine = DirectiveEngine(store, EventBus(), services(Script(fail={"a": error})))
    await engine.start()
    d = await engine.create_directive(chain_spec(tmp_path, [("a", [])]))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=10) is Outcome.AWAITING_APPROVAL
    (failed,) = [
        e for e in await store.list_events(d.id)
        if e.type == "step_status_changed" and e.new_status == "failed"
    ]  # fmt: skip
    assert len(failed.reason) == 200 and failed.reason.endswith("…")
    await engine.close()
