"""Provider streams through the policy: retried up to the first piece, never after; nothing held once it ends."""
from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from backend.errors import (
    ProviderBadResponse,
    ProviderError,
    ProviderRejected,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnavailable,
)
from backend.llm.client import LLMAnswer
from backend.observability import metrics
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.bulkhead import Bulkhead
from backend.resilience.policy import ProviderPolicy
from backend.resilience.retry import RetryPolicy
from backend.resilience.store import MemoryStore
from backend.resilience.streams import ProviderStream, open_stream
from tests.unit.breaker_helpers import breaker_factory, fail  # noqa: F401  (the make_breaker fixture)

OPERATION = "converse_stream"


class Clock:
    """The breaker's clock, moved by hand so that a recovery timeout passes without waiting."""

    now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Script:
    """A ``start`` function: each call plays the next scenario (the last one repeats), a list of text pieces,
    exception types (raised there) and pauses (floats, slept); the generator returns the whole LLMAnswer."""

    def __init__(self, *plays: list) -> None:
        self.plays = plays
        self.calls = 0
        self.finished = 0  # generators whose finally ran
        self.abandoned = 0  # generators closed before their end (GeneratorExit at a yield)

    def __call__(self, seconds: float):
        assert seconds > 0
        play = self.plays[min(self.calls, len(self.plays) - 1)]
        self.calls += 1
        return self._run(play)

    def _run(self, play: list):
        text = []
        try:
            for item in play:
                if isinstance(item, float):
                    time.sleep(item)
                elif isinstance(item, str):
                    text.append(item)
                    yield item
                else:
                    raise item("scripted failure", provider="gemini")
            return LLMAnswer(text="".join(text), finish_reason="STOP", model="scripted")
        except GeneratorExit:
            self.abandoned += 1
            raise
        finally:
            self.finished += 1


def make_policy(*, limit: int = 2, attempts: int = 3, threshold: int = 1, slow: float = 10.0,
                clock: Clock | None = None, breaker: CircuitBreaker | None = None) -> ProviderPolicy:
    breaker = breaker or CircuitBreaker("gemini", BreakerConfig(failure_threshold=threshold, recovery_timeout=30),
                                        local=MemoryStore(), clock=clock or Clock(), slow_call_seconds=slow,
                                        open_hint_seconds=0)
    return ProviderPolicy("gemini", OPERATION, deadline_seconds=5, breaker=breaker,
                          bulkhead=Bulkhead("gemini", limit), retry=RetryPolicy(attempts, base=0.01, cap=0.02))


def begin(policy: ProviderPolicy, script: Script, input_seconds: float = 0.0) -> ProviderStream:
    return open_stream(policy, script, deadline=policy.deadline_for(input_seconds), input_seconds=input_seconds)


def free_slots(policy: ProviderPolicy) -> int:
    """How many bulkhead slots can be taken now (all given back afterwards)."""
    bulkhead, taken = policy.bulkhead, 0
    assert bulkhead is not None
    while True:
        try:
            bulkhead.acquire()
        except ProviderUnavailable:
            break
        taken += 1
    for _ in range(taken):
        bulkhead.release()
    return taken


def breaker_state(policy: ProviderPolicy) -> dict:
    return policy.breaker.state()  # type: ignore[union-attr]


def decisions(decision: str) -> float:
    return metrics.POLICY_DECISIONS.labels("gemini", OPERATION, decision)._value.get()


def errors(error_type: str) -> float:
    return metrics.AI_ERRORS.labels(OPERATION, error_type)._value.get()


def durations() -> float:
    labels = {"operation": OPERATION, "provider": "gemini"}
    return REGISTRY.get_sample_value("ai_operation_duration_seconds_count", labels) or 0.0


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


def finish_by(stream: ProviderStream, ending: str) -> None:
    if ending == "exhausted":
        list(stream)
    elif ending == "failed":
        with pytest.raises(ProviderError):
            list(stream)
    elif ending == "closed after one piece":
        next(stream)
        stream.close()
    elif ending == "closed twice, never iterated":
        stream.close()
        stream.close()
    elif ending == "context manager, caller's error":
        with pytest.raises(KeyError), stream:
            next(stream)
            raise KeyError("the caller's bug")


@pytest.mark.parametrize("ending", ["exhausted", "failed", "closed after one piece", "closed twice, never iterated",
                                    "context manager, caller's error"])
def test_the_slot_is_given_back_however_the_stream_ends(ending):
    policy = make_policy(limit=1)
    script = Script(["a", "b", ProviderServerError] if ending == "failed" else ["a", "b"])
    observed = durations()
    stream = begin(policy, script)
    assert free_slots(policy) == 0
    finish_by(stream, ending)
    stream.close()  # a finally block closing it once more changes nothing
    assert free_slots(policy) == 1 and script.finished == 1 and durations() == observed + 1


def test_close_ends_the_underlying_generator_and_stops_the_pieces():
    policy, script = make_policy(), Script(["a", "b", "c"])
    stream = begin(policy, script)
    assert next(stream) == "a"
    stream.close()
    assert (script.abandoned, script.finished) == (1, 1)
    assert list(stream) == [] and stream.answer is None
    assert breaker_state(policy)["calls_in_window"] == 0  # abandoned: neither a success nor a failure


def test_a_consumer_closed_mid_stream_releases_everything():
    policy, script = make_policy(limit=1), Script(["a", "b", "c"])

    def events(stream):  # as a server-sent-events route would relay it
        with stream:
            for piece in stream:
                yield f"data: {piece}\n\n"

    relay = events(begin(policy, script))
    assert next(relay) == "data: a\n\n"
    relay.close()  # the learner went away
    assert script.abandoned == 1 and free_slots(policy) == 1


def test_a_half_open_trial_gets_exactly_one_attempt():
    clock = Clock()
    policy, script = make_policy(clock=clock), Script([ProviderServerError], ["never"])
    fail(policy.breaker)
    clock.now += 31  # past the recovery timeout: the next call is the trial
    with pytest.raises(ProviderServerError):
        begin(policy, script)
    assert script.calls == 1 and breaker_state(policy)["state"] == "open"


def test_an_abandoned_trial_leaves_the_trial_to_the_next_stream_and_a_finished_one_closes_the_breaker():
    clock = Clock()
    policy = make_policy(clock=clock)
    fail(policy.breaker)
    clock.now += 31
    trial = begin(policy, Script(["a", "b"]))
    second = Script(["never"])
    with pytest.raises(ProviderUnavailable):  # the one trial is out
        begin(policy, second)
    assert second.calls == 0
    trial.close()  # says nothing about the provider: the trial permit goes back
    assert list(begin(policy, Script(["c", "d"]))) == ["c", "d"]
    assert breaker_state(policy)["state"] == "closed"


def test_slowness_is_judged_on_the_first_piece_net_of_the_input_not_on_the_whole_answer():
    policy = make_policy(slow=0.1)
    assert list(begin(policy, Script(["a", 0.15, "b", 0.15, "c"]))) == ["a", "b", "c"]  # a long answer
    assert breaker_state(policy)["state"] == "closed"
    list(begin(policy, Script([0.15, "late"]), input_seconds=0.5))  # a long input's allowance: not slow
    assert breaker_state(policy)["state"] == "closed"
    list(begin(policy, Script([0.15, "late"])))  # a slow provider
    assert breaker_state(policy)["state"] == "open"
