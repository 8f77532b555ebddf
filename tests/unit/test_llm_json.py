"""Parsing model output: each repair step, the domain checks, the guards, the metrics, and the re-ask."""
from __future__ import annotations

import json
import logging
import time
from functools import partial

import pytest
from prometheus_client import REGISTRY

from backend.llm.analysis import level_of
from backend.llm.ask import ask_json
from backend.llm.extract import Unusable, extract_json, requote_single, scan_json
from backend.llm.parse import ANALYSIS, EXPLANATION, SUBTOPICS, UnusableAnswer, parse_model_output
from backend.llm.recover import MISSING, Notes, text
from backend.providers.gemini import GeminiClient
from backend.schemas.requests import AnalyzeRequest
from backend.services import prompts
from tests.conftest import FAKE_PROVIDER_KEY
from tests.corpus import load_results
from tests.envelope import assert_error, assert_ok

CAP = 20_000
EXPLAINED = {"title": "Modal verbs", "explanation": "Modals add meaning.", "key_points": ["No -s"],
             "examples": ["She can swim."]}
LEARNER = {"text": "He go to school every day"}
ANALYSED = {"errors": [{"type": "grammar", "text": "He go", "correction": "He goes", "explanation": "Add -s."}],
            "feedback": "Clear.", "strengths": [], "improvement_areas": [], "recommended_tasks": [],
            "cefr_assessment": {"level": "A2", "confidence": 0.6, "rationale": "Simple sentences."}}


def extract(text: str):
    return extract_json(text, max_repair_chars=CAP)


@pytest.mark.parametrize("text, kinds", [
    ('{"a": 1}', []),
    ('```json\n{"a": 1}\n```', ["markdown_fence"]),
    ('Here it is: {"a": 1} Enjoy!', ["prose"]),
    ('{"a": 1,}', ["json_repair"]),
    ('```json\n{"a": 1, // one\n}\n```', ["markdown_fence", "json_repair"]),
    ('"{\\"a\\": 1}"', ["double_encoded"]),
    ("{'a': 1}", ["single_quotes", "json_repair"]),
])
def test_each_syntactic_repair_is_named(text, kinds):
    found = extract(text)
    assert found.value == {"a": 1} and found.kinds == kinds


@pytest.mark.parametrize("text", ["I'm sorry, I can't help with that.", "", "null", '"just words"', "42",
                                  "I can't explain {this} now.", "Sorry, [see above]."])  # brackets in prose
def test_text_without_a_json_object_is_unusable(text):
    with pytest.raises(Unusable):
        extract(text)


def test_a_cut_off_number_is_dropped_not_passed_on_shortened():
    # "0.75" arriving as "0.7" would otherwise be read as a complete, wrong value
    assert extract('{"level": "B1", "confidence": 0.7').value == {"level": "B1"}
    assert scan_json('{"a": "x", "b": "unfinished').cut == len('{"a": "x"')
    assert scan_json('{"a": ["x", "y"]').cut is None  # ends on a complete value: nothing to cut


def test_apostrophes_do_not_end_single_quoted_strings():
    text, changed = requote_single("{'a': 'It's the students' work', 'b': ['x']}")
    assert changed and json.loads(text) == {"a": "It's the students' work", "b": ["x"]}


def test_oversized_input_is_refused_before_repair_and_fast():
    pathological = '{"a": [' + ",".join(['{"x": "abc, def'] * 70_000)  # json-repair is quadratic on this
    started = time.perf_counter()
    with pytest.raises(Unusable, match="too large"):
        extract(pathological)
    assert time.perf_counter() - started < 0.5
    big_but_valid = json.dumps({"a": "x" * (CAP * 2)})
    assert extract(big_but_valid).kinds == []  # the cap guards repair only, never strict parsing


def test_deep_nesting_is_refused():
    with pytest.raises(Unusable, match="nests deeper"):
        extract("[" * 5000)


@pytest.mark.parametrize("raw, level", [
    ("B2", "B2"), ("b2", "B2"), (" b2\n", "B2"), ("B2+", "B2"), ("B2-", "B2"), ("B2.1", "B2"), ("Level B2", "B2"),
    ("Upper-Intermediate (B2)", "B2"), ("B1 (Threshold)", "B1"), (["C1"], "C1"), ("Vantage", "B2"),
    ("Waystage", "A2"), ("effective operational proficiency", "C1"), ("Mastery", "C2"),
    # not one level: two codes, off the scale, course-book names publishers map differently, other types
    ("B1/B2", MISSING), ("A2-B1", MISSING), ("B3", MISSING), ("C3", MISSING), ("Pre-A1", MISSING),
    ("pre a1", MISSING), ("Elementary", MISSING), ("Intermediate", MISSING), ("upper intermediate", MISSING),
    ("Advanced", MISSING), ("Proficiency", MISSING), ("beginner", MISSING), ("", MISSING), (3, MISSING),
    (True, MISSING), ({"code": "B2"}, MISSING), (["B1", "B2"], MISSING), (None, MISSING)])
def test_cefr_levels_are_read_only_when_unambiguous(raw, level):
    assert level_of(raw, Notes()) == level


@pytest.mark.parametrize("confidence, expected, fields", [
    (0.6, 0.6, []), ("0.6", 0.6, ["cefr_assessment.confidence"]), ("60%", 0.6, ["cefr_assessment.confidence"]),
    (60, 0.0, ["cefr_assessment.confidence"]), (-0.2, 0.0, ["cefr_assessment.confidence"]),
    ("high", 0.0, ["cefr_assessment.confidence"]), (True, 0.0, ["cefr_assessment.confidence"]),
])
def test_confidence_outside_its_domain_is_never_guessed(confidence, expected, fields):
    answer = {**ANALYSED, "cefr_assessment": {**ANALYSED["cefr_assessment"], "confidence": confidence}}
    result = parse_model_output(json.dumps(answer), ANALYSIS, context=LEARNER)
    assert result.value.cefr_assessment.confidence == expected
    assert list(result.fields) == fields and result.partial is bool(fields)


def test_analysis_without_a_level_keeps_the_rest_and_invents_none():
    answer = {key: value for key, value in ANALYSED.items() if key != "cefr_assessment"}
    # a top-level "level" may be the learner's declared level echoed back: it is not taken as the assessment
    result = parse_model_output(json.dumps({**answer, "level": "B1"}), ANALYSIS, context=LEARNER)
    assert result.value.cefr_assessment is None and result.partial and result.fields == ("cefr_assessment",)
    assert result.value.model_dump() == {**ANALYSED, "cefr_assessment": None}


@pytest.mark.parametrize("cefr", [None, "intermediate", {"level": "B3", "confidence": 0.9, "rationale": "r"},
                                  {"confidence": 0.9}, 4, [], {"level": {"code": "A2"}}])
def test_an_unreadable_assessment_is_null_as_a_whole(cefr):
    result = parse_model_output(json.dumps({**ANALYSED, "cefr_assessment": cefr}), ANALYSIS, context=LEARNER)
    assert result.value.cefr_assessment is None and result.partial
    assert result.fields == ("cefr_assessment",) and result.value.errors[0].model_dump() == ANALYSED["errors"][0]


@pytest.mark.parametrize("answer", [
    {},
    {"errors": [], "feedback": "", "cefr_assessment": {"level": "unknown"}},
    {"strengths": ["Nice"], "improvement_areas": ["More"], "recommended_tasks": ["Read"]},
    {"errors": [{"type": "grammar", "text": "not in the text", "correction": "x", "explanation": "y"}],
     "feedback": "   ", "cefr_assessment": None},
])
def test_an_analysis_without_level_feedback_or_errors_is_unusable(answer):
    with pytest.raises(UnusableAnswer, match="no CEFR level .* no feedback and no error"):
        parse_model_output(json.dumps(answer), ANALYSIS, context=LEARNER)


@pytest.mark.parametrize("answer", [
    {"cefr_assessment": {"level": "A2"}},
    {"feedback": "Clear."},
    {"errors": ANALYSED["errors"]},
])
def test_any_one_of_level_feedback_or_errors_makes_an_analysis_usable(answer):
    assert parse_model_output(json.dumps(answer), ANALYSIS, context=LEARNER).partial


@pytest.mark.parametrize("value, joined", [
    (["One.", "Two."], "One.\n\nTwo."),
    ({"intro": "One.", "details": "Two."}, "One.\n\nTwo."),
    ({"intro": " One. ", "blank": "", "none": None, "details": ["Two.", {"tip": "Three."}]}, "One.\n\nTwo.\n\nThree."),
    ({"step": 1, "text": "One."}, "One."),  # a number is no paragraph: dropped (and noted)
    ({"a": {"b": {"c": {"d": "Too deep."}}}, "e": "One."}, "One."),
])
def test_an_explanation_given_as_a_list_or_object_is_joined_in_order(value, joined):
    result = parse_model_output(json.dumps({**EXPLAINED, "explanation": value}), EXPLANATION)
    assert result.value.explanation == joined and result.partial and result.fields == ("explanation",)


@pytest.mark.parametrize("value", [{}, {"intro": "", "details": "  "}, {"n": 1, "flag": True, "x": None}, [[]],
                                   {"a": {"b": {"c": {"d": "Only too deep."}}}}])
def test_an_explanation_object_without_text_is_unusable(value):
    with pytest.raises(UnusableAnswer, match="explanation text"):
        parse_model_output(json.dumps({**EXPLAINED, "explanation": value}), EXPLANATION)


def test_key_points_inside_an_explanation_object_are_taken_as_key_points_not_text():
    answer = {"title": "Modal verbs", "explanation": {"text": "Modals add meaning.", "key_points": ["No -s"]},
              "examples": ["She can swim."]}
    result = parse_model_output(json.dumps(answer), EXPLANATION)
    assert result.value.model_dump() == EXPLAINED and result.partial


def test_short_texts_are_not_joined_from_lists_or_objects():
    notes = Notes()
    assert text(["a", "b"], notes, "title") is MISSING and text({"a": "b"}, notes, "title") is MISSING
    assert text(["Only one"], notes, "title") == "Only one"
    assert text({"a": "x", "b": "y"}, notes, "feedback", joiner=" ") == "x y"


def test_missing_feedback_is_empty_not_praise():
    answer = {key: value for key, value in ANALYSED.items() if key != "feedback"}
    result = parse_model_output(json.dumps(answer), ANALYSIS, context=LEARNER)
    assert result.value.feedback == "" and result.partial and result.fields == ("feedback",)


def test_more_subtopics_than_asked_are_cut_without_marking_partial():
    answer = {"topic": "T", "subtopics": [{"title": f"S{i}", "description": "d"} for i in range(6)]}
    result = parse_model_output(json.dumps(answer), SUBTOPICS, context={"topic": "T", "count": 4})
    assert [s.title for s in result.value.subtopics] == ["S0", "S1", "S2", "S3"] and not result.partial


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_failures_repairs_by_kind_and_time(caplog):
    source = {"source": "explanation"}
    before = (_sample("json_parse_failures_total", source), _sample("json_parse_seconds_count", source),
              _sample("json_parse_repairs_total", {**source, "kind": "markdown_fence"}))
    secret = "UNIQUE-MODEL-WORDS-0451"
    with caplog.at_level(logging.INFO, logger="backend.llm"):
        parse_model_output("```json\n" + json.dumps({**EXPLAINED, "title": secret}) + "\n```", EXPLANATION)
        with pytest.raises(UnusableAnswer):
            parse_model_output(f"Sorry, {secret} is not something I can explain.", EXPLANATION)
    assert _sample("json_parse_failures_total", source) == before[0] + 1
    assert _sample("json_parse_seconds_count", source) == before[1] + 2
    assert _sample("json_parse_repairs_total", {**source, "kind": "markdown_fence"}) == before[2] + 1
    repaired = [r for r in caplog.records if r.getMessage() == "model output repaired"]
    assert repaired and repaired[0].repair_kind == "markdown_fence"
    assert all(secret not in json.dumps(vars(r), default=str) for r in caplog.records)


# --- the re-ask, through the service and the fake Gemini server


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


# --- cut anywhere: never an invented or shortened value


def _within(got, clean) -> bool:
    """Every value is the clean answer's own or an empty default (null for a CEFR assessment); lists are
    prefixes of the clean ones."""
    if isinstance(clean, dict) and got is None:
        return "level" in clean  # only a CEFR assessment may be null
    if isinstance(clean, dict):
        return isinstance(got, dict) and all(key in clean and _within(value, clean[key]) for key, value in got.items())
    if isinstance(clean, list):
        return isinstance(got, list) and len(got) <= len(clean) and all(map(_within, got, clean))
    return got == clean or got in ("", 0.0, [])


@pytest.mark.parametrize("source, request_, clean", load_results(),
                         ids=[f"{source}-{n}" for n, (source, _, _) in enumerate(load_results())])
@pytest.mark.parametrize("style", ["pretty", "compact", "python"])
def test_an_answer_cut_at_any_point_is_refused_or_an_honest_subset(source, request_, clean, style):
    operation = {op.source: op for op in (ANALYSIS, SUBTOPICS, EXPLANATION)}[source]
    text = {"pretty": json.dumps(clean, indent=2), "compact": json.dumps(clean), "python": repr(clean)}[style]
    recovered = 0
    for end in range(1, len(text), 2):
        try:
            result = parse_model_output(text[:end], operation, context=request_, truncated=True)
        except UnusableAnswer:
            continue
        value = result.value.model_dump()
        if source == "explanation" and value["title"] == request_["subtopic"]:
            value["title"] = clean["title"]  # the documented default for a missing title
        assert result.partial and _within(value, clean), text[max(0, end - 60):end]
        recovered += 1
    assert recovered > 0


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
