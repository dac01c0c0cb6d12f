"""The offline demo: a small project in a new git repository and a scripted
directive whose steps real verifiers judge green, yellow and red.

`directive-tui demo` calls `prepare_demo` and runs what it returns, in the
app or headless. No key and no network: the executor is scripted, the
checks are pytest and a docs checker shipped in the project.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.demo.project import REPO_NAME, DemoError, create_project
from engine.demo.story import demo_spec
from engine.models import DirectiveSpec

__all__ = ["REPO_NAME", "DemoError", "prepare_demo"]


async def prepare_demo(root: Path) -> DirectiveSpec:
    """Create the demo project in a new git repository `root/tally` and
    return the directive that works on it. Raises DemoError when this
    environment cannot run the demo (no pytest, no git)."""
    if importlib.util.find_spec("pytest") is None:
        raise DemoError(
            "the demo's steps are judged by pytest, which is not installed in this "
            "environment; install it (pip install pytest) and run the demo again"
        )
    repo = await create_project(Path(root))
    return demo_spec(repo)
