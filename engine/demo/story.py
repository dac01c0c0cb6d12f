"""The demo's directive: discounts and VAT for `tally`, as scripted steps
whose results real verifiers judge.

```
survey-code -> add-discounts -+-> add-vat -------------+-> document-api -> invoice-total -> update-changelog
                              +-> test-discount-edges -+
```

What each step shows (weights: pytest 2 and gating, docs 1, ruff 1 when
installed; thresholds green 0.8, yellow 0.5):

* green, first time: survey-code, test-discount-edges, document-api,
  invoice-total, update-changelog (every check passes: 1.00). A research
  step is judged only by an LLM judge unless it names its checks, so
  survey-code names pytest and the docs check: notes must not break code.
* red, then reworked: add-discounts' first attempt returns the discount
  instead of the discounted price; its own tests fail, pytest gates the step
  red, and the engine reruns it with the failing output as instructions. The
  second attempt fixes the line: green.
* yellow, waiting for a person: add-vat works (tests pass) but leaves its
  functions without docstrings or type hints, so the docs check fails:
  2/3 = 0.67 (0.75 with ruff), between yellow and green. Approved, the chain
  goes on and document-api adds what was missing.

The steps run one at a time (`max_parallel_steps = 1`): they share one
working tree, and a check that ran while a sibling was half-way through
its edits would judge the sibling's work, not its own. The ready branch
runs while add-vat waits for its approval. test-discount-edges is a test
step and is judged by the tests alone, so add-vat's missing docstrings,
still in the tree while it waits, do not count against it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.models import (
    Autonomy,
    DirectiveSpec,
    ExecutorKind,
    FileEdit,
    Limits,
    PlannerKind,
    Requirement,
    ScriptedAttempt,
    StepSpec,
    Thresholds,
    VerifierConfig,
    VerifierSpec,
    WorkspaceConfig,
)

DOCS_CHECK = "docs"


def demo_spec(repo: Path) -> DirectiveSpec:
    """The demo directive for the `tally` repository at `repo`."""
    return DirectiveSpec(
        title="tally: discounts and VAT on invoices",
        goal=(
            "Let a tally invoice take a percentage discount and add VAT on the discounted "
            "amount, with tests, documented functions and a changelog entry."
        ),
        repo=repo,
        requirements=[
            Requirement(
                id="DISCOUNT",
                text="apply_discount(subtotal, percent) takes 0-100 % off in whole cents "
                "and rejects any other percentage",
            ),
            Requirement(
                id="VAT", text="add_vat(amount, rate_percent) adds VAT rounded to the cent"
            ),
            Requirement(
                id="TOTAL",
                text="invoice_total(items, discount_percent, vat_percent) charges VAT on the "
                "discounted subtotal",
            ),
            Requirement(id="DOCS", text="every public function has a docstring and type hints"),
        ],
        acceptance_criteria=[
            "python -m pytest passes",
            "python tools/check_docs.py passes",
            "CHANGELOG.md describes the change",
        ],
        autonomy=Autonomy.GUARDRAILS,
        thresholds=Thresholds(green=0.8, yellow=0.5),
        limits=Limits(
            max_cost_usd=1.0,
            max_wall_time_minutes=60,
            max_rework_cycles=2,
            max_chain_regenerations=1,
            max_parallel_steps=1,
            max_failed_steps=2,
        ),
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SCRIPTED,
        # the rework edits the red attempt's files: carry its commit forward
        workspace=WorkspaceConfig(carry_rework=True),
        verifiers=VerifierConfig(
            auto_detect=True,
            llm_judge=False,
            extra=[
                VerifierSpec(
                    name=DOCS_CHECK,
                    command=[sys.executable, "tools/check_docs.py"],
                    parser="exit_code",
                    weight=1.0,
                    gating=False,
                    timeout_s=60,
                )
            ],
        ),
        steps=[step.model_copy(deep=True) for step in STEPS],
    )


def _write(path: str, content: str) -> FileEdit:
    return FileEdit(path=path, content=content)


def _replace(path: str, old: str, new: str) -> FileEdit:
    return FileEdit(path=path, replace=old, with_=new)


# --------------------------------------------------------------------------
# survey-code (research): green
# --------------------------------------------------------------------------

NOTES = """\
# Notes: discounts and VAT

What is there:

* `tally/invoice.py`: `LineItem` and `subtotal(items)`, all in whole cents.
* `tally/money.py`: `format_money(cents)` for display.
* `tests/`: one test file per module.
* `tools/check_docs.py`: every public function needs a docstring and type hints.

Plan:

1. `tally/discounts.py`: `apply_discount(subtotal, percent)`, percent in 0..100;
   the discount is rounded down to the cent (in the customer's favour).
2. `tally/vat.py`: `vat_amount` and `add_vat`, rounding half up to the cent.
3. Tests for the discount's edge cases: 100 % off, odd cents, bad percentages.
4. Docstrings, type hints and a README section for both.
5. `invoice_total(items, discount_percent, vat_percent)`: VAT is charged on the
   discounted subtotal.
6. A changelog entry.
"""

SURVEY = StepSpec(
    name="survey-code",
    type="research",
    description="Read how tally computes amounts and write down where discounts and VAT "
    "fit. A research step changes no code; the tests and the docs check confirm that.",
    verifiers=["pytest", DOCS_CHECK],
    attempts=[
        ScriptedAttempt(
            summary="Wrote docs/notes.md: totals live in tally/invoice.py; discounts and "
            "VAT get a module each, then invoice_total combines them.",
            edits=[_write("docs/notes.md", NOTES)],
        )
    ],
)

# --------------------------------------------------------------------------
# add-discounts (implement): red, reworked, green
# --------------------------------------------------------------------------

DISCOUNT_BUG = "    return subtotal * percent // 100\n"
DISCOUNT_FIX = "    return subtotal - subtotal * percent // 100\n"

DISCOUNTS = f'''\
"""Percentage discounts on an invoice's subtotal."""


def apply_discount(subtotal: int, percent: int) -> int:
    """`subtotal` in cents less `percent` per cent of it; the discount is
    rounded down to the cent. Raises ValueError unless 0 <= percent <= 100."""
    if not 0 <= percent <= 100:
        raise ValueError(f"a discount is 0 to 100 percent, not {{percent}}")
{DISCOUNT_BUG}'''

TEST_DISCOUNTS = """\
import pytest

from tally.discounts import apply_discount


def test_ten_percent_off():
    assert apply_discount(2000, 10) == 1800


def test_no_discount_keeps_the_subtotal():
    assert apply_discount(2000, 0) == 2000


def test_rejects_more_than_one_hundred_percent():
    with pytest.raises(ValueError):
        apply_discount(2000, 150)
"""

ADD_DISCOUNTS = StepSpec(
    name="add-discounts",
    type="implement",
    description="Add apply_discount(subtotal, percent) in tally/discounts.py, with tests.",
    depends_on=["survey-code"],
    requirement_ids=["DISCOUNT"],
    attempts=[
        ScriptedAttempt(
            summary="Added apply_discount in tally/discounts.py and three tests.",
            edits=[
                _write("tally/discounts.py", DISCOUNTS),
                _write("tests/test_discounts.py", TEST_DISCOUNTS),
            ],
        ),
        ScriptedAttempt(
            summary="Fixed apply_discount: it returned the discount itself, not the "
            "subtotal less the discount.",
            edits=[_replace("tally/discounts.py", DISCOUNT_BUG, DISCOUNT_FIX)],
        ),
    ],
)

# --------------------------------------------------------------------------
# add-vat (implement): yellow, waits for approval
# --------------------------------------------------------------------------

VAT_UNDOCUMENTED = '''\
"""VAT: the tax added on top of a net amount."""


def vat_amount(amount, rate_percent):
    return (amount * rate_percent + 50) // 100


def add_vat(amount, rate_percent=20):
    return amount + vat_amount(amount, rate_percent)
'''

TEST_VAT = """\
from tally.vat import add_vat, vat_amount


def test_twenty_percent_vat():
    assert add_vat(1000, 20) == 1200


def test_vat_rounds_half_up_to_the_cent():
    assert vat_amount(999, 20) == 200
    assert vat_amount(2, 25) == 1


def test_zero_rate_adds_nothing():
    assert add_vat(999, 0) == 999
"""

ADD_VAT = StepSpec(
    name="add-vat",
    type="implement",
    description="Add vat_amount and add_vat in tally/vat.py, with tests.",
    depends_on=["add-discounts"],
    requirement_ids=["VAT"],
    attempts=[
        ScriptedAttempt(
            summary="Added vat_amount and add_vat in tally/vat.py and three tests.",
            edits=[
                _write("tally/vat.py", VAT_UNDOCUMENTED),
                _write("tests/test_vat.py", TEST_VAT),
            ],
        )
    ],
)

# --------------------------------------------------------------------------
# test-discount-edges (test): green, runs while add-vat waits
# --------------------------------------------------------------------------

TEST_DISCOUNT_EDGES = """\
import pytest

from tally.discounts import apply_discount


def test_one_hundred_percent_off_is_free():
    assert apply_discount(1999, 100) == 0


def test_discount_is_rounded_down_to_the_cent():
    assert apply_discount(999, 10) == 900


@pytest.mark.parametrize("percent", [-1, 101])
def test_rejects_percentages_outside_zero_to_one_hundred(percent):
    with pytest.raises(ValueError, match="0 to 100 percent"):
        apply_discount(1000, percent)
"""

TEST_EDGES = StepSpec(
    name="test-discount-edges",
    type="test",
    description="Test the discount's edge cases: 100 % off, odd cents, bad percentages. "
    "A test step: the test suite alone judges it.",
    depends_on=["add-discounts"],
    requirement_ids=["DISCOUNT"],
    verifiers=["pytest"],
    attempts=[
        ScriptedAttempt(
            summary="Added tests/test_discount_edges.py: 100 % off, rounding, and both "
            "out-of-range percentages.",
            edits=[_write("tests/test_discount_edges.py", TEST_DISCOUNT_EDGES)],
        )
    ],
)

# --------------------------------------------------------------------------
# document-api (docs): green, joins the two branches
# --------------------------------------------------------------------------

VAT_DOCUMENTED = '''\
"""VAT: the tax added on top of a net amount."""


def vat_amount(amount: int, rate_percent: int) -> int:
    """The VAT on `amount` cents at `rate_percent`, rounded half up to the cent."""
    return (amount * rate_percent + 50) // 100


def add_vat(amount: int, rate_percent: int = 20) -> int:
    """`amount` cents plus its VAT at `rate_percent` (20 unless given)."""
    return amount + vat_amount(amount, rate_percent)
'''

README_DEVELOPMENT = "## Development\n"
README_PRICING = """\
## Discounts and VAT

```python
from tally.discounts import apply_discount
from tally.vat import add_vat

apply_discount(2000, 10)  # 1800: 10 % off, the discount rounded down to the cent
add_vat(1800, 20)         # 2160: 20 % VAT, rounded half up to the cent
```

## Development
"""

DOCUMENT_API = StepSpec(
    name="document-api",
    type="docs",
    description="Give the new functions docstrings and type hints, and show discounts "
    "and VAT in the README.",
    depends_on=["add-vat", "test-discount-edges"],
    requirement_ids=["DOCS"],
    attempts=[
        ScriptedAttempt(
            summary="Documented and typed vat_amount and add_vat; the README shows "
            "discounts and VAT.",
            edits=[
                _write("tally/vat.py", VAT_DOCUMENTED),
                _replace("README.md", README_DEVELOPMENT, README_PRICING),
            ],
        )
    ],
)

# --------------------------------------------------------------------------
# invoice-total (implement): green
# --------------------------------------------------------------------------

INVOICE_IMPORTS_OLD = "from dataclasses import dataclass\n"
INVOICE_IMPORTS_NEW = """\
from dataclasses import dataclass

from tally.discounts import apply_discount
from tally.vat import add_vat
"""

INVOICE_TOTAL = '''

def invoice_total(
    items: list[LineItem], discount_percent: int = 0, vat_percent: int = 0
) -> int:
    """The amount due in cents: the subtotal less the discount, plus VAT on
    what remains."""
    return add_vat(apply_discount(subtotal(items), discount_percent), vat_percent)
'''

SUBTOTAL_END = "    return sum(item.amount() for item in items)\n"

TEST_TOTAL = """\
from tally.invoice import LineItem, invoice_total

ITEMS = [LineItem("Notebook", 450, quantity=2), LineItem("Pen", 120)]


def test_total_without_discount_or_vat_is_the_subtotal():
    assert invoice_total(ITEMS) == 1020


def test_vat_is_charged_on_the_discounted_subtotal():
    # 1020 less 10 % is 918; 20 % VAT on 918 is 183.6, rounded to 184
    assert invoice_total(ITEMS, discount_percent=10, vat_percent=20) == 1102
"""

INVOICE_TOTAL_STEP = StepSpec(
    name="invoice-total",
    type="implement",
    description="Add invoice_total(items, discount_percent, vat_percent): VAT on the "
    "discounted subtotal.",
    depends_on=["document-api"],
    requirement_ids=["TOTAL"],
    attempts=[
        ScriptedAttempt(
            summary="Added invoice_total in tally/invoice.py and two tests, one with a "
            "worked example.",
            edits=[
                _replace("tally/invoice.py", INVOICE_IMPORTS_OLD, INVOICE_IMPORTS_NEW),
                _replace("tally/invoice.py", SUBTOTAL_END, SUBTOTAL_END + INVOICE_TOTAL),
                _write("tests/test_total.py", TEST_TOTAL),
            ],
        )
    ],
)

# --------------------------------------------------------------------------
# update-changelog (docs): green
# --------------------------------------------------------------------------

CHANGELOG = """\
# Changelog

## Unreleased

* `apply_discount(subtotal, percent)`: percentage discounts, rounded down to the cent.
* `add_vat(amount, rate_percent)` and `vat_amount`: VAT rounded half up to the cent.
* `invoice_total(items, discount_percent, vat_percent)`: VAT on the discounted subtotal.

## 0.1.0

* Line items, subtotals and `format_money`.
"""

UPDATE_CHANGELOG = StepSpec(
    name="update-changelog",
    type="docs",
    description="Describe discounts, VAT and invoice_total in CHANGELOG.md.",
    depends_on=["invoice-total"],
    attempts=[
        ScriptedAttempt(
            summary="Started CHANGELOG.md with the three new functions under Unreleased.",
            edits=[_write("CHANGELOG.md", CHANGELOG)],
        )
    ],
)

STEPS = (
    SURVEY,
    ADD_DISCOUNTS,
    ADD_VAT,
    TEST_EDGES,
    DOCUMENT_API,
    INVOICE_TOTAL_STEP,
    UPDATE_CHANGELOG,
)
