"""Provider streams through the policy, however they end: nothing held afterwards (slot, trial), the generator
closed, and slowness judged on the first piece."""
from __future__ import annotations

import pytest

from backend.errors import (
    ProviderError,
    ProviderServerError,
    ProviderUnavailable,
)
from backend.resilience.streams import ProviderStream
from tests.unit.breaker_helpers import fail
from tests.unit.stream_helpers import (
    Clock,
    Script,
    begin,
    breaker_state,
    durations,
    free_slots,
    make_policy,
)


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
