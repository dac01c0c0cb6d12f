"""Fixtures for tests that talk to the fake Anthropic Messages API.

Enable in a test module with `pytest_plugins = ["tests.conftest_llm"]` (or
once for all tests in the root conftest).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.llm import LLMClient
from tests.fake_anthropic import FAKE_KEY, FakeAnthropic


@pytest.fixture
def fake_api() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_llm(fake_api: FakeAnthropic) -> LLMClient:
    """An LLMClient on the fake API: one retry, the default model."""
    return LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=1)


@pytest.fixture
def fake_env(fake_api: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    """The process environment pointed at the fake API (for code that calls
    `LLMClient.from_env()`, like the engine)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.base_url)
    monkeypatch.setenv("DIRECTIVE_LLM_MAX_RETRIES", "1")
    monkeypatch.delenv("DIRECTIVE_MODEL", raising=False)
    return fake_api
