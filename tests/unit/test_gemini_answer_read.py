"""The thin path's reading of a generateContent answer (gemini_request._read_answer) gives callers what the SDK's full
conversion gives them: the same text, finish reason, usage and model, the same refusals, the same failures on a
wrong type in a field that is read, and the SDK's own conversion for any other shape (continuations among them)."""
from __future__ import annotations

import copy

import pytest
from google.genai import _extra_utils, types

from backend.errors import ProviderBadResponse
from backend.providers.gemini_request import _read_answer, _sdk_answer
from backend.providers.gemini_response import answer_of, usage_of
from tests.fakes.gemini_answers import shaped
from tests.fakes.gemini_faults import MALFORMED

MODEL = "gemini-2.5-flash"
HEADERS = {"content-type": "application/json; charset=UTF-8", "content-length": "321"}
CONFIG = types.GenerateContentConfig(temperature=0.2)
USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 40, "thoughtsTokenCount": 21,
         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}], "cachedContentTokenCount": 0}


def answer(*parts, finish="STOP", **candidate) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": list(parts)}, "finishReason": finish, "index": 0,
                            **candidate}],
            "usageMetadata": USAGE, "modelVersion": "gemini-2.5-flash-001", "responseId": "r-1"}


USUAL = {
    "plain": answer({"text": "She goes to school."}),
    "thoughts first": answer({"text": "thinking...", "thought": True, "thoughtSignature": "c2ln"},
                             {"text": "She goes "}, {"text": "to school."}),
    "cut at the token limit": answer({"text": "She goes"}, finish="MAX_TOKENS"),
    "stopped for safety": answer({"text": "x"}, finish="SAFETY", safetyRatings=[
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]),
    "prompt blocked": {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}, "usageMetadata": USAGE},
    "no candidates": {"candidates": [], "usageMetadata": USAGE},
    "nothing at all": {},
    "a candidate without content": {"candidates": [{"finishReason": "STOP"}]},
    "content without parts": {"candidates": [{"content": {"role": "model"}, "finishReason": "STOP"}]},
    "a part without text": answer({"functionCall": {"name": "f", "args": {}}}, {"text": "ok"}),
    "a finish reason the SDK does not know": answer({"text": "ok"}, finish="SOMETHING_NEW"),
    "a finish reason in lower case": answer({"text": "ok"}, finish="stop"),
    "counts as strings": {**answer({"text": "ok"}), "usageMetadata": {"promptTokenCount": "3",
                                                                       "totalTokenCount": "9"}},
    "fields added by a later API": {**answer({"text": "ok"}, citationMetadata={"citations": []}, avgLogprobs=-0.1,
                                             groundingMetadata={"webSearchQueries": ["x"]}, brandNew={"a": 1}),
                                    "modelStatus": {"modelStage": "STABLE"}, "somethingElse": [1, 2]},
    "null fields": {"candidates": [{"content": None, "finishReason": None}], "usageMetadata": None,
                    "modelVersion": None, "promptFeedback": None},
    "a text that is not a string": answer({"text": 5}),
    "a count that is not a number": {**answer({"text": "ok"}), "usageMetadata": {"totalTokenCount": "many"}},
    "a thought flag that is not a flag": answer({"text": "ok", "thought": "perhaps"}),
}
UNUSUAL = {  # read by the SDK's conversion
    "to be continued": answer({"text": "Hello"}, finish="CONTINUATION", continuationToken="dG9rZW4tMQ=="),
    "candidates not a list": {"candidates": {"content": {}}},
    "a candidate not an object": {"candidates": ["text"]},
    "parts not a list": {"candidates": [{"content": {"parts": "text"}}]},
    "content not an object": {"candidates": [{"content": "text"}]},
    "a part not an object": {"candidates": [{"content": {"parts": ["text"]}}]},
    "usage not an object": {**answer({"text": "ok"}), "usageMetadata": [1]},
    "a list": [answer({"text": "ok"})],
}


def outcome(convert, body) -> tuple:
    """What a caller gets: the LLMAnswer, or the refusal, or the failure (its class) of the conversion."""
    try:
        response = convert(copy.deepcopy(body))
    except Exception as exc:  # noqa: BLE001 - the class is compared
        return ("failed", type(exc).__name__)
    usage = usage_of(response.usage_metadata)
    continuation = _extra_utils.should_continue_generation(response)
    try:
        return ("answer", answer_of(response, MODEL, usage), continuation, response.sdk_http_response.headers)
    except ProviderBadResponse as exc:
        return ("refused", exc.message, usage, continuation)


def ours(body):
    read = _read_answer(body, HEADERS)
    return read if read is not None else _sdk_answer(body, HEADERS, CONFIG)


def theirs(body):
    return _sdk_answer(body, HEADERS, CONFIG)


@pytest.mark.filterwarnings("ignore:SOMETHING_NEW is not a valid FinishReason")  # the SDK's, both ways
@pytest.mark.parametrize("name", list(USUAL))
def test_usual_answers_are_read_as_the_sdk_reads_them(name):
    body = USUAL[name]
    assert outcome(ours, body) == outcome(theirs, body)
    if outcome(theirs, body)[0] != "failed":
        assert _read_answer(copy.deepcopy(body), HEADERS) is not None  # read on the thin path, not the SDK's


@pytest.mark.parametrize("name", list(UNUSUAL))
def test_other_shapes_go_to_the_sdks_conversion(name):
    body = UNUSUAL[name]
    assert _read_answer(copy.deepcopy(body), HEADERS) is None
    assert outcome(ours, body) == outcome(theirs, body)


@pytest.mark.parametrize("mode", [None, *MALFORMED])
@pytest.mark.parametrize("text", ['{"errors": [], "feedback": "Good."}', "Hello! How was your day?"])
def test_the_fakes_answers_are_read_as_the_sdk_reads_them(mode, text):
    body = shaped(MODEL, {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}, text, mode)
    assert outcome(ours, body) == outcome(theirs, body)


def test_failures_of_fields_read_are_the_sdks_own():
    assert outcome(ours, USUAL["a text that is not a string"]) == ("failed", "ValidationError")
    assert outcome(ours, USUAL["counts as strings"])[1].usage == {"prompt": 3, "output": 0, "thoughts": 0,
                                                                    "total": 9}
