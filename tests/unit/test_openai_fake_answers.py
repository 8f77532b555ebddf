"""The fake OpenAI-compatible server's answers, through the real openai SDK: plain completions, JSON schema and
json_object answers, strict schema rules, request checks, the output token limit and malformed modes."""

# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
import json

import openai
import pytest
from openai.lib._pydantic import to_strict_json_schema

from tests.unit.openai_fake_client import (  # noqa: F401  (fixtures)
    MODEL,
    USER,
    SubtopicList,
    TopicExplanation,
    WritingAnalysis,
    chat,
    client,
    fake,
    make_client,
    server,
    task,
)

# --- answers ----------------------------------------------------------------------

def test_plain_completion_replies_to_the_last_user_turn(client, fake):
    resp = chat(client, temperature=0.2, max_tokens=300)
    text = resp.choices[0].message.content
    assert "recieve" in text and "'receive'" in text and resp.choices[0].finish_reason == "stop"
    assert resp.model == MODEL and resp.object == "chat.completion" and resp._request_id.startswith("req_")
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0
    assert chat(client).choices[0].message.content == text  # deterministic
    root = make_client(fake, base_url=fake.root_url)  # a base URL without /v1 posts to /chat/completions
    assert chat(root).choices[0].message.content == text
    stats = fake.stats()
    assert stats["by_kind"]["plain"] == 3 and stats["last_request"]["messages"][-1]["role"] == "user"
    assert stats["last_headers"]["x-stainless-retry-count"] == "0" and "authorization" not in stats["last_headers"]


@pytest.mark.parametrize("model_cls, inputs", [
    (WritingAnalysis, {"text": "i will recieve it tommorow. he go to the the shop", "level": "B1"}),
    (SubtopicList, {"topic": "Travel", "count": 7}),
    (TopicExplanation, {"topic": "Food", "subtopic": "Ordering in a restaurant", "level": "A2"})])
def test_json_schema_answers_validate_against_the_service_models(client, model_cls, inputs):
    parsed = client.chat.completions.parse(model=MODEL, messages=task("Answer.", inputs),
                                           response_format=model_cls).choices[0].message.parsed
    assert isinstance(parsed, model_cls)
    schema = to_strict_json_schema(model_cls)  # the same, sent by hand: snake_case name, no title
    schema.pop("title", None)
    fmt = {"type": "json_schema", "json_schema": {"name": model_cls.__name__.lower(), "schema": schema,
                                                  "strict": True}}
    by_hand = model_cls.model_validate_json(chat(client, task("Answer.", inputs), response_format=fmt)
                                            .choices[0].message.content)
    assert by_hand == parsed
    if model_cls is SubtopicList:
        assert len(parsed.subtopics) == 7 and all("Travel" in s.title for s in parsed.subtopics)
    if model_cls is WritingAnalysis:
        assert ("spelling", "recieve", "receive") in {(e.type, e.text, e.correction) for e in parsed.errors}


def test_unknown_schema_gets_a_minimal_valid_object(client):
    schema = {"type": "object", "additionalProperties": False, "required": ["name", "score", "tags"],
              "properties": {"name": {"type": "string"}, "score": {"type": "integer", "minimum": 3},
                             "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "Report", "schema": schema, "strict": True}}
    value = json.loads(chat(client, task("Report as JSON.", {"x": 1}), response_format=fmt).choices[0].message.content)
    assert set(value) == {"name", "score", "tags"} and value["score"] >= 3 and value["tags"][0] in ("a", "b")


def test_json_object_mode(client, fake):
    fmt = {"type": "json_object"}
    subtopics = json.loads(chat(client, task("List subtopics.", {"topic": "Music", "count": 3}),
                                response_format=fmt).choices[0].message.content)
    assert SubtopicList.model_validate(subtopics).topic == "Music"
    generic = json.loads(chat(client, [{"role": "user", "content": "Reply in JSON please"}],
                              response_format=fmt).choices[0].message.content)
    assert generic["reply"].startswith("You said")
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'"):
        chat(client, response_format=fmt)  # as OpenAI does
    assert fake.stats()["by_kind"] == {"plain": 0, "json": 3, "stream": 0, "invalid": 0}


def test_strict_schema_rules_and_json_object_only_servers(client, fake):
    loose = {"type": "json_schema", "json_schema": {"name": "SubtopicList", "strict": True,
                                                    "schema": SubtopicList.model_json_schema()}}
    with pytest.raises(openai.BadRequestError, match="'additionalProperties' is required") as info:
        chat(client, task("List.", {"topic": "Art", "count": 2}), response_format=loose)
    assert info.value.param == "response_format"
    fake.configure(strict_schemas=False)
    assert json.loads(chat(client, task("List.", {"topic": "Art", "count": 2}), response_format=loose)
                      .choices[0].message.content)["topic"] == "Art"
    fake.configure(json_object_only=True)
    with pytest.raises(openai.BadRequestError, match="json_schema is not supported") as info:
        client.chat.completions.parse(model=MODEL, messages=task("List.", {"topic": "Art", "count": 2}),
                                      response_format=SubtopicList)
    assert (info.value.status_code, info.value.param, info.value.type) == (400, "response_format",
                                                                          "invalid_request_error")
    answer = chat(client, task("List.", {"topic": "Art", "count": 2}), response_format={"type": "json_object"})
    assert SubtopicList.model_validate_json(answer.choices[0].message.content).topic == "Art"


def test_request_checks(client, fake):
    fake.configure(models="gpt-fake-mini,gpt-fake-large")
    with pytest.raises(openai.NotFoundError, match="does not exist") as info:
        client.chat.completions.create(model="gpt-nope", messages=USER)
    assert info.value.code == "model_not_found"
    assert [m.id for m in client.models.list()] == ["gpt-fake-mini", "gpt-fake-large"]
    for kwargs, param in [({"temperature": 3}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
                          ({"stream_options": {"include_usage": True}}, "stream_options"),
                          ({"messages": []}, "messages"), ({"response_format": {"type": "xml"}},
                                                           "response_format.type")]:
        with pytest.raises(openai.BadRequestError) as info:
            chat(client, **{"messages": USER, **kwargs})
        assert info.value.param == param


def test_output_token_limit_and_malformed_modes(client, fake):
    cut = chat(client, max_completion_tokens=5)
    assert cut.choices[0].finish_reason == "length" and len(cut.choices[0].message.content) == 20
    messages = task("List.", {"topic": "Art", "count": 3})
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(model=MODEL, messages=messages, response_format=SubtopicList, max_tokens=10)
    fake.configure(malformed="markdown")
    assert chat(client, messages).choices[0].message.content.startswith("```json\n")
    fake.configure(malformed="refusal")
    message = client.chat.completions.parse(model=MODEL, messages=messages, response_format=SubtopicList) \
        .choices[0].message
    assert message.parsed is None and message.content is None and message.refusal.startswith("I'm sorry")
    fake.configure(malformed="content_filter")
    with pytest.raises(openai.ContentFilterFinishReasonError):
        client.chat.completions.parse(model=MODEL, messages=messages, response_format=SubtopicList)
    fake.configure(malformed="empty")
    assert chat(client).choices[0].message.content == ""
