"""The fake OpenAI-compatible server's streams, through the real openai SDK: deltas joining to the full answer,
usage when asked, faults inside a stream, chunk latency without a per-stream deadline."""

# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
import json
import time

import openai
import pytest

from tests.unit.openai_fake_client import (  # noqa: F401  (fixtures)
    SubtopicList,
    chat,
    client,
    fake,
    joined,
    make_client,
    server,
    task,
)

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
