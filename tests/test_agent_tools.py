"""The agent's tools on a real directory: confinement, truncation, binary
files, exact edits, commands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.agent_tools import MAX_READ_BYTES, AgentTools


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


async def test_git_directory_is_not_writable(repo: Path) -> None:
    (repo / ".git").mkdir()
    tools = AgentTools(repo)
    outcome = await tools.call("write_file", {"path": ".git/config", "content": "x"})
    assert outcome.is_error and "the agent may write" in outcome.content


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


async def test_binary_file_is_refused_clearly(repo: Path) -> None:
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    tools = AgentTools(repo)
    outcome = await tools.call("read_file", {"path": "logo.png"})
    assert outcome.is_error and "binary file" in outcome.content
    edit = await tools.call("edit_file", {"path": "logo.png", "old": "PNG", "new": "x"})
    assert edit.is_error and "binary" in edit.content


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
