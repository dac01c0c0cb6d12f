"""`python -m textstats count FILE --out OUT.json` and
`python -m textstats report STATS.json --out OUT.md`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from textstats import count, report


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textstats")
    commands = parser.add_subparsers(dest="command", required=True)
    count_cmd = commands.add_parser("count", help="count a text file, write JSON")
    count_cmd.add_argument("file", type=Path)
    count_cmd.add_argument("--out", type=Path, required=True)
    report_cmd = commands.add_parser("report", help="turn counts (JSON) into Markdown")
    report_cmd.add_argument("stats", type=Path)
    report_cmd.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "count":
        stats = count(args.file.read_text(encoding="utf-8")).to_dict()
        _write(args.out, json.dumps({"file": str(args.file), **stats}, indent=2) + "\n")
    else:
        stats = json.loads(args.stats.read_text(encoding="utf-8"))
        _write(args.out, report(stats["file"], stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
