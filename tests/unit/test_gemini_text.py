"""GeminiClient's plain-text answers and text streams, through the real google-genai SDK against the fake server."""
from __future__ import annotations

import time

import pytest

from backend.errors import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderInputTimeout,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderTimeout,
)
from backend.llm.client import LLMAnswer, Message
from backend.observability.cost import TokenPrices, ledger
from backend.providers.gemini import GeminiClient
from tests.conftest import FAKE_PROVIDER_KEY
from tests.fakes.gemini import FakeGemini

SYSTEM = "You are a friendly English tutor. Answer in two or three short sentences."
CONVERSATION = [Message("user", "Hello, i want practise my english"),
                Message("model", "Hello! What would you like to talk about?"),
                Message("user", "Yesterday he go to the the cinema with me")]
PRICES = TokenPrices(input_per_mtok=1.0, output_per_mtok=4.0)
MARGIN = 0.3  # seconds a cut stream may take beyond its deadline (thread wake-up, socket shutdown, unwinding)


def gemini(fake, timeout_seconds=5.0, key=FAKE_PROVIDER_KEY) -> GeminiClient:
    return GeminiClient(api_key=key, model="gemini-test", base_url=fake.base_url, timeout_seconds=timeout_seconds,
                        prices=PRICES)


@pytest.fixture
def client(fake_gemini):
    client = gemini(fake_gemini)
    yield client
    client.close()


def drain(stream) -> tuple[list[str], LLMAnswer]:
    """Every piece of a stream and the LLMAnswer it returns at its end."""
    pieces, answer, _ = timed(stream)
    return pieces, answer


def timed(stream) -> tuple[list[str], LLMAnswer, float]:
    """Every piece of a stream, the LLMAnswer it returns, and when the first piece came (seconds from the start)."""
    started, pieces, first = time.monotonic(), [], None
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as stop:
            return pieces, stop.value, first
        first = time.monotonic() - started if first is None else first


def pieces_until_failure(stream) -> tuple[list[str], Exception]:
    pieces = []
    try:
        for piece in stream:
            pieces.append(piece)
    except Exception as exc:  # noqa: BLE001 - the type is what the tests check
        return pieces, exc
    raise AssertionError(f"the stream ended without failing after {pieces}")


# --- plain answers


def test_a_plain_answer_to_a_conversation_carries_the_whole_history(client, fake_gemini):
    with ledger() as book:
        answer = client.generate_text(system=SYSTEM, messages=CONVERSATION)
    assert answer.finish_reason == "STOP" and answer.model == "gemini-test" and not answer.truncated
    assert '"Yesterday he go to the the cinema with me"' in answer.text and "turn 2" in answer.text
    assert "'he goes' instead of 'he go'" in answer.text
    sent = fake_gemini.stats()["last_request"]
    assert [(c["role"], c["parts"][0]["text"]) for c in sent["contents"]] == [(m.role, m.text) for m in CONVERSATION]
    assert sent["systemInstruction"]["parts"][0]["text"] == SYSTEM
    assert sent["generationConfig"]["temperature"] == 0.7
    assert "responseMimeType" not in sent["generationConfig"] and "responseJsonSchema" not in sent["generationConfig"]
    assert fake_gemini.stats()["by_kind"] == {"generate": 1, "stream": 0}
    assert answer.usage["prompt"] > 0 and answer.usage["output"] > 0
    assert book.tokens == {"prompt": answer.usage["prompt"], "output": answer.usage["output"], "thoughts": 0}
    assert book.cost_usd == pytest.approx(PRICES.cost(answer.usage))


def test_the_plain_answer_is_deterministic_and_follows_the_last_user_turn(client):
    first = client.generate_text(system=SYSTEM, messages=CONVERSATION)
    assert client.generate_text(system=SYSTEM, messages=CONVERSATION).text == first.text
    other = client.generate_text(system=SYSTEM, messages=[Message("user", "I like my cat.")])
    assert other.text != first.text and '"I like my cat."' in other.text and "well said" in other.text


@pytest.mark.parametrize("fault, error", [
    ("503", ProviderServerError), ("429", ProviderRateLimited), ("400", ProviderRejected),
    ("reset", ProviderConnectionError), ("cut", ProviderConnectionError), ("stream_reset", ProviderConnectionError),
    ("blocked", ProviderBadResponse), ("safety", ProviderBadResponse), ("empty", ProviderBadResponse)])
def test_plain_answer_failures_are_mapped(client, fake_gemini, fault, error):
    fake_gemini.configure(error=fault)
    with pytest.raises(error):
        client.generate_text(system=SYSTEM, messages=CONVERSATION)


def test_a_plain_answer_times_out_as_the_provider_not_the_input(client, fake_gemini):
    fake_gemini.configure(error="stall")  # half the body, then silence
    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as info:
        client.generate_text(system=SYSTEM, messages=CONVERSATION * 50, timeout=0.4)
    assert not isinstance(info.value, ProviderInputTimeout) and time.monotonic() - started < 0.4 + MARGIN


def test_an_empty_conversation_is_refused_without_a_call(client, fake_gemini):
    with pytest.raises(ProviderRejected):
        client.generate_text(system=SYSTEM, messages=[])
    with pytest.raises(ProviderRejected):
        client.stream_text(system=SYSTEM, messages=[])
    assert fake_gemini.calls == 0


# --- streams


def test_stream_pieces_join_to_the_plain_answer_and_the_first_comes_early(client, fake_gemini):
    plain = client.generate_text(system=SYSTEM, messages=CONVERSATION)
    fake_gemini.configure(chunk_latency_ms=80)
    started = time.monotonic()
    pieces, answer, first = timed(client.stream_text(system=SYSTEM, messages=CONVERSATION))
    total = time.monotonic() - started
    assert len(pieces) >= 4 and "".join(pieces) == plain.text
    assert first < 0.08 < total and total >= 0.08 * (len(pieces) - 1)
    assert answer.text == plain.text and answer.finish_reason == "STOP" and answer.usage == plain.usage
    sent = fake_gemini.stats()
    assert sent["by_kind"] == {"generate": 1, "stream": 1}
    assert len(sent["last_request"]["contents"]) == 3
    assert sent["last_request"]["systemInstruction"]["parts"][0]["text"] == SYSTEM


def test_a_stream_charges_the_usage_it_reported_once(client):
    with ledger() as book:
        _, answer = drain(client.stream_text(system=SYSTEM, messages=CONVERSATION))
    assert book.tokens == {"prompt": answer.usage["prompt"], "output": answer.usage["output"], "thoughts": 0}
    assert book.cost_usd == pytest.approx(PRICES.cost(answer.usage)) and book.cost_usd > 0


def test_a_stream_stopped_early_charges_only_what_was_reported(client, fake_gemini):
    # The fake, like Gemini, reports usage on the last chunk: a caller who leaves before it is charged nothing.
    with ledger() as book:
        stream = client.stream_text(system=SYSTEM, messages=CONVERSATION)
        assert next(stream)
        stream.close()
    assert book.tokens == {} and book.cost_usd == 0


@pytest.mark.parametrize("fault, error, midway", [
    ("stream_error", ProviderServerError, True),      # data: {"error": {...}} after some pieces
    ("stream_reset", ProviderConnectionError, True),  # TCP reset after some pieces (httpx2.ReadError)
    ("cut", ProviderConnectionError, True),           # a chunk cut short (httpx2.RemoteProtocolError)
    ("stream_eof", ProviderServerError, True),        # the body ends quietly without a finishReason
    ("503", ProviderServerError, False), ("429", ProviderRateLimited, False), ("400", ProviderRejected, False),
    ("reset", ProviderConnectionError, False),
    ("blocked", ProviderBadResponse, False), ("safety", ProviderBadResponse, False),
    ("empty", ProviderBadResponse, False)])
def test_stream_failures_are_mapped(client, fake_gemini, fault, error, midway):
    fake_gemini.configure(error=fault)
    pieces, exc = pieces_until_failure(client.stream_text(system=SYSTEM, messages=CONVERSATION))
    assert type(exc) is error, exc
    assert bool(pieces) is midway
    if fault == "stream_eof":
        assert "incomplete" in exc.message


def test_a_wrong_key_is_an_auth_error_for_streams_too(fake_gemini):
    client = gemini(fake_gemini, key="wrong")
    _, exc = pieces_until_failure(client.stream_text(system=SYSTEM, messages=CONVERSATION))
    assert isinstance(exc, ProviderAuthError)
    client.close()


def test_a_truncated_stream_ends_normally_and_says_so(client, fake_gemini):
    fake_gemini.configure(malformed="truncated")
    pieces, answer = drain(client.stream_text(system=SYSTEM, messages=CONVERSATION))
    assert pieces and answer.truncated and answer.text == "".join(pieces)


@pytest.mark.parametrize("fault, chunk_ms, deadline", [
    ("stall", 100, 0.6),  # pieces, then silence: only the deadline ends the blocked read
    (None, 250, 0.6),     # pieces that keep trickling: no read ever times out on its own
    ("hang", 0, 0.5),     # nothing at all: the request's own read timeout is the time left
])
def test_a_stream_is_cut_at_its_deadline_not_at_the_client_timeout(fake_gemini, fault, chunk_ms, deadline):
    client = gemini(fake_gemini, timeout_seconds=5.0)  # each read alone could wait 5 s
    fake_gemini.configure(error=fault, chunk_latency_ms=chunk_ms, chunk_size=16)
    started = time.monotonic()
    pieces, exc = pieces_until_failure(client.stream_text(system=SYSTEM, messages=CONVERSATION, timeout=deadline))
    elapsed = time.monotonic() - started
    assert isinstance(exc, ProviderTimeout) and not isinstance(exc, ProviderInputTimeout)
    assert deadline - 0.05 <= elapsed < deadline + MARGIN, elapsed
    assert bool(pieces) is (fault != "hang")
    client.close()


def test_a_stream_may_outlast_the_client_timeout_while_it_keeps_coming(fake_gemini):
    client = gemini(fake_gemini, timeout_seconds=0.4)  # the longest silence allowed
    fake_gemini.configure(chunk_latency_ms=150)
    started = time.monotonic()
    pieces, answer = drain(client.stream_text(system=SYSTEM, messages=CONVERSATION, timeout=5))
    assert time.monotonic() - started > 0.4 and answer.finish_reason == "STOP" and len(pieces) >= 4
    client.close()


def test_an_abandoned_stream_releases_its_connection():
    with FakeGemini(key=FAKE_PROVIDER_KEY, error="stall", chunk_size=16) as fake:
        client = gemini(fake)
        stream = client.stream_text(system=SYSTEM, messages=CONVERSATION)
        assert next(stream)
        stream.close()  # the server is stalling: only our side closing the connection ends its handler
        deadline = time.monotonic() + 2
        while fake._sockets and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not fake._sockets
        client.close()
