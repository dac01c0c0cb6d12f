"""Pictures of the real app, for the README and for review.

    .venv/bin/python scripts/screenshots.py            # -> screenshots/*.svg
    .venv/bin/python scripts/screenshots.py --out DIR --size 120x34

Runs the offline demo (no key, no network) in a temporary folder and saves
SVGs at the moments worth seeing: the directive mid-run with its yellow
step waiting, the approval modal, the keys, and the home screen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.models import StepStatus  # noqa: E402
from tui.app import DirectiveApp  # noqa: E402
from tui.screens.directive import DirectiveScreen  # noqa: E402
from tui.widgets.dag import DagView  # noqa: E402

ROUNDS = 6_000  # x 0.02 s: two minutes at most for the demo to get there


async def shoot(out: Path, size: tuple[int, int]) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="directive-shots-") as tmp:
        root = Path(tmp)
        app = DirectiveApp(root / "shots.db", demo=True, demo_root=root / "demo")
        saved: list[Path] = []
        async with app.run_test(size=size) as pilot:

            async def until(check: Callable[[], bool], what: str) -> None:
                for _ in range(ROUNDS):
                    if check():
                        await pilot.pause(0.2)
                        return
                    await pilot.pause(0.02)
                raise SystemExit(f"screenshots: gave up waiting for {what}")

            def save(name: str) -> None:
                path = out / f"{name}.svg"
                path.write_text(app.export_screenshot(title=f"directive-tui: {name}"))
                saved.append(path)

            def waiting() -> bool:
                screen = app.screen  # pushed, but maybe not composed yet
                return (
                    isinstance(screen, DirectiveScreen)
                    and bool(screen.query(DagView))
                    and any(s.status is StepStatus.AWAITING_APPROVAL for s in screen.dag.steps)
                )

            await until(waiting, "the demo's yellow step")
            screen = app.screen
            assert isinstance(screen, DirectiveScreen)
            step = next(s for s in screen.dag.steps if s.status is StepStatus.AWAITING_APPROVAL)
            screen.dag.focus_step(step.id)
            await pilot.pause(0.5)
            save("directive-mid-run")
            await pilot.press("a")
            await until(lambda: type(app.screen).__name__ == "ApprovalModal", "the approval modal")
            save("approval-modal")
            await pilot.press("escape", "question_mark")
            await until(lambda: type(app.screen).__name__ == "HelpScreen", "the help screen")
            save("help")
            await pilot.press("escape", "escape")
            await until(lambda: type(app.screen).__name__ == "HomeScreen", "the home screen")
            save("home")
        return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--size", default="120x34", help="terminal size, COLUMNSxROWS")
    args = parser.parse_args()
    columns, rows = (int(n) for n in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(shoot(args.out, (columns, rows))):
        print(path)


if __name__ == "__main__":
    main()
