"""Client auth (X-API-Key or Bearer) and admin auth (X-Admin-Key), compared in constant time."""
from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Callable, TypeVar

from flask import current_app, g, request

from backend.errors import Forbidden, RateLimited, Unauthorized
from backend.resilience.store import StoreUnavailable

F = TypeVar("F", bound=Callable)


def _presented_client_key() -> str:
    """The key the caller sent, from X-API-Key or an Authorization Bearer header."""
    key = request.headers.get("X-API-Key", "")
    if not key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = token.strip()
    return key


def identify_client() -> str | None:
    """Return the caller's client name, or None when the key is missing or wrong (checked once per request:
    the rate limiter and the view both ask)."""
    if "client_identity" not in g:
        g.client_identity = _match_client_key()
    return g.client_identity


def _match_client_key() -> str | None:
    keys: dict[str, str] = current_app.extensions["backend"].settings.client_keys
    presented = _presented_client_key()
    if not presented:
        return None
    digest = hashlib.sha256(presented.encode()).hexdigest()
    match = None
    # Compare against every key, always, so timing does not reveal which prefix matched.
    for known_digest, name in keys.items():
        if hmac.compare_digest(digest, known_digest):
            match = name
    return match


def _refuse_failed_authentication(error: Unauthorized) -> None:
    """Count the failure for the caller's address; past the limit per minute the answer is 429, not 401, so
    guessing keys is not free. Valid keys are never refused: this runs only for wrong ones."""
    backend = current_app.extensions["backend"]
    try:
        failures = backend.shared.control.incr(f"authfail:{request.remote_addr}", ttl=60)
    except StoreUnavailable:
        raise error from None  # no shared counter reachable: still refuse the key, just without the limit
    if failures > backend.settings.auth_failure_limit_per_minute:
        raise RateLimited("Too many failed authentication attempts from this address", retry_after=60)
    raise error


def require_client_key(view: F) -> F:
    """Refuse the request with 401 unless it carries a valid client key (auth off when no keys are set)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_app.extensions["backend"].settings.client_keys:
            client = identify_client()
            if client is None:
                _refuse_failed_authentication(
                    Unauthorized("A valid API key is required (X-API-Key or Authorization: Bearer)"))
            g.client_name = client
        else:
            g.client_name = "anonymous"
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_admin_key(view: F) -> F:
    """Refuse with 403 when no admin key is configured, 401 when the caller's is missing or wrong."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        expected = current_app.extensions["backend"].settings.admin_key_digest
        if not expected:
            raise Forbidden("Admin endpoints are disabled: set ADMIN_API_KEY")
        presented = hashlib.sha256(request.headers.get("X-Admin-Key", "").encode()).hexdigest()
        if not hmac.compare_digest(presented, expected):
            _refuse_failed_authentication(Unauthorized("A valid admin key is required (X-Admin-Key)"))
        g.client_name = "admin"
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
