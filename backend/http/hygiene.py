"""HTTP hygiene: security headers on every response, CORS only for listed origins, ProxyFix when configured."""
from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from backend.settings import Settings

# The dashboard loads its script and style from this service only; the JSON API needs nothing at all.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def _security_headers(response: Response) -> Response:
    """nosniff, no framing, no referrer, a strict CSP, and no caching of API answers by intermediaries."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", PAGE_CSP if response.mimetype == "text/html" else API_CSP)
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def init_http_hygiene(app: Flask, settings: Settings) -> None:
    """Install the headers, CORS (off unless CORS_ALLOWED_ORIGINS lists origins) and ProxyFix (TRUSTED_PROXIES)."""
    app.after_request(_security_headers)
    origins = settings.cors_origins
    if origins:
        CORS(app, resources={r"/api/*": {"origins": origins}}, allow_headers=[
            "Content-Type", "X-API-Key", "Authorization", "X-Request-ID", "X-User-ID"],
            expose_headers=["X-Request-ID", "X-Cache", "Retry-After", "X-RateLimit-Limit",
                            "X-RateLimit-Remaining", "X-RateLimit-Reset"], max_age=600)
    if settings.trusted_proxies:
        # Trust exactly this many proxies in front of us for the client address, scheme and host.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
