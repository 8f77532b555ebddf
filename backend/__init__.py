"""Backend-AI: the AI backend of a language-learning app."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask

from backend.settings import Settings, load_settings

logger = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from the environment plus ``config`` overrides (tests). Built for an
    operator's `flask --app wsgi COMMAND`, an invalid setting ends the command with one line naming it (status 2),
    and the logs are for people (backend/cli.py)."""
    from backend.cli import one_line_config_errors, running_a_command

    with one_line_config_errors():
        settings = load_settings(config)
        app = Flask(__name__, template_folder="../templates", static_folder="../templates/static")
        configure_logging(settings)
        configure_flask(app, settings)
        register_extensions(app, settings)
        register_blueprints(app)
        register_errorhandlers(app)
        register_commands(app)
    if not running_a_command():  # a command says what concerns it (`check`: all of these)
        warn_about_open_config(settings)
    return app


def configure_logging(settings: Settings) -> None:
    """JSON logs with request ids, as configured; text at WARNING for an operator's command (backend/cli.py)."""
    from backend.cli import log_style
    from backend.observability.logging import configure_logging as install

    install(*log_style(settings))


def configure_flask(app: Flask, settings: Settings) -> None:
    """Flask's own limits: the largest body is one audio file plus form overhead."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_audio_bytes + 64 * 1024
    # Above the multipart parser's read chunk (64 KiB), which it counts against this limit too.
    app.config["MAX_FORM_MEMORY_SIZE"] = 1024 * 1024
    app.config["MAX_FORM_PARTS"] = 32
    # No redirect is ever built from the request's Host header: Werkzeug's slash merging and strict slashes
    # answered `GET /api//health` with `Host: evil.example` by a redirect to http://evil.example/api/health.
    # Set before any route is added (rules take the map's setting when bound).
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    # Flask's default JSON provider has both; its base class does not say so.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    app.testing = settings.app_env == "testing"


def register_extensions(app: Flask, settings: Settings) -> None:
    """Providers, policies and services, plus request-scoped hooks."""
    from backend.composition import build_backend
    from backend.http.context import EXTENSION
    from backend.http.hygiene import init_http_hygiene
    from backend.monitoring.live_gauges import live_registry
    from backend.observability.access_log import init_access_log
    from backend.observability.request_id import init_request_id
    from backend.observability.summary import MetricsSummary

    backend = build_backend(settings)
    app.extensions[EXTENSION] = backend
    app.extensions["backend_live_registry"] = live_registry(backend)
    app.extensions["backend_summary"] = MetricsSummary()
    init_request_id(app)
    init_access_log(app)
    init_http_hygiene(app, settings)


def register_blueprints(app: Flask) -> None:
    """Mount the API and health blueprints."""
    from backend.api import bp as api_bp
    from backend.breaker_admin import bp as breaker_admin_bp
    from backend.budget_admin import bp as budget_admin_bp
    from backend.cache_admin import bp as cache_admin_bp
    from backend.conversations import bp as conversations_bp
    from backend.dashboard import bp as dashboard_bp
    from backend.health import bp as health_bp
    from backend.lessons import bp as lessons_bp
    from backend.me import bp as me_bp
    from backend.monitoring import bp as monitoring_bp
    from backend.openapi import bp as openapi_bp
    from backend.speech import bp as speech_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(monitoring_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(cache_admin_bp)
    app.register_blueprint(breaker_admin_bp)
    app.register_blueprint(budget_admin_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(conversations_bp)
    app.register_blueprint(me_bp)
    app.register_blueprint(speech_bp)
    app.register_blueprint(lessons_bp)
    register_rate_limits(app, api_bp, exempt=[health_bp, monitoring_bp, openapi_bp],
                         ai_endpoints=frozenset({"conversations.post_message", "speech.synthesize", "speech.voices",
                                                 "lessons.create"}))


def register_rate_limits(app: Flask, ai_blueprint, exempt: list, ai_endpoints: frozenset[str]) -> None:
    """Per-caller limits: RATE_LIMIT_AI on the AI endpoints, RATE_LIMIT_DEFAULT elsewhere; health, the Prometheus
    scrape and the OpenAPI document exempt; GET /api/metrics, which needs no key, METRICS_RATE_LIMIT per address;
    a conversation's turn, which calls a model, counted as an AI call too."""
    from backend.http.context import backend_of
    from backend.http.rate_limits import init_rate_limits

    settings = backend_of(app).settings
    init_rate_limits(app, settings, ai_blueprint=ai_blueprint, exempt=exempt,
                     per_address={"monitoring.summary": settings.metrics_rate_limit}, ai_endpoints=ai_endpoints)


def register_errorhandlers(app: Flask) -> None:
    """Every error becomes the contract's envelope."""
    from backend.http.handlers import register_error_handlers

    register_error_handlers(app)


def register_commands(app: Flask) -> None:
    """`flask --app wsgi check` and friends."""
    from backend.cli import register

    register(app)


def warn_about_open_config(settings: Settings) -> None:
    """Say loudly at start what is open or disabled."""
    if not settings.client_keys:
        logger.warning("API_KEYS is empty: client authentication is OFF (allowed outside production only)")
    if not settings.admin_api_key.get_secret_value():
        logger.info("ADMIN_API_KEY is empty: admin endpoints answer 403")
    if not settings.gemini_configured:
        logger.warning("Gemini is not configured (GEMINI_API_KEY): text endpoints answer PROVIDER_NOT_CONFIGURED")
    if not settings.azure_configured:
        logger.warning("Azure Speech is not configured (AZURE_SPEECH_KEY with AZURE_SPEECH_REGION or "
                       "AZURE_SPEECH_HOST): speech endpoints answer PROVIDER_NOT_CONFIGURED")
