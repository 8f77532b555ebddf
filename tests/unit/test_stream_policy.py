"""Provider streams through the policy: retried up to the first piece, never after; nothing held once it ends."""
from __future__ import annotations

import time

import pytest

from backend.errors import (
    ProviderBadResponse,
    ProviderRejected,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnavailable,
)
from backend.llm.client import LLMAnswer
from backend.resilience.streams import open_stream
from tests.unit.breaker_helpers import breaker_factory, fail  # noqa: F401  (the make_breaker fixture)
from tests.unit.stream_helpers import (
    Script,
    begin,
    breaker_state,
    decisions,
    durations,
    errors,
    free_slots,
    make_policy,
)


def test_pieces_pass_through_in_order_and_the_answer_is_set():
    policy, script = make_policy(), Script(["Hel", "lo", " there"])
    observed = durations()
    stream = begin(policy, script)
    assert script.calls == 1 and stream.provider == "gemini" and stream.answer is None
    assert free_slots(policy) == 1  # the stream holds its slot from the start
    assert list(stream) == ["Hel", "lo", " there"]
    assert stream.answer == LLMAnswer(text="Hello there", finish_reason="STOP", model="scripted")
    assert free_slots(policy) == 2 and script.finished == 1
    state = breaker_state(policy)
    assert (state["calls_in_window"], state["failures_in_window"]) == (1, 0)  # one success recorded
    assert durations() == observed + 1
    assert list(stream) == []  # exhausted stays exhausted


def test_yield_from_returns_the_answer():
    policy, script = make_policy(), Script(["a", "b"])

    def relay(stream):
        answer = yield from stream
        return answer

    relayed = relay(begin(policy, script))
    pieces = []
    with pytest.raises(StopIteration) as done:
        while True:
            pieces.append(next(relayed))
    assert pieces == ["a", "b"] and done.value.value.text == "ab"


def test_a_transient_error_before_the_first_piece_is_retried():
    policy, script = make_policy(), Script([ProviderServerError], ["ok", "!"])
    retries = decisions("retry")
    stream = begin(policy, script)
    assert script.calls == 2 and decisions("retry") == retries + 1
    assert list(stream) == ["ok", "!"]
    state = breaker_state(policy)
    assert (state["state"], state["calls_in_window"], state["failures_in_window"]) == ("closed", 1, 0)


@pytest.mark.parametrize(("play", "error", "match"), [([ProviderRejected], ProviderRejected, "scripted"),
                                                      ([ProviderBadResponse], ProviderBadResponse, "scripted"),
                                                      ([], ProviderBadResponse, "empty answer")])  # no piece at all
def test_a_non_transient_error_before_the_first_piece_is_not_retried(play, error, match):
    policy, script = make_policy(), Script(play, ["never"])
    with pytest.raises(error, match=match):
        begin(policy, script)
    assert script.calls == 1 and free_slots(policy) == 2
    assert breaker_state(policy)["state"] == "closed"  # none counts for the breaker


def test_transient_errors_before_the_first_piece_open_the_breaker_once_given_up():
    policy, script = make_policy(attempts=2), Script([ProviderServerError])
    failures = errors("ProviderServerError")
    with pytest.raises(ProviderServerError):
        begin(policy, script)
    assert script.calls == 2 and free_slots(policy) == 2
    assert breaker_state(policy)["state"] == "open" and errors("ProviderServerError") == failures + 1


def test_an_error_after_the_first_piece_is_raised_not_retried_and_opens_the_breaker(make_breaker):
    policy = make_policy(breaker=make_breaker(failure_threshold=1))
    script = Script(["Hel", ProviderServerError, "never"], ["a retry"])
    failed, counted = decisions("stream_failed"), errors("ProviderServerError")
    stream = begin(policy, script)
    assert next(stream) == "Hel"
    with pytest.raises(ProviderServerError):
        next(stream)
    assert script.calls == 1 and stream.answer is None
    assert decisions("stream_failed") == failed + 1 and errors("ProviderServerError") == counted + 1
    assert free_slots(policy) == 2 and breaker_state(policy)["state"] == "open"
    assert list(stream) == []
    stream.close()  # after the failure: nothing left to release, nothing released twice
    assert free_slots(policy) == 2


def test_an_error_after_the_first_piece_that_proves_nothing_leaves_the_breaker_closed():
    policy, script = make_policy(), Script(["Hel", ProviderBadResponse])
    stream = begin(policy, script)
    with pytest.raises(ProviderBadResponse):
        list(stream)
    assert breaker_state(policy)["state"] == "closed" and free_slots(policy) == 2


def test_an_open_breaker_refuses_without_starting_the_stream():
    policy, script = make_policy(), Script(["never"])
    fail(policy.breaker)
    refused = decisions("short_circuited")
    with pytest.raises(ProviderUnavailable) as refusal:
        begin(policy, script)
    assert refusal.value.retry_after >= 1
    assert script.calls == 0 and decisions("short_circuited") == refused + 1 and free_slots(policy) == 2


def test_a_full_bulkhead_refuses_without_starting_the_stream_until_a_stream_ends():
    policy = make_policy(limit=1)
    held = begin(policy, Script(["held"]))
    rejected, waiting = decisions("rejected"), Script(["next"])
    with pytest.raises(ProviderUnavailable):
        begin(policy, waiting)
    assert waiting.calls == 0 and decisions("rejected") == rejected + 1
    held.close()
    assert list(begin(policy, waiting)) == ["next"]


def test_a_passed_deadline_times_out_without_starting_the_stream():
    policy, script = make_policy(), Script(["never"])
    with pytest.raises(ProviderTimeout):
        open_stream(policy, script, deadline=time.monotonic() - 1)
    assert script.calls == 0 and free_slots(policy) == 2
    assert breaker_state(policy)["calls_in_window"] == 0  # our lack of time is not the provider's failure
