"""The OpenAI-compatible fallback adapter against the fake server: answers, JSON modes, every failure mapped,
streams bounded by their deadline, cost charged, and OPENAI_* environment variables unable to redirect calls."""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from backend.errors import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderInputTimeout,
    ProviderNotConfigured,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderTimeout,
)
from backend.llm.client import Message
from backend.observability.cost import TokenPrices, ledger
from backend.providers.openai_compat import OpenAICompatClient
from backend.providers.openai_compat_errors import retry_after
from backend.providers.openai_compat_wire import answer_of, json_schema_format
from backend.schemas.answers import SubtopicList, TopicExplanation, WritingAnalysis
from backend.services import prompts
from backend.settings import ConfigError, load_settings
from tests.fakes.openai_compat import FakeOpenAI

KEY, MODEL = "sk-fallback-test-key", "gpt-fake-mini"
PRICES = TokenPrices(0.15, 0.60)
MARGIN = 0.2  # what a deadline may be overrun by on a loaded machine (measured: under 10 ms)
TASKS = [(WritingAnalysis, prompts.ANALYSIS_SYSTEM, "Analyse the learner's text.",
          {"text": "Yesterday i recieve a leter from my freind. He go to the the shop.", "level": "B1"}),
         (SubtopicList, prompts.SUBTOPICS_SYSTEM, "List subtopics.", {"topic": "Travel", "count": 5}),
         (TopicExplanation, prompts.EXPLANATION_SYSTEM, "Explain the subtopic.",
          {"topic": "Food", "subtopic": "Ordering in a restaurant", "level": "A2"})]
TALK = [Message("user", "Hi!"), Message("model", "Hello! How can I help?"),
        Message("user", "Yesterday i recieve a letter from my freind")]


@pytest.fixture(scope="session")
def openai_fake():
    fake = FakeOpenAI(key=KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(openai_fake):
    openai_fake.reset()
    return openai_fake


def make(fake, **options):
    return OpenAICompatClient(**{"base_url": fake.base_url, "api_key": KEY, "model": MODEL, "timeout_seconds": 2.0,
                                 "prices": PRICES, **options})


def quick(fake):
    """A warmed-up client without input allowance (else a 0.3 s limit is the input's, as for Gemini), for timing."""
    llm = make(fake, input_seconds_per_1k_chars=0.0)
    llm.warm_up([SubtopicList])
    return llm


@pytest.fixture
def llm(fake):
    client = make(fake)
    yield client
    client.close()


@pytest.fixture
def warnings():
    """Warnings of the adapter's logger, whatever the logging configuration of the test session."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("backend.providers.openai_compat")
    log.addHandler(handler)
    yield records
    log.removeHandler(handler)


def ask(llm, model_cls=SubtopicList, **kwargs):
    _, system, task, inputs = next(t for t in TASKS if t[0] is model_cls)
    return llm.generate_json(system=system, prompt=prompts.input_prompt(task, inputs), schema=model_cls, **kwargs)


def timed(call):
    started = time.monotonic()
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - returned for the test to judge
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


# --- answers ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_cls", [t[0] for t in TASKS], ids=lambda m: m.__name__)
def test_json_answers_of_the_three_schemas_validate(llm, fake, model_cls):
    answer = ask(llm, model_cls)
    parsed = model_cls.model_validate_json(answer.text)
    assert (answer.finish_reason, answer.truncated, answer.model) == ("stop", False, MODEL)
    request = fake.stats()["last_request"]
    spec = request["response_format"]["json_schema"]
    assert request["response_format"]["type"] == "json_schema" and spec["name"] == model_cls.__name__
    assert spec["strict"] is True  # accepted by the fake's strict checks, as OpenAI's
    assert request["temperature"] == 0.2 and request["max_tokens"] == 4096 and "max_completion_tokens" not in request
    assert [m["role"] for m in request["messages"]] == ["system", "user"] and fake.calls == 1
    if model_cls is SubtopicList:
        assert len(parsed.subtopics) == 5
    if model_cls is WritingAnalysis:
        assert ("spelling", "recieve", "receive") in {(e.type, e.text, e.correction) for e in parsed.errors}


def test_schemas_that_strict_mode_cannot_take_go_with_strict_off():
    from pydantic import BaseModel

    class Loose(BaseModel):
        name: str
        note: str = ""  # optional: strict mode requires every property

    class Open(BaseModel):
        scores: dict[str, int]  # free keys

    for model_cls in (Loose, Open):
        spec = json_schema_format(model_cls)["json_schema"]
        assert spec["strict"] is False and "additionalProperties" not in spec["schema"]
    strict = json_schema_format(WritingAnalysis)["json_schema"]["schema"]
    assert strict["additionalProperties"] is False
    assert all(d["additionalProperties"] is False for d in strict["$defs"].values())
    assert json_schema_format(WritingAnalysis) is json_schema_format(WritingAnalysis)  # built once


def test_text_maps_roles_and_a_stream_joins_to_the_same_answer(llm, fake):
    with ledger() as plain_book:
        plain = llm.generate_text(system="You are a friendly English tutor.", messages=TALK)
    assert "'receive'" in plain.text and plain.finish_reason == "stop"
    request = fake.stats()["last_request"]
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "user"]
    assert "temperature" not in request and "response_format" not in request
    with ledger() as stream_book:
        pieces = list(llm.stream_text(system="You are a friendly English tutor.", messages=TALK))
    assert "".join(pieces) == plain.text and len(pieces) > 5
    request = fake.stats()["last_request"]
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert stream_book.tokens == plain_book.tokens and stream_book.tokens["output"] > 0  # the usage chunk charged
    assert stream_book.cost_usd == pytest.approx(plain_book.cost_usd) and plain_book.cost_usd > 0


def test_usage_is_charged_with_reasoning_tokens_billed_as_output(llm, fake):
    with ledger() as book:
        answer = ask(llm)
    prompt, output = answer.usage["prompt"], answer.usage["output"]
    assert book.tokens == {"prompt": prompt, "output": output, "thoughts": 0} and prompt > 0 and output > 0
    assert book.cost_usd == pytest.approx((prompt * 0.15 + output * 0.60) / 1e6)
    message = {"role": "assistant", "content": '{"topic": "Art", "subtopics": []}', "refusal": None}
    fake.script({"body": {"id": "c1", "object": "chat.completion", "created": 1, "model": "o-fake",
                          "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 10, "completion_tokens": 100, "total_tokens": 110,
                                    "completion_tokens_details": {"reasoning_tokens": 60}}}})
    with ledger() as book:
        answer = ask(llm)
    assert answer.model == "o-fake" and answer.usage == {"prompt": 10, "output": 40, "thoughts": 60, "total": 110}
    assert book.cost_usd == pytest.approx((10 * 0.15 + 100 * 0.60) / 1e6)  # completion_tokens billed once


def test_output_limit_gives_a_truncated_answer(fake):
    llm = make(fake, max_output_tokens=8)
    answer = ask(llm)
    assert answer.finish_reason == "length" and answer.truncated and len(answer.text) == 32
    fake.configure(malformed="truncated")
    assert ask(make(fake)).truncated


# --- JSON modes -------------------------------------------------------------------------------------------------

def test_auto_mode_detects_a_json_object_only_server_once(fake, warnings):
    fake.configure(json_object_only=True)
    llm = make(fake)
    assert llm.json_mode == "json_schema"
    first = ask(llm)
    assert fake.calls == 2 and llm.json_mode == "json_object"  # the refused call, then the same in json_object
    assert SubtopicList.model_validate_json(first.text).topic == "Travel"
    request = fake.stats()["last_request"]
    assert request["response_format"] == {"type": "json_object"}
    assert "JSON Schema" in request["messages"][0]["content"] and '"subtopics"' in request["messages"][0]["content"]
    for model_cls, *_ in TASKS:
        model_cls.model_validate_json(ask(llm, model_cls).text)
    assert fake.calls == 5 and fake.stats()["by_kind"]["json"] == 5  # one call each from now on
    assert len(warnings) == 1 and "response_format" in warnings[0].getMessage()


def test_auto_mode_switch_is_safe_under_concurrency(fake, warnings):
    fake.configure(json_object_only=True, latency_ms=20)
    llm = make(fake)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(ask(llm))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and llm.json_mode == "json_object" and len(warnings) == 1
    assert 9 <= fake.calls <= 16  # at most one refused call per call in flight at the switch


def test_explicit_modes(fake):
    fake.configure(json_object_only=True)
    strict = make(fake, json_mode="json_schema")
    with pytest.raises(ProviderRejected) as info:
        ask(strict)
    assert strict.json_mode == "json_schema" and fake.calls == 1 and not info.value.counts_for_breaker
    plain = make(fake, json_mode="json_object")
    answer = ask(plain, WritingAnalysis, timeout=1.0)
    WritingAnalysis.model_validate_json(answer.text)
    assert fake.calls == 2
    bare = plain.generate_json(system="", prompt=prompts.input_prompt("List.", {"topic": "Art", "count": 2}),
                               schema=SubtopicList)  # no system: the schema instruction alone carries "JSON"
    assert SubtopicList.model_validate_json(bare.text).topic == "Art"
    with pytest.raises(ValueError):
        make(fake, json_mode="xml")


def test_reasoning_model_refusals_switch_parameters_off(fake, warnings):
    def refusal(param, code, message):
        return {"status": 400, "body": {"error": {"message": message, "type": "invalid_request_error",
                                                  "param": param, "code": code}}}
    llm = make(fake)
    fake.script(refusal("temperature", "unsupported_value", "Unsupported value: 'temperature' does not support 0.2 "
                        "with this model. Only the default (1) value is supported."))
    ask(llm)
    assert fake.calls == 2 and "temperature" not in fake.stats()["last_request"]
    fake.script(refusal("max_tokens", "unsupported_parameter", "Unsupported parameter: 'max_tokens' is not "
                        "supported with this model. Use 'max_completion_tokens' instead."))
    ask(llm)
    request = fake.stats()["last_request"]
    assert fake.calls == 4 and request["max_completion_tokens"] == 4096 and "max_tokens" not in request
    ask(llm)
    assert fake.calls == 5 and len(warnings) == 2
    fake.script(refusal("temperature", "unsupported_value", "again"))  # no longer sent: nothing to switch off
    with pytest.raises(ProviderRejected):
        ask(llm)
    assert fake.calls == 6
    assert make(fake, base_url="https://api.openai.com/v1")._shape.limit_field == "max_completion_tokens"
    assert make(fake, base_url="https://x.openai.azure.com/openai/v1")._shape.limit_field == "max_completion_tokens"
    assert make(fake, base_url="https://notopenai.com/v1")._shape.limit_field == "max_tokens"


# --- failures of plain calls ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault, error, transient, counted, server_text", [
    ("401", ProviderAuthError, False, False, "Incorrect API key"),
    ("429", ProviderRateLimited, True, True, "Rate limit reached"),
    ("quota", ProviderAuthError, False, False, "exceeded your current quota"),
    ("500", ProviderServerError, True, True, "had an error"),
    ("503", ProviderServerError, True, True, "overloaded"),
    ("400", ProviderRejected, False, False, "injected"),
    ("404", ProviderRejected, False, False, "does not exist"),
    ("reset", ProviderConnectionError, True, True, None),
    ("cut", ProviderConnectionError, True, True, None),
    ("bad_json", ProviderBadResponse, False, False, None),
])
def test_http_and_transport_failures_map_to_our_types(llm, fake, fault, error, transient, counted, server_text):
    fake.configure(error=fault, retry_after=7)
    with pytest.raises(error) as info:
        ask(llm)
    exc = info.value
    assert type(exc) is error and exc.provider == "fallback" and fake.calls == 1  # one attempt: no SDK retries
    assert (exc.transient, exc.counts_for_breaker) == (transient, counted)
    if server_text:
        assert server_text.lower() not in exc.message.lower()  # the server's words stay in our log
    if fault == "429":
        assert exc.retry_after == 7.0


@pytest.mark.parametrize("malformed", ["content_filter", "refusal", "empty"])
def test_unusable_answers_are_bad_responses(llm, fake, malformed):
    fake.configure(malformed=malformed)
    with ledger() as book:
        with pytest.raises(ProviderBadResponse):
            ask(llm)
    assert book.tokens.get("prompt", 0) > 0  # billed even when unusable


@pytest.mark.parametrize("body", [{"id": "c", "object": "chat.completion"}, {"choices": "nonsense"},
                                  {"choices": [{"index": 0, "message": None, "finish_reason": "stop"}]}, ["a list"]])
def test_answers_of_the_wrong_shape_are_bad_responses(llm, fake, body):
    fake.script({"body": body})
    with pytest.raises(ProviderBadResponse):
        ask(llm)
    with pytest.raises(ProviderBadResponse):
        answer_of("<html>a proxy's page</html>", MODEL, {})  # a 200 with a non-JSON content type


def test_a_hang_times_out_within_the_timeout(fake):
    llm = quick(fake)
    fake.configure(error="hang")
    exc, seconds = timed(lambda: ask(llm, timeout=0.3))
    assert type(exc) is ProviderTimeout and exc.transient and 0.3 <= seconds < 0.3 + MARGIN
    fake.configure(error="stall")  # half the body, then silence
    exc, seconds = timed(lambda: ask(llm, timeout=0.3))
    assert type(exc) is ProviderTimeout and seconds < 0.3 + MARGIN


def test_a_long_input_that_times_out_is_blamed_on_the_input(fake):
    llm = make(fake, timeout_seconds=0.2, input_seconds_per_1k_chars=1.0)
    fake.configure(error="hang")
    exc, seconds = timed(lambda: llm.generate_json(system="JSON", prompt="x" * 300, schema=SubtopicList))
    assert isinstance(exc, ProviderInputTimeout) and not exc.transient and seconds < 0.5 + MARGIN


def test_retry_after_sources():
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "2.5"}) == 2.5
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after({"retry-after": soon}) <= 30
    assert retry_after({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s",
                        "x-ratelimit-remaining-tokens": "5", "x-ratelimit-reset-tokens": "400ms"}) == 360
    assert retry_after({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1h2m3.5s"}) == 3723.5
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None and retry_after(None) is None


def test_retry_after_from_a_scripted_429(llm, fake):
    fake.script({"status": 429, "headers": {"retry-after-ms": "250"}})
    with pytest.raises(ProviderRateLimited) as info:
        ask(llm)
    assert info.value.retry_after == 0.25


# --- streams ----------------------------------------------------------------------------------------------------

def stream(llm, timeout=None):
    return llm.stream_text(system="You are a tutor.", messages=TALK, timeout=timeout)


def drain(pieces, received):
    for piece in pieces:
        received.append(piece)


def test_errors_before_the_first_piece_raise_on_the_first_next(fake):
    llm = quick(fake)
    fake.configure(error="429")
    with pytest.raises(ProviderRateLimited):
        next(stream(llm))
    fake.configure(error="hang")
    exc, seconds = timed(lambda: next(stream(llm, timeout=0.3)))
    assert type(exc) is ProviderTimeout and 0.3 <= seconds < 0.3 + MARGIN


@pytest.mark.parametrize("fault, chunk_latency_ms", [("stall", 0), (None, 60)], ids=["stall", "trickle"])
def test_a_stream_past_its_deadline_is_cut_at_the_deadline(fake, fault, chunk_latency_ms):
    llm = quick(fake)
    fake.configure(error=fault, chunk_latency_ms=chunk_latency_ms, chunk_size=4)
    received: list[str] = []
    exc, seconds = timed(lambda: drain(stream(llm, timeout=0.4), received))
    assert type(exc) is ProviderTimeout and received  # some pieces, then the cut
    assert 0.4 <= seconds < 0.4 + MARGIN


@pytest.mark.parametrize("fault, error", [("stream_eof", ProviderServerError), ("stream_error", ProviderServerError),
                                          ("cut", ProviderConnectionError), ("bad_json", ProviderBadResponse)])
def test_failures_inside_a_stream(llm, fake, fault, error):
    fake.configure(error=fault)
    received: list[str] = []
    exc, _ = timed(lambda: drain(stream(llm), received))
    assert type(exc) is error and received  # after the pieces already sent


@pytest.mark.parametrize("malformed", ["content_filter", "empty"])
def test_filtered_and_empty_streams_are_bad_responses(llm, fake, malformed):
    fake.configure(malformed=malformed)
    with pytest.raises(ProviderBadResponse):
        list(stream(llm))


def finish_stream(pieces):
    """Pieces, then the generator's return value: the whole LLMAnswer."""
    received = []
    try:
        while True:
            received.append(next(pieces))
    except StopIteration as stop:
        return received, stop.value


def test_the_stream_returns_the_whole_answer(llm, fake):
    with ledger() as book:
        received, answer = finish_stream(stream(llm))
    assert answer.text == "".join(received) and answer.finish_reason == "stop" and answer.model == MODEL
    assert {k: v for k, v in answer.usage.items() if k != "total"} == book.tokens


class ScriptedStream:
    """Stands in for the SDK's Stream: chunks given as dicts, then optionally an exception."""

    response = None  # no socket: the watchdog stays idle

    def __init__(self, chunks, then=None):
        self.chunks, self.then, self.closed = chunks, then, False

    def __iter__(self):
        for chunk in self.chunks:
            yield ChatCompletionChunk.model_validate(chunk)
        if self.then is not None:
            raise self.then

    def close(self):
        self.closed = True


def chunk(content=None, finish=None, usage=None):
    choices = [] if content is None and finish is None else [
        {"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m-2", "choices": choices,
            "usage": usage}


def test_a_failure_after_the_finish_loses_nothing_and_usage_is_charged_once(llm, monkeypatch):
    used = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    scripted = ScriptedStream([chunk("Hel", usage=used), chunk("lo", usage=used), chunk(finish="stop", usage=used)],
                              then=openai.APIConnectionError(request=httpx2.Request("POST", "http://x")))
    monkeypatch.setattr(llm, "_call", lambda *args: scripted)
    with ledger() as book:
        received, answer = finish_stream(stream(llm))
    assert received == ["Hel", "lo"] and answer.text == "Hello" and answer.model == "m-2" and scripted.closed
    assert book.tokens == {"prompt": 5, "output": 2, "thoughts": 0}  # once, though three chunks carried it
    scripted = ScriptedStream([chunk("Hel")], then=openai.APIConnectionError(request=httpx2.Request("POST", "x")))
    monkeypatch.setattr(llm, "_call", lambda *args: scripted)
    with pytest.raises(ProviderConnectionError):
        finish_stream(stream(llm))  # before the finish: the text is incomplete


def timers():
    """Timers still pending (a cancelled one is finished at once, though its thread may take a moment to end)."""
    return [t for t in threading.enumerate() if isinstance(t, threading.Timer) and not t.finished.is_set()]


def test_an_abandoned_stream_leaves_no_watchdog_behind(llm, fake):
    before = len(timers())
    pieces = stream(llm, timeout=5.0)
    next(pieces)
    assert len(timers()) == before + 1  # the deadline's timer
    pieces.close()
    assert len(timers()) == before
    assert "".join(stream(llm))  # the client still answers


# --- process and environment ------------------------------------------------------------------------------------

def test_the_sdk_client_is_built_lazily_once_per_process(fake):
    llm = make(fake)
    assert llm._client is None  # nothing at construction (it may happen before the fork)
    llm.warm_up([t[0] for t in TASKS])
    sdk = llm._client
    assert sdk is not None and fake.calls == 0
    ask(llm)
    assert llm._client is sdk and sdk.max_retries == 0
    llm._pid = -1  # as seen from a forked child: its own client
    ask(llm)
    assert llm._client is not sdk
    llm.close()
    assert llm._client is None


def test_a_client_that_cannot_be_built_is_not_configured(fake, monkeypatch):
    def broken(**_):
        raise openai.OpenAIError("ssl setup failed")
    monkeypatch.setattr(openai, "OpenAI", broken)
    with pytest.raises(ProviderNotConfigured) as info:
        ask(make(fake))
    assert not info.value.counts_for_breaker and fake.calls == 0


def test_keyless_servers_get_a_dummy_key(fake):
    fake.configure(key=None)
    assert ask(make(fake, api_key="")).text


def test_openai_environment_variables_change_nothing(fake, monkeypatch):
    dead = FakeOpenAI().start()
    elsewhere = dead.base_url
    dead.stop()
    monkeypatch.setenv("OPENAI_BASE_URL", elsewhere)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "Authorization: Bearer sk-injected\nX-Injected: yes")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-injected")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-injected")
    # What the SDK does on its own with this environment: our key replaced, headers added, calls redirected.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert fake.stats()["last_headers"]["x-injected"] == "yes"
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(max_retries=0).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    fake.reset()
    assert ask(make(fake)).text and fake.calls == 1  # our key, our URL
    headers = fake.stats()["last_headers"]
    assert not {"x-injected", "openai-organization", "openai-project"} & set(headers)
    assert headers["x-stainless-retry-count"] == "0"


# --- settings ---------------------------------------------------------------------------------------------------

def test_fallback_settings(monkeypatch):
    for name in ("FALLBACK_LLM_BASE_URL", "FALLBACK_LLM_MODEL", "FALLBACK_LLM_JSON_MODE", "WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings({})
    assert not s.fallback_configured and s.fallback_llm_model == "gpt-4o-mini"
    assert (s.fallback_llm_timeout_seconds, s.fallback_llm_json_mode, s.fallback_bulkhead) == (20.0, "auto", 24)
    assert (s.price_fallback_input_per_mtok, s.price_fallback_output_per_mtok) == (0.15, 0.60)
    s = load_settings({"FALLBACK_LLM_BASE_URL": "http://ollama:11434/v1/", "FALLBACK_LLM_MAX_CONCURRENCY": "",
                       "FALLBACK_LLM_MODEL": "llama3.1:8b", "FALLBACK_LLM_API_KEY": "sk-secret"})
    assert s.fallback_configured and s.fallback_llm_base_url == "http://ollama:11434/v1" and s.fallback_bulkhead == 24
    assert "sk-secret" not in repr(s)
    assert load_settings({"FALLBACK_LLM_MAX_CONCURRENCY": "3"}).fallback_bulkhead == 3
    for name, value in [("FALLBACK_LLM_BASE_URL", "ollama:11434/v1"), ("FALLBACK_LLM_BASE_URL", "ws://x/v1"),
                        ("FALLBACK_LLM_BASE_URL", "https://"), ("FALLBACK_LLM_JSON_MODE", "xml"),
                        ("FALLBACK_LLM_TIMEOUT_SECONDS", "0"), ("FALLBACK_LLM_MODEL", "bad model")]:
        with pytest.raises(ConfigError, match=name):
            load_settings({name: value})
