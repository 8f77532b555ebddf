"""Per-caller rate limits with flask-limiter: exact across workers and instances through Redis (moving window),
per process while Redis is down (flask-limiter's in-memory fallback, which probes Redis with backoff)."""
from __future__ import annotations

import math
import re
import time

from flask import Blueprint, Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend.errors import RateLimited
from backend.http.auth import identify_client
from backend.http.envelope import fail
from backend.observability import metrics
from backend.observability.access_log import route_template
from backend.settings import Settings

_USER_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,64}$")


def client_key() -> str:
    """The calling client: its API key's name, or its address when it has no valid key (or auth is off)."""
    client = identify_client() if current_app.extensions["backend"].settings.client_keys else None
    return client if client is not None else f"addr:{request.remote_addr}"


def caller_key() -> str:
    """The caller: the client, and X-User-ID within it."""
    user = request.headers.get("X-User-ID", "")
    return f"{client_key()}|{user if _USER_ID.match(user) else '-'}"


def ai_limit() -> str:
    """RATE_LIMIT_AI, read per request so each app instance uses its own settings."""
    return current_app.extensions["backend"].settings.rate_limit_ai


def ai_limit_per_key() -> str:
    """RATE_LIMIT_AI_PER_KEY: every user of one key together (X-User-ID is the caller's to choose)."""
    return current_app.extensions["backend"].settings.rate_limit_ai_per_key


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
    # One budget per caller shared by every AI endpoint, instead of RATE_LIMIT_DEFAULT per route, and one for
    # the whole key, so that inventing X-User-IDs does not multiply a leaked key's budget.
    limiter.shared_limit(ai_limit, scope="ai")(ai_blueprint)
    limiter.shared_limit(ai_limit_per_key, scope="ai-key", key_func=client_key)(ai_blueprint)
    for blueprint in exempt:
        limiter.exempt(blueprint)
    app.extensions["backend_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def _rate_limited(error: RateLimitExceeded) -> Response:
    """The 429 envelope, counted per route."""
    metrics.RATE_LIMITED.labels(route_template()).inc()
    current = current_app.extensions["backend_limiter"].current_limit
    retry_after = 1.0
    if current is not None:
        # reset_at is rounded up to whole seconds: never say more than the window itself.
        retry_after = max(1.0, min(math.ceil(current.reset_at - time.time()), current.limit.get_expiry()))
    return fail(RateLimited(f"Rate limit exceeded: {error.description}", retry_after=retry_after))

