"""The one place that talks to Claude: an `AsyncAnthropic` behind a small client.

Why one module: the planner, the agent and the judge need the same things —
the model and key from the directive or the environment, the SDK's retries
for 429/5xx/529 and timeouts, every response's usage priced through
`engine.pricing`, and errors a person can act on. The API key never leaves
this module: it is not in any error message, repr, log line or event.

`anthropic` takes over a second to import, so it is imported on the first
call, never when the app starts.
"""

from __future__ import annotations

import email.utils
import importlib
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from engine import pricing
from engine.models import TokenUsage

if TYPE_CHECKING:  # the SDK is imported lazily at run time
    from anthropic import AsyncAnthropic


T = TypeVar("T", bound=BaseModel)

DEFAULT_MAX_RETRIES = 2
DEFAULT_TIMEOUT_S = 600.0
# The SDK's own connect timeout. A bare number as the timeout would set the
# connect phase to it too: an API host that drops packets then took 10
# minutes per try to be found unreachable.
CONNECT_TIMEOUT_S = 5.0
# The longest retry-after the SDK may sleep through inside one call. It would
# honour any (an hour, a day) with nothing to show for it; past this the call
# fails at once and the error says how long the API asked to wait.
LONGEST_WAIT_S = 60.0
MIN_TIMEOUT_S = 0.001  # DIRECTIVE_LLM_TIMEOUT_S=0 is refused, not quietly 600 s
DEFAULT_MAX_TOKENS = 16_000  # below the SDK's non-streaming ceiling (~21k)
DEFAULT_BASE_URL = "https://api.anthropic.com"

# Environment variables this module reads, and what each sets.
ENV_API_KEY = "ANTHROPIC_API_KEY"
ENV_BASE_URL = "ANTHROPIC_BASE_URL"
ENV_MODEL = "DIRECTIVE_MODEL"
ENV_MAX_RETRIES = "DIRECTIVE_LLM_MAX_RETRIES"
ENV_TIMEOUT_S = "DIRECTIVE_LLM_TIMEOUT_S"

REDACTED = "[redacted]"

# What one call does with a line saying a retry is under way (set by
# `LLMClient.create` for the SDK middleware that sees each try).
_ON_RETRY: ContextVar[Callable[[str], None] | None] = ContextVar("_ON_RETRY", default=None)


class LLMErrorKind(StrEnum):
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    BAD_REQUEST = "bad_request"
    REFUSED = "refused"
    MALFORMED = "malformed"
    API = "api"


class LLMError(RuntimeError):
    """A model call that did not produce a usable answer.

    `usage`/`cost_usd` are what the failed call still cost (a refused or
    malformed response is billed), so callers can record it. `cut_off`: the
    answer stopped at `max_tokens` (asking again with the same limit cuts
    it off again).
    """

    def __init__(
        self,
        kind: LLMErrorKind,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        usage: TokenUsage | None = None,
        cost_usd: float = 0.0,
        cut_off: bool = False,
    ) -> None:
        super().__init__(message)
        self.cut_off = cut_off
        self.kind = kind
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.usage = usage or TokenUsage()
        self.cost_usd = cost_usd

    def __repr__(self) -> str:
        return f"LLMError(kind={self.kind.value!r}, message={self.message!r})"


@dataclass
class LLMResponse:
    """One model response, its usage and what it cost."""

    message: Any  # anthropic.types.Message
    usage: TokenUsage
    cost_usd: float
    model: str

    @property
    def stop_reason(self) -> str | None:
        return getattr(self.message, "stop_reason", None)

    @property
    def content(self) -> list[Any]:
        return list(getattr(self.message, "content", None) or [])

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.content if getattr(b, "type", None) == "text").strip()

    @property
    def tool_uses(self) -> list[Any]:
        return [b for b in self.content if getattr(b, "type", None) == "tool_use"]

    def content_params(self) -> list[dict[str, Any]]:
        """The assistant turn to send back as history: the blocks exactly as
        the API sent them (thinking signatures included)."""
        return [_block_param(b) for b in self.content]


@dataclass
class ParsedResponse(LLMResponse, Generic[T]):
    parsed: T | None = None


@dataclass
class _Config:
    model: str
    base_url: str
    max_retries: int
    timeout_s: float
    max_tokens: int
    connect_timeout_s: float


class _Secret:
    """Holds the key; prints as [redacted] however it is formatted."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__


@dataclass
class _ErrorRule:
    sdk_class: str  # name in the `anthropic` module
    kind: LLMErrorKind
    text: str  # what it means for the user; the API's own message is appended
    cause: str | None = None  # only when the SDK's error wraps this (httpx) error class
    says: str | None = None  # only when the API's message has this in it

    def matches(self, sdk: Any, exc: Exception) -> bool:
        if not isinstance(exc, getattr(sdk, self.sdk_class)):
            return False
        if self.says is not None and self.says not in str(getattr(exc, "api_message", "")):
            return False
        return self.cause is None or type(exc.__cause__).__name__ == self.cause


# First match wins, so subclasses come before their bases.
_ERROR_RULES = [
    _ErrorRule(
        "AuthenticationError",
        LLMErrorKind.AUTH,
        # The client reads the key once: a retry in the same run sends it again.
        "the Anthropic API rejected the API key: set a valid ANTHROPIC_API_KEY and start "
        "directive-tui again (this run keeps the key it started with)",
    ),
    _ErrorRule(
        "PermissionDeniedError",
        LLMErrorKind.AUTH,
        "the API key may not use this model or resource: check ANTHROPIC_API_KEY",
    ),
    _ErrorRule(
        "RateLimitError",
        LLMErrorKind.RATE_LIMITED,
        "rate limited by the Anthropic API{still}",
    ),
    _ErrorRule(
        "OverloadedError",
        LLMErrorKind.OVERLOADED,
        "the Anthropic API is overloaded{still}",
    ),
    _ErrorRule(
        "InternalServerError",
        LLMErrorKind.SERVER,
        "the Anthropic API failed{still}",
    ),
    _ErrorRule(
        "BadRequestError",
        LLMErrorKind.BAD_REQUEST,
        "the Anthropic API refused the request as invalid",
    ),
    _ErrorRule(
        "NotFoundError",
        LLMErrorKind.BAD_REQUEST,
        "model {model!r} not found at the Anthropic API: choose another with"
        " `directive-tui model ID NAME` (or `model` in a new directive file, or DIRECTIVE_MODEL)",
        says="model",
    ),
    _ErrorRule(
        "NotFoundError",
        LLMErrorKind.BAD_REQUEST,
        "the Anthropic API at {base_url} has no such endpoint: check ANTHROPIC_BASE_URL",
    ),
    _ErrorRule("APIStatusError", LLMErrorKind.API, "the Anthropic API returned an error"),
    _ErrorRule(
        "APITimeoutError",
        LLMErrorKind.CONNECTION,
        "could not connect to the Anthropic API at {base_url} within {connect}s{still}",
        cause="ConnectTimeout",
    ),
    _ErrorRule(
        "APITimeoutError",
        LLMErrorKind.TIMEOUT,
        "the Anthropic API did not answer within {timeout}s{still}",
    ),
    *(
        _ErrorRule(
            "APIConnectionError",
            LLMErrorKind.CONNECTION,
            "the connection to the Anthropic API at {base_url} broke off before the answer "
            "was whole{still}",
            cause=cause,
        )
        for cause in ("RemoteProtocolError", "ReadError")
    ),
    _ErrorRule(
        "APIConnectionError",
        LLMErrorKind.CONNECTION,
        "could not connect to the Anthropic API at {base_url}{still}",
    ),
]


def _sdk() -> Any:
    import anthropic  # lazy: >1 s to import

    return anthropic


def _most_without_streaming(model: str) -> int | None:
    """The most output tokens the SDK sends for `model` in a call that does
    not stream (claude-opus-4-0's 8,192): asked for more, it raises
    "Streaming is required" before any request. None when it sets none."""
    try:
        table = importlib.import_module("anthropic._constants").MODEL_NONSTREAMING_TOKENS
    except (ImportError, AttributeError):  # moved in another SDK version: no cap known
        return None
    limit = table.get(model)
    return limit if isinstance(limit, int) else None


def _block_param(block: Any) -> dict[str, Any]:
    if isinstance(block, dict):
        return block
    data = block.to_dict() if hasattr(block, "to_dict") else block.model_dump(exclude_none=True)
    data.pop("parsed_output", None)
    return data


def usage_of(message: Any) -> TokenUsage:
    """The SDK's usage block as our TokenUsage (missing or negative counts
    are zero)."""
    usage = getattr(message, "usage", None)

    def count(name: str) -> int:
        # A negative count would be a refund: the cost breaker would be
        # moved back by whatever a broken server or proxy reported.
        value = getattr(usage, name, None) if usage is not None else None
        return max(value, 0) if isinstance(value, int) else 0

    return TokenUsage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_creation_input_tokens=count("cache_creation_input_tokens"),
        cache_read_input_tokens=count("cache_read_input_tokens"),
    )


def _env_number(
    env: Mapping[str, str], name: str, kind: type[int] | type[float], *, least: float = 0
) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        wanted = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} must be {wanted}, got {raw!r}") from None
    if not value >= least:  # NaN too
        bound = "must not be negative" if least == 0 else f"must be at least {least:g}"
        raise ValueError(f"{name} {bound}, got {raw!r}")
    return value


class LLMClient:
    """A priced, key-safe front to `AsyncAnthropic.messages`."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str | None = None,
        base_url: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("an API key is required (set ANTHROPIC_API_KEY)")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self._key = _Secret(api_key.strip())
        self._config = _Config(
            model=(model or pricing.DEFAULT_MODEL).strip(),
            base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
            max_retries=max_retries,
            timeout_s=timeout_s,
            max_tokens=max_tokens,
            connect_timeout_s=min(connect_timeout_s, timeout_s),
        )
        self._client: AsyncAnthropic | None = None

    @classmethod
    def from_env(
        cls,
        model: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        max_retries: int | None = None,
        timeout_s: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> LLMClient | None:
        """A client configured from the environment, or None when no API key
        is set (the engine then runs without Claude). `model` (the
        directive's) wins over DIRECTIVE_MODEL, which wins over the default."""
        env = os.environ if env is None else env
        key = env.get(ENV_API_KEY, "").strip()
        if not key:
            return None
        retries = max_retries if max_retries is not None else _env_number(env, ENV_MAX_RETRIES, int)
        timeout = (
            timeout_s
            if timeout_s is not None
            else _env_number(env, ENV_TIMEOUT_S, float, least=MIN_TIMEOUT_S)
        )
        return cls(
            api_key=key,
            model=model or env.get(ENV_MODEL, "").strip() or None,
            base_url=env.get(ENV_BASE_URL, "").strip() or None,
            max_retries=DEFAULT_MAX_RETRIES if retries is None else retries,
            timeout_s=DEFAULT_TIMEOUT_S if timeout is None else timeout,
            max_tokens=max_tokens,
        )

    # -- properties -----------------------------------------------------------

    @property
    def model(self) -> str:
        return self._config.model

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def max_retries(self) -> int:
        return self._config.max_retries

    def __repr__(self) -> str:
        return (
            f"LLMClient(model={self.model!r}, base_url={self.base_url!r}, "
            f"max_retries={self.max_retries}, api_key={REDACTED})"
        )

    def scrub(self, text: str) -> str:
        """`text` with the API key (if it appears) replaced by [redacted]."""
        return text.replace(self._key.reveal(), REDACTED)

    def cost(self, usage: TokenUsage, model: str | None = None) -> float:
        return pricing.cost_usd(model or self.model, usage)

    # -- calls ----------------------------------------------------------------

    def _sdk_client(self) -> AsyncAnthropic:
        if self._client is None:
            sdk = _sdk()
            self._client = sdk.AsyncAnthropic(
                api_key=self._key.reveal(),
                base_url=self._config.base_url,
                max_retries=self._config.max_retries,
                timeout=sdk.Timeout(self._config.timeout_s, connect=self._config.connect_timeout_s),
                middleware=[self._say_retries, _no_long_waits],
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def create(
        self,
        *,
        messages: Iterable[dict[str, Any]],
        system: str | list[dict[str, Any]] | None = None,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        output_config: dict[str, Any] | None = None,
        model: str | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> LLMResponse:
        """One Messages API call. Raises LLMError (kind REFUSED) when the model
        refuses; the error carries the call's usage and cost. `on_retry` is
        told, in plain words, of each retry the SDK is about to make."""
        model = model or self.model
        wanted = max_tokens or self._config.max_tokens
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": min(wanted, _most_without_streaming(model) or wanted),
            "messages": list(messages),
        }
        optional = {"system": system, "tools": tools, "output_config": output_config}
        kwargs.update({k: v for k, v in optional.items() if v})
        client = self._sdk_client()
        said = _ON_RETRY.set(on_retry)
        try:
            message = await client.messages.create(**kwargs)
        except Exception as exc:
            raise self._translate(exc, model) from None
        finally:
            _ON_RETRY.reset(said)
        response = self._priced(message, model)
        if response.stop_reason == "refusal":
            raise self._response_error(
                response,
                LLMErrorKind.REFUSED,
                "the model declined to answer (stop_reason 'refusal')"
                + (f": {response.text[:300]}" if response.text else ""),
            )
        return response

    async def parse(
        self,
        *,
        messages: Iterable[dict[str, Any]],
        output_format: type[T],
        system: str | list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> ParsedResponse[T]:
        """A call whose answer must be JSON matching `output_format`.

        Sent the way the SDK's `messages.parse` sends it (`output_config.format`
        = the model's JSON schema through `anthropic.transform_schema`), but
        validated here, so a malformed answer still reports what it cost.
        """
        schema = _sdk().transform_schema(output_format)
        response = await self.create(
            messages=messages,
            system=system,
            max_tokens=max_tokens,
            output_config={"format": {"type": "json_schema", "schema": schema}},
            model=model,
            on_retry=on_retry,
        )
        text = response.text
        if not text:
            raise self._response_error(
                response,
                LLMErrorKind.MALFORMED,
                f"the model returned no JSON (stop_reason {response.stop_reason!r})",
            )
        try:
            parsed = output_format.model_validate_json(text)
        except ValidationError as exc:
            cut = " (the answer hit max_tokens)" if response.stop_reason == "max_tokens" else ""
            raise self._response_error(
                response,
                LLMErrorKind.MALFORMED,
                f"the model's answer is not a valid {output_format.__name__}{cut}: "
                f"{_short_validation(exc)}",
            ) from None
        return ParsedResponse(
            message=response.message,
            usage=response.usage,
            cost_usd=response.cost_usd,
            model=response.model,
            parsed=parsed,
        )

    # -- helpers --------------------------------------------------------------

    async def _say_retries(self, request: Any, call_next: Any) -> Any:
        """SDK middleware: a try that failed and will be tried again is said
        to the call's `on_retry` (the SDK sleeps up to a minute before each
        retry, silently: a step looked stalled)."""
        on_retry = _ON_RETRY.get()
        retry = request.retries_taken + 1
        if on_retry is None or retry > self.max_retries:
            return await call_next(request)
        try:
            response = await call_next(request)
        except Exception as exc:
            sdk = _sdk()
            rule = next((r for r in _ERROR_RULES if r.matches(sdk, exc)), None)
            if rule is not None and rule.kind in (LLMErrorKind.CONNECTION, LLMErrorKind.TIMEOUT):
                what = self._rule_text(rule, self.model)
                on_retry(f"retry {retry} of {self.max_retries} shortly: {what}")
            raise
        http = response.http_response
        if not http.is_success and _will_retry(http.status_code, http.headers):
            on_retry(_retry_line(http.status_code, http.headers, retry, self.max_retries))
        return response

    def _priced(self, message: Any, model: str) -> LLMResponse:
        content = getattr(message, "content", None)
        if not isinstance(content, list):
            raise LLMError(
                LLMErrorKind.MALFORMED,
                "the Anthropic API answered with something that is not a message (no content list)",
            )
        if not all(isinstance(getattr(b, "type", None), str) for b in content):
            # Blocks without a type (bare strings) cannot be read or sent
            # back as history: the agent failed on them with AttributeError.
            raise LLMError(
                LLMErrorKind.MALFORMED,
                "the Anthropic API answered with a message whose content is not content blocks",
                usage=usage_of(message),
                cost_usd=pricing.cost_usd(model, usage_of(message)),
            )
        served = getattr(message, "model", None)
        priced_as = served if isinstance(served, str) and pricing.is_known(served) else model
        usage = usage_of(message)
        return LLMResponse(
            message=message,
            usage=usage,
            cost_usd=pricing.cost_usd(priced_as, usage),
            model=priced_as,
        )

    def _response_error(self, response: LLMResponse, kind: LLMErrorKind, text: str) -> LLMError:
        return LLMError(
            kind,
            self.scrub(text),
            usage=response.usage,
            cost_usd=response.cost_usd,
            cut_off=response.stop_reason == "max_tokens",
        )

    def _rule_text(self, rule: _ErrorRule, model: str, still: str = "") -> str:
        return rule.text.format(
            still=still,
            model=model,
            base_url=self.base_url,
            timeout=self._config.timeout_s,
            connect=self._config.connect_timeout_s,
        )

    def _translate(self, exc: Exception, model: str) -> Exception:
        sdk = _sdk()
        if not isinstance(exc, sdk.AnthropicError):
            return exc  # ours or a programming error: not an API failure
        rule = next((r for r in _ERROR_RULES if r.matches(sdk, exc)), None)
        if rule is None:
            return LLMError(LLMErrorKind.API, self.scrub(f"Anthropic SDK error: {exc}"))
        status = getattr(exc, "status_code", None)
        request_id = getattr(exc, "request_id", None)
        text = self._rule_text(rule, model, _still_after(_retries_taken(exc, self.max_retries)))
        detail = getattr(exc, "api_message", None) or (_cause(exc) if status is None else None)
        parts = [text]
        if status is not None:
            parts.append(f"(HTTP {status}" + (f", request {request_id})" if request_id else ")"))
        message = " ".join(parts) + (f": {detail}" if detail else "") + _wait_asked(exc)
        return LLMError(rule.kind, self.scrub(message), status_code=status, request_id=request_id)


def _cause(exc: Exception) -> str:
    """The network's own reason for a failure with no answer ('All connection
    attempts failed'), not the SDK's boilerplate around it."""
    return str(exc.__cause__ or "").strip()


def _asked_wait_s(headers: Any) -> float:
    """The wait the API's retry-after headers ask for, in seconds (0: none),
    read as the SDK reads them: milliseconds, else seconds, else an HTTP
    date (which it sleeps until, days away or not)."""
    for name, per_second in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name, "")) / per_second
        except (TypeError, ValueError):
            continue
        return seconds if seconds > 0 else 0.0  # NaN too: the SDK backs off as usual
    date = email.utils.parsedate_tz(headers.get("retry-after") or "")
    return max(email.utils.mktime_tz(date) - time.time(), 0.0) if date else 0.0


async def _no_long_waits(request: Any, call_next: Any) -> Any:
    """SDK middleware: an answer asking for a wait over LONGEST_WAIT_S is not
    retried (the SDK would sleep through all of it, silently, inside one call)."""
    response = await call_next(request)
    headers = response.http_response.headers
    if _asked_wait_s(headers) > LONGEST_WAIT_S:
        headers["x-should-retry"] = "false"
    return response


def _will_retry(status: int, headers: Any) -> bool:
    """Whether the SDK tries again after this answer (its own rule)."""
    told = headers.get("x-should-retry")
    if told in ("true", "false"):
        return told == "true"
    return status in (408, 409, 429) or status >= 500


_RETRIED = {
    429: "rate limited by the Anthropic API",
    529: "the Anthropic API is overloaded",
}


def _retry_line(status: int, headers: Any, retry: int, allowed: int) -> str:
    """'retry 1 of 2 in 30s: rate limited by the Anthropic API (HTTP 429)':
    the retry first, as a narrow panel cuts the end off."""
    what = _RETRIED.get(status) or (
        "the Anthropic API failed" if status >= 500 else "the Anthropic API did not answer"
    )
    wait = _asked_wait_s(headers)
    when = "shortly" if not wait else "now" if wait < 1 else f"in {wait:.0f}s"
    return f"retry {retry} of {allowed} {when}: {what} (HTTP {status})"


def _wait_asked(exc: Exception) -> str:
    """The long wait the API asked for, said in the error: the person
    deciding when to resume needs it."""
    response = getattr(exc, "response", None)
    seconds = _asked_wait_s(getattr(response, "headers", None) or {})
    if seconds <= LONGEST_WAIT_S:
        return ""
    if seconds == math.inf:
        return " (the API asked to wait for ever before trying again)"
    return f" (the API asked to wait {seconds:.0f}s before trying again)"


def _retries_taken(exc: Exception, allowed: int) -> int:
    """How many retries the SDK made before this error (the retry count it
    sends on each request): fewer than allowed when the API said not to retry,
    or asked for a wait too long to sit through."""
    headers = getattr(getattr(exc, "request", None), "headers", None) or {}
    try:
        return int(headers.get("x-stainless-retry-count", allowed))
    except (TypeError, ValueError):
        return allowed


def _still_after(retries: int) -> str:
    """', still after 2 retries' for an error message ('1 retry'; nothing
    when none were allowed)."""
    if not retries:
        return ""
    return f", still after {retries} {'retry' if retries == 1 else 'retries'}"


def _short_validation(exc: ValidationError) -> str:
    errors = exc.errors()
    shown = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())) or '(root)'}: {e.get('msg')}"
        for e in errors[:3]
    )
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return shown + more


@dataclass
class UsageTotal:
    """Running sum of several calls' usage and cost."""

    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0

    def add(self, usage: TokenUsage, cost_usd: float) -> None:
        self.usage = self.usage + usage
        self.cost_usd += cost_usd
