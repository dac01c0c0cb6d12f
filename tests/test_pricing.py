"""The price table: usage -> USD, unknown models never free."""

from __future__ import annotations

import importlib.util
import logging
import re
from datetime import datetime
from pathlib import Path

import pytest

from engine import pricing
from engine.models import TokenUsage
from engine.pricing import PRICES, Price, cost_usd

# The SDK's own lists, read as text (importing it takes a second): the model
# names, and the deprecated ones with their end-of-life dates.
SDK = Path(importlib.util.find_spec("anthropic").origin).parent
SDK_MODEL_FILE = SDK / "types" / "model.py"
SDK_DEPRECATED_FILE = SDK / "_data" / "deprecated_models.py"


def sdk_end_of_life() -> dict[str, str]:
    """{model: 'YYYY-MM-DD'} from the SDK's 'November 30th, 2026' dates."""
    found = re.findall(
        r'"(claude-[a-z0-9-]+)": "(\w+) (\d+)\w*, (\d{4})"', SDK_DEPRECATED_FILE.read_text()
    )
    return {
        model: datetime.strptime(f"{month} {day} {year}", "%B %d %Y").date().isoformat()
        for model, month, day, year in found
    }


def test_cost_is_the_sum_of_each_token_kind_at_its_rate() -> None:
    usage = TokenUsage(
        input_tokens=1_000_000,
        cache_creation_input_tokens=2_000_000,
        cache_read_input_tokens=3_000_000,
        output_tokens=500_000,
    )
    # claude-opus-4-8: $5 in, $6.25 5m write, $0.50 read, $25 out
    assert cost_usd("claude-opus-4-8", usage) == pytest.approx(5 + 12.5 + 1.5 + 12.5)


def test_default_model_is_a_current_sdk_model_with_a_price() -> None:
    sdk_models = set(re.findall(r'"(claude-[a-z0-9-]+)"', SDK_MODEL_FILE.read_text()))
    assert pricing.DEFAULT_MODEL in sdk_models
    assert pricing.DEFAULT_MODEL in PRICES
    assert sdk_end_of_life()  # the SDK file was read
    assert pricing.canonical_model(pricing.DEFAULT_MODEL) not in sdk_end_of_life()
    assert pricing.model_warnings(pricing.DEFAULT_MODEL) == []


def test_every_deprecated_sdk_model_has_its_end_of_life() -> None:
    """A directive naming one is warned with the date (claude-sonnet-4-5's is
    2026-11-30): every call fails after it."""
    expected = {pricing.canonical_model(m): date for m, date in sdk_end_of_life().items()}
    assert pricing.RETIRES == expected
    [warning] = pricing.model_warnings("claude-sonnet-4-5-20250929")
    assert warning.startswith(
        "model 'claude-sonnet-4-5-20250929' is deprecated: its end of life is 2026-11-30"
    )
    assert f"the default is {pricing.DEFAULT_MODEL}" in warning


def test_every_current_sdk_model_has_a_price() -> None:
    names = set(re.findall(r'"(claude-[a-z0-9-]+)"', SDK_MODEL_FILE.read_text()))
    missing = sorted(n for n in names if not pricing.is_known(n))
    assert missing == []


def test_dated_snapshot_costs_what_its_model_costs() -> None:
    usage = TokenUsage(input_tokens=10_000, output_tokens=2_000)
    assert cost_usd("claude-haiku-4-5-20251001", usage) == cost_usd("claude-haiku-4-5", usage)


def test_unknown_model_costs_the_highest_rate_and_is_said_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=1000)
    with caplog.at_level(logging.WARNING):
        costs = [cost_usd("claude-nova-9", usage) for _ in range(3)]
    assert costs[0] > 0 and len(set(costs)) == 1
    assert costs[0] >= max(cost_usd(name, usage) for name in PRICES)
    assert caplog.records == []  # pricing a call says nothing; the client warns once
    [warning] = pricing.model_warnings("claude-nova-9")
    assert "claude-nova-9" in warning and "highest known rate" in warning


def test_fallback_is_never_below_any_known_rate() -> None:
    for entry in PRICES.values():
        for rate in entry.rates():
            for kind in ("input", "cache_write", "cache_read", "output"):
                assert getattr(pricing.FALLBACK_PRICE, kind) >= getattr(rate, kind)


def test_long_prompt_tier_applies_to_every_token_of_the_request() -> None:
    haiku = PRICES["claude-haiku-5-5"]
    short = TokenUsage(input_tokens=50_000, cache_read_input_tokens=50_000, output_tokens=1_000)
    long = TokenUsage(input_tokens=50_000, cache_read_input_tokens=50_001, output_tokens=1_000)
    assert haiku.for_usage(short) == haiku.base
    assert haiku.for_usage(long) == haiku.long_prompt
    assert cost_usd("claude-haiku-5-5", long) == pytest.approx(
        (50_000 * 0.50 + 50_001 * 0.05 + 1_000 * 2.50) / 1_000_000
    )


def test_zero_usage_costs_nothing() -> None:
    assert Price(1, 1, 1, 1).cost(TokenUsage()) == 0.0
