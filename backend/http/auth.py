"""Client auth (X-API-Key or Bearer) and admin auth (X-Admin-Key), compared in constant time, and the lockout of
an address that keeps presenting wrong keys."""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import time
from typing import Callable, TypeVar

from flask import g, request

from backend.errors import Forbidden, RateLimited, Unauthorized
from backend.http.caller import current_caller
from backend.http.client_address import request_address
from backend.http.context import current_backend
from backend.observability import metrics
from backend.observability.access_log import route_template
from backend.resilience import spend
from backend.resilience.store import StoreUnavailable

F = TypeVar("F", bound=Callable)
logger = logging.getLogger(__name__)

# AUTH_FAILURE_LIMIT_PER_MINUTE counts failures over this window (from an address's first failure), and the failure
# that reaches the limit locks the address for as long again.
WINDOW_SECONDS = 60
LOCKED = "Too many failed authentication attempts from this address"


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
    keys: dict[str, str] = current_backend().settings.client_keys
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


def lock_key() -> str:
    """Where the lock of the caller's address (IPv6 by /64) is kept in the control store."""
    return f"authlock:{request_address()}"


def refuse_locked(until: str) -> None:
    """Refuse a request from a locked address (its lock's value says until when)."""
    metrics.RATE_LIMITED.labels(route_template()).inc()
    raise RateLimited(LOCKED, retry_after=_seconds_until(until))


def _refuse_if_locked() -> None:
    """Refuse every attempt from a locked address, the right key included: refusing only wrong keys let guessing
    go on at full speed (a 429 says "wrong" as well as a 401 does) and served the right guess."""
    if g.get("auth_lock_checked"):
        return  # the AI rate-limit script already looked, in the same Redis round trip
    control = current_backend().shared.control
    try:
        until = control.get(lock_key())
    except StoreUnavailable:
        return  # nowhere to read the lock: the key is still checked, only without it
    if until is not None:
        refuse_locked(until)


def _seconds_until(until: str) -> float:
    """Whole seconds left of a lock (1 to the window; instances' clocks may differ a little)."""
    try:
        left = math.ceil(float(until) - time.time())
    except ValueError:
        left = WINDOW_SECONDS
    return float(min(max(left, 1), WINDOW_SECONDS))


def _refuse_failed_authentication(error: Unauthorized) -> None:
    """Count the failure for the caller's address (IPv6 by /64); the one that reaches the limit locks the address
    for the window. A success does not reset the count: a client key must not buy more admin-key guesses."""
    backend = current_backend()
    control, limit, bucket = backend.shared.control, backend.settings.auth_failure_limit_per_minute, request_address()
    try:
        failures = control.incr(f"authfail:{bucket}", ttl=WINDOW_SECONDS)
        if failures >= limit and control.add(lock_key(), str(time.time() + WINDOW_SECONDS),
                                             ttl=WINDOW_SECONDS):
            logger.warning("authentication locked for %ss after %s failures from %s", WINDOW_SECONDS, failures,
                           bucket)
    except StoreUnavailable:
        raise error from None  # no shared counter reachable: still refuse the key, just without the limit
    if failures > limit:
        # Checked concurrently with the request that set the lock, before it existed.
        metrics.RATE_LIMITED.labels(route_template()).inc()
        raise RateLimited(LOCKED, retry_after=WINDOW_SECONDS)
    raise error


def require_client_key(view: F) -> F:
    """Refuse the request with 401 unless it carries a valid client key (auth off when no keys are set)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_backend().settings.client_keys:
            _refuse_if_locked()
            client = identify_client()
            if client is None:
                _refuse_failed_authentication(
                    Unauthorized("A valid API key is required (X-API-Key or Authorization: Bearer)"))
            g.client_name = client
        else:
            g.client_name = "anonymous"
        # Whatever the view's calls cost is charged to this caller, and admitted against its daily budgets.
        token = spend.enter(current_backend().budgets.account(current_caller()))
        try:
            return view(*args, **kwargs)
        finally:
            spend.leave(token)

    return wrapper  # type: ignore[return-value]


def require_admin_key(view: F) -> F:
    """Refuse with 403 when no admin key is configured, 401 when the caller's is missing or wrong."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        expected = current_backend().settings.admin_key_digest
        if not expected:
            raise Forbidden("Admin endpoints are disabled: set ADMIN_API_KEY")
        _refuse_if_locked()
        presented = hashlib.sha256(request.headers.get("X-Admin-Key", "").encode()).hexdigest()
        if not hmac.compare_digest(presented, expected):
            _refuse_failed_authentication(Unauthorized("A valid admin key is required (X-Admin-Key)"))
        g.client_name = "admin"
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
