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


# Set unless the response has its own (lower-cased name, name, value), in this order; built once, not per response.
_ALWAYS = tuple((name.lower(), name, value) for name, value in (
    ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin")))


def _security_headers(response: Response) -> Response:
    """nosniff, no framing, no referrer, a strict CSP, and no caching of API answers by intermediaries."""
    headers = response.headers
    # One pass over the response's headers: Headers.setdefault scanned them up to three times per header and
    # raised (and caught) a KeyError for each one missing, which is every one of them on most responses.
    present = {name.lower() for name, _ in headers}
    for lowered, name, value in _ALWAYS:
        if lowered not in present:
            headers.add(name, value)
    if "content-security-policy" not in present:
        headers.add("Content-Security-Policy", PAGE_CSP if response.mimetype == "text/html" else API_CSP)
    if "cache-control" not in present and request.path.startswith("/api/"):
        headers.add("Cache-Control", "no-store")
    if "strict-transport-security" not in present and request.is_secure:
        headers.add("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
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
