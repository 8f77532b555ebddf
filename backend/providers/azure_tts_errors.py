"""How Azure speech synthesis fails, in our exception types (observed with the Speech SDK 1.53).

Synthesis: failures never raise; the result is ``Canceled`` with ``cancellation_details.error_code``:
a refused handshake 401/403 → AuthenticationFailure (not retried by the SDK); 429 → TooManyRequests; 503 →
ServiceUnavailable, 500 → ServiceError (both after one retry of the SDK's own); a connection dropped → ConnectionFailure
(after one retry, or at once when audio had started); audio that stops for 3 s → ServiceTimeout. The service refuses
an unknown voice or unreadable SSML by closing the websocket with 1007 ("Unsupported voice X."), which the SDK
reports as BadRequest (older SDKs said ConnectionFailure, with "Error code: 1007" in the details).
Voice list: a plain HTTP GET; its result carries only ``error_details``, e.g. "Get voices list failed: Too many
requests (429). ..." for an HTTP status, "Error in sending a http request ... HTTPAPI_..." for a broken connection.
"""
from __future__ import annotations

import logging
import re

from backend import errors

PROVIDER = "azure_tts"
log = logging.getLogger(__name__)
_REFUSED_SSML = re.compile(r"Error code: 1007\b")
_HTTP_STATUS = re.compile(r"\((\d{3})\)")


def cancellation_error(code_name: str, details: str) -> errors.ProviderError:
    """The error for a synthesis the SDK canceled with ``code_name`` (a CancellationErrorCode's name)."""
    if code_name == "BadRequest" or _REFUSED_SSML.search(details or ""):
        kind: type[errors.ProviderError] = errors.ProviderRejected
    else:
        kind = {"AuthenticationFailure": errors.ProviderAuthError, "Forbidden": errors.ProviderAuthError,
                "TooManyRequests": errors.ProviderRateLimited, "ConnectionFailure": errors.ProviderConnectionError,
                "ServiceTimeout": errors.ProviderTimeout}.get(code_name, errors.ProviderServerError)
    # The SDK's details name its connection state and internals: for our logs, not for a client's answer.
    log.warning("Azure speech synthesis was canceled: %s: %s", code_name, details)
    return kind(_message(kind, code_name), provider=PROVIDER, details={"cancellation_code": code_name})


def voice_list_error(details: str) -> errors.ProviderError:
    """The error for a voice list the SDK could not fetch; its details name the HTTP status, if there was one."""
    match = _HTTP_STATUS.search(details or "")
    status = int(match[1]) if match else 0
    if status in (401, 403):
        kind: type[errors.ProviderError] = errors.ProviderAuthError
    elif status == 429:
        kind = errors.ProviderRateLimited
    elif status >= 500:
        kind = errors.ProviderServerError
    elif status >= 400:
        kind = errors.ProviderRejected
    else:
        kind = errors.ProviderConnectionError
    log.warning("Azure voice list failed: %s", details)
    name = f"HTTP {status}" if status else "no answer"
    return kind(_message(kind, name, "the voice list"), provider=PROVIDER,
                details={"status": status} if status else None)


def _message(kind: type[errors.ProviderError], cause: str, what: str = "the synthesis") -> str:
    if kind is errors.ProviderAuthError:
        return "Azure Speech refused our credentials"
    if kind is errors.ProviderRejected:
        return f"Azure Speech refused {what} (unknown voice or unreadable request)"
    return f"Azure Speech failed {what} ({cause})"
