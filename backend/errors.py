"""Exception types of the service; the envelope handlers that render them live in backend/http/handlers.py."""
from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error with a contract error code, an HTTP status and optional details."""

    code = "INTERNAL_ERROR"
    status = 500
    default_message = "Internal error"

    def __init__(self, message: str | None = None, *, details: Any = None,
                 retry_after: float | None = None, status: int | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.details = details
        self.retry_after = retry_after
        if status is not None:
            self.status = status


class ValidationFailed(AppError):
    code, status, default_message = "VALIDATION_ERROR", 400, "Request validation failed"


class Unauthorized(AppError):
    code, status, default_message = "UNAUTHORIZED", 401, "A valid API key is required"


class Forbidden(AppError):
    code, status, default_message = "FORBIDDEN", 403, "Forbidden"


class NotFound(AppError):
    code, status, default_message = "NOT_FOUND", 404, "Not found"


class MethodNotAllowed(AppError):
    code, status, default_message = "METHOD_NOT_ALLOWED", 405, "Method not allowed"


class PayloadTooLarge(AppError):
    code, status, default_message = "PAYLOAD_TOO_LARGE", 413, "Payload too large"


class UnsupportedMediaType(AppError):
    code, status, default_message = "UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported media type"


class RateLimited(AppError):
    code, status, default_message = "RATE_LIMITED", 429, "Rate limit exceeded"


class Conflict(AppError):
    """The request conflicts with the resource's state (a turn already being answered, a full conversation)."""

    code, status, default_message = "CONFLICT", 409, "The request conflicts with the current state"


class Gone(AppError):
    code, status, default_message = "GONE", 410, "The resource is gone"


class ServiceUnavailable(AppError):
    """The service itself cannot do this now (not ready, unhealthy, or the shared store is unreachable)."""

    code, status, default_message = "SERVICE_UNAVAILABLE", 503, "The service is unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database did not answer within DATABASE_TIMEOUT_SECONDS (unreachable, pool exhausted, statement timeout);
    nothing was written half-way: the transaction was rolled back."""

    default_message = "The database is unavailable"


class ProviderError(AppError):
    """A failure of an upstream AI provider.

    ``transient`` errors are retried by the policy; ``counts_for_breaker`` errors move the
    provider's circuit breaker towards open. A caller's bad input does neither.
    """

    code, status, default_message = "PROVIDER_ERROR", 502, "The AI provider failed"
    transient = False
    counts_for_breaker = True
    shared = True  # whether the followers of an identical request in flight share it (False: the leader's own)

    def __init__(self, message: str | None = None, *, provider: str = "", **kwargs: Any):
        super().__init__(message, **kwargs)
        self.provider = provider


class ProviderNotConfigured(ProviderError):
    code, status, default_message = "PROVIDER_NOT_CONFIGURED", 503, "The AI provider is not configured"
    counts_for_breaker = False


class ProviderTimeout(ProviderError):
    code, status, default_message = "PROVIDER_TIMEOUT", 504, "The AI provider did not answer in time"
    transient = True


class ProviderInputTimeout(ProviderTimeout):
    """The provider ran out of time on an input whose size accounts for the wait (long audio, a long text).

    The caller's input, not a provider outage: not retried (another attempt would take as long and be paid again)
    and not counted by the breaker, so a few long inputs cannot open it for everyone.
    """

    transient = False
    counts_for_breaker = False


def timeout_for_input(message: str, *, provider: str, limit: float, input_seconds: float) -> ProviderTimeout:
    """The error for a call cut off after ``limit`` s, of which ``input_seconds`` were allowed for the input's size.

    Blamed on the input when its allowance was at least the provider's own share of the limit: the provider then
    had no more time of its own than the input took, and a short input's timeout stays the provider's.
    """
    if 0 < input_seconds >= limit - input_seconds:
        return ProviderInputTimeout(f"{message}: this input needs about {input_seconds:.0f} s more than a short one",
                                    provider=provider, details={"limit_seconds": round(limit, 1),
                                                                "input_seconds": round(input_seconds, 1)})
    return ProviderTimeout(message, provider=provider)


class ProviderConnectionError(ProviderError):
    default_message = "Could not reach the AI provider"
    transient = True


class ProviderServerError(ProviderError):
    """The provider answered 5xx."""

    default_message = "The AI provider reported an internal error"
    transient = True


class ProviderRateLimited(ProviderError):
    """The provider throttled us (429 or quota); ``retry_after`` carries its hint."""

    code, status, default_message = "PROVIDER_UNAVAILABLE", 503, "The AI provider is throttling requests"
    transient = True


class ProviderAuthError(ProviderError):
    """Our credentials were refused: an operator problem, not retried, not a provider outage."""

    default_message = "The AI provider refused our credentials"
    counts_for_breaker = False


class ProviderRejected(ProviderError):
    """The provider refused the request itself (4xx other than auth and throttling)."""

    default_message = "The AI provider rejected the request"
    counts_for_breaker = False


class ProviderBadResponse(ProviderError):
    """The provider answered, but with nothing usable (blocked, empty, unparseable)."""

    default_message = "The AI provider returned an unusable answer"
    counts_for_breaker = False


class BudgetExceeded(ProviderError):
    """We refuse to call a provider for a caller (or its client key) whose daily budget is spent; Retry-After says
    when it is worth asking again: the next midnight UTC, or a moment when calls in flight hold the rest."""

    code, status, default_message = "BUDGET_EXCEEDED", 429, "Today's budget for these calls is spent"
    counts_for_breaker = False
    shared = False


class ProviderUnavailable(ProviderError):
    """We refuse to call the provider right now (breaker open, bulkhead full)."""

    code, status, default_message = "PROVIDER_UNAVAILABLE", 503, "The AI provider is temporarily unavailable"
    counts_for_breaker = False
