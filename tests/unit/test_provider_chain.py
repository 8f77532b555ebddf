"""Answers that degrade instead of failing: Gemini, then the fallback model, then (analysis) the local answer."""
from __future__ import annotations

import time

import pytest

from tests.envelope import assert_error, assert_ok

TEXT = "Yesterday I recieve a letter from my freind becuase he is living in London now."


def analyze(client, auth, text=TEXT):
    return client.post("/api/analyze", json={"text": text}, headers=auth)


@pytest.fixture
def gemini_down(make_app, fake_gemini):
    """An app whose Gemini answers 503 to everything (retries off, threshold 2, so the breaker opens fast)."""
    fake_gemini.configure(error="503")
    return make_app(RETRY_MAX_ATTEMPTS=1, CIRCUIT_BREAKER_FAILURE_THRESHOLD=2)


def test_gemini_answers_first_and_says_so(client, auth):
    response = analyze(client, auth)
    data = assert_ok(response)
    assert response.headers["X-Provider"] == "gemini" and response.get_json()["meta"]["provider"] == "gemini"
    assert "degraded" not in data


def test_without_any_model_the_analysis_is_local_and_marked_degraded(gemini_down, auth, admin, fake_gemini):
    client = gemini_down.test_client()
    for _ in range(3):  # the breaker opens after two failures; the third does not even call Gemini
        response = analyze(client, auth)
        data = assert_ok(response)
        assert response.headers["X-Provider"] == "local" and data["degraded"] is True
    assert {"text": "recieve", "correction": "receive"}.items() <= data["errors"][0].items()
    assert data["cefr_assessment"] is None or data["cefr_assessment"]["confidence"] <= 0.4
    assert fake_gemini.calls == 2
    state = assert_ok(client.get("/api/circuit-breaker/state", headers=admin))["breakers"]["gemini"]
    assert state["state"] == "open"


def test_content_has_no_local_answer_and_keeps_its_errors(gemini_down, auth, fake_gemini):
    client = gemini_down.test_client()
    statuses = [client.post("/api/create_subtopics", json={"topic": "Past tense"}, headers=auth) for _ in range(3)]
    assert [r.status_code for r in statuses] == [502, 502, 503]  # Gemini's 5xx twice, then its breaker open
    assert_error(statuses[-1], 503, "PROVIDER_UNAVAILABLE")
    assert fake_gemini.calls == 2


def test_a_text_without_a_local_dictionary_keeps_the_error(gemini_down, auth):
    client = gemini_down.test_client()
    statuses = [analyze(client, auth, "これは日本語の文章です。私は毎日学校に行きます。") for _ in range(3)]
    assert [r.status_code for r in statuses] == [502, 502, 503]
    assert all(r.headers.get("X-Provider") is None for r in statuses)


def test_a_callers_bad_request_never_falls_back(make_app, auth, fake_gemini):
    fake_gemini.configure(error="400")
    response = analyze(make_app().test_client(), auth)
    assert response.status_code == 502 and fake_gemini.calls == 1


@pytest.fixture
def with_fallback(make_app, fake_openai):
    """Gemini first, the OpenAI-compatible fake as the stand-in."""
    def build(**overrides):
        return make_app(FALLBACK_LLM_BASE_URL=fake_openai.base_url, FALLBACK_LLM_API_KEY="fake-provider-key",
                        FALLBACK_LLM_MODEL="fallback-test", RETRY_MAX_ATTEMPTS=1, CIRCUIT_BREAKER_FAILURE_THRESHOLD=2,
                        **overrides)
    return build


def test_gemini_failing_the_fallback_answers_and_gemini_breaker_opens(with_fallback, auth, admin, fake_gemini,
                                                                      fake_openai):
    fake_gemini.configure(error="503")
    client = with_fallback().test_client()
    for i in range(3):
        response = analyze(client, auth, f"{TEXT} ({i})")
        data = assert_ok(response)
        assert response.headers["X-Provider"] == "fallback" and response.get_json()["meta"]["provider"] == "fallback"
        assert "degraded" not in data and data["errors"]
    assert fake_gemini.calls == 2 and fake_openai.calls == 3  # Gemini not called once its breaker opened
    breakers = assert_ok(client.get("/api/circuit-breaker/state", headers=admin))["breakers"]
    assert breakers["gemini"]["state"] == "open" and breakers["fallback"]["state"] == "closed"
    health = client.get("/api/health").get_json()["data"]["components"]["providers"]
    assert health["fallback"] == {"configured": True, "breaker": "closed"}
    subtopics = client.post("/api/create_subtopics", json={"topic": "Travel"}, headers=auth)
    assert assert_ok(subtopics)["subtopics"] and subtopics.headers["X-Provider"] == "fallback"


def test_both_models_failing_the_analysis_is_local_and_content_503(with_fallback, auth, fake_gemini, fake_openai):
    fake_gemini.configure(error="503")
    fake_openai.configure(error="503")
    client = with_fallback().test_client()
    response = analyze(client, auth)
    assert assert_ok(response)["degraded"] is True and response.headers["X-Provider"] == "local"
    statuses = [client.post("/api/create_subtopics", json={"topic": "Travel"}, headers=auth).status_code
                for _ in range(3)]
    assert statuses[-1] == 503  # both breakers open by now
    assert fake_openai.calls >= 2


def test_healed_gemini_answers_again_after_the_recovery_timeout(with_fallback, auth, fake_gemini, fake_openai):
    fake_gemini.configure(error="503")
    client = with_fallback(CIRCUIT_BREAKER_RECOVERY_TIMEOUT=1, CACHE_PARTIAL_TTL_SECONDS=1).test_client()
    for _ in range(2):
        assert analyze(client, auth).headers["X-Provider"] == "fallback"
    fake_gemini.configure(error=None)
    assert analyze(client, auth).headers["X-Cache"] == "HIT"  # the stand-in's answer, kept briefly
    time.sleep(1.2)
    response = analyze(client, auth)
    assert response.headers["X-Provider"] == "gemini" and response.headers["X-Cache"] == "MISS"
    assert analyze(client, auth).headers["X-Provider"] == "gemini"  # and Gemini's answer is the one cached now


def test_a_stand_ins_answer_is_cached_briefly(with_fallback, auth, fake_gemini, fake_openai):
    fake_gemini.configure(error="503")
    client = with_fallback(CACHE_PARTIAL_TTL_SECONDS=1).test_client()
    first = analyze(client, auth)
    assert first.headers["X-Provider"] == "fallback" and first.headers["X-Cache"] == "MISS"
    assert analyze(client, auth).headers["X-Cache"] == "HIT" and fake_openai.calls == 1
    time.sleep(1.2)
    assert analyze(client, auth).headers["X-Cache"] == "MISS" and fake_openai.calls == 2


def test_the_summary_says_which_provider_answered(gemini_down, auth):
    client = gemini_down.test_client()
    before = assert_ok(client.get("/api/metrics")).get("answers_by_provider", {}).get("local", 0)
    assert analyze(client, auth).headers["X-Provider"] == "local"
    assert assert_ok(client.get("/api/metrics"))["answers_by_provider"]["local"] == before + 1
