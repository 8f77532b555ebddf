"""The fake OpenAI-compatible server, exercised through the real openai SDK (answers, streams, errors, control)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import openai
import pytest
from openai.lib._pydantic import to_strict_json_schema

from tests.fakes.openai_compat import FakeOpenAI

try:  # the service's answer models; they moved from services/ to schemas/
    from backend.schemas.answers import SubtopicList, TopicExplanation, WritingAnalysis
except ImportError:  # pragma: no cover - the older layout
    from backend.services.schemas import SubtopicList, TopicExplanation, WritingAnalysis

KEY, MODEL = "sk-fake-test-key", "gpt-fake-mini"
ROOT = Path(__file__).resolve().parents[2]
USER = [{"role": "system", "content": "You are a friendly English tutor."},
        {"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Yesterday i recieve a letter from my freind"}]


@pytest.fixture(scope="module")
def server():
    fake = FakeOpenAI(key=KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server):
    server.reset()
    return server


def make_client(fake, key=KEY, timeout=5.0, base_url=None, retries=0):
    return openai.OpenAI(base_url=base_url or fake.base_url, api_key=key, max_retries=retries, timeout=timeout)


@pytest.fixture
def client(fake):
    return make_client(fake)


def chat(client, messages=USER, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=messages, **kwargs)


def task(system, inputs):
    """Messages the way the service asks: a system instruction, then the task with an INPUT line."""
    return [{"role": "system", "content": system + " Answer with JSON only."},
            {"role": "user", "content": f"Do the task.\nINPUT: {json.dumps(inputs)}"}]


def joined(stream):
    """Deltas joined, the last finish_reason, the usage seen, the number of chunks."""
    text, finish, usage, count = "", None, None, 0
    for chunk in stream:
        count += 1
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish, usage, count


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


# --- streams ----------------------------------------------------------------------

def test_stream_deltas_join_to_the_full_answer_with_usage_when_asked(client, fake):
    full = chat(client)
    text, finish, usage, count = joined(chat(client, stream=True, stream_options={"include_usage": True}))
    assert text == full.choices[0].message.content and finish == "stop" and count > 5
    assert usage.total_tokens == full.usage.total_tokens
    text, finish, usage, _ = joined(chat(client, stream=True))
    assert text == full.choices[0].message.content and usage is None
    parts = task("List.", {"topic": "Art", "count": 4})
    streamed, _, _, _ = joined(chat(client, parts, stream=True, response_format={"type": "json_object"}))
    assert len(SubtopicList.model_validate_json(streamed).subtopics) == 4
    assert fake.stats()["by_kind"] == {"plain": 1, "json": 0, "stream": 3, "invalid": 0}


def test_faults_inside_a_stream(client, fake):
    fake.configure(error="stream_error")
    stream, got = chat(client, stream=True), []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got and not isinstance(info.value, openai.APIStatusError) and info.value.type == "server_error"
    fake.configure(error="cut")
    with pytest.raises(openai.APIConnectionError):
        joined(chat(client, stream=True))
    fake.configure(error="stream_eof")  # ends cleanly but early: no error, no finish_reason
    text, finish, _, _ = joined(chat(client, stream=True))
    assert text and finish is None
    fake.configure(error="bad_json")
    with pytest.raises(json.JSONDecodeError):  # not wrapped by the SDK
        joined(chat(client, stream=True))
    fake.configure(error="stall")
    with pytest.raises(openai.APITimeoutError):
        joined(chat(make_client(fake, timeout=0.3), stream=True))
    fake.configure(error="429")  # an HTTP error of a stream surfaces from create(), before any chunk
    with pytest.raises(openai.RateLimitError):
        chat(client, stream=True)


def test_chunk_latency_and_no_per_stream_deadline(client, fake):
    fake.configure(chunk_latency_ms=40, chunk_size=40)
    started = time.monotonic()
    _, finish, _, count = joined(chat(make_client(fake, timeout=0.2), stream=True))
    assert finish == "stop" and count >= 5 and time.monotonic() - started > 0.2  # read timeout is per read


# --- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("error, cls, status", [
    ("400", openai.BadRequestError, 400), ("401", openai.AuthenticationError, 401),
    ("404", openai.NotFoundError, 404), ("429", openai.RateLimitError, 429), ("quota", openai.RateLimitError, 429),
    ("500", openai.InternalServerError, 500), ("503", openai.InternalServerError, 503)])
def test_http_errors_map_to_sdk_classes(client, fake, error, cls, status):
    fake.configure(error=error, retry_after=7)
    with pytest.raises(cls) as info:
        chat(client)
    exc = info.value
    assert exc.status_code == status and set(exc.body) == {"message", "type", "param", "code"}
    assert exc.message.startswith(f"Error code: {status} - ") and exc.request_id.startswith("req_")
    if status == 429:
        assert exc.response.headers["retry-after"] == "7" and exc.response.headers["x-ratelimit-remaining-requests"]
        assert exc.code == ("insufficient_quota" if error == "quota" else "rate_limit_exceeded")
    assert fake.calls == 1  # max_retries=0: one attempt


def test_keys(fake):
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key provided: sk-") as info:
        chat(make_client(fake, key="sk-wrong-key-123"))
    assert info.value.code == "invalid_api_key"
    raw = httpx2.post(f"{fake.base_url}/chat/completions", json={"model": MODEL, "messages": USER})
    assert raw.status_code == 401 and "didn't provide an API key" in raw.json()["error"]["message"]


def test_hang_reset_and_refused(client, fake):
    fake.configure(error="hang")
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(model=MODEL, messages=USER)
    with pytest.raises(openai.APITimeoutError):
        chat(client, timeout=httpx2.Timeout(0.3, connect=1.0))  # the per-call kwarg
    assert time.monotonic() - started < 2
    for fault in ("reset", "cut"):
        fake.configure(error=fault)
        with pytest.raises(openai.APIConnectionError) as info:
            chat(client)
        assert not isinstance(info.value, openai.APITimeoutError)
    fake.configure(error="bad_json")
    with pytest.raises(json.JSONDecodeError):  # a 200 whose JSON does not parse is not an OpenAIError
        chat(client)
    closed = FakeOpenAI().start()
    dead = make_client(closed)
    closed.stop()
    with pytest.raises(openai.APIConnectionError) as info:
        chat(dead)
    assert isinstance(info.value.__cause__, httpx2.ConnectError)


# --- control ----------------------------------------------------------------------

def test_script_then_normal_behaviour(client, fake):
    fake.script([{"text": '{"exact": 1}'}, {"status": 503}, {"chunks": ["Hel", "lo"]},
                 {"status": 429, "headers": {"Retry-After": "3"}, "text": "slow down"}, {"error": "reset"}])
    assert chat(client).choices[0].message.content == '{"exact": 1}'
    with pytest.raises(openai.InternalServerError):
        chat(client)
    assert joined(chat(client, stream=True))[:2] == ("Hello", "stop")
    with pytest.raises(openai.RateLimitError, match="slow down") as info:
        chat(client)
    assert info.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.APIConnectionError):
        chat(client)
    assert chat(client).choices[0].message.content.startswith("You said")
    assert fake.calls == 6 and fake.stats()["script_pending"] == 0


def test_fail_next_heals_error_rate_is_seeded_and_sdk_retries_show(client, fake):
    fake.configure(fail_next=2, error="500")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            chat(client)
    assert chat(client).choices[0].finish_reason == "stop" and fake.configure()["error"] is None

    def pattern():
        fake.configure(error_rate=0.5, seed=7)
        outcome = []
        for _ in range(10):
            try:
                outcome.append(chat(client).choices[0].finish_reason)
            except openai.InternalServerError:
                outcome.append("503")
        return outcome
    assert pattern() == pattern() and {"stop", "503"} == set(pattern())
    fake.reset()
    fake.script([{"status": 500, "headers": {"retry-after-ms": "10"}}])
    assert chat(make_client(fake, retries=1)).choices[0].finish_reason == "stop"
    assert fake.calls == 2 and fake.stats()["last_headers"]["x-stainless-retry-count"] == "1"


def test_control_routes_and_latency(client, fake):
    base = fake.root_url
    config = httpx2.post(f"{base}/_fake/config", json={"latency_ms": 150, "error": 503}).json()
    assert config["latency_ms"] == 150 and config["error"] == "503"
    bad = httpx2.post(f"{base}/_fake/config", json={"error": "bogus"})
    assert bad.status_code == 400 and "error must be one of" in bad.json()["error"]["message"]
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError):
        chat(client)
    assert time.monotonic() - started >= 0.15
    assert httpx2.post(f"{base}/_fake/script", json=[{"text": "x"}]).json()["script_pending"] == 1
    assert httpx2.post(f"{base}/_fake/reset").json()["config"]["error"] is None
    broken = httpx2.post(f"{fake.base_url}/chat/completions", content=b"{not json")
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    calls = httpx2.get(f"{base}/_fake/calls").json()
    assert calls["calls"] == 1 and calls["by_kind"]["invalid"] == 1
    missing = httpx2.get(f"{fake.base_url}/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Invalid URL (GET /v1/nothing)"
    with pytest.raises(ValueError, match="loopback"):
        FakeOpenAI(host="0.0.0.0")


def test_command_line_server():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_compat", "--port", "0", "--key", "k",
                             "--json-object-only"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        cli = openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=5)
        assert chat(cli, task("List.", {"topic": "cli", "count": 2}), response_format={"type": "json_object"})
        with pytest.raises(openai.BadRequestError):
            cli.chat.completions.parse(model=MODEL, messages=USER, response_format=SubtopicList)
    finally:
        proc.terminate()
        proc.wait(5)
