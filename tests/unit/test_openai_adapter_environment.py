"""The OpenAI-compatible fallback adapter, process and environment: the SDK client built lazily once per process,
keyless servers, OPENAI_* environment variables unable to redirect calls, and the FALLBACK_LLM_* settings."""
# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
from __future__ import annotations

import openai
import pytest

from backend.errors import ProviderNotConfigured
from backend.settings import ConfigError, load_settings
from tests.fakes.openai_compat import FakeOpenAI
from tests.unit.openai_adapter_helpers import KEY, MODEL, TASKS, ask, fake, make  # noqa: F401

# --- process and environment ------------------------------------------------------------------------------------

def test_the_sdk_client_is_built_lazily_once_per_process(fake):
    llm = make(fake)
    assert llm._client is None  # nothing at construction (it may happen before the fork)
    llm.warm_up([t[0] for t in TASKS])
    sdk = llm._client
    assert sdk is not None and fake.calls == 0
    ask(llm)
    assert llm._client is sdk and sdk.max_retries == 0
    llm._pid = -1  # as seen from a forked child: its own client
    ask(llm)
    assert llm._client is not sdk
    llm.close()
    assert llm._client is None


def test_a_client_that_cannot_be_built_is_not_configured(fake, monkeypatch):
    def broken(**_):
        raise openai.OpenAIError("ssl setup failed")
    monkeypatch.setattr(openai, "OpenAI", broken)
    with pytest.raises(ProviderNotConfigured) as info:
        ask(make(fake))
    assert not info.value.counts_for_breaker and fake.calls == 0


def test_keyless_servers_get_a_dummy_key(fake):
    fake.configure(key=None)
    assert ask(make(fake, api_key="")).text


def test_openai_environment_variables_change_nothing(fake, monkeypatch):
    dead = FakeOpenAI().start()
    elsewhere = dead.base_url
    dead.stop()
    monkeypatch.setenv("OPENAI_BASE_URL", elsewhere)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "Authorization: Bearer sk-injected\nX-Injected: yes")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-injected")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-injected")
    # What the SDK does on its own with this environment: our key replaced, headers added, calls redirected.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert fake.stats()["last_headers"]["x-injected"] == "yes"
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(max_retries=0).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    fake.reset()
    assert ask(make(fake)).text and fake.calls == 1  # our key, our URL
    headers = fake.stats()["last_headers"]
    assert not {"x-injected", "openai-organization", "openai-project"} & set(headers)
    assert headers["x-stainless-retry-count"] == "0"


# --- settings ---------------------------------------------------------------------------------------------------

def test_fallback_settings(monkeypatch):
    for name in ("FALLBACK_LLM_BASE_URL", "FALLBACK_LLM_MODEL", "FALLBACK_LLM_JSON_MODE", "WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings({})
    assert not s.fallback_configured and s.fallback_llm_model == "gpt-4o-mini"
    assert (s.fallback_llm_timeout_seconds, s.fallback_llm_json_mode, s.fallback_bulkhead) == (20.0, "auto", 24)
    assert (s.price_fallback_input_per_mtok, s.price_fallback_output_per_mtok) == (0.15, 0.60)
    s = load_settings({"FALLBACK_LLM_BASE_URL": "http://ollama:11434/v1/", "FALLBACK_LLM_MAX_CONCURRENCY": "",
                       "FALLBACK_LLM_MODEL": "llama3.1:8b", "FALLBACK_LLM_API_KEY": "sk-secret"})
    assert s.fallback_configured and s.fallback_llm_base_url == "http://ollama:11434/v1" and s.fallback_bulkhead == 24
    assert "sk-secret" not in repr(s)
    assert load_settings({"FALLBACK_LLM_MAX_CONCURRENCY": "3"}).fallback_bulkhead == 3
    for name, value in [("FALLBACK_LLM_BASE_URL", "ollama:11434/v1"), ("FALLBACK_LLM_BASE_URL", "ws://x/v1"),
                        ("FALLBACK_LLM_BASE_URL", "https://"), ("FALLBACK_LLM_JSON_MODE", "xml"),
                        ("FALLBACK_LLM_TIMEOUT_SECONDS", "0"), ("FALLBACK_LLM_MODEL", "bad model")]:
        with pytest.raises(ConfigError, match=name):
            load_settings({name: value})
