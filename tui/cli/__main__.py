"""`python -m tui.cli`: the `directive-tui` command, as the tests run it."""

import sys

from tui.cli import main

sys.exit(main())
