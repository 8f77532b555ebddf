"""Partial, not failed (contract section 11): a usable answer keeps its usable parts through the whole endpoint."""
from __future__ import annotations

import json
import time

import pytest

from backend.llm.recover import numbered
from backend.schemas.responses import AnalysisResult
from tests.envelope import assert_error, assert_ok

LEARNER = {"text": "Yesterday i recieve a letter. He go to school every day", "level": "B1"}
ERRORS = [{"type": "spelling", "text": "recieve", "correction": "received", "explanation": "ei after c."},
          {"type": "grammar", "text": "He go", "correction": "He goes", "explanation": "Third person -s."}]
ANALYSED = {"errors": ERRORS, "feedback": "Clear and short.", "strengths": ["Simple sentences"],
            "improvement_areas": ["Verb forms"], "recommended_tasks": [{"title": "Diary", "description": "Write."}],
            "cefr_assessment": {"level": "A2", "confidence": 0.7, "rationale": "Basic errors."}}
TOPIC = {"topic": "Verbs", "subtopic": "Modal verbs"}
EXPLAINED = {"title": "Modal verbs",
             "explanation": {"intro": "Modals add meaning.", "form": "They take the base form."},
             "key_points": ["No -s"], "examples": ["She can swim."]}


def _without_level(cefr):
    """The clean analysis with its assessment replaced (or removed, for the sentinel "missing")."""
    answer = {key: value for key, value in ANALYSED.items() if key != "cefr_assessment"}
    return answer if cefr == "missing" else {**answer, "cefr_assessment": cefr}


@pytest.mark.parametrize("cefr", ["missing", None, {"level": None}, {"level": "intermediate", "confidence": 0.9},
                                  {"level": "B3"}, {"level": "A2/B1"}, {"level": "Pre-A1"}, "Elementary", 5])
def test_an_analysis_without_a_readable_level_keeps_the_corrections(make_app, auth, fake_gemini, cefr):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script([{"text": json.dumps(_without_level(cefr))}])
    response = client.post("/api/analyze", json=LEARNER, headers=auth)
    data = assert_ok(response)
    assert data == {**ANALYSED, "cefr_assessment": None, "partial": True}  # the learner's errors, all kept
    assert response.headers["X-Cache"] == "MISS"
    assert fake_gemini.calls == 1  # partial is not unusable: no re-ask
    AnalysisResult.model_validate(data)  # and it is what the OpenAPI document promises


def test_an_explanation_sent_as_an_object_of_strings_is_joined(make_app, auth, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script([{"text": json.dumps(EXPLAINED)}])
    response = client.post("/api/explanation", json=TOPIC, headers=auth)
    data = assert_ok(response)
    assert data == {**EXPLAINED, "explanation": "Modals add meaning.\n\nThey take the base form.", "partial": True}
    assert response.headers["X-Cache"] == "MISS" and fake_gemini.calls == 1


def test_subtopics_sent_as_an_object_of_title_to_description_are_a_list(make_app, auth, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script([{"text": json.dumps({"subtopics": {"Can": "Ability.", "Must": "Obligation.", "Should": ""}})}])
    data = assert_ok(client.post("/api/create_subtopics", json={"topic": "Modals", "count": 3}, headers=auth))
    assert data == {"topic": "Modals", "partial": True, "subtopics": [
        {"title": "Can", "description": "Ability."}, {"title": "Must", "description": "Obligation."},
        {"title": "Should", "description": ""}]}
    assert fake_gemini.calls == 1


@pytest.mark.parametrize("endpoint, body, unusable", [
    ("/api/analyze", LEARNER, {"errors": [], "feedback": "", "strengths": ["Nice"], "cefr_assessment": {"level": "?"}}),
    ("/api/analyze", LEARNER, {}),
    ("/api/explanation", TOPIC, {**EXPLAINED, "explanation": {"intro": "", "details": None}}),
    ("/api/create_subtopics", {"topic": "Modals"}, {"subtopics": {}}),
])
def test_an_answer_with_nothing_usable_is_asked_again_once_then_502(make_app, auth, fake_gemini, endpoint, body,
                                                                    unusable):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script([{"text": json.dumps(unusable)}] * 2)
    error = assert_error(client.post(endpoint, json=body, headers=auth), 502, "PROVIDER_ERROR")
    assert "could not be used" in error["message"] and "also after asking again" in error["message"]
    assert fake_gemini.calls == 2 and fake_gemini.stats()["script_pending"] == 0


def test_an_unusable_first_answer_is_replaced_by_the_reask(make_app, auth, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script([{"text": json.dumps({"strengths": ["Nice"]})}, {"text": json.dumps(ANALYSED)}])
    assert assert_ok(client.post("/api/analyze", json=LEARNER, headers=auth)) == {**ANALYSED, "partial": False}
    assert fake_gemini.calls == 2
    prompt = fake_gemini.stats()["last_request"]["contents"][-1]["parts"][0]["text"]
    assert "no CEFR level" in prompt and "no feedback" in prompt


def test_an_analysis_without_a_level_is_cached_only_for_the_partial_ttl(make_app, auth, fake_gemini):
    # The policy stores partial answers with CACHE_PARTIAL_TTL_SECONDS: a null level is soon asked for anew.
    client = make_app(CACHE_PARTIAL_TTL_SECONDS=1, CACHE_TTL_SECONDS=3600).test_client()
    fake_gemini.script([{"text": json.dumps(_without_level("missing"))}, {"text": json.dumps(ANALYSED)}])
    first = client.post("/api/analyze", json=LEARNER, headers=auth)
    assert assert_ok(first)["cefr_assessment"] is None and first.headers["X-Cache"] == "MISS"
    second = client.post("/api/analyze", json=LEARNER, headers=auth)
    assert second.headers["X-Cache"] == "HIT" and assert_ok(second) == assert_ok(first)
    assert fake_gemini.calls == 1
    time.sleep(1.2)
    third = client.post("/api/analyze", json=LEARNER, headers=auth)
    assert third.headers["X-Cache"] == "MISS" and assert_ok(third) == {**ANALYSED, "partial": False}
    assert fake_gemini.calls == 2
    # a complete answer keeps the full TTL
    assert client.post("/api/analyze", json=LEARNER, headers=auth).headers["X-Cache"] == "HIT"
    assert fake_gemini.calls == 2


def test_the_openapi_document_says_the_level_may_be_null(client):
    document = client.get("/openapi.json").get_json()
    result = document["components"]["schemas"]["AnalysisResult"]
    cefr = result["properties"]["cefr_assessment"]
    assert "cefr_assessment" in result["required"]  # always present, null when no level could be read
    assert {"type": "null"} in cefr["anyOf"] and {"$ref": "#/components/schemas/CefrAssessment"} in cefr["anyOf"]
    assert "never invented" in cefr["description"]
    described = document["paths"]["/api/analyze"]["post"]["description"]
    assert "cefr_assessment: null" in described and "untrusted" in described
    assert "joined" in document["paths"]["/api/explanation"]["post"]["description"]
    # what the model is asked for still requires a level
    asked = document["components"]["schemas"].get("WritingAnalysis")
    assert asked is None or "cefr_assessment" in asked["required"]


@pytest.mark.parametrize("keys, order", [
    (["1", "2", "3"], [0, 1, 2]), (["2", "1"], [1, 0]), (["item1", "item2"], [0, 1]), (["Error 1", "error_2"], [0, 1]),
    (["Task #0", "Task #1"], [0, 1]), (["1.", "2."], [0, 1]),
    (["Covid19"], None), (["item1", "item3"], None), (["item1", "step2"], None), (["Meetings", "1"], None),
])
def test_only_keys_that_number_items_make_a_list_in_the_order_of_their_numbers(keys, order):
    assert numbered({key: index for index, key in enumerate(keys)}) == order


@pytest.mark.parametrize("answer, expected", [
    ([ANALYSED], {**ANALYSED, "partial": True}),  # a one-item list where one object is expected
    ({**ANALYSED, "cefr_assessment": [ANALYSED["cefr_assessment"]]}, {**ANALYSED, "partial": True}),
    ({**ANALYSED, "errors": {"2": ERRORS[1], "1": ERRORS[0]}}, {**ANALYSED, "partial": True}),
    ({**ANALYSED, "cefr_assessment": [ANALYSED["cefr_assessment"]] * 2}, {**ANALYSED, "cefr_assessment": None,
                                                                          "partial": True}),
])
def test_one_item_lists_and_numbered_objects_are_what_was_asked_for(make_app, auth, fake_gemini, answer, expected):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script([{"text": json.dumps(answer)}])
    assert assert_ok(client.post("/api/analyze", json=LEARNER, headers=auth)) == expected
    assert fake_gemini.calls == 1


def test_an_explanation_sent_as_a_bare_list_of_paragraphs_keeps_the_requested_title(make_app, auth, fake_gemini):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script([{"text": json.dumps(["Modals add meaning.", "They take the base form."])}])
    data = assert_ok(client.post("/api/explanation", json=TOPIC, headers=auth))
    assert data == {"title": "Modal verbs", "explanation": "Modals add meaning.\n\nThey take the base form.",
                    "key_points": [], "examples": [], "partial": True}
    assert fake_gemini.calls == 1
