"""Per-caller rate limits, exact across workers and instances through Redis (moving windows).

The caller is a valid client key's name with the X-User-ID it names; without a valid key (none, a wrong one, or
auth off) it is the address alone, IPv6 by /64: an unauthenticated X-User-ID is the caller's own invention, and
keying on it let a rotating header escape every limit and mint a Redis key per request.

The AI endpoints' two budgets (per caller, and per key) are taken together by one Lua script, one Redis round trip
per request (backend.resilience.rate_window), as is METRICS_RATE_LIMIT on GET /api/metrics; flask-limiter, with its
in-memory fallback, keeps RATE_LIMIT_DEFAULT (per route) and RATE_LIMIT_DEFAULT_PER_KEY (over them) on the other
routes, where a few round trips do not matter, and runs none of its hooks on the routes it exempts. Without
Redis, or while it is down, limits are per process.
"""
from __future__ import annotations

import functools
import math
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_limiter import Limit, Limiter, RateLimitExceeded
from limits import parse as parse_limit

from backend.errors import RateLimited
from backend.http.auth import identify_client, lock_key, refuse_locked
from backend.http.client_address import request_address
from backend.http.context import current_backend
from backend.http.envelope import fail
from backend.observability import metrics
from backend.observability.access_log import route_template
from backend.resilience.rate_window import MovingWindowLimiter, Quota, Verdict
from backend.resilience.redis_connect import connection_pool, fail_fast
from backend.resilience.spend import utc_day
from backend.resilience.spend_meter import requests_key
from backend.resilience.store import MemoryStore
from backend.schemas.caller import USER_ID, Caller
from backend.settings import Settings


def _key_name() -> str | None:
    """The valid client key's name, or None: no key, a wrong one, or auth off (every caller anonymous)."""
    return identify_client() if current_backend().settings.client_keys else None


def address_key() -> str:
    """The caller's address (IPv6 by its /64)."""
    return f"addr:{request_address()}"


def client_key() -> str:
    """The calling client: its API key's name, or its address when it has no valid key."""
    return _caller_and_client(_key_name(), None)[1]


def caller_key() -> str:
    """The caller: a valid key and the X-User-ID within it; without a valid key, the address alone."""
    return _caller_and_client(_key_name(), request.headers.get("X-User-ID"))[0]


def _caller_and_client(name: str | None, user: str | None) -> tuple[str, str]:
    """caller_key() and client_key() from the valid key's name (None: none) and the X-User-ID (None: none; not
    read without a valid key)."""
    if name is None:
        address = address_key()
        return address, address
    client = f"key:{name}"
    return f"{client}|{user if user and USER_ID.match(user) else '-'}", client


def default_limit() -> str:
    """RATE_LIMIT_DEFAULT."""
    return current_backend().settings.rate_limit_default


def default_limit_per_key() -> str:
    """RATE_LIMIT_DEFAULT_PER_KEY."""
    return current_backend().settings.rate_limit_default_per_key


def init_rate_limits(app: Flask, settings: Settings, *, ai_blueprint: Blueprint, exempt: list[Blueprint],
                     per_address: dict[str, str] | None = None, ai_endpoints: frozenset[str] = frozenset()) -> None:
    """A limiter for this app, on Redis (fail-fast) when configured, else on this process's memory; per_address
    maps endpoints (of exempt blueprints) to a limit per address of their own."""
    redis_url = settings.redis_url.get_secret_value()
    # limits' own redis+sentinel storage is not used: it reads the db into the service name, knows no TLS nor
    # sentinel password, and reads windows from replicas (stale counts); this pool, built like the store's, is
    # fail-fast and always on the primary, for every form of REDIS_URL.
    options: dict[str, Any] = {"connection_pool": connection_pool(redis_url, **fail_fast())} if redis_url else {}
    # flask-limiter would put Retry-After on every limited response, overriding a breaker's own Retry-After
    # on a 503; our 429 envelope sets Retry-After itself, so the limiter's copy goes under another name.
    app.config["RATELIMIT_HEADER_RETRY_AFTER"] = "X-RateLimit-Retry-After"
    # The per-key cap comes first (flask-limiter stops at the first refusal): a request it refuses writes no
    # per-user key, so invented X-User-IDs cannot mint more keys than the cap allows requests.
    per_key = Limit(default_limit_per_key, key_function=client_key, scope="all-routes", shared=True)
    limiter = Limiter(caller_key, default_limits=[per_key, default_limit], strategy="moving-window",
                      storage_uri="redis://" if redis_url else "memory://", storage_options=options,
                      key_prefix=f"{settings.redis_key_prefix}ratelimit", headers_enabled=True,
                      in_memory_fallback_enabled=True, swallow_errors=True)
    for blueprint in [*exempt, ai_blueprint]:
        limiter.exempt(blueprint)
    # AI calls outside the AI blueprint (a conversation's turn) are limited as AI calls only, like the AI endpoints.
    for endpoint in ai_endpoints:
        limiter.exempt(app.view_functions[endpoint])
    exempt_endpoints = _endpoints_of(app, {blueprint.name for blueprint in [*exempt, ai_blueprint]}) | ai_endpoints

    def limited() -> bool:
        # A request without an endpoint (404, 405) is one flask-limiter limits by nothing as well.
        endpoint = request.endpoint
        return endpoint is not None and endpoint not in exempt_endpoints

    with _hooks_only_for(app, limited):
        limiter.init_app(app)
    # Without Redis (or while it is down) each process counts for itself, as flask-limiter's fallback does: a
    # shared disk would cost a contended SQLite write transaction on every request.
    windows = MovingWindowLimiter(MemoryStore(), app.extensions["backend"].shared.redis)
    init_ai_limits(app, settings, windows, ai_blueprint.name, ai_endpoints)
    init_address_limits(app, windows, per_address or {})
    app.after_request(_window_limit_headers)
    app.extensions["backend_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def _endpoints_of(app: Flask, blueprints: set[str]) -> frozenset[str]:
    """The endpoints of these blueprints, and every static file endpoint (which flask-limiter never limits)."""
    return frozenset(endpoint for endpoint in app.view_functions
                     if endpoint.rpartition(".")[0] in blueprints or endpoint.rpartition(".")[2] == "static")


@contextmanager
def _hooks_only_for(app: Flask, applies: Callable[[], bool]) -> Iterator[None]:
    """The request hooks installed inside this block run only on requests for which applies() is true.

    flask-limiter has no switch for this: on a request it exempts (health, every AI endpoint) its hooks still
    identified the request, resolved the exemption of its endpoint and blueprint, built and reset a context and
    looked for headers to add: about a tenth of a cache hit's CPU, to limit nothing. A route added later is not
    in the exempt set, and keeps flask-limiter's own resolution."""
    hooks: tuple[dict[Any, list[Any]], ...] = (app.before_request_funcs, app.after_request_funcs,
                                               app.teardown_request_funcs)
    counts = [len(funcs.get(None, ())) for funcs in hooks]
    yield

    def on_exempt_skip(hook: Callable[..., Any], result: Callable[[Any], Any]) -> Callable[..., Any]:
        @functools.wraps(hook)
        def gated(*args: Any) -> Any:
            return hook(*args) if applies() else result(args)
        return gated

    # before_request returns None to go on, after_request the response it was given, teardown nothing.
    results = (lambda args: None, lambda args: args[0], lambda args: None)
    for funcs, count, result in zip(hooks, counts, results, strict=True):
        app_hooks = funcs.get(None, [])
        app_hooks[count:] = [on_exempt_skip(hook, result) for hook in app_hooks[count:]]


def init_ai_limits(app: Flask, settings: Settings, limiter: MovingWindowLimiter, blueprint: str,
                   endpoints: frozenset[str] = frozenset()) -> None:
    """One budget per caller shared by every AI endpoint, and one for the whole key, so that inventing
    X-User-IDs does not multiply a leaked key's budget."""
    per_caller, per_key = parse_limit(settings.rate_limit_ai), parse_limit(settings.rate_limit_ai_per_key)
    caller_quota, key_quota = (per_caller.amount, per_caller.get_expiry()), (per_key.amount, per_key.get_expiry())

    @app.before_request
    def _check_ai_limits() -> None:
        # What a cache hit pays before its answer: each request, header and app-context lookup is made once.
        endpoint = request.endpoint
        if endpoint is None or (endpoint.rpartition(".")[0] != blueprint and endpoint not in endpoints):
            return
        keys_set = bool(current_backend().settings.client_keys)
        name = identify_client() if keys_set else None
        user = request.headers.get("X-User-ID")
        caller, client = _caller_and_client(name, user)
        # The address's auth lock is read in the same round trip (a gate), not by a GET of its own on the hit path.
        gates = (lock_key(),) if keys_set else ()
        _enforce(limiter, [Quota(f"ai:{caller}", *caller_quota), Quota(f"ai-key:{client}", *key_quota)], gates,
                 _requests_counter(name if keys_set else "anonymous", user))


def init_address_limits(app: Flask, limiter: MovingWindowLimiter, limits: dict[str, str]) -> None:
    """A limit per address on each of the given endpoints, whoever asks (they need no key)."""
    parsed = {endpoint: parse_limit(limit) for endpoint, limit in limits.items()}

    @app.before_request
    def _check_address_limits() -> None:
        limit = parsed.get(request.endpoint or "")
        if limit is not None:
            _enforce(limiter, [Quota(f"{request.endpoint}:{address_key()}", limit.amount, limit.get_expiry())])


def _requests_counter(name: str | None, user: str | None) -> tuple[str, ...]:
    """Where this AI request is counted among its caller's requests today (GET /api/me/usage), in the rate limits'
    round trip; nowhere for a request without a valid key (refused with 401 anyway) or with an invalid X-User-ID.
    name: the valid key's name, None without one, "anonymous" with auth off; user: the X-User-ID, if any."""
    if name is None or (user is not None and not USER_ID.match(user)):
        return ()
    return (requests_key(_utc_day(int(time.time() // 86400)), str(Caller(name, user or ""))),)


@functools.lru_cache(maxsize=2)
def _utc_day(day: int) -> str:
    """The UTC date of the day-th day since the epoch, formatted once a day rather than per request."""
    return utc_day(day * 86400)


def _enforce(limiter: MovingWindowLimiter, quotas: list[Quota], gates: tuple[str, ...] = (),
             counters: tuple[str, ...] = ()) -> None:
    """Take the request's slots, or refuse it with a 429 saying when to retry."""
    verdict = limiter.hit(quotas, gates, counters)
    if verdict.gate is not None:
        refuse_locked(verdict.gate)
    g.auth_lock_checked = bool(gates) and verdict.gates_checked
    g.rate_limit = verdict
    if not verdict.allowed:
        metrics.RATE_LIMITED.labels(route_template()).inc()
        raise RateLimited(f"Rate limit exceeded: {verdict.limit} per {verdict.window:g} seconds",
                          retry_after=verdict.retry_after)


def _window_limit_headers(response: Response) -> Response:
    """X-RateLimit-* for the limits taken by the moving-window limiter (flask-limiter sets its own)."""
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

