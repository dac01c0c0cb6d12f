"""LLMClient against the fake Messages API: pricing, structured output,
failures (401, 429/529 after retries, refusal, malformed) and key hygiene."""

from __future__ import annotations

import email.utils
import logging
import re
import socket
import time

import pytest
from pydantic import BaseModel

from engine.llm import LLMClient, LLMError, LLMErrorKind
from engine.models import TokenUsage
from engine.pricing import cost_usd
from tests.fake_anthropic import FAKE_KEY, FakeAnthropic, usage

pytest_plugins = ["tests.conftest_llm"]

MODEL = "claude-sonnet-5-5"  # the default, which the fake echoes back


class Verdict(BaseModel):
    score: float
    summary: str


def test_from_env_without_key_is_none() -> None:
    assert LLMClient.from_env(env={}) is None
    assert LLMClient.from_env(env={"ANTHROPIC_API_KEY": "   "}) is None


def test_from_env_model_precedence() -> None:
    env = {
        "ANTHROPIC_API_KEY": FAKE_KEY,
        "DIRECTIVE_MODEL": "claude-opus-5-5",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/",
        "DIRECTIVE_LLM_MAX_RETRIES": "0",
    }
    assert LLMClient.from_env(env=env).model == "claude-opus-5-5"
    assert LLMClient.from_env("claude-haiku-5-5", env=env).model == "claude-haiku-5-5"
    client = LLMClient.from_env(env={"ANTHROPIC_API_KEY": FAKE_KEY})
    assert client is not None and client.model == "claude-sonnet-5-5"
    configured = LLMClient.from_env(env=env)
    assert configured.base_url == "http://127.0.0.1:9" and configured.max_retries == 0


def test_from_env_rejects_a_bad_number_naming_the_variable() -> None:
    # Said in words, not Python's type names ("must be a int").
    with pytest.raises(ValueError, match="DIRECTIVE_LLM_MAX_RETRIES must be a whole number, got"):
        LLMClient.from_env(env={"ANTHROPIC_API_KEY": FAKE_KEY, "DIRECTIVE_LLM_MAX_RETRIES": "lots"})
    with pytest.raises(ValueError, match="DIRECTIVE_LLM_TIMEOUT_S must be a number, got 'soon'"):
        LLMClient.from_env(env={"ANTHROPIC_API_KEY": FAKE_KEY, "DIRECTIVE_LLM_TIMEOUT_S": "soon"})
    # A zero timeout was quietly taken as the 600 s default.
    for zero in ("0", "nan"):
        with pytest.raises(
            ValueError, match=f"DIRECTIVE_LLM_TIMEOUT_S must be at least 0.001, got '{zero}'"
        ):
            LLMClient.from_env(env={"ANTHROPIC_API_KEY": FAKE_KEY, "DIRECTIVE_LLM_TIMEOUT_S": zero})


def test_repr_and_str_never_show_the_key() -> None:
    client = LLMClient(api_key=FAKE_KEY)
    assert FAKE_KEY not in repr(client)
    assert FAKE_KEY not in str(client)
    assert FAKE_KEY not in repr(vars(client))


async def test_create_prices_usage_and_sends_bearer_key(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    fake_api.reply("hello", usage=usage(1200, 300, cache_write=5000, cache_read=7000))
    response = await fake_llm.create(messages=[{"role": "user", "content": "hi"}])
    expected_usage = TokenUsage(
        input_tokens=1200,
        output_tokens=300,
        cache_creation_input_tokens=5000,
        cache_read_input_tokens=7000,
    )
    assert response.text == "hello"
    assert response.usage == expected_usage
    assert response.cost_usd == pytest.approx(cost_usd("claude-sonnet-5-5", expected_usage))
    # $2 in, $2.50 write, $0.10 read, $10 out per MTok
    assert response.cost_usd == pytest.approx((1200 * 2 + 5000 * 2.5 + 7000 * 0.1 + 300 * 10) / 1e6)
    [request] = fake_api.requests
    assert request.path == "/v1/messages"
    assert request.authorized
    assert request.body["model"] == "claude-sonnet-5-5"


async def test_parse_sends_the_json_schema_and_validates(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    fake_api.reply_json({"score": 0.7, "summary": "fine"})
    response = await fake_llm.parse(
        messages=[{"role": "user", "content": "judge"}], output_format=Verdict
    )
    assert response.parsed == Verdict(score=0.7, summary="fine")
    fmt = fake_api.requests[0].body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["schema"]["properties"]) == {"score", "summary"}
    assert fmt["schema"]["additionalProperties"] is False
    assert "tool_choice" not in fake_api.requests[0].body


async def test_malformed_structured_answer_is_a_clear_error_with_its_cost(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    fake_api.reply("I think it is fine", usage=usage(100, 10))
    with pytest.raises(LLMError) as caught:
        await fake_llm.parse(messages=[{"role": "user", "content": "judge"}], output_format=Verdict)
    assert caught.value.kind is LLMErrorKind.MALFORMED
    assert "not a valid Verdict" in str(caught.value)
    assert caught.value.cost_usd == pytest.approx((100 * 2 + 10 * 10) / 1e6)


async def test_refusal_is_a_clear_error(fake_api: FakeAnthropic, fake_llm: LLMClient) -> None:
    fake_api.reply("I can't help with that.", stop_reason="refusal")
    with pytest.raises(LLMError) as caught:
        await fake_llm.create(messages=[{"role": "user", "content": "x"}])
    assert caught.value.kind is LLMErrorKind.REFUSED
    assert "refusal" in str(caught.value)
    assert caught.value.cost_usd > 0


async def test_401_says_check_the_key_after_one_request(fake_api: FakeAnthropic) -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=5)
    # A hostile server echoing the key back must not get it into our error.
    fake_api.error(401, f"invalid x-api-key {FAKE_KEY}")
    fake_api.error(401, "second")
    with pytest.raises(LLMError) as caught:
        await client.create(messages=[{"role": "user", "content": "x"}])
    error = caught.value
    assert error.kind is LLMErrorKind.AUTH
    # A retry in the same run sends the same key: that is what to know.
    assert str(error).startswith(
        "the Anthropic API rejected the API key: set a valid ANTHROPIC_API_KEY and start directive-tui again "
        "(this run keeps the key it started with) (HTTP 401"
    )
    assert error.status_code == 401
    assert len(fake_api.requests) == 1  # no retry storm
    for text in (str(error), repr(error), error.message, str(error.args)):
        assert FAKE_KEY not in text
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize(
    ("status", "kind"), [(529, LLMErrorKind.OVERLOADED), (429, LLMErrorKind.RATE_LIMITED)]
)
async def test_repeated_overload_fails_after_the_sdk_retries(
    fake_api: FakeAnthropic, status: int, kind: LLMErrorKind
) -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=2)
    for _ in range(3):
        fake_api.error(status, "Overloaded right now", retry_after_ms=1)
    with pytest.raises(LLMError) as caught:
        await client.create(messages=[{"role": "user", "content": "x"}])
    assert caught.value.kind is kind
    assert "Overloaded right now" in str(caught.value)  # the API's own message
    assert "after 2 retries" in str(caught.value)
    assert len(fake_api.requests) == 3  # one try + two retries


async def test_a_wait_asked_for_over_a_minute_fails_at_once_saying_so(
    fake_api: FakeAnthropic,
) -> None:
    """The SDK sleeps through any retry-after inside the call (an hour here):
    the step sat silent for it. Now the call fails at once, naming the wait."""
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=3)
    fake_api.error(
        429,
        "Number of requests has exceeded your rate limit",
        retry_after_ms=None,
        headers={"retry-after": "3600"},
    )
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        await client.create(messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - started < 10
    assert len(fake_api.requests) == 1
    assert caught.value.kind is LLMErrorKind.RATE_LIMITED
    assert str(caught.value).startswith("rate limited by the Anthropic API (HTTP 429")  # no retry
    assert str(caught.value).endswith(
        "your rate limit (the API asked to wait 3600s before trying again)"
    )
    # A short wait is still the SDK's to retry through.
    fake_api.error(529, "Overloaded", retry_after_ms=None, headers={"retry-after": "0.2"})
    fake_api.reply("ok")
    assert (await client.create(messages=[{"role": "user", "content": "x"}])).text == "ok"


async def test_a_wait_asked_for_as_a_date_fails_at_once_saying_how_long(
    fake_api: FakeAnthropic,
) -> None:
    """retry-after may be an HTTP date, which the SDK sleeps until: two hours
    here, in silence inside one call (a date years away: years)."""
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=3)
    until = email.utils.formatdate(time.time() + 7200, usegmt=True)
    fake_api.error(429, "slow down", retry_after_ms=None, headers={"retry-after": until})
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        await client.create(messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - started < 10
    assert len(fake_api.requests) == 1
    waited = re.search(r"\(the API asked to wait (\d+)s before trying again\)$", str(caught.value))
    assert waited and 7000 < int(waited[1]) <= 7200


async def test_a_wait_of_infinity_or_nan_reads_as_what_it_means(fake_api: FakeAnthropic) -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=1)
    fake_api.error(529, "Overloaded", retry_after_ms=None, headers={"retry-after": "inf"})
    with pytest.raises(LLMError) as caught:
        await client.create(messages=[{"role": "user", "content": "x"}])
    assert str(caught.value).endswith("(the API asked to wait for ever before trying again)")
    assert len(fake_api.requests) == 1
    # NaN asks for nothing: the SDK backs off as usual, and nothing says "nans".
    fake_api.error(529, "Overloaded", retry_after_ms=None, headers={"retry-after-ms": "nan"})
    fake_api.reply("ok")
    assert (await client.create(messages=[{"role": "user", "content": "x"}])).text == "ok"


async def test_negative_token_counts_cost_nothing_rather_than_refund(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    """A broken server or proxy reporting -1,000,000 input tokens made the
    call cost -$2: the directive's total went down and the cost breaker back."""
    fake_api.reply("hi", usage=usage(-1_000_000, 10))
    response = await fake_llm.create(messages=[{"role": "user", "content": "x"}])
    assert response.usage == TokenUsage(input_tokens=0, output_tokens=10)
    assert response.cost_usd == pytest.approx(cost_usd(MODEL, TokenUsage(output_tokens=10)))


async def test_content_that_is_not_blocks_is_malformed(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    fake_api.reply(content=["hi"], usage=usage(100, 10))
    with pytest.raises(LLMError) as caught:
        await fake_llm.create(messages=[{"role": "user", "content": "x"}])
    assert caught.value.kind is LLMErrorKind.MALFORMED
    assert "content is not content blocks" in str(caught.value)
    assert caught.value.cost_usd == pytest.approx(cost_usd(MODEL, TokenUsage(**usage(100, 10))))


async def test_a_connection_cut_mid_answer_says_so_not_could_not_connect(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    fake_api.cut_off()
    fake_api.cut_off()
    with pytest.raises(LLMError) as caught:
        await fake_llm.create(messages=[{"role": "user", "content": "x"}])
    assert caught.value.kind is LLMErrorKind.CONNECTION
    assert str(caught.value).startswith(
        f"the connection to the Anthropic API at {fake_api.base_url} broke off before the "
        "answer was whole, still after 1 retry"
    )
    assert len(fake_api.requests) == 2


async def test_without_retries_the_error_does_not_claim_any(fake_api: FakeAnthropic) -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=0)
    fake_api.error(529, "Overloaded")
    with pytest.raises(LLMError) as caught:
        await client.create(messages=[{"role": "user", "content": "x"}])
    assert str(caught.value).startswith("the Anthropic API is overloaded (HTTP 529")


async def test_a_retry_that_succeeds_is_transparent(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    fake_api.error(529, "Overloaded", retry_after_ms=1)
    fake_api.reply("ok")
    response = await fake_llm.create(messages=[{"role": "user", "content": "x"}])
    assert response.text == "ok"
    assert len(fake_api.requests) == 2


async def test_connection_failure_names_the_url() -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url="http://127.0.0.1:9", max_retries=0, timeout_s=5)
    with pytest.raises(LLMError) as caught:
        await client.create(messages=[{"role": "user", "content": "x"}])
    assert caught.value.kind is LLMErrorKind.CONNECTION
    assert "127.0.0.1:9" in str(caught.value)


async def test_a_host_that_never_accepts_the_connection_fails_in_seconds() -> None:
    """A listening socket whose accept queue is full drops new connections,
    like a firewall: the connect phase gives up at CONNECT_TIMEOUT_S. With
    the whole timeout as a bare number it waited timeout_s (10 minutes by
    default) on every try."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    queued = [socket.socket() for _ in range(3)]
    for sock in queued:
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
    client = LLMClient(
        api_key=FAKE_KEY,
        base_url=f"http://127.0.0.1:{port}",
        max_retries=0,
        timeout_s=30,
        connect_timeout_s=0.5,
    )
    started = time.monotonic()
    try:
        with pytest.raises(LLMError) as caught:
            await client.create(messages=[{"role": "user", "content": "x"}])
    finally:
        for sock in [server, *queued]:
            sock.close()
    assert time.monotonic() - started < 10
    assert caught.value.kind is LLMErrorKind.CONNECTION
    assert str(caught.value).startswith(
        f"could not connect to the Anthropic API at http://127.0.0.1:{port} within 0.5s"
    )


async def test_key_never_in_debug_logs(
    fake_api: FakeAnthropic, fake_llm: LLMClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake_api.error(529, "busy", retry_after_ms=1)
    fake_api.reply("ok")
    with caplog.at_level(logging.DEBUG):
        await fake_llm.create(messages=[{"role": "user", "content": "x"}])
    assert caplog.records  # the SDK did log its requests
    assert FAKE_KEY not in caplog.text


async def test_unknown_model_is_priced_at_the_highest_rate_and_not_logged(
    fake_api: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    """Never free. The warning is the engine's, once in the directive's log
    (tests/test_engine_loop.py): logged here too, a headless run printed it
    twice (tests/test_claude_flow.py)."""
    with caplog.at_level(logging.WARNING):
        client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, model="claude-nova-10")
        fake_api.reply("ok", usage=usage(1000, 1000))
        response = await client.create(messages=[{"role": "user", "content": "x"}])
    assert response.cost_usd > cost_usd("claude-sonnet-5-5", response.usage)
    assert not [r for r in caplog.records if r.name == "engine.llm"]


async def test_timeout_after_retries_is_a_clear_error(fake_api: FakeAnthropic) -> None:
    import time

    from tests.fake_anthropic import Scripted

    def slow(request):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        return Scripted(200, {})

    fake_api.push(slow)
    fake_api.push(slow)
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=1, timeout_s=0.2)
    with pytest.raises(LLMError) as caught:
        await client.create(messages=[{"role": "user", "content": "x"}])
    assert caught.value.kind is LLMErrorKind.TIMEOUT
    assert "did not answer within 0.2s, still after 1 retry" in str(caught.value)
    assert len(fake_api.requests) == 2


async def test_a_model_the_sdk_caps_without_streaming_is_asked_for_what_it_sends(
    fake_api: FakeAnthropic,
) -> None:
    """claude-opus-4-0 takes at most 8,192 output tokens in a call that does
    not stream: asked for the default 16,000, the SDK raised "Streaming is
    required" (a ValueError) before any request, and the step or plan failed
    on it. The call asks for what the SDK sends."""
    fake_api.reply("ok")
    fake_api.reply("ok")
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, model="claude-opus-4-0")
    try:
        assert (await client.create(messages=[{"role": "user", "content": "hi"}])).text == "ok"
        await client.create(messages=[{"role": "user", "content": "hi"}], max_tokens=1_000)
    finally:
        await client.aclose()
    assert [r.body["max_tokens"] for r in fake_api.requests] == [8_192, 1_000]


async def test_each_retry_is_said_as_it_happens(fake_api: FakeAnthropic) -> None:
    """A 429 or 529 retried by the SDK sleeps inside the call (as long as
    the API asks, up to a minute): without a word, a step looked stalled."""
    fake_api.error(429, "slow down", retry_after_ms=1000)
    fake_api.error(529, "busy", retry_after_ms=None)
    fake_api.reply("ok")
    said: list[str] = []
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=2)
    try:
        response = await client.create(
            messages=[{"role": "user", "content": "x"}], on_retry=said.append
        )
    finally:
        await client.aclose()
    assert response.text == "ok"
    assert said == [
        "retry 1 of 2 in 1s: rate limited by the Anthropic API (HTTP 429)",
        "retry 2 of 2 shortly: the Anthropic API is overloaded (HTTP 529)",
    ]


async def test_a_broken_connection_retried_is_said(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    fake_api.cut_off()
    fake_api.reply("ok")
    said: list[str] = []
    await fake_llm.create(messages=[{"role": "user", "content": "x"}], on_retry=said.append)
    assert said == [
        "retry 1 of 1 shortly: the connection to the Anthropic API at "
        f"{fake_api.base_url} broke off before the answer was whole"
    ]


async def test_nothing_is_said_for_an_error_not_retried(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    """A bad key, a bad request, a wait too long to sit through, or the last
    try: the error itself says it."""
    fake_api.error(401, "invalid x-api-key")
    fake_api.error(400, "bad")
    fake_api.error(429, "come back later", retry_after_ms=120_000)
    fake_api.error(529, "busy")
    fake_api.error(529, "still busy")
    said: list[str] = []
    for _ in range(4):
        with pytest.raises(LLMError):
            await fake_llm.create(messages=[{"role": "user", "content": "x"}], on_retry=said.append)
    assert said == ["retry 1 of 1 now: the Anthropic API is overloaded (HTTP 529)"]


async def test_a_model_that_does_not_exist_is_named_first_with_where_to_change_it(
    fake_api: FakeAnthropic,
) -> None:
    """The app's banner cuts a pause reason at its width: 'the Anthropic API
    does not know this model or endpoint (model ...' lost the name."""
    fake_api.error(404, "model: claude-nope-9")
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, model="claude-nope-9")
    try:
        with pytest.raises(LLMError) as caught:
            await client.create(messages=[{"role": "user", "content": "x"}])
    finally:
        await client.aclose()
    assert caught.value.kind is LLMErrorKind.BAD_REQUEST
    assert str(caught.value) == (
        "model 'claude-nope-9' not found at the Anthropic API: choose another with"
        " `directive-tui model ID NAME` (or `model` in a new directive file, or DIRECTIVE_MODEL)"
        " (HTTP 404, request req_fake_0001): model: claude-nope-9"
    )
    assert len(fake_api.requests) == 1


async def test_a_404_not_about_the_model_names_the_address(
    fake_api: FakeAnthropic, fake_llm: LLMClient
) -> None:
    """A base URL with a wrong path is a 404 too: that is not the model's fault."""
    fake_api.error(404, "Not Found")
    with pytest.raises(LLMError) as caught:
        await fake_llm.create(messages=[{"role": "user", "content": "x"}])
    assert str(caught.value).startswith(
        f"the Anthropic API at {fake_api.base_url} has no such endpoint: check ANTHROPIC_BASE_URL"
    )


async def test_a_failure_without_an_answer_says_its_cause_not_the_sdks_boilerplate(
    fake_api: FakeAnthropic,
) -> None:
    """A timeout read '...within 0.2s: Request timed out or interrupted. This
    could be due to a network timeout, dropped connection, or request
    cancellation. See https://...', a refused connection '...: Connection
    error.'. What is said is ours, then the network's own reason if any."""
    import time

    from tests.fake_anthropic import Scripted

    def slow(request):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        return Scripted(200, {})

    fake_api.push(slow)
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=0, timeout_s=0.2)
    refused = LLMClient(api_key=FAKE_KEY, base_url="http://127.0.0.1:9", max_retries=0)
    said = []
    for each in (client, refused):
        with pytest.raises(LLMError) as caught:
            await each.create(messages=[{"role": "user", "content": "x"}])
        await each.aclose()
        said.append(str(caught.value))
    assert said == [
        "the Anthropic API did not answer within 0.2s",
        "could not connect to the Anthropic API at http://127.0.0.1:9: All connection attempts failed",
    ]
