"""The `directive-tui` command: the app, and its scriptable companions.

Kept light on purpose: only argparse and the standard library at import
time, so `--help` and the first frame of the app never wait for the
engine's heavier modules; each module here imports the engine, textual
and the rest inside the function that needs them.

* `entry`: `main`, from the command line to the exit code; `parser`: the
  commands and their options; `exits`: the exit codes;
* `database`: which database, and whether it may be used; `session`: the
  store and an engine opened for one command; `program`: how to call this
  program again, for the hints it prints; `text`: the printed lines;
* `headless`, `printer`, `events`: a run without a screen, line by line;
* `approvals`, `directives`, `limits`, `model`, `workspace`, `check`: the
  companion commands;
  `carry_on`: what carries a directive on after one of them wrote to it;
* `signals`: SIGTERM and SIGHUP stop a command as Ctrl-C does; `launch`: the app.
"""

from tui.cli.entry import main

__all__ = ["main"]
