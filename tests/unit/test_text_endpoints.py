"""The three Gemini endpoints through the real google-genai SDK against the fake Gemini server."""
from __future__ import annotations

import pytest

from tests.envelope import assert_error, assert_ok

CEFR = {"A1", "A2", "B1", "B2", "C1", "C2"}
ERROR_TYPES = {"grammar", "vocabulary", "spelling", "punctuation", "style"}


def test_analyze_returns_contract_shape_derived_from_the_text(client, auth, fake_gemini):
    text = "Yesterday i recieve a letter from my freind. He go to school every day"
    response = client.post("/api/analyze", json={"text": text, "level": "B1", "native_language": "es"}, headers=auth)
    data = assert_ok(response)
    assert set(data) == {"errors", "feedback", "strengths", "improvement_areas", "recommended_tasks",
                         "cefr_assessment", "partial"}
    assert data["partial"] is False
    corrections = {(e["text"], e["correction"]) for e in data["errors"]}
    assert ("recieve", "receive") in corrections
    for error in data["errors"]:
        assert error["type"] in ERROR_TYPES and error["correction"] != error["text"] and error["explanation"]
    assert data["cefr_assessment"]["level"] in CEFR
    assert 0 <= data["cefr_assessment"]["confidence"] <= 1
    assert all(set(task) == {"title", "description"} for task in data["recommended_tasks"])
    assert response.headers["X-Cache"] == "MISS"
    assert fake_gemini.calls == 1
    sent = fake_gemini.stats()["last_request"]
    assert sent["generationConfig"]["responseMimeType"] == "application/json"
    assert sent["generationConfig"]["responseJsonSchema"]["title"] == "WritingAnalysis"


def test_create_subtopics_honours_count(client, auth):
    data = assert_ok(client.post("/api/create_subtopics", json={"topic": "Travel", "count": 7}, headers=auth))
    assert data["topic"] == "Travel"
    assert len(data["subtopics"]) == 7
    assert len({s["title"] for s in data["subtopics"]}) == 7
    assert all(s["title"] and s["description"] for s in data["subtopics"])


def test_explanation_shape(client, auth):
    data = assert_ok(client.post("/api/explanation", json={"topic": "Past tenses", "subtopic": "Past simple",
                                                           "level": "A2"}, headers=auth))
    assert {"title", "explanation", "key_points", "examples"} <= set(data)
    assert data["key_points"] and data["examples"] and "Past simple" in data["title"]


@pytest.mark.parametrize("fault, status, code", [
    ("500", 502, "PROVIDER_ERROR"),
    ("503", 502, "PROVIDER_ERROR"),
    ("429", 503, "PROVIDER_UNAVAILABLE"),
    ("400", 502, "PROVIDER_ERROR"),
    ("reset", 502, "PROVIDER_ERROR"),
])
def test_provider_failures_map_to_contract_codes(make_app, auth, fake_gemini, fault, status, code):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()  # retries have tests of their own
    fake_gemini.configure(error=fault, retry_after=7)
    error = assert_error(client.post("/api/analyze", json={"text": "Hello there."}, headers=auth), status, code)
    assert "gemini" in error["message"].lower()


def test_provider_hang_becomes_timeout(make_app, auth, fake_gemini):
    client = make_app(GEMINI_TIMEOUT_SECONDS=1).test_client()
    fake_gemini.configure(error="hang")
    assert_error(client.post("/api/analyze", json={"text": "Hello there."}, headers=auth), 504, "PROVIDER_TIMEOUT")


def test_rate_limited_provider_passes_retry_after_on(make_app, auth, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.configure(error="429", retry_after=7)
    response = client.post("/api/create_subtopics", json={"topic": "Food"}, headers=auth)
    assert_error(response, 503, "PROVIDER_UNAVAILABLE")
    assert response.headers["Retry-After"] == "7"


def test_wrong_provider_key_is_an_auth_error_not_a_crash(make_app, auth):
    client = make_app(GEMINI_API_KEY="not-the-key").test_client()
    error = assert_error(client.post("/api/analyze", json={"text": "Hello."}, headers=auth), 502, "PROVIDER_ERROR")
    assert "credentials" in error["message"] and "GEMINI_API_KEY" not in error["message"]


@pytest.mark.parametrize("mode", ["blocked", "safety", "empty"])
def test_unusable_answers_are_provider_errors(client, auth, fake_gemini, mode):
    fake_gemini.configure(malformed=mode)
    assert_error(client.post("/api/analyze", json={"text": "Hello there."}, headers=auth), 502, "PROVIDER_ERROR")


@pytest.mark.parametrize("mode", ["markdown", "prose"])
def test_wrapped_json_is_recovered(client, auth, fake_gemini, mode):
    fake_gemini.configure(malformed=mode)
    data = assert_ok(client.post("/api/create_subtopics", json={"topic": "Music", "count": 4}, headers=auth))
    assert len(data["subtopics"]) == 4


def test_truncated_answer_is_marked_partial_or_refused(client, auth, fake_gemini):
    fake_gemini.configure(malformed="truncated")
    response = client.post("/api/explanation", json={"topic": "Verbs", "subtopic": "Modal verbs"}, headers=auth)
    if response.status_code == 200:
        assert response.get_json()["data"]["partial"] is True
    else:
        assert_error(response, 502, "PROVIDER_ERROR")


def test_not_configured_names_the_variables(make_app, auth):
    client = make_app(GEMINI_API_KEY="", AZURE_SPEECH_KEY="").test_client()
    error = assert_error(client.post("/api/analyze", json={"text": "Hi."}, headers=auth), 503,
                         "PROVIDER_NOT_CONFIGURED")
    assert "GEMINI_API_KEY" in error["message"]


def test_thinking_gets_its_own_budget_on_top_of_the_answer(make_app, auth, fake_gemini):
    client = make_app(GEMINI_MAX_OUTPUT_TOKENS=2000, GEMINI_THINKING_BUDGET=512).test_client()
    client.post("/api/create_subtopics", json={"topic": "Budget"}, headers=auth)
    config = fake_gemini.stats()["last_request"]["generationConfig"]
    # The SDK sends this field in snake case; the API's JSON parser takes either spelling.
    budget = config["thinkingConfig"].get("thinkingBudget", config["thinkingConfig"].get("thinking_budget"))
    assert budget == 512 and config["maxOutputTokens"] == 2512


def test_warm_up_prepares_the_gemini_client_without_calling_gemini(make_app, fake_gemini):
    backend = make_app().extensions["backend"]
    assert backend.providers["gemini"].client._client is None  # built lazily, after the fork
    backend.warm_up()
    assert backend.providers["gemini"].client._client is not None and fake_gemini.calls == 0
