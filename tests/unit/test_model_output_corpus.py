"""The model-output corpus through the whole endpoint: the fake Gemini answers each case's exact text."""
from __future__ import annotations

from collections import Counter

import pytest

from backend.llm.parse import ANALYSIS, EXPLANATION, SUBTOPICS, UnusableAnswer, parse_model_output
from tests.corpus import Case, load_cases, text_of
from tests.envelope import assert_error, assert_ok

CASES = load_cases()
OPERATIONS = {op.source: op for op in (ANALYSIS, SUBTOPICS, EXPLANATION)}


def _id(case: Case) -> str:
    return f"{case.source}:{case.id}"


def test_corpus_covers_every_operation_and_malformation():
    per_source = Counter(case.source for case in CASES)
    assert len(CASES) >= 80 and len({_id(c) for c in CASES}) == len(CASES)
    assert set(per_source) == set(OPERATIONS) and min(per_source.values()) >= 20
    for source in OPERATIONS:
        tags = {tag for case in CASES if case.source == source for tag in case.tags}
        assert {"clean", "markdown", "prose", "comments", "trailing_commas", "single_quotes", "truncated",
                "missing_fields", "renamed", "wrong_types", "refusal", "blocked", "reask"} <= tags, source
        # the rules of "partial, not failed": a level that cannot be read, prose sent as an object
        assert ({"cefr"} if source == "analyze" else set()) | {"object_of_strings"} <= tags, source


def test_a_null_level_is_always_partial_and_never_asked_again():
    nulls = [case for case in CASES if case.source == "analyze" and case.recovered
             and case.data["cefr_assessment"] is None]
    assert len(nulls) >= 10
    for case in nulls:
        assert case.data["partial"] is True and case.calls == 1 and "cefr_assessment" in case.expect["fields"], case.id


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_corpus_case_through_the_endpoint(make_app, auth, fake_gemini, case):
    client = make_app(RETRY_MAX_ATTEMPTS=1).test_client()
    fake_gemini.script(case.script())
    response = client.post(case.endpoint, json=case.request, headers=auth)
    assert response.status_code != 500, response.get_json()
    if case.recovered:
        assert assert_ok(response) == case.data
    else:
        error = assert_error(response, case.expect["status"], case.expect["code"])
        assert "could not be used" in error["message"]
    # exactly the scripted answers were asked for: a re-ask only where the first answer was unusable
    assert fake_gemini.calls == case.calls
    assert fake_gemini.stats()["script_pending"] == 0


@pytest.mark.parametrize("case", [c for c in CASES if c.recovered], ids=_id)
def test_corpus_case_names_the_fields_it_had_to_touch(case):
    answer = case.answers[-1]
    result = parse_model_output(text_of(answer), OPERATIONS[case.source], context=case.request,
                                truncated=answer.get("finish_reason") == "MAX_TOKENS")
    assert result.partial is case.expect["partial"]
    assert sorted(result.fields) == case.expect["fields"]


# A blocked or empty first answer never reaches the parser (the adapter refuses it); the endpoint test covers those.
@pytest.mark.parametrize("case", [c for c in CASES if len(c.answers) > 1 and (text_of(c.answers[0]) or "").strip()],
                         ids=_id)
def test_corpus_first_answer_of_a_reask_is_unusable_on_its_own(case):
    text = text_of(case.answers[0])
    with pytest.raises(UnusableAnswer):
        parse_model_output(text, OPERATIONS[case.source], context=case.request)
