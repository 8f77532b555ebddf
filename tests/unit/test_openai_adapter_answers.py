"""The OpenAI-compatible fallback adapter, its answers: JSON of the three schemas, text and its stream, usage and
cost charged, truncation, and the JSON modes (auto detection of json_object-only servers, explicit modes, reasoning
models' refused parameters). Against the session's fake server; shared helpers in openai_adapter_helpers.py."""
# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
from __future__ import annotations

import logging
import threading

import pytest

from backend.errors import ProviderRejected
from backend.observability.cost import ledger
from backend.providers.openai_compat_wire import json_schema_format
from backend.schemas.answers import SubtopicList, WritingAnalysis
from backend.services import prompts
from tests.unit.openai_adapter_helpers import MODEL, TALK, TASKS, ask, fake, llm, make  # noqa: F401


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

