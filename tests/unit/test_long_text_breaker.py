"""Issue 18, suspected item: calls slower than CIRCUIT_BREAKER_TIMEOUT counted as failures, so a few learners
sending long texts (which Gemini, thinking, legitimately answers slowly) could open the breaker for everyone.

Verified against the fake Gemini before the fix: three slow answers to long texts opened the breaker at the second
one. Now slowness is judged net of the time the input needs (GeminiClient.input_seconds, 4 s per 1,000 prompt
characters), and a long text gets that much more time per call.
"""
from __future__ import annotations

import pytest

from backend.providers.gemini import INPUT_SECONDS_PER_1K_CHARS
from tests.envelope import assert_error, assert_ok

SLOW_CALL_SECONDS = 0.3  # CIRCUIT_BREAKER_TIMEOUT, scaled down
THRESHOLD = 2


def long_text(variant: int) -> str:
    """A distinct learner text at the length limit (5,000 characters)."""
    return (f"Text {variant}. " + "Yesterday i recieve a letter from my freind and he go to school. " * 80)[:5000]


def analyze(client, auth, text: str):
    return client.post("/api/analyze", json={"text": text}, headers=auth)


def gemini_breaker(app) -> dict:
    return app.extensions["backend"].breakers["gemini"].state()


@pytest.fixture
def app(make_app):
    return make_app(CIRCUIT_BREAKER_TIMEOUT=SLOW_CALL_SECONDS, CIRCUIT_BREAKER_FAILURE_THRESHOLD=THRESHOLD,
                    GEMINI_TIMEOUT_SECONDS=2)


# Short texts in a language without a local dictionary: their failures reach the caller instead of a local answer.
SHORT = "短い文章 {} です。"


def test_slow_answers_to_long_texts_do_not_open_the_breaker(app, client, auth, fake_gemini):
    assert 5000 / 1000 * INPUT_SECONDS_PER_1K_CHARS > 1  # the premise: a long text is allowed more than 1 s
    fake_gemini.configure(latency_ms=1000)  # slower than CIRCUIT_BREAKER_TIMEOUT, as thinking on a long text is
    for i in range(THRESHOLD + 1):
        assert_ok(analyze(client, auth, long_text(i)))
    state = gemini_breaker(app)
    assert state["state"] == "closed" and state["failures_in_window"] == 0

    # The same slowness on short texts is still the provider's: the breaker opens, and refuses the next call.
    for i in range(THRESHOLD):
        assert_ok(analyze(client, auth, SHORT.format(i)))
    assert gemini_breaker(app)["state"] == "open"
    assert_error(analyze(client, auth, SHORT.format("x")), 503, "PROVIDER_UNAVAILABLE")
    assert fake_gemini.calls == 2 * THRESHOLD + 1


def test_a_long_text_gets_more_time_per_call(make_app, auth, fake_gemini):
    client = make_app(GEMINI_TIMEOUT_SECONDS=1, RETRY_MAX_ATTEMPTS=2).test_client()
    fake_gemini.configure(latency_ms=1500)  # over GEMINI_TIMEOUT_SECONDS, within a long text's allowance
    assert_ok(analyze(client, auth, long_text(0)))
    assert fake_gemini.calls == 1

    error = assert_error(analyze(client, auth, SHORT.format(0)), 504, "PROVIDER_TIMEOUT")
    assert "this input needs" not in error["message"]  # a short text's timeout is Gemini's, and retried
    assert fake_gemini.calls == 3
