"""The OpenAI-compatible fallback adapter, streams: errors before the first piece, a stream cut at its deadline,
failures inside a stream, the whole answer returned and charged once, and no watchdog left behind."""
# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
from __future__ import annotations

import threading

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from backend.errors import (
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
)
from backend.observability.cost import ledger
from tests.unit.openai_adapter_helpers import MARGIN, MODEL, TALK, fake, llm, quick, timed  # noqa: F401

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

