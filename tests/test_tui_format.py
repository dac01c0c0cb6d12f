"""Text helpers the widgets share."""

from __future__ import annotations

from tui.format import tail


def test_a_tool_output_tail_keeps_its_last_lines_with_terminal_padding_squeezed() -> None:
    """pytest pads its progress line to 80 columns; in a 60-column panel the
    `[100%]` would wrap onto a line of its own, out of its indent."""
    output = (
        "collected 12 items\n"
        "tests/test_vat.py ............" + " " * 40 + "[100%]   \n"
        "12 passed in 0.02s\n\n"
    )
    assert tail(output, 2) == "tests/test_vat.py ............  [100%]\n12 passed in 0.02s"
    assert tail("a  b\n", 5) == "a  b"  # two spaces are kept: short columns stay apart
