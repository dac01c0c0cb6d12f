"""The agent's tools on a real directory: confinement, truncation, binary
files and named pipes, exact edits, commands."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest

from engine.agent_tools import MAX_PAGED_BYTES, MAX_READ_BYTES, AgentTools


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("def greet(name):\n    return 'hi ' + name\n")
    (root / "README.md").write_text("# demo\n")
    (tmp_path / "secret.txt").write_text("TOP-SECRET-OUTSIDE")
    return root


async def test_escaping_paths_are_refused_as_errors(repo: Path, tmp_path: Path) -> None:
    (repo / "link_out").symlink_to(tmp_path / "secret.txt")
    (repo / "dir_out").symlink_to(tmp_path)
    tools = AgentTools(repo)
    for name, args in [
        ("read_file", {"path": "../secret.txt"}),
        ("read_file", {"path": str(tmp_path / "secret.txt")}),
        ("read_file", {"path": "link_out"}),
        ("read_file", {"path": "dir_out/secret.txt"}),
        ("write_file", {"path": "../evil.txt", "content": "x"}),
        ("edit_file", {"path": "link_out", "old": "TOP", "new": "x"}),
        ("list_files", {"path": ".."}),
        ("search", {"pattern": "SECRET", "path": "dir_out"}),
    ]:
        outcome = await tools.call(name, args)
        assert outcome.is_error, (name, args)
        assert "TOP-SECRET" not in outcome.content
        assert "refused" in outcome.content
    assert not (tmp_path / "evil.txt").exists()
    assert (tmp_path / "secret.txt").read_text() == "TOP-SECRET-OUTSIDE"
    # A repo-wide search does not follow the symlinks out either.
    found = await tools.call("search", {"pattern": "SECRET"})
    assert "TOP-SECRET" not in found.content
    assert tools.modified == []


async def test_a_symlink_loop_is_an_error_the_model_reads_and_walks_skip_it(repo: Path) -> None:
    """A repository holding a symlink loop (a test fixture, a step's slip)
    made every tool that met it raise RuntimeError out of `call`, failing the
    whole agent attempt, a repo-wide search or listing included."""
    (repo / "loop_a").symlink_to("loop_b")
    (repo / "loop_b").symlink_to("loop_a")
    tools = AgentTools(repo)
    for name, args in [
        ("read_file", {"path": "loop_a"}),
        ("write_file", {"path": "loop_a/x.txt", "content": "x"}),
        ("edit_file", {"path": "loop_b", "old": "a", "new": "b"}),
        ("search", {"pattern": "x", "path": "loop_a"}),
    ]:
        outcome = await tools.call(name, args)
        assert outcome.is_error, (name, outcome.content)
        assert outcome.content.startswith(f"refused: {args['path']!r} leads nowhere: Symlink loop")
    listed = await tools.call("list_files", {"path": ".", "recursive": True})
    assert not listed.is_error and listed.content.splitlines() == ["README.md", "src/app.py"]
    found = await tools.call("search", {"pattern": "demo"})
    assert not found.is_error and found.content == "README.md:1: # demo"
    assert tools.modified == []


async def test_git_directory_is_not_writable_under_any_name_a_file_system_may_give_it(
    repo: Path,
) -> None:
    (repo / ".git").mkdir()
    tools = AgentTools(repo)
    for path in [
        ".git/config",
        ".GIT/config",  # the real .git on macOS and Windows
        ".Git/hooks/pre-commit",
        "vendor/lib/.git/config",  # a nested repository's
        ".git./config",  # Windows drops trailing dots and spaces
        ".git /config",
        "GIT~1/config",  # its 8.3 short name
        ".g\u200cit/config",  # macOS ignores zero-width characters
    ]:
        outcome = await tools.call("write_file", {"path": path, "content": "x"})
        assert outcome.is_error and "the agent may write" in outcome.content, path
    assert tools.modified == []
    for path in [".gitignore", ".github/workflows/ci.yml", "docs/git/notes.md"]:
        outcome = await tools.call("write_file", {"path": path, "content": "x"})
        assert not outcome.is_error, path


async def test_huge_file_is_truncated_with_a_note_and_can_be_paged(repo: Path) -> None:
    line = "x" * 99 + "\n"
    (repo / "big.txt").write_text(line * 3000)  # 300 kB
    tools = AgentTools(repo)
    first = await tools.call("read_file", {"path": "big.txt"})
    assert not first.is_error
    assert len(first.content.encode()) < MAX_READ_BYTES + 500
    assert (
        "[truncated: big.txt is 300000 bytes; this shows lines 1-1000. Read on with start_line=1001]"
        in first.content
    )
    page = await tools.call("read_file", {"path": "big.txt", "start_line": 2901})
    assert page.content.count("x" * 99) == 100
    assert "truncated" not in page.content


async def test_a_line_too_long_to_show_whole_is_cut_with_a_note_saying_so(repo: Path) -> None:
    (repo / "app.min.js").write_text("x" * 300_000)
    (repo / "data.txt").write_text("short\n" + "y" * 300_000 + "\nlast\n")
    tools = AgentTools(repo)
    whole = await tools.call("read_file", {"path": "app.min.js"})
    assert whole.content.startswith("x" * MAX_READ_BYTES + "\n\n[truncated: ")
    assert "line 1 is 300000 bytes and only its first 100000 are shown" in whole.content
    assert "edit_file, not by rewriting it" in whole.content
    second = await tools.call("read_file", {"path": "data.txt", "start_line": 2})
    assert "line 2 is 300001 bytes" in second.content
    assert "this shows lines 2-2. Read on with start_line=3" in second.content
    first = await tools.call("read_file", {"path": "data.txt"})
    assert first.content.startswith("short\n\n[truncated: data.txt is 300012 bytes; ")
    assert "Read on with start_line=2" in first.content
    last = await tools.call("read_file", {"path": "data.txt", "start_line": 3})
    assert last.content == "last\n"


async def test_a_file_beyond_what_can_be_paged_says_where_reading_stops(repo: Path) -> None:
    line = "z" * 99 + "\n"
    (repo / "huge.log").write_text(line * (MAX_PAGED_BYTES // 100 + 5))
    tools = AgentTools(repo)
    end = await tools.call("read_file", {"path": "huge.log", "start_line": 99_990})
    assert end.content.count(line) == 11  # lines 99990-100000, all the first 10 MB holds
    assert "only its first 10000000 bytes can be read (through line 100000" in end.content


@pytest.mark.timeout(20)
async def test_a_named_pipe_is_refused_at_once_by_every_file_tool(repo: Path) -> None:
    """A FIFO has size 0 and blocks whoever opens or reads it: a tool that
    did would freeze the event loop, breakers and screen included."""
    os.mkfifo(repo / "build.pipe")
    (repo / "src" / "link.pipe").symlink_to(repo / "build.pipe")
    tools = AgentTools(repo)
    for name, args in [
        ("read_file", {"path": "build.pipe"}),
        ("read_file", {"path": "src/link.pipe"}),
        ("search", {"pattern": "x", "path": "build.pipe"}),
        ("write_file", {"path": "build.pipe", "content": "x"}),
        ("edit_file", {"path": "src/link.pipe", "old": "a", "new": "b"}),
    ]:
        outcome = await asyncio.wait_for(tools.call(name, args), 5)
        assert outcome.is_error and "not a regular file" in outcome.content, (name, args)
    everywhere = await asyncio.wait_for(tools.call("search", {"pattern": "greet"}), 5)
    assert everywhere.content == "src/app.py:1: def greet(name):"
    listing = await tools.call("list_files", {"path": ".", "recursive": True})
    assert "build.pipe" in listing.content.splitlines()
    assert stat.S_ISFIFO((repo / "build.pipe").stat().st_mode) and tools.modified == []


async def test_binary_file_is_refused_clearly(repo: Path) -> None:
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    tools = AgentTools(repo)
    outcome = await tools.call("read_file", {"path": "logo.png"})
    assert outcome.is_error and "binary file" in outcome.content
    edit = await tools.call("edit_file", {"path": "logo.png", "old": "PNG", "new": "x"})
    assert edit.is_error and "binary" in edit.content


async def test_a_file_not_utf8_past_the_sniff_is_refused_by_edit_and_flagged_by_read(
    repo: Path,
) -> None:
    """Latin-1 after the first 8 KB passes the binary sniff: edit_file raised
    UnicodeDecodeError out of the tool, which ended the whole agent session."""
    latin = b"x = 1\n" * 2000 + b"name = 'caf\xe9'\n"
    (repo / "legacy.py").write_bytes(latin)
    tools = AgentTools(repo)
    edit = await tools.call("edit_file", {"path": "legacy.py", "old": "x = 1", "new": "x = 2"})
    assert edit.is_error
    assert edit.content.startswith("'legacy.py' is not UTF-8 text (byte 12011 is not)")
    assert (repo / "legacy.py").read_bytes() == latin
    read = await tools.call("read_file", {"path": "legacy.py", "start_line": 2001})
    assert not read.is_error
    assert read.content.startswith("name = 'caf\ufffd'\n")
    assert "legacy.py is not all UTF-8" in read.content
    clean = await tools.call("read_file", {"path": "src/app.py"})
    assert "UTF-8" not in clean.content


async def test_edit_file_replaces_exactly_once(repo: Path) -> None:
    tools = AgentTools(repo)
    ok = await tools.call("edit_file", {"path": "src/app.py", "old": "'hi '", "new": "'hello '"})
    assert not ok.is_error
    assert (repo / "src/app.py").read_text() == "def greet(name):\n    return 'hello ' + name\n"
    missing = await tools.call("edit_file", {"path": "src/app.py", "old": "nope", "new": "x"})
    assert missing.is_error and "not found" in missing.content
    (repo / "twice.txt").write_text("a a")
    ambiguous = await tools.call("edit_file", {"path": "twice.txt", "old": "a", "new": "b"})
    assert ambiguous.is_error and "2 times" in ambiguous.content
    assert tools.modified == ["src/app.py"]


async def test_edit_file_refuses_a_file_too_big_to_edit_and_an_edit_that_grows_past_it(
    repo: Path,
) -> None:
    """It read the whole file into memory whatever its size (a 2 GB log in
    the tree); write_file had a limit, edit_file none."""
    from engine.agent_tools import MAX_WRITE_BYTES

    big = b"x = 1\n" * (MAX_WRITE_BYTES // 6 + 1)
    (repo / "big.py").write_bytes(big)
    tools = AgentTools(repo)
    edit = await tools.call("edit_file", {"path": "big.py", "old": "x = 1", "new": "x = 2"})
    assert edit.is_error and f"over the {MAX_WRITE_BYTES} an edit takes" in edit.content
    assert (repo / "big.py").read_bytes() == big

    (repo / "seed.txt").write_text("grow")
    grow = await tools.call(
        "edit_file", {"path": "seed.txt", "old": "grow", "new": "g" * (MAX_WRITE_BYTES + 1)}
    )
    assert grow.is_error and "the limit is" in grow.content
    assert (repo / "seed.txt").read_text() == "grow"


async def test_write_list_search(repo: Path) -> None:
    tools = AgentTools(repo)
    written = await tools.call(
        "write_file", {"path": "tests/test_app.py", "content": "from src.app import greet\n"}
    )
    assert not written.is_error and "created tests/test_app.py" in written.content
    listing = await tools.call("list_files", {"path": ".", "recursive": True})
    assert listing.content.splitlines() == ["README.md", "src/app.py", "tests/test_app.py"]
    top = await tools.call("list_files", {})
    assert top.content.splitlines() == ["README.md", "src/", "tests/"]
    found = await tools.call("search", {"pattern": "greet", "glob": "*.py"})
    assert found.content.splitlines() == [
        "src/app.py:1: def greet(name):",
        "tests/test_app.py:1: from src.app import greet",
    ]
    bad = await tools.call("search", {"pattern": "("})
    assert bad.is_error and "invalid regular expression" in bad.content


@pytest.mark.timeout(30)
async def test_a_pattern_that_backtracks_for_ever_is_stopped_and_the_loop_stays_free(
    repo: Path,
) -> None:
    """Python's re holds the GIL and has no timeout: `(a+)+$` on a line of
    forty a's froze the event loop (screen, heartbeat, pause) for hours, and
    not even a cancelled task or the process's exit could end it."""
    (repo / "src" / "data.txt").write_text("match me\n" + "a" * 40 + "!\n")
    tools = AgentTools(repo, search_timeout_s=2)
    gaps: list[float] = []
    running = True

    async def tick() -> None:
        last = time.monotonic()
        while running:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    outcome = await tools.call("search", {"pattern": "^match me$|(a+)+$", "path": "src"})
    running = False
    await ticker
    assert outcome.is_error
    assert outcome.content.startswith(
        "the search for '^match me$|(a+)+$' was stopped after 2s: simplify the pattern"
    )
    assert outcome.content.endswith("stopped:\nsrc/data.txt:1: match me")
    assert max(gaps) < 0.5
    # A literal search for the same text is quick and exact.
    found = await tools.call("search", {"pattern": "(a+)+$", "literal": True})
    assert found.content == "no matches for '(a+)+$'"


async def test_listing_a_big_tree_leaves_the_event_loop_free(repo: Path) -> None:
    """A recursive list_files of 100,000 files held the event loop for 8 s
    (the app froze, other directives' steps stalled); the walk now runs in
    a thread. Here 20,000 files, which held it for about 1.5 s."""
    for d in range(40):
        folder = repo / "data" / f"d{d:02}"
        folder.mkdir(parents=True)
        for f in range(500):
            (folder / f"f{f:03}.txt").touch()
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    listing = await AgentTools(repo).call("list_files", {"path": "data", "recursive": True})
    await asyncio.sleep(0.05)
    ticker.cancel()
    assert listing.content.startswith("data/d00/f000.txt\ndata/d00/f001.txt\n")
    assert listing.content.endswith("... and 19500 more (list a subdirectory)")
    assert max(gaps) < 0.5


async def test_run_command_reports_exit_code_and_trims(repo: Path) -> None:
    tools = AgentTools(repo)
    outcome = await tools.call("run_command", {"command": "echo hello; exit 3"})
    assert not outcome.is_error
    assert outcome.content.startswith("exit code 3\nhello")
    huge = await tools.call("run_command", {"command": "yes line | head -c 200000"})
    assert "bytes trimmed" in huge.content
    assert len(huge.content) < 25_000


async def test_run_command_timeout_kills(repo: Path) -> None:
    tools = AgentTools(repo, command_timeout_s=0.3)
    outcome = await tools.call("run_command", {"command": "sleep 30", "timeout_s": 60})
    assert outcome.is_error and "timed out after 0.3s" in outcome.content


async def test_bad_arguments_and_unknown_tools_are_errors(repo: Path) -> None:
    tools = AgentTools(repo)
    unknown = await tools.call("delete_everything", {})
    assert unknown.is_error and "unknown tool" in unknown.content
    missing = await tools.call("read_file", {})
    assert missing.is_error and "path" in missing.content
    extra = await tools.call("read_file", {"path": "README.md", "sudo": True})
    assert extra.is_error and "sudo" in extra.content


def test_definitions_have_schemas() -> None:
    definitions = AgentTools(Path(os.getcwd())).definitions()
    names = [d["name"] for d in definitions]
    assert names == ["list_files", "read_file", "search", "write_file", "edit_file", "run_command"]
    for d in definitions:
        assert d["input_schema"]["type"] == "object"
        assert d["description"]
    read = next(d for d in definitions if d["name"] == "read_file")
    assert read["input_schema"]["required"] == ["path"]
