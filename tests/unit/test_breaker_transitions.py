"""The breaker's state machine: closed to open (failure run, failure rate, slow calls), half-open trials, forced open.

Each test runs on the memory, disk and Redis stores: the same semantics in Python and in Lua."""
from __future__ import annotations

import time

import pytest

from backend.errors import ProviderUnavailable
from tests.unit.breaker_helpers import breaker_factory, fail  # noqa: F401  (the make_breaker fixture)


def test_opens_after_consecutive_failures_and_rejects_with_retry_after(make_breaker):
    breaker = make_breaker()
    fail(breaker, 2)
    breaker.record(breaker.acquire(), failed=False)  # a success resets the run
    fail(breaker, 2)
    assert breaker.state()["state"] == "closed"
    fail(breaker)
    state = breaker.state()
    assert state["state"] == "open" and state["opened_at"] and state["next_probe_at"] > state["opened_at"]
    with pytest.raises(ProviderUnavailable) as refused:
        breaker.acquire()
    assert 0 < refused.value.retry_after <= 1.0


def test_opens_on_failure_rate_over_the_window(make_breaker):
    breaker = make_breaker(failure_threshold=100, minimum_calls=10, failure_rate=0.5)
    for i in range(9):
        breaker.record(breaker.acquire(), failed=i % 2 == 0)  # 5 of 9 failed, but fewer than 10 calls
    assert breaker.state()["state"] == "closed"
    breaker.record(breaker.acquire(), failed=False)  # 10 calls, 5 failures: 50 %
    assert breaker.state()["state"] == "open"


def test_half_open_allows_bounded_trials_and_success_closes(make_breaker):
    breaker = make_breaker(half_open_calls=2)
    fail(breaker, 3)
    time.sleep(0.55)
    first, second = breaker.acquire(), breaker.acquire()
    assert first.trial and second.trial
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()  # permits are spent until the trials report
    breaker.record(first, failed=False)
    assert breaker.state()["state"] == "half_open"
    breaker.record(second, failed=False)
    assert breaker.state()["state"] == "closed"
    assert breaker.acquire().trial is False


def test_a_failed_trial_reopens(make_breaker):
    breaker = make_breaker()
    fail(breaker, 3)
    time.sleep(0.55)
    trial = breaker.acquire()
    breaker.record(trial, failed=True)
    assert breaker.state()["state"] == "open"
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()


def test_slow_successes_count_as_failures(make_breaker):
    breaker = make_breaker(slow=0.05)
    for _ in range(3):
        permit = breaker.acquire()
        time.sleep(0.06)
        breaker.record(permit, failed=False)
    assert breaker.state()["state"] == "open"


def test_forced_open_holds_until_reset(make_breaker):
    breaker = make_breaker()
    breaker.force_open()
    time.sleep(0.55)
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()
    assert breaker.state()["state"] == "forced_open"
    breaker.reset()
    assert breaker.state()["state"] == "closed" and breaker.acquire().trial is False


def test_calls_that_began_before_opening_do_not_move_it(make_breaker):
    breaker = make_breaker()
    early = breaker.acquire()
    fail(breaker, 3)
    breaker.record(early, failed=False)
    assert breaker.state()["state"] == "open"
