"""Per-caller rate limits, exact across workers and instances through Redis (moving windows).

The AI endpoints' two budgets (per caller, and per key) are taken together by one Lua script, one Redis round trip
per request (backend.resilience.rate_window); flask-limiter, with its in-memory fallback, keeps RATE_LIMIT_DEFAULT
on the other routes, where three round trips do not matter. Without Redis, or while it is down, limits are per
process.
"""
from __future__ import annotations

import math
import re
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse as parse_limit
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend.errors import RateLimited
from backend.http.auth import identify_client
from backend.http.envelope import fail
from backend.observability import metrics
from backend.observability.access_log import route_template
from backend.resilience.rate_window import MovingWindowLimiter, Quota, Verdict
from backend.resilience.store import MemoryStore
from backend.settings import Settings

_USER_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,64}$")


def client_key() -> str:
    """The calling client: its API key's name, or its address when it has no valid key (or auth is off)."""
    client = identify_client() if current_app.extensions["backend"].settings.client_keys else None
    return client if client is not None else f"addr:{request.remote_addr}"


def caller_key(client: str | None = None) -> str:
    """The caller: the client, and X-User-ID within it."""
    user = request.headers.get("X-User-ID", "")
    return f"{client or client_key()}|{user if _USER_ID.match(user) else '-'}"


def default_limit() -> str:
    """RATE_LIMIT_DEFAULT."""
    return current_app.extensions["backend"].settings.rate_limit_default


def init_rate_limits(app: Flask, settings: Settings, *, ai_blueprint: Blueprint, exempt: list[Blueprint]) -> None:
    """A limiter for this app, on Redis (fail-fast) when configured, else on this process's memory."""
    redis_url = settings.redis_url.get_secret_value()
    options = {"socket_connect_timeout": 0.25, "socket_timeout": 0.25, "retry": Retry(NoBackoff(), 0),
               "health_check_interval": 0} if redis_url else {}
    # flask-limiter would put Retry-After on every limited response, overriding a breaker's own Retry-After
    # on a 503; our 429 envelope sets Retry-After itself, so the limiter's copy goes under another name.
    app.config["RATELIMIT_HEADER_RETRY_AFTER"] = "X-RateLimit-Retry-After"
    limiter = Limiter(caller_key, app=app, default_limits=[default_limit], strategy="moving-window",
                      storage_uri=redis_url or "memory://", storage_options=options,
                      key_prefix=f"{settings.redis_key_prefix}ratelimit", headers_enabled=True,
                      in_memory_fallback_enabled=True, swallow_errors=True)
    for blueprint in [*exempt, ai_blueprint]:
        limiter.exempt(blueprint)
    init_ai_limits(app, settings, ai_blueprint.name)
    app.extensions["backend_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def init_ai_limits(app: Flask, settings: Settings, blueprint: str) -> None:
    """One budget per caller shared by every AI endpoint, and one for the whole key, so that inventing
    X-User-IDs does not multiply a leaked key's budget."""
    # Without Redis (or while it is down) each process counts for itself, as flask-limiter's fallback does: a
    # shared disk would cost a contended SQLite write transaction on every AI request.
    limiter = MovingWindowLimiter(MemoryStore(), app.extensions["backend"].shared.redis)
    per_caller, per_key = parse_limit(settings.rate_limit_ai), parse_limit(settings.rate_limit_ai_per_key)

    @app.before_request
    def _check_ai_limits() -> None:
        if request.blueprint != blueprint:
            return
        client = client_key()
        verdict = limiter.hit([
            Quota(f"ai:{caller_key(client)}", per_caller.amount, per_caller.get_expiry()),
            Quota(f"ai-key:{client}", per_key.amount, per_key.get_expiry()),
        ])
        g.rate_limit = verdict
        if not verdict.allowed:
            metrics.RATE_LIMITED.labels(route_template()).inc()
            raise RateLimited(f"Rate limit exceeded: {verdict.limit} per {verdict.window:g} seconds",
                              retry_after=verdict.retry_after)

    @app.after_request
    def _ai_limit_headers(response: Response) -> Response:
        verdict: Verdict | None = g.get("rate_limit")
        if verdict is not None:
            response.headers["X-RateLimit-Limit"] = str(verdict.limit)
            response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
            response.headers["X-RateLimit-Reset"] = str(math.ceil(verdict.reset_at))
        return response


def _rate_limited(error: RateLimitExceeded) -> Response:
    """The 429 envelope, counted per route."""
    metrics.RATE_LIMITED.labels(route_template()).inc()
    current = current_app.extensions["backend_limiter"].current_limit
    retry_after = 1.0
    if current is not None:
        # reset_at is rounded up to whole seconds: never say more than the window itself.
        retry_after = max(1.0, min(math.ceil(current.reset_at - time.time()), current.limit.get_expiry()))
    return fail(RateLimited(f"Rate limit exceeded: {error.description}", retry_after=retry_after))

