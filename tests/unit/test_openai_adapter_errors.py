"""The OpenAI-compatible fallback adapter, failures of plain calls: every HTTP and transport failure mapped to our
error types, unusable or misshapen answers, hangs and input-blamed timeouts, and Retry-After in all its sources."""
# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

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
from backend.observability.cost import ledger
from backend.providers.openai_compat_errors import retry_after
from backend.providers.openai_compat_wire import answer_of
from backend.schemas.answers import SubtopicList
from tests.unit.openai_adapter_helpers import MARGIN, MODEL, ask, fake, llm, make, quick, timed  # noqa: F401

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

