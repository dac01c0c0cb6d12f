"""The agent's content search, run as a child process that can be killed.

Python's `re` matches while holding the GIL and has no timeout: a pattern
with nested repeats (`(a+)+$`) against a line of forty `a`s runs for hours.
In the app's own process that froze the event loop (the screen, the lease's
heartbeat, pause and stop) with nothing able to end it, and the process
could not even exit. So `engine.agent_tools` picks the files and runs this
module by its path, with a timeout: it needs only the standard library, so
it starts in a few tens of milliseconds, and `sys.path` never reaches the
repository being searched (`python -I`).

The request is a JSON file (its path the one argument): `pattern`, `flags`,
`files` ([absolute path, name to show] pairs), `max_file_bytes`,
`max_matches`. Each match is printed as one JSON line `[name, line, text]`.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import Any

BINARY_SNIFF_BYTES = 8_192
MATCH_TEXT_CHARS = 300


def is_binary(head: bytes) -> bool:
    """Whether the first bytes of a file say it is not text."""
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is still text.
        return exc.start < len(head) - 4
    return False


def _text_of(path: str, max_bytes: int) -> str | None:
    """The file's text, or None for anything not searched: not a regular
    file (opened without blocking, so a named pipe is passed over), too big,
    binary or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes or is_binary(data[:BINARY_SNIFF_BYTES]):
        return None
    return data.decode("utf-8", errors="replace")


def matches(request: dict[str, Any]) -> Iterator[tuple[str, int, str]]:
    """(name, line number, line text) for each matching line, in file order."""
    regex = re.compile(request["pattern"], request["flags"])
    found = 0
    for path, name in request["files"]:
        text = _text_of(path, request["max_file_bytes"])
        for number, line in enumerate((text or "").splitlines(), 1):
            if regex.search(line):
                yield name, number, line[:MATCH_TEXT_CHARS]
                found += 1
                if found >= request["max_matches"]:
                    return


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    for found in matches(request):
        print(json.dumps(found), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
