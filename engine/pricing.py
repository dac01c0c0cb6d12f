"""One price table: token usage -> US dollars, per model.

Every model call the engine makes (planner, agent, judge) is priced here, so
the cost breaker, the run records and the screen all agree. Prices are USD
per million tokens (MTok). We only write 5-minute prompt caches
(`cache_control: {"type": "ephemeral"}`), so cache writes are priced at the
5-minute rate.

Sources, read 2026-11-25 (today's date in this project):
* platform.claude.com/docs/en/about-claude/pricing (the model pricing table:
  Fable/Mythos 5 and 5.1, Opus 4.5-5, older models) and the per-model pages
  platform.claude.com/docs/*/models/{sonnet-5-5,opus-5-5,haiku-5-5,sonnet-5,opus-5}/overview.
* Where the official pages we could read predate a change, third-party
  price-tracker release notes (named on the row) that cite the official page.

An unknown model is never free: it is priced at the most expensive rate of
every known model (element-wise), with a warning naming the model, logged
once per model and process (not on every call). A deprecated model gets the
same one warning, with its end-of-life date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.models import TokenUsage

MTOK = 1_000_000

# The default model for the planner, the agent and the judge: the current
# Sonnet in the SDK's model list (anthropic/types/model.py). claude-sonnet-4-5
# reaches end of life on 2026-11-30, so it is not a default.
DEFAULT_MODEL = "claude-sonnet-5-5"


@dataclass(frozen=True)
class Price:
    """USD per million tokens of each kind."""

    input: float
    cache_write: float  # 5-minute cache write
    cache_read: float  # cache hits and refreshes
    output: float

    def cost(self, usage: TokenUsage) -> float:
        return (
            usage.input_tokens * self.input
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
            + usage.output_tokens * self.output
        ) / MTOK

    @staticmethod
    def highest(prices: list[Price]) -> Price:
        return Price(
            input=max(p.input for p in prices),
            cache_write=max(p.cache_write for p in prices),
            cache_read=max(p.cache_read for p in prices),
            output=max(p.output for p in prices),
        )


@dataclass(frozen=True)
class ModelPrice:
    """A model's rates; some models charge more for every token of a request
    whose prompt (input + cache reads + cache writes) is over a threshold."""

    base: Price
    long_prompt_threshold: int | None = None
    long_prompt: Price | None = None

    def for_usage(self, usage: TokenUsage) -> Price:
        if self.long_prompt is None or self.long_prompt_threshold is None:
            return self.base
        prompt = (
            usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        )
        return self.long_prompt if prompt > self.long_prompt_threshold else self.base

    def rates(self) -> list[Price]:
        return [self.base] + ([self.long_prompt] if self.long_prompt else [])


def _p(input: float, cache_write: float, cache_read: float, output: float) -> ModelPrice:
    return ModelPrice(Price(input, cache_write, cache_read, output))


_FABLE_5 = _p(10.0, 12.50, 1.00, 50.0)
_FABLE_5_1 = _p(10.0, 12.50, 0.25, 50.0)
# Fable 5.2 (released 2026-11-09): $8 in / $40 out, $10 5m write, $0.20 cache
# read. Not confirmed on an official page we could read; source: the
# archid21/rightsize v0.10.2 release notes and docs.laozhang.ai's Fable 5.2
# announcement (both quote Anthropic's list price).
_FABLE_5_2 = _p(8.0, 10.0, 0.20, 40.0)
_OPUS_45_TO_5 = _p(5.0, 6.25, 0.50, 25.0)
_OPUS_4_1 = _p(15.0, 18.75, 1.50, 75.0)
_SONNET_4X = _p(3.0, 3.75, 0.30, 15.0)

PRICES: dict[str, ModelPrice] = {
    "claude-fable-5-2": _FABLE_5_2,
    # Mythos shares Fable's specifications and pricing at every version (the
    # official Fable 5 page says so for 5; the pricing table shows it for
    # 5.1). Mythos 5.2 is assumed to follow Fable 5.2: unconfirmed.
    "claude-mythos-5-2": _FABLE_5_2,
    "claude-fable-5-1": _FABLE_5_1,
    "claude-mythos-5-1": _FABLE_5_1,
    "claude-fable-5": _FABLE_5,
    "claude-mythos-5": _FABLE_5,
    # Mythos Preview (deprecated 2026-06-30): $25 / $125 with the standard
    # cache multipliers. Not on the pricing pages we could read; Anthropic
    # described Fable 5 as "less than half the price of Mythos Preview"
    # (kellerai.blog, Jun 2026), consistent with this. Unconfirmed.
    "claude-mythos-preview": _p(25.0, 31.25, 2.50, 125.0),
    # Opus 5.5 page: $4 / $5 5m write / $0.20 read / $20.
    "claude-opus-5-5": _p(4.0, 5.0, 0.20, 20.0),
    "claude-opus-5": _OPUS_45_TO_5,
    "claude-opus-4-8": _OPUS_45_TO_5,
    "claude-opus-4-7": _OPUS_45_TO_5,
    "claude-opus-4-6": _OPUS_45_TO_5,
    "claude-opus-4-5": _OPUS_45_TO_5,
    "claude-opus-4-1": _OPUS_4_1,
    # Sonnet 5.5 page: $2 / $2.50 5m write / $10 output. Its cache read was
    # $0.20 at launch; three price trackers (kurofune/claudit v1.9.2,
    # TheKrush/PromptFuel v1.0.23, mahype/token-stats v0.3.2) report Anthropic
    # cut it to $0.10 on 2026-10-07. The official page we could read still
    # showed $0.20 (an older copy), so $0.10 is not confirmed first-hand.
    "claude-sonnet-5-5": _p(2.0, 2.50, 0.10, 10.0),
    # Sonnet 5 page: $2 / $2.50 / $0.20 / $10 (the announced rise to $3/$15
    # from 2026-09-01 was called off, per apidog's Sonnet 5.5 pricing guide).
    "claude-sonnet-5": _p(2.0, 2.50, 0.20, 10.0),
    "claude-sonnet-4-6": _SONNET_4X,
    "claude-sonnet-4-5": _SONNET_4X,
    # Haiku 5.5 page: priced by prompt length; over 100,000 prompt tokens
    # every token of the request pays the higher rate, output included.
    "claude-haiku-5-5": ModelPrice(
        base=Price(0.10, 0.125, 0.01, 0.50),
        long_prompt_threshold=100_000,
        long_prompt=Price(0.50, 0.625, 0.05, 2.50),
    ),
    "claude-haiku-4-5": _p(1.0, 1.25, 0.10, 5.0),
}

# End of life (the API answers 404 from then on), as the SDK's own list has
# it (anthropic/_data/deprecated_models.py; tests/test_pricing.py checks the
# two agree). A directive may still name these; it is warned, not refused.
RETIRES: dict[str, str] = {
    "claude-mythos-preview": "2026-06-30",
    "claude-opus-4-5": "2027-01-22",
    "claude-sonnet-4-5": "2026-11-30",
}

# Dated snapshots ("claude-haiku-4-5-20251001") cost what their model costs.
_SNAPSHOT = re.compile(r"^(?P<base>.+)-\d{8}$")

FALLBACK_PRICE = Price.highest([rate for mp in PRICES.values() for rate in mp.rates()])


def canonical_model(model: str) -> str:
    """The price-table name of `model`: dated snapshots map to their model."""
    name = model.strip()
    if name in PRICES:
        return name
    match = _SNAPSHOT.match(name)
    if match and match.group("base") in PRICES:
        return match.group("base")
    return name


def is_known(model: str) -> bool:
    return canonical_model(model) in PRICES


def unknown_model_message(model: str) -> str:
    return (
        f"no price known for model {model!r}: costing it at the highest known rate "
        f"(${FALLBACK_PRICE.input}/MTok input, ${FALLBACK_PRICE.output}/MTok output); "
        "add it to engine/pricing.py PRICES"
    )


def retirement_message(model: str) -> str | None:
    """What to tell a user whose model is deprecated, or None."""
    date = RETIRES.get(canonical_model(model))
    if date is None:
        return None
    return (
        f"model {model!r} is deprecated: its end of life is {date}, after which every call "
        f"fails; choose a current model (the default is {DEFAULT_MODEL})"
    )


def model_warnings(model: str) -> list[str]:
    """Everything worth saying about `model` before it is used: no price
    known (costed at the highest rate), or an end of life."""
    found = [] if is_known(model) else [unknown_model_message(model)]
    retiring = retirement_message(model)
    return found + ([retiring] if retiring else [])


def price_for(model: str, usage: TokenUsage) -> Price:
    """The rates for one response of `model` with this `usage`."""
    entry = PRICES.get(canonical_model(model))
    if entry is None:  # said once by the client that uses it (model_warnings)
        return FALLBACK_PRICE
    return entry.for_usage(usage)


def cost_usd(model: str, usage: TokenUsage) -> float:
    """What one response cost, in US dollars."""
    return price_for(model, usage).cost(usage)
