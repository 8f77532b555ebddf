"""Gemini's failures as our exception types: one mapping for plain calls and streams."""
from __future__ import annotations

import logging

import httpx2
from google.genai import errors as genai_errors

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

PROVIDER = "gemini"
logger = logging.getLogger(__name__)


def map_failure(exc: BaseException, *, seconds: float, input_seconds: float = 0.0) -> ProviderError:
    """Map anything a google-genai call raised (before or during a stream) to our exception types."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        return map_api_error(exc)
    if isinstance(exc, httpx2.TimeoutException):
        return timeout_for_input(f"Gemini did not answer within {seconds:.1f} s", provider=PROVIDER, limit=seconds,
                                 input_seconds=input_seconds)
    if isinstance(exc, httpx2.TransportError):  # connect/read/write errors, resets, a body cut mid-chunk
        return ProviderConnectionError(f"Could not reach Gemini ({type(exc).__name__})", provider=PROVIDER)
    # The SDK's own parsing/validation failures must not escape as 500s.
    return ProviderBadResponse(f"Gemini answer could not be read ({type(exc).__name__})", provider=PROVIDER)


def map_api_error(exc: genai_errors.APIError) -> ProviderError:
    """Map an HTTP error from Gemini (or an error event in a stream) to our exception types."""
    code, status, message = exc.code or 0, exc.status or "", (exc.message or "")[:300]
    detail = f"Gemini answered {code} {status}".strip()
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        return ProviderRateLimited(detail, provider=PROVIDER, retry_after=_retry_after(exc))
    if code in (401, 403) or (code == 400 and "api key" in message.lower()):
        logger.error("Gemini refused our credentials: check GEMINI_API_KEY", extra={"status": status})
        return ProviderAuthError("Gemini refused the service's credentials", provider=PROVIDER)
    if code == 504:
        return ProviderTimeout(detail, provider=PROVIDER)
    if code >= 500:
        return ProviderServerError(detail, provider=PROVIDER, retry_after=_retry_after(exc))
    # Google's message can describe the request in detail: it goes to our log, the client gets the status.
    logger.warning("Gemini rejected the request", extra={"status": status, "code": code, "detail": message})
    return ProviderRejected(detail, provider=PROVIDER)


def _retry_after(exc: genai_errors.APIError) -> float | None:
    """The Retry-After header of the failed response, in seconds, if it has a numeric one."""
    headers = getattr(exc.response, "headers", None)
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None
