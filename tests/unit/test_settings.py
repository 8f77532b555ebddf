"""Settings: defaults of the contract, validation naming the variable, production refusing unsafe config."""
from __future__ import annotations

import subprocess
import sys

import pytest

from backend import create_app
from backend.settings import ConfigError, load_settings


def test_contract_defaults(monkeypatch):
    for name in ("PORT", "WEB_CONCURRENCY", "WEB_THREADS", "CACHE_MODE", "REDIS_URL", "APP_ENV"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings({})
    assert (s.app_env, s.port, s.web_concurrency, s.web_threads) == ("development", 8000, 2, 32)
    assert (s.cache_mode, s.cache_ttl_seconds, s.gemini_model, s.gemini_timeout_seconds) == (
        "auto", 86400, "gemini-2.5-flash", 20.0)
    assert (s.azure_speech_timeout_seconds, s.azure_speech_max_concurrency) == (30.0, 16)
    assert (s.circuit_breaker_failure_threshold, s.circuit_breaker_timeout, s.circuit_breaker_recovery_timeout,
            s.circuit_breaker_half_open_calls, s.retry_max_attempts) == (5, 10.0, 60.0, 1, 3)
    assert (s.rate_limit_default, s.rate_limit_ai) == ("600/minute", "60/minute")
    assert (s.max_audio_bytes, s.max_audio_seconds) == (10485760, 60)
    assert (s.log_level, s.log_format) == ("INFO", "json")
    assert s.effective_cache_mode == "disk"
    assert s.gemini_bulkhead == 24


def test_the_gemini_bulkhead_follows_the_threads_unless_set():
    assert load_settings({"WEB_THREADS": 64}).gemini_bulkhead == 48
    assert load_settings({"WEB_THREADS": 1}).gemini_bulkhead == 1
    assert load_settings({"WEB_THREADS": 64, "GEMINI_MAX_CONCURRENCY": 64}).gemini_bulkhead == 64
    assert load_settings({"GEMINI_MAX_CONCURRENCY": ""}).gemini_bulkhead == 24  # an empty line in .env: unset


@pytest.mark.parametrize("name, value", [
    ("PORT", "eighty"), ("PORT", "70000"), ("CACHE_MODE", "cloud"), ("LOG_FORMAT", "xml"),
    ("RATE_LIMIT_AI", "lots"), ("REDIS_URL", "http://x"), ("GEMINI_TIMEOUT_SECONDS", "0"),
    ("API_KEYS", ":nokey"), ("APP_ENV", "staging"), ("WEB_THREADS", "0"),
])
def test_invalid_values_name_the_variable(name, value):
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    assert name in str(caught.value)


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("WEB_THREADS", "8")
    monkeypatch.setenv("CACHE_MODE", "memory")
    s = load_settings({})
    assert s.web_threads == 8 and s.cache_mode == "memory"


def test_named_client_keys_are_kept_hashed():
    s = load_settings({"API_KEYS": "mobile:abc123, web:def456, plainkey"})
    assert sorted(s.client_keys.values()) == ["key3", "mobile", "web"]
    assert "abc123" not in repr(s.client_keys) and "abc123" not in repr(s)


@pytest.mark.parametrize("missing", ["API_KEYS", "ADMIN_API_KEY"])
def test_production_refuses_unsafe_config(missing):
    config = {"APP_ENV": "production", "API_KEYS": "k1", "ADMIN_API_KEY": "admin"}
    config[missing] = ""
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    assert missing in str(caught.value)


def test_auto_mode_detects_kubernetes(monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert load_settings({"REDIS_URL": "redis://127.0.0.1:6379/0"}).effective_cache_mode == "redis_only"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert load_settings({"REDIS_URL": "redis://127.0.0.1:6379/0"}).effective_cache_mode in ("redis", "redis_only")


def test_gunicorn_refuses_to_start_with_a_one_line_reason(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "APP_ENV": "production", "API_KEYS": "", "ADMIN_API_KEY": "x", "PORT": "8000"}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--check-config",
                             "wsgi:app"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Invalid configuration: APP_ENV=production requires API_KEYS (client keys)"]


@pytest.mark.parametrize("max_audio_seconds", [10, 60, 600])
def test_the_longest_request_covers_the_longest_input(max_audio_seconds):
    """Trial permits and graceful shutdown wait for this long: it must cover what the providers allow an input."""
    from backend.providers.azure_speech import AzureSpeechClient
    from backend.providers.gemini import GeminiClient
    from backend.services import prompts

    settings = load_settings({"MAX_AUDIO_SECONDS": max_audio_seconds})
    azure = AzureSpeechClient(key="k", region="r", host=None, timeout_seconds=30, max_concurrency=1)
    gemini = GeminiClient(api_key="k", model="m", base_url=None, timeout_seconds=20)
    try:
        worst_text = '\\"' * 2500  # 5,000 characters that JSON escaping doubles
        longest_prompt = prompts.input_prompt("Analyse this learner text.", {"text": worst_text, "level": "C2",
                                                                            "native_language": "x" * 50})
        allowances = [azure.input_seconds(max_audio_seconds), gemini.input_seconds(longest_prompt)]
        assert settings.longest_request_seconds >= settings.request_deadline_seconds + max(allowances)
    finally:
        azure.close()
        gemini.close()


def test_env_example_documents_every_variable():
    """`.env.example` lists every setting (the contract: it documents all)."""
    from pathlib import Path

    from backend.settings import Settings

    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    listed = {line.split("=", 1)[0].strip().lstrip("# ").upper() for line in example.splitlines() if "=" in line}
    missing = sorted(name.upper() for name in Settings.model_fields if name.upper() not in listed)
    assert missing == []


def test_env_example_is_a_valid_configuration():
    from pathlib import Path

    from backend.settings import Settings

    settings = Settings(_env_file=str(Path(__file__).resolve().parents[2] / ".env.example"))
    assert settings.stream_concurrency == settings.web_threads // 4 and settings.gemini_max_concurrency is None
