"""The re-ask of an unusable answer, and unusable or partial answers through the service, with the fake Gemini
server: when it asks again and with what, no caching of unusable answers, brief caching of partial ones."""
from __future__ import annotations

import json
import time
from functools import partial

import pytest

from backend.llm.ask import ask_json
from backend.llm.parse import ANALYSIS, EXPLANATION, UnusableAnswer
from backend.providers.gemini import GeminiClient
from backend.schemas.requests import AnalyzeRequest
from backend.services import prompts
from tests.conftest import FAKE_PROVIDER_KEY
from tests.envelope import assert_error, assert_ok
from tests.unit.llm_answers import ANALYSED, EXPLAINED, LEARNER


def _ask_analysis(fake_gemini, *, reask: bool):
    """Ask for an analysis of LEARNER as the analysis service does: its prompt, its re-ask prompt."""
    client = GeminiClient(api_key=FAKE_PROVIDER_KEY, model="gemini-test", base_url=fake_gemini.base_url,
                          timeout_seconds=5)
    inputs = AnalyzeRequest(**LEARNER).model_dump()
    prompt = prompts.input_prompt("Analyse this learner text.", inputs)
    try:
        return ask_json(client, ANALYSIS, system=prompts.ANALYSIS_SYSTEM, prompt=prompt, timeout=10, context=inputs,
                        reask=partial(prompts.reask_prompt, prompt) if reask else None)
    finally:
        client.close()


def test_without_reask_an_unusable_answer_fails_at_once(fake_gemini):
    fake_gemini.script([{"text": "I can't help with that."}, {"text": json.dumps(ANALYSED)}])
    with pytest.raises(UnusableAnswer):
        _ask_analysis(fake_gemini, reask=False)
    assert fake_gemini.calls == 1


def test_the_reask_states_the_problem_but_not_the_answer(fake_gemini):
    fake_gemini.script([{"text": "I can't help with REFUSAL-TEXT-77."}, {"text": json.dumps(ANALYSED)}])
    parsed = _ask_analysis(fake_gemini, reask=True)
    assert parsed.value.model_dump() == ANALYSED and not parsed.partial and fake_gemini.calls == 2
    prompt = fake_gemini.stats()["last_request"]["contents"][-1]["parts"][0]["text"]
    assert "could not be used: the answer contains no JSON object" in prompt
    assert "REFUSAL-TEXT-77" not in prompt and json.dumps(LEARNER["text"]) in prompt


def test_a_partial_answer_is_not_asked_again(fake_gemini):
    fake_gemini.script([{"text": "```json\n" + json.dumps(ANALYSED) + "\n```"}])
    assert _ask_analysis(fake_gemini, reask=True).partial and fake_gemini.calls == 1


def test_an_answer_without_a_level_is_not_asked_again(fake_gemini):
    fake_gemini.script([{"text": json.dumps({**ANALYSED, "cefr_assessment": {"level": "intermediate"}})}])
    parsed = _ask_analysis(fake_gemini, reask=True)
    assert parsed.partial and parsed.value.cefr_assessment is None and fake_gemini.calls == 1


def test_no_reask_without_time_left_for_it(fake_gemini):
    client = GeminiClient(api_key=FAKE_PROVIDER_KEY, model="m", base_url=fake_gemini.base_url, timeout_seconds=5)
    fake_gemini.script([{"text": "No."}, {"text": json.dumps(EXPLAINED)}])
    with pytest.raises(UnusableAnswer):
        ask_json(client, EXPLANATION, system="s", prompt="p", timeout=0.9, reask=lambda reason: "again")
    assert fake_gemini.calls == 1
    client.close()


def test_unusable_answers_are_not_cached_and_do_not_open_the_breaker(make_app, auth, admin, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=1, CIRCUIT_BREAKER_FAILURE_THRESHOLD=1,
                      CIRCUIT_BREAKER_MINIMUM_CALLS=1).test_client()
    fake_gemini.script([{"text": "No."}] * 4)
    for _ in range(2):
        assert_error(client.post("/api/explanation", json={"topic": "Verbs", "subtopic": "Modals"}, headers=auth),
                     502, "PROVIDER_ERROR")
    assert fake_gemini.calls == 4  # each request asked (and re-asked) anew: nothing was cached
    state = assert_ok(client.get("/api/circuit-breaker/state", headers=admin))
    assert state["breakers"]["gemini"]["state"] == "closed"


def test_partial_answers_are_cached_briefly(make_app, auth, fake_gemini):
    client = make_app(CACHE_PARTIAL_TTL_SECONDS=1).test_client()
    body = {"topic": "Verbs", "subtopic": "Modals"}
    fake_gemini.script([{"text": json.dumps(EXPLAINED) + ",", "finish_reason": "STOP"},
                        {"text": json.dumps(EXPLAINED)}])
    assert assert_ok(client.post("/api/explanation", json=body, headers=auth))["partial"] is True
    assert client.post("/api/explanation", json=body, headers=auth).headers["X-Cache"] == "HIT"
    time.sleep(1.2)
    again = client.post("/api/explanation", json=body, headers=auth)
    assert assert_ok(again)["partial"] is False and again.headers["X-Cache"] == "MISS"
    assert fake_gemini.calls == 2


def test_reask_can_be_switched_off(make_app, auth, fake_gemini):
    client = make_app(LLM_REASK=False, RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script([{"text": "I cannot help with that."}, {"text": '{"topic": "x", "subtopics": []}'}])
    response = client.post("/api/create_subtopics", json={"topic": "Music"}, headers=auth)
    assert response.status_code == 502 and fake_gemini.calls == 1


def test_a_huge_integer_is_not_a_500(make_app, auth, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=1, LLM_REASK=False).test_client()
    huge = "9" * 400
    fake_gemini.script([{"text": '{"topic": "x", "subtopics": [{"title": %s, "description": "d"}, '
                                 '{"title": "Real one", "description": "d"}]}' % huge}])
    response = client.post("/api/create_subtopics", json={"topic": "Numbers", "count": 3}, headers=auth)
    assert response.status_code in (200, 502), response.get_json()
    if response.status_code == 200:
        assert response.get_json()["data"]["partial"] is True
