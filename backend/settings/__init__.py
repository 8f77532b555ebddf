"""Typed settings read from the environment (and `.env`), validated once at start."""
from __future__ import annotations

import hashlib
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Mapping

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.resilience.redis_connect import parse_redis_url
from backend.schemas.hosts import parse_allowed_hosts
from backend.settings.budgets import BudgetSettings
from backend.settings.database import DatabaseSettings
from backend.settings.jobs import JobSettings
from backend.settings.providers import AzureSpeechSettings, FallbackSettings, GeminiSettings


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message names the variable."""


CacheMode = Literal["memory", "disk", "redis", "redis_only", "auto"]
KUBERNETES_SECRETS = Path("/var/run/secrets/kubernetes.io")


class Settings(GeminiSettings, FallbackSettings, AzureSpeechSettings, DatabaseSettings, JobSettings, BudgetSettings,
               BaseSettings):
    """Every variable of the contract, with its default and its bounds; each provider's own in its group
    (backend/settings/providers.py)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False,
                                      validate_default=True, frozen=True)

    app_env: Literal["development", "testing", "production"] = "development"
    port: int = Field(8000, ge=1, le=65535)
    web_concurrency: int = Field(2, ge=1, le=64)
    web_threads: int = Field(32, ge=1, le=512)

    api_keys: SecretStr = SecretStr("")
    admin_api_key: SecretStr = SecretStr("")

    redis_url: SecretStr = SecretStr("")
    cache_mode: CacheMode = "auto"
    cache_dir: Path = Path("./var/cache")
    cache_ttl_seconds: int = Field(86400, ge=1)
    # Per-namespace TTLs, e.g. "transcribe=604800,analyze=3600".
    cache_namespace_ttls: str = ""
    cache_memory_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    cache_disk_max_bytes: int = Field(1024 * 1024 * 1024, ge=1024 * 1024)
    # One value larger than this (a long synthesised clip) is not cached, in any tier.
    cache_max_value_bytes: int = Field(2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # How long past its TTL an entry may still answer when the provider fails (stale-if-error).
    cache_stale_grace_seconds: int = Field(3600, ge=0)
    # Answers that had to be repaired or completed are kept only briefly.
    cache_partial_ttl_seconds: int = Field(300, ge=1)
    redis_key_prefix: str = Field("backend-ai:", max_length=100)

    # Ask the model once more, stating the problem, when its answer holds nothing usable.
    llm_reask: bool = True
    # Longer model answers are not handed to json-repair, whose cost grows faster than linearly.
    llm_max_repair_chars: int = Field(20_000, ge=1_000, le=1_000_000)

    circuit_breaker_failure_threshold: int = Field(5, ge=1)
    circuit_breaker_timeout: float = Field(10.0, gt=0)
    circuit_breaker_recovery_timeout: float = Field(60.0, gt=0)
    circuit_breaker_half_open_calls: int = Field(1, ge=1)
    circuit_breaker_window_seconds: int = Field(60, ge=1, le=3600)
    circuit_breaker_minimum_calls: int = Field(10, ge=1)
    circuit_breaker_failure_rate: float = Field(0.5, gt=0, le=1)

    retry_max_attempts: int = Field(3, ge=1, le=10)
    retry_after_cap_seconds: float = Field(10.0, ge=0)
    # Whole-request budget for upstream work (retries included); stays below gunicorn's worker timeout.
    request_deadline_seconds: float = Field(45.0, gt=0, le=300)
    # Slow clients (backend/serving/worker.py): a request's line and headers must arrive within this many seconds,
    # and a body may pause no longer; the whole body must arrive within BODY_TIMEOUT_SECONDS. Else: closed.
    header_timeout_seconds: float = Field(10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    # On SIGTERM a web worker answers 503 on /health/ready for this long while still serving (load balancers stop
    # sending), then stops accepting and lets in-flight requests and streams finish (backend/serving/worker.py).
    shutdown_drain_seconds: float = Field(5.0, ge=0, le=120)

    rate_limit_default: str = "600/minute"
    rate_limit_ai: str = "60/minute"
    rate_limit_ai_per_key: str = "1200/minute"
    # All users of one key together (an address, without a valid key) on the other routes, summed over them.
    rate_limit_default_per_key: str = "6000/minute"
    # GET /api/metrics per address (IPv6 by /64): unauthenticated, so bounded; /metrics and /health* stay exempt.
    metrics_rate_limit: str = "60/minute"

    max_audio_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_audio_seconds: float = Field(60.0, gt=0, le=3600)
    audio_url_allowed_hosts: str = ""
    audio_url_allow_http: bool = False
    # Allow allow-listed hosts that resolve to private or loopback addresses (an internal media server).
    audio_url_allow_private: bool = False
    # audio_url downloads in flight per worker process; beyond it, an immediate 503. Unset: a quarter of
    # WEB_THREADS (8 of 32), so slow media hosts cannot take the threads health checks and other calls need.
    audio_url_max_concurrency: int | None = Field(None, ge=1, le=1024)
    # A download falling below this average rate (after a 5 s grace from the request) is cut with a 422; 0 = off.
    audio_url_min_bytes_per_second: int = Field(32768, ge=0)

    # Origins allowed to call the API from a browser (comma-separated); empty = CORS off.
    cors_allowed_origins: str = ""
    # Reverse proxies in front of the service whose X-Forwarded-* headers are trusted (0 = none).
    trusted_proxies: int = Field(0, ge=0, le=5)
    # Failed client or admin authentications per address (IPv6 by /64) per minute; the one reaching it locks the
    # address for a minute: 429 to every request needing a key, right keys included (backend/http/auth.py).
    auth_failure_limit_per_minute: int = Field(20, ge=1)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("gemini_max_concurrency", "audio_url_max_concurrency", "fallback_llm_max_concurrency",
                     mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limit_default", "rate_limit_ai", "rate_limit_ai_per_key", "rate_limit_default_per_key",
                     "metrics_rate_limit")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        try:
            parse_rate_limit(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '60/minute': {value!r}") from exc
        return value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: SecretStr) -> SecretStr:
        """A plain Redis URL or a Sentinel one (the forms: backend/resilience/redis_connect.py); the error never
        quotes the URL, which may hold a password."""
        if value.get_secret_value():
            parse_redis_url(value.get_secret_value())
        return value

    @field_validator("api_keys")
    @classmethod
    def _valid_api_keys(cls, value: SecretStr) -> SecretStr:
        for entry in _split(value.get_secret_value()):
            name, _, key = entry.rpartition(":")
            if not key or (":" in entry and not name):
                raise ValueError("entries must be 'key' or 'name:key', comma-separated")
        return value

    @model_validator(mode="after")
    def _redis_modes_need_redis(self) -> "Settings":
        if self.cache_mode in ("redis", "redis_only") and not self.redis_url.get_secret_value():
            raise ValueError(f"CACHE_MODE={self.cache_mode} requires REDIS_URL")
        return self

    @model_validator(mode="after")
    def _safe_in_production(self) -> "Settings":
        if self.app_env == "production":
            if not self.client_keys:
                raise ValueError("APP_ENV=production requires API_KEYS (client keys)")
            if not self.admin_api_key.get_secret_value():
                raise ValueError("APP_ENV=production requires ADMIN_API_KEY")
        return self

    @cached_property
    def client_keys(self) -> dict[str, str]:
        """Map each client key's sha256 digest to the client's name (the raw keys are not kept here)."""
        keys: dict[str, str] = {}
        for index, entry in enumerate(_split(self.api_keys.get_secret_value())):
            name, _, key = entry.rpartition(":")
            digest = hashlib.sha256(key.encode()).hexdigest()
            keys[digest] = name or f"key{index + 1}"
        return keys

    @field_validator("cache_namespace_ttls")
    @classmethod
    def _valid_namespace_ttls(cls, value: str) -> str:
        for entry in _split(value):
            name, _, seconds = entry.partition("=")
            if not name.strip() or not seconds.strip().isdigit() or int(seconds) < 1:
                raise ValueError("entries must be 'namespace=seconds', comma-separated")
        return value

    @field_validator("audio_url_allowed_hosts")
    @classmethod
    def _valid_audio_hosts(cls, value: str) -> str:
        parse_allowed_hosts(_split(value))  # "host", "host:port" or "[ipv6]:port"; raises naming the bad entry
        return value

    @cached_property
    def namespace_ttls(self) -> dict[str, float]:
        """TTL overrides per cache namespace."""
        return {name.strip(): float(seconds) for name, _, seconds in
                (entry.partition("=") for entry in _split(self.cache_namespace_ttls))}

    @cached_property
    def cors_origins(self) -> list[str]:
        """Origins allowed by CORS."""
        return _split(self.cors_allowed_origins)

    @cached_property
    def admin_key_digest(self) -> str:
        """The admin key's sha256 digest, or "" when admin endpoints are disabled."""
        key = self.admin_api_key.get_secret_value()
        return hashlib.sha256(key.encode()).hexdigest() if key else ""

    @cached_property
    def allowed_audio_hosts(self) -> frozenset[str]:
        """Hosts `audio_url` may name, lower-cased."""
        return frozenset(h.lower() for h in _split(self.audio_url_allowed_hosts))

    @property
    def effective_cache_mode(self) -> str:
        """Resolve `auto`: Redis-only in Kubernetes, Redis with a disk tier elsewhere, disk without Redis."""
        if self.cache_mode != "auto":
            return self.cache_mode
        if not self.redis_url.get_secret_value():
            return "disk"
        in_kubernetes = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) or KUBERNETES_SECRETS.exists()
        return "redis_only" if in_kubernetes else "redis"

    @property
    def longest_request_seconds(self) -> float:
        """The longest a request may wait upstream: the deadline plus what the longest allowed input adds to it
        (providers' ``input_seconds``: the Speech SDK paces audio after its first 5 s at up to real time; a
        5,000-character text gets 20-41 s, as its JSON escaping may double it). A test keeps the two in step."""
        return self.request_deadline_seconds + max(self.max_audio_seconds - 5.0, 45.0)

    @property
    def gemini_bulkhead(self) -> int:
        """GEMINI_MAX_CONCURRENCY, or three quarters of the worker's threads."""
        return self.gemini_max_concurrency or max(1, self.web_threads * 3 // 4)

    @property
    def audio_url_concurrency(self) -> int:
        """AUDIO_URL_MAX_CONCURRENCY, or a quarter of the worker's threads."""
        return self.audio_url_max_concurrency or max(1, self.web_threads // 4)

    @property
    def stream_concurrency(self) -> int:
        """STREAM_MAX_CONCURRENCY, or a quarter of the worker's threads."""
        return self.stream_max_concurrency or max(1, self.web_threads // 4)

    @property
    def fallback_bulkhead(self) -> int:
        """FALLBACK_LLM_MAX_CONCURRENCY, or three quarters of the worker's threads (as Gemini's)."""
        return self.fallback_llm_max_concurrency or max(1, self.web_threads * 3 // 4)


def _split(raw: str) -> list[str]:
    """Split a comma-separated variable, dropping blanks."""
    return [part.strip() for part in raw.split(",") if part.strip()]


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build Settings from the environment (plus overrides), or raise ConfigError naming the variable."""
    values = {key.lower(): value for key, value in (overrides or {}).items()}
    kwargs: dict[str, Any] = {"_env_file": None} if overrides is not None else {}
    try:
        return Settings(**kwargs, **values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Render a settings error as one line naming each variable."""
    parts = []
    for error in exc.errors():
        variable = ".".join(str(p) for p in error.get("loc", ())).upper()
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        parts.append(f"{variable}: {message}" if variable else message)
    return "Invalid configuration: " + "; ".join(parts)
