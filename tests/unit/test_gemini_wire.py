"""The request built once per configuration (backend/providers/gemini_request.py) is the SDK's own, on the wire.

Each case makes the same call twice against the fake Gemini: once through the adapter (the template path) and once
through google-genai's own generate_content with the same config, and compares what the fake received: path and
body. The thin HTTP path (backend/providers/gemini_http.py) is compared with the SDK's API client byte for byte:
request line, every header and the body. On an upgrade of google-genai, this says whether the SDK internals the
template path leans on still hold.
"""
from __future__ import annotations

import json

import pytest
from google.genai import types

from backend.llm.client import Message
from backend.providers.gemini import GeminiClient
from backend.providers.gemini_request import RequestTemplates
from backend.schemas.answers import SubtopicList, WritingAnalysis
from tests.conftest import FAKE_PROVIDER_KEY
from tests.unit.gemini_wire_server import WireServer

CONVERSATION = [Message("user", "Hello"), Message("model", "Hi! What shall we talk about?"),
                Message("user", "Yesterday I go to the cinema")]


def client_for(fake, **options) -> GeminiClient:
    return GeminiClient(api_key=FAKE_PROVIDER_KEY, model="gemini-2.5-flash", base_url=fake.base_url,
                        timeout_seconds=5.0, **options)


def last_request(fake) -> dict:
    entry = fake.requests()[-1]
    return {"path": entry["path"], "body": entry["body"]}


def sdk_request(fake, client: GeminiClient, contents, config) -> dict:
    """What google-genai's own generate_content sends for the same call."""
    client._sdk().models.generate_content(model=client.model, contents=contents, config=config)
    return last_request(fake)


@pytest.mark.parametrize("options", [{}, {"thinking_budget": 512}, {"thinking_budget": 0, "max_output_tokens": 100}])
@pytest.mark.parametrize("system", ["You are a writing tutor.", ""])
@pytest.mark.parametrize("timeout", [None, 2.5])
def test_a_json_request_is_the_sdks_own(fake_gemini, options, system, timeout):
    client = client_for(fake_gemini, **options)
    prompt = "Analyse: She go to school every days."
    client.generate_json(system=system, prompt=prompt, schema=WritingAnalysis, timeout=timeout)
    ours = last_request(fake_gemini)
    seconds = min(timeout, 5.0 + client.input_seconds(prompt)) if timeout is not None else 5.0 + client.input_seconds(
        prompt)
    theirs = sdk_request(fake_gemini, client, prompt, client._config(system, WritingAnalysis, seconds))
    assert ours == theirs
    assert ours["body"]["contents"] == [{"role": "user", "parts": [{"text": prompt}]}]
    assert ours["body"]["generationConfig"]["responseJsonSchema"]  # the schema went with it
    client.close()


@pytest.mark.parametrize("system", ["You are a friendly tutor. Level B1.", ""])
def test_a_conversation_request_is_the_sdks_own(fake_gemini, system):
    client = client_for(fake_gemini)
    client.generate_text(system=system, messages=CONVERSATION)
    ours = last_request(fake_gemini)
    from backend.providers.gemini import _contents

    theirs = sdk_request(fake_gemini, client, _contents(CONVERSATION), client._text_config(system, 5.0))
    assert ours == theirs and len(ours["body"]["contents"]) == 3
    client.close()


def test_answers_read_as_the_sdk_reads_them(fake_gemini):
    client = client_for(fake_gemini)
    prompt = "Analyse: I has a cat."
    ours = client.generate_json(system="tutor", prompt=prompt, schema=WritingAnalysis)
    response = client._sdk().models.generate_content(model=client.model, contents=prompt,
                                                     config=client._config("tutor", WritingAnalysis, 5.0 +
                                                                           client.input_seconds(prompt)))
    assert ours.text == response.text and ours.finish_reason == response.candidates[0].finish_reason.name
    assert ours.usage["total"] == response.usage_metadata.total_token_count > 0
    client.close()


def test_templates_are_built_once_per_configuration_and_bounded(fake_gemini):
    client = client_for(fake_gemini)
    templates = RequestTemplates(max_templates=2)
    client._templates = templates
    for system in ["a", "b", "a"]:  # the system prompt is per call, not part of the template
        client.generate_json(system=system, prompt="Analyse: ok.", schema=WritingAnalysis)
        assert last_request(fake_gemini)["body"]["systemInstruction"]["parts"][0]["text"] == system
    assert list(templates._templates) == [("json", WritingAnalysis)]
    client.generate_text(system="tutor", messages=CONVERSATION)
    client.generate_json(system="a", prompt="Plan: travel.", schema=SubtopicList)
    assert list(templates._templates) == [("text",), ("json", SubtopicList)]  # the least recently used went
    # A template's contents never leak into the next call.
    client.generate_json(system="a", prompt="Analyse: another text.", schema=WritingAnalysis)
    assert last_request(fake_gemini)["body"]["contents"][0]["parts"][0]["text"] == "Analyse: another text."
    client.close()


def test_warm_up_builds_the_templates_real_calls_use(fake_gemini):
    client = client_for(fake_gemini)
    client.warm_up([WritingAnalysis])
    assert len(client._templates) == 2 and fake_gemini.calls == 0
    client.generate_json(system="any system", prompt="Analyse: ok.", schema=WritingAnalysis)
    client.generate_text(system="tutor", messages=CONVERSATION)
    assert len(client._templates) == 2
    client.close()


def continued_answer(fake) -> None:
    """Two hops: an answer the model marks as to be continued (a token), then its end."""
    first = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello! Yesterday I "}]},
                             "finishReason": "CONTINUATION", "continuationToken": "dG9rZW4tMQ=="}],
             "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 14},
             "modelVersion": "gemini-2.5-flash"}
    last = {"candidates": [{"content": {"role": "model", "parts": [{"text": "went to the cinema."}]},
                            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
            "modelVersion": "gemini-2.5-flash"}
    fake.script([{"body": first}, {"body": last}])


def test_a_continued_answer_is_followed_as_the_sdk_follows_it(fake_gemini):
    from backend.providers.gemini import _contents

    client = client_for(fake_gemini)
    continued_answer(fake_gemini)
    ours = client.generate_text(system="tutor", messages=CONVERSATION)
    our_requests = [entry["body"] for entry in fake_gemini.requests()[-2:]]
    continued_answer(fake_gemini)
    theirs = client._sdk().models.generate_content(model=client.model, contents=_contents(CONVERSATION),
                                                   config=client._text_config("tutor", 5.0))
    their_requests = [entry["body"] for entry in fake_gemini.requests()[-2:]]
    assert fake_gemini.calls == 4 and our_requests == their_requests
    assert "dG9rZW4tMQ==" in str(our_requests[1]) and "dG9rZW4tMQ==" not in str(our_requests[0])
    assert ours.text == theirs.text and "went to the cinema." in ours.text
    client.close()


@pytest.fixture
def wire():
    server = WireServer()
    yield server
    server.stop()


@pytest.mark.parametrize("timeout", [None, 2.5])
def test_the_thin_path_sends_what_the_sdks_api_client_sends(wire, timeout):
    client = client_for(wire)
    client.generate_json(system="You are a writing tutor.", prompt="Analyse: ok.", schema=WritingAnalysis,
                         timeout=timeout)
    assert client._templates._http is not None and client._templates._http[1] is not None  # the thin path sent it
    ours = wire.seen[-1]
    # The same request through the SDK's API client (the layer the thin path replaces), with the same options.
    limit = 5.0 + client.input_seconds("Analyse: ok.")
    seconds = min(timeout, limit) if timeout is not None else limit
    options = client._config("", WritingAnalysis, seconds).http_options
    client._sdk().models._api_client.request("post", "models/gemini-2.5-flash:generateContent", json.loads(ours.body),
                                             options)
    theirs = wire.seen[-1]
    assert (ours.method, ours.target, ours.header_set(), ours.body) == (
        theirs.method, theirs.target, theirs.header_set(), theirs.body)
    assert ("x-server-timeout", "3" if timeout else "6") in ours.header_set()  # 5 s and the input's allowance
    assert ("x-goog-api-key", FAKE_PROVIDER_KEY) in ours.header_set()
    # And google-genai's own generate_content sends the same headers (its body's fields in another order).
    client._sdk().models.generate_content(model=client.model, contents="Analyse: ok.",
                                          config=client._config("You are a writing tutor.", WritingAnalysis, seconds))
    assert wire.seen[-1].header_set() == ours.header_set() and wire.seen[-1].target == ours.target
    assert json.loads(wire.seen[-1].body) == json.loads(ours.body)
    client.close()


def test_a_conversation_on_the_thin_path_reads_as_the_sdk_reads_it(wire):
    client = client_for(wire)
    ours = client.generate_text(system="tutor", messages=CONVERSATION)
    answer = client._sdk().models.generate_content(model=client.model, contents="x",
                                                   config=types.GenerateContentConfig(temperature=0.7))
    assert ours.text == answer.text and ours.finish_reason == answer.candidates[0].finish_reason.name
    assert ours.usage["total"] == answer.usage_metadata.total_token_count and ours.model == answer.model_version
    assert {h for h in wire.seen[0].header_set() if h[0] != "content-length"} == {
        h for h in wire.seen[1].header_set() if h[0] != "content-length"}
    client.close()


@pytest.mark.parametrize("thinking_budget", [-1, 0, 256])
def test_a_per_call_config_is_the_config_built_whole(thinking_budget):
    """The config copied from the operation's (backend/providers/gemini.py, _per_call) equals one built whole, field
    for field and in the fields it says were set, for structured and text calls, with and without a timeout."""
    client = GeminiClient(api_key=FAKE_PROVIDER_KEY, model="gemini-2.5-flash", timeout_seconds=5.0,
                          max_output_tokens=512, thinking_budget=thinking_budget)
    thinking = types.ThinkingConfig(thinking_budget=thinking_budget) if thinking_budget >= 0 else None
    common = {"max_output_tokens": 512 + max(0, thinking_budget), "thinking_config": thinking}
    for seconds, options in ((5.0, None), (2.5, types.HttpOptions(timeout=2500))):
        for system in ("Be brief.", ""):
            whole = types.GenerateContentConfig(
                response_mime_type="application/json", response_json_schema=WritingAnalysis.model_json_schema(),
                temperature=0.2, system_instruction=system or None, http_options=options, **common)
            built = client._config(system, WritingAnalysis, seconds)
            assert built == whole and built.model_fields_set == whole.model_fields_set
            whole_text = types.GenerateContentConfig(temperature=0.7, system_instruction=system or None,
                                                     http_options=options, **common)
            built_text = client._text_config(system, seconds)
            assert built_text == whole_text and built_text.model_fields_set == whole_text.model_fields_set
    assert client._config("other", WritingAnalysis, 5.0).system_instruction == "other"  # nothing shared leaks
