"""The API key never leaves the process environment: not into the database
(nor its -wal/-shm), the event log, the headless command's output, an
exception, a log record, a screenshot, or what the model is sent. The
commands a run starts (the agent's run_command, verifiers) print their whole
environment, and do not have it to print.

A fresh, distinctive key per run ("sk-ant-test-" + random hex) is given to
the real SDK, which sends it to the fake Messages API on 127.0.0.1; the fake
checks it arrived (so no test here passes because the key was never in play)
and, in the error cases, echoes it back in its error message the way a
careless proxy might. Then every place is searched for the key and for its
distinctive middle part.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineServices, Outcome
from engine.llm import LLMClient, LLMError
from engine.models import (
    Autonomy,
    DirectiveSpec,
    DirectiveStatus,
    ExecutorKind,
    PlannerKind,
    VerifierConfig,
    VerifierSpec,
)
from engine.store import Store
from tests.fake_anthropic import FakeAnthropic, tool_use
from tests.tui_kit import until
from tui.app import DirectiveApp
from tui.cli import main

KEY = "sk-ant-test-" + secrets.token_hex(20)
# A run that cannot plan stops with the reason, failed or paused for a resume
# (tests/test_bad_input.py and the engine's tests pin which); here only the
# key matters. The headless command's exit code for each.
STOPPED = {Outcome.FAILED: 1, Outcome.PAUSED: 4}
PRINT_ENV = 'env; echo "key=[$ANTHROPIC_API_KEY]"'  # what a careless test or script does
MIDDLE = KEY.removeprefix("sk-ant-test-")[8:32]  # what a truncated or re-wrapped copy keeps
ROOT = Path(__file__).resolve().parent.parent


def leaked(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return KEY.encode() in text or MIDDLE.encode() in text
    return KEY in text or MIDDLE in text


class Searched:
    """Everything looked at, by where it came from, so a failure names the place."""

    def __init__(self) -> None:
        self.places: dict[str, int] = {}

    def check(self, where: str, text: str | bytes) -> None:
        assert not leaked(text), f"the API key is in {where}"
        self.places[where] = self.places.get(where, 0) + len(text)

    def tree(self, root: Path) -> None:
        """Every file under `root`: the database, its WAL and SHM, worktrees."""
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.check(str(path.relative_to(root)), path.read_bytes())

    def exception(self, where: str, exc: BaseException) -> None:
        self.check(f"{where} (str)", str(exc))
        self.check(f"{where} (repr)", repr(exc))
        self.check(f"{where} (traceback)", "".join(traceback.format_exception(exc)))

    def logs(self, caplog: pytest.LogCaptureFixture) -> None:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in caplog.records:
            self.check(f"log record {record.name}", formatter.format(record))


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(expected_key=KEY).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def keyed_env(api: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": api.base_url,
        "DIRECTIVE_LLM_MAX_RETRIES": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DIRECTIVE_MODEL", raising=False)
    return env


@pytest.fixture
def searched(caplog: pytest.LogCaptureFixture) -> Iterator[Searched]:
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx's too
    found = Searched()
    yield found
    found.logs(caplog)


def closed_port() -> str:
    """A local address nobody listens on: the connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def repo(make_git_repo: Callable[..., Path]) -> Path:
    return make_git_repo({"calc.py": "def add(a, b):\n    return a - b\n"})


def spec(repo: Path, title: str = "Fix add") -> DirectiveSpec:
    return DirectiveSpec(
        title=title,
        goal="calc.add must return the sum of its arguments",
        repo=repo,
        acceptance_criteria=["add(2, 3) == 5"],
        autonomy=Autonomy.GUARDRAILS,
        planner=PlannerKind.ANTHROPIC,
        executor=ExecutorKind.AGENT,
        verifiers=VerifierConfig(
            auto_detect=False,
            llm_judge=True,
            extra=[VerifierSpec(name="environment", command=PRINT_ENV)],
        ),
    )


def script_a_good_run(api: FakeAnthropic) -> None:
    """Plan, the agent's look at its environment and its edit, its summary,
    the judge's green verdict."""
    api.reply_json(
        {
            "rationale": "one step",
            "steps": [
                {
                    "name": "fix",
                    "type": "implement",
                    "description": "fix calc.add",
                    "depends_on": [],
                    "requirement_ids": [],
                }
            ],
        }
    )
    api.reply(
        tools=[
            tool_use("run_command", {"command": PRINT_ENV}),
            tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"}),
        ]
    )
    api.reply("Changed calc.add to return a + b.")
    api.reply_json(
        {
            "score": 0.95,
            "summary": "fixed",
            "criteria": [{"criterion": "add(2, 3) == 5", "met": True, "note": "a + b"}],
            "rework_instructions": "",
        }
    )


def script_an_echoed_401(api: FakeAnthropic) -> None:
    api.error(401, f"invalid x-api-key: {KEY}")


# --------------------------------------------------------------------------
# The engine: planning, the agent, the judge, and two kinds of failure
# --------------------------------------------------------------------------


async def test_the_engine_keeps_the_key_out_of_everything_it_writes_or_raises(
    api: FakeAnthropic,
    keyed_env: dict[str, str],
    repo: Path,
    tmp_path: Path,
    searched: Searched,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = await Store.open(tmp_path / "engine.db")
    engine = DirectiveEngine(store, EventBus(), EngineServices(output_flush_s=0.01))
    await engine.start()

    script_a_good_run(api)
    good = await engine.create_directive(spec(repo))
    await engine.start_directive(good.id)
    assert await engine.wait_settled(good.id, timeout=30) is Outcome.COMPLETED
    # the key was in play: every call carried it, and the fake accepted it
    assert len(api.requests) == 4 and all(r.authorized for r in api.requests)
    # the agent's command printed its environment, without the key, to the model
    assert "key=[]" in api.requests[2].last_user_text
    assert "ANTHROPIC_BASE_URL=" in api.requests[2].last_user_text
    for number, request in enumerate(api.requests):
        searched.check(f"request {number} to the API", json.dumps(request.body))
    (chain,) = await store.list_chains(good.id)
    (step,) = await store.list_steps(chain.id)
    (evaluation,) = await store.list_evaluations(step.id)
    (environment,) = [r for r in evaluation.results if r.name == "environment"]
    assert "key=[]" in environment.output_tail  # the verifier's command printed it, keyless

    script_an_echoed_401(api)
    rejected = await engine.create_directive(spec(repo, "Rejected key"))
    await engine.start_directive(rejected.id)
    assert await engine.wait_settled(rejected.id, timeout=30) in STOPPED
    assert api.requests[-1].authorized and api.remaining == 0

    monkeypatch.setenv("ANTHROPIC_BASE_URL", closed_port())
    unreachable = await engine.create_directive(spec(repo, "No connection"))
    await engine.start_directive(unreachable.id)
    assert await engine.wait_settled(unreachable.id, timeout=30) in STOPPED

    reasons = {}
    for d in (good, rejected, unreachable):
        for event in await store.list_events(d.id):
            searched.check(f"event {event.seq} of {d.spec.title!r}", event.model_dump_json())
        reasons[d.id] = (await store.get_directive(d.id)).pause_reason or ""
    failed_with = [
        e.reason
        for d in (rejected, unreachable)
        for e in await store.list_events(d.id)
        if getattr(e, "new_status", None) in (DirectiveStatus.FAILED, DirectiveStatus.PAUSED)
    ]
    assert "rejected the API key" in failed_with[0]  # the reason is there, the key is not
    assert "invalid x-api-key" in failed_with[0]
    assert "connect" in failed_with[1].lower()

    searched.tree(tmp_path)  # live: the WAL still holds the latest pages
    await engine.close()
    await store.close()
    searched.tree(tmp_path)  # and after the checkpoint into the .db file
    assert {"engine.db", "engine.db-wal"} <= {Path(p).name for p in searched.places}


async def test_errors_from_the_client_carry_no_key(api: FakeAnthropic, searched: Searched) -> None:
    script_an_echoed_401(api)
    client = LLMClient(api_key=KEY, base_url=api.base_url, max_retries=0)
    searched.check("the client's repr", repr(client))
    with pytest.raises(LLMError) as rejected:
        await client.create(messages=[{"role": "user", "content": "hi"}])
    assert rejected.value.status_code == 401 and api.requests[0].authorized
    searched.exception("a 401 error", rejected.value)

    offline = LLMClient(api_key=KEY, base_url=closed_port(), max_retries=0)
    with pytest.raises(LLMError) as refused:
        await offline.create(messages=[{"role": "user", "content": "hi"}])
    searched.exception("a connection error", refused.value)
    assert "connect" in str(refused.value).lower()
    await client.aclose()
    await offline.aclose()


# --------------------------------------------------------------------------
# A command that finds the key anyway
# --------------------------------------------------------------------------

READ_PARENT_ENV = r"""
import asyncio, json, sys
from engine.agent_tools import AgentTools

async def main():
    lines = []
    tools = AgentTools(sys.argv[1], on_command_line=lines.append)
    command = "tr '\\0' '\\n' < /proc/$PPID/environ"  # the engine's own environment
    outcome = await tools.call("run_command", {"command": command})
    print(json.dumps({"content": outcome.content, "lines": lines}))

asyncio.run(main())
"""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_command_reading_the_engine_s_own_environment_sees_the_key_redacted(
    tmp_path: Path, searched: Searched
) -> None:
    """The child has no key, but the engine process still does, and a shell
    of the same user can read it from /proc: its output is scrubbed."""
    engine = subprocess.run(
        [sys.executable, "-c", READ_PARENT_ENV, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ANTHROPIC_API_KEY": KEY},
        timeout=60,
    )
    assert engine.returncode == 0, engine.stderr
    searched.check("the output of a command reading /proc/PPID/environ", engine.stdout)
    seen = json.loads(engine.stdout)
    assert "ANTHROPIC_API_KEY=[redacted]" in seen["content"]
    assert "ANTHROPIC_API_KEY=[redacted]" in seen["lines"]


# --------------------------------------------------------------------------
# The headless command
# --------------------------------------------------------------------------


def test_the_headless_command_prints_no_key(
    api: FakeAnthropic, keyed_env: dict[str, str], repo: Path, tmp_path: Path, searched: Searched
) -> None:
    directive = tmp_path / "d.toml"
    directive.write_text(
        f'title = "Fix add"\ngoal = "calc.add returns a sum"\nrepo = "{repo}"\n'
        'planner = "anthropic"\nexecutor = "agent"\n'
        "[verifiers]\nauto_detect = false\n"
        f"[[verifiers.extra]]\nname = \"environment\"\ncommand = '{PRINT_ENV}'\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DIRECTIVE_"))}

    def command(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tui.cli", "--db", str(tmp_path / "cli.db"), *argv],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**base, **keyed_env, **env},
            timeout=60,
        )

    script_a_good_run(api)
    runs = {"a good run": command("run", str(directive), "--headless")}
    assert runs["a good run"].returncode == 0, runs["a good run"].stderr
    assert len(api.requests) == 4 and all(r.authorized for r in api.requests)
    script_an_echoed_401(api)
    runs["a rejected key"] = command("run", str(directive), "--headless", "--json")
    assert api.requests[-1].authorized
    runs["no connection"] = command(
        "run", str(directive), "--headless", ANTHROPIC_BASE_URL=closed_port()
    )
    for what, run in runs.items():
        searched.check(f"stdout of {what}", run.stdout)
        searched.check(f"stderr of {what}", run.stderr)
    assert "key=[]" in runs["a good run"].stdout  # the commands printed their environment
    stopped = [runs["a rejected key"].returncode, runs["no connection"].returncode]
    assert set(stopped) <= set(STOPPED.values())
    assert "rejected the API key" in runs["a rejected key"].stdout
    events = [json.loads(line) for line in runs["a rejected key"].stdout.splitlines()]
    assert events and all(not leaked(json.dumps(e)) for e in events)
    # The commands that read what the runs wrote, run here: the same main()
    # and output, without starting an interpreter for each.
    db = str(tmp_path / "cli.db")
    code, out, err = in_process("--db", db, "list", "--json")
    searched.check("`directive-tui list`", out + err)
    ids = [d["id"] for d in json.loads(out)]
    assert code == 0 and len(ids) == 3
    for did in ids:
        code, out, err = in_process("--db", db, "events", did, "--json")
        assert code == 0 and out
        searched.check(f"`directive-tui events {did}`", out + err)
    searched.tree(tmp_path)


def in_process(*argv: str) -> tuple[int, str, str]:
    """`directive-tui ARGV` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------
# The app, and what it draws
# --------------------------------------------------------------------------


async def test_the_app_draws_no_key(
    api: FakeAnthropic, keyed_env: dict[str, str], repo: Path, tmp_path: Path, searched: Searched
) -> None:
    app = DirectiveApp(tmp_path / "tui.db")  # the default services: the key from the environment
    notes: list[str] = []
    notify = app.notify

    def recording_notify(message: Any, *args: Any, **kwargs: Any) -> None:
        notes.append(str(message))
        notify(message, *args, **kwargs)

    app.notify = recording_notify  # type: ignore[method-assign]
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        engine = app.engine
        assert engine is not None
        script_a_good_run(api)
        good = await engine.create_directive(spec(repo))
        await engine.start_directive(good.id)
        await until(
            pilot,
            lambda: engine.store.get_directive(good.id),
            "the directive",
        )

        async def status_of(did: str, wanted: DirectiveStatus) -> bool:
            return (await engine.store.get_directive(did)).status is wanted

        await until(pilot, lambda: status_of(good.id, DirectiveStatus.COMPLETED), "completion")
        assert len(api.requests) == 4 and all(r.authorized for r in api.requests)

        script_an_echoed_401(api)
        rejected = await engine.create_directive(spec(repo, "Rejected key"))
        await engine.start_directive(rejected.id)
        app.open_directive_screen(rejected.id)

        async def stopped(did: str) -> bool:
            status = (await engine.store.get_directive(did)).status
            return status in (DirectiveStatus.FAILED, DirectiveStatus.PAUSED)

        await until(pilot, lambda: stopped(rejected.id), "the failure")
        await pilot.pause(0.3)  # let the screen draw the failure
        shown = app.export_screenshot()
        searched.check("the directive screen's screenshot", shown)
        assert "Rejected" in shown and "key" in shown  # it drew the failed directive
        app.pop_screen()
        await pilot.pause(0.2)
        searched.check("the home screen's screenshot", app.export_screenshot())
    for note in notes:
        searched.check("a notification", note)
    searched.tree(tmp_path)


# --------------------------------------------------------------------------
# Git: the user's own filters and diff drivers run under the engine's git
# --------------------------------------------------------------------------


async def test_git_filters_the_engine_runs_do_not_see_the_key(
    make_git_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clean filter runs on every `git add` and `git diff` of a matching
    file: this one writes the key it sees next to the repository."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    seen = tmp_path / "filter-saw.txt"
    repo = make_git_repo({".gitattributes": "*.txt filter=peek\n", "notes.txt": "one\n"})
    subprocess.run(
        ["git", "config", "filter.peek.clean", f'echo "key=[$ANTHROPIC_API_KEY]" >> {seen}; cat'],
        cwd=repo, check=True,
    )  # fmt: skip
    store = await Store.open(tmp_path / "engine.db")
    engine = DirectiveEngine(store, EventBus(), EngineServices(output_flush_s=0.01))
    await engine.start()
    d = await engine.create_directive(
        DirectiveSpec(
            title="Append a note",
            goal="notes.txt gets a second line",
            repo=repo,
            planner=PlannerKind.EXPLICIT,
            executor=ExecutorKind.SHELL,
            autonomy=Autonomy.FULL_AUTO,
            verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
            steps=[{"name": "note", "type": "implement", "command": "echo two >> notes.txt"}],
        )
    )
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    assert await engine.final_diff(d.id)  # diffs run the filter too
    await engine.close()
    await store.close()

    said = seen.read_text().splitlines()
    assert said and set(said) == {"key=[]"}  # the filter ran, keyless every time
