"""Recovering parsed answers: the domain checks on analyses (CEFR level, confidence, what makes one usable),
explanations and subtopics, and an answer cut at any point giving an honest subset or nothing."""
from __future__ import annotations

import json

import pytest

from backend.llm.analysis import level_of
from backend.llm.parse import ANALYSIS, EXPLANATION, SUBTOPICS, UnusableAnswer, parse_model_output
from backend.llm.recover import MISSING, Notes, text
from tests.corpus import load_results
from tests.unit.llm_answers import ANALYSED, EXPLAINED, LEARNER


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
