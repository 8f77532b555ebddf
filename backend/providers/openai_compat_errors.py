"""Failures of the OpenAI-compatible fallback mapped to our types; what the server says goes to the log, never out."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Mapping

import httpx2
import openai

from backend.errors import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderTimeout,
    timeout_for_input,
)

PROVIDER = "fallback"
logger = logging.getLogger("backend.providers.openai_compat")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def map_error(exc: BaseException, *, seconds: float, input_seconds: float) -> ProviderError:
    """Any failure of one call (SDK, transport, decoding, validation) as one of our exception types."""
    if isinstance(exc, ProviderError):
        return exc
    # APITimeoutError is a subclass of APIConnectionError: the timeout is checked first.
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return timeout_for_input(f"The fallback model did not answer within {seconds:.1f} s", provider=PROVIDER,
                                 limit=seconds, input_seconds=input_seconds)
    if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
        return ProviderConnectionError(f"Could not reach the fallback model ({type(cause).__name__})",
                                       provider=PROVIDER)
    if isinstance(exc, openai.APIStatusError):
        return map_status_error(exc)
    if isinstance(exc, openai.APIError):  # an error event inside a stream: no HTTP status
        logger.warning("the fallback model failed mid-answer", extra=_log_fields(exc))
        return ProviderServerError("The fallback model failed while answering", provider=PROVIDER)
    # A 200 whose JSON does not parse, pydantic's validation, a body of the wrong shape: the answer is unusable.
    logger.warning("the fallback model's answer could not be read", extra={"error": type(exc).__name__})
    return ProviderBadResponse(f"The fallback model's answer could not be read ({type(exc).__name__})",
                               provider=PROVIDER)


def map_status_error(exc: openai.APIStatusError) -> ProviderError:
    """An HTTP error status as our type: who is at fault decides retries and the breaker."""
    status = exc.status_code
    detail, fields = f"The fallback model answered {status}", _log_fields(exc)
    headers = getattr(exc.response, "headers", None)
    if status == 429 and "insufficient_quota" in (error_code(exc), str(exc.type or "")):
        # Billing, not load: every call fails until an operator acts, so it is treated like refused credentials
        # (not retried, not counted by the breaker; the chain may still answer locally).
        logger.error("the fallback model's account has no quota left: check its billing", extra=fields)
        return ProviderAuthError("The fallback model's account has no quota left", provider=PROVIDER)
    if status == 429:
        return ProviderRateLimited(detail, provider=PROVIDER, retry_after=retry_after(headers))
    if status in (401, 403):
        logger.error("the fallback model refused our credentials: check FALLBACK_LLM_API_KEY", extra=fields)
        return ProviderAuthError("The fallback model refused the service's credentials", provider=PROVIDER)
    if status in (408, 504):
        return ProviderTimeout(detail, provider=PROVIDER)
    if status >= 500 or status == 409:
        logger.warning("the fallback model reported an error", extra=fields)
        return ProviderServerError(detail, provider=PROVIDER, retry_after=retry_after(headers))
    if status == 404:
        logger.error("the fallback model or its URL was not found: check FALLBACK_LLM_MODEL and that "
                     "FALLBACK_LLM_BASE_URL ends with the API prefix (usually /v1)", extra=fields)
    else:
        logger.warning("the fallback model rejected the request", extra=fields)
    return ProviderRejected(detail, provider=PROVIDER)


def refused_feature(exc: BaseException) -> str | None:
    """Which optional part of our request a 400/422 refuses, so the client can stop sending it for good:
    "response_format" (a server without json_schema: the error names param response_format, or its message
    mentions response_format or json_schema), "temperature" or "max_tokens" (OpenAI's reasoning models answer
    code unsupported_value / unsupported_parameter naming the param). None for any other error."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422):
        return None
    param, code, message = str(exc.param or ""), error_code(exc), server_message(exc).lower()
    if param.startswith("response_format") or "response_format" in message or "json_schema" in message:
        return "response_format"
    if code in ("unsupported_parameter", "unsupported_value") and param in ("temperature", "max_tokens"):
        return param
    return None


def error_code(exc: openai.APIError) -> str:
    """The error's code (OpenAI: rate_limit_exceeded, insufficient_quota, invalid_api_key, ...) or ""."""
    return str(exc.code or "") if isinstance(exc.code, (str, int)) else ""


def server_message(exc: openai.APIError) -> str:
    """What the server said (for our log only): the body's message, or the raw body when it was not JSON."""
    body = exc.body
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return body["message"]
    return body if isinstance(body, str) else (exc.message or "")


def _log_fields(exc: openai.APIError) -> dict[str, Any]:
    return {"status": getattr(exc, "status_code", None), "code": error_code(exc), "param": exc.param,
            "upstream_request_id": getattr(exc, "request_id", None), "detail": server_message(exc)[:300]}


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from retry-after-ms, Retry-After (seconds or an HTTP date), or else the reset time of an
    exhausted OpenAI limit (x-ratelimit-remaining-* of 0 with x-ratelimit-reset-* like "6m0s" or "400ms")."""
    if headers is None:
        return None
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    raw = headers.get("retry-after")
    seconds = _number(raw)
    if seconds is None and raw:
        seconds = _http_date_seconds(raw)
    if seconds is not None:
        return seconds
    resets = [_duration(headers.get(f"x-ratelimit-reset-{kind}")) for kind in ("requests", "tokens")
              if headers.get(f"x-ratelimit-remaining-{kind}") == "0"]
    return max((r for r in resets if r is not None), default=None)


def _number(raw: str | None) -> float | None:
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _http_date_seconds(raw: str) -> float | None:
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _duration(raw: str | None) -> float | None:
    """A Go-style duration ("1s", "6m0s", "400ms", "1h2m3.5s") in seconds."""
    if not raw or _DURATION.sub("", raw.strip()):
        return None
    return sum(float(value) * _UNIT_SECONDS[unit] for value, unit in _DURATION.findall(raw.strip()))
