"""The half-open breaker's trial permits: reissued when a trial vanishes, handed back by release() without
closing or re-opening, and release() changing nothing outside half-open or for a permit that was no trial."""
from __future__ import annotations

import time

import pytest

from backend.errors import ProviderUnavailable
from backend.resilience.breaker import Permit
from tests.unit.breaker_helpers import breaker_factory, fail  # noqa: F401  (the make_breaker fixture)


def test_a_vanished_trial_permit_is_reissued(make_breaker):
    breaker = make_breaker(trial_timeout=0.3)
    fail(breaker, 3)
    time.sleep(0.55)
    breaker.acquire()  # this trial's worker dies and never reports
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()
    time.sleep(0.35)
    assert breaker.acquire().trial is True


def test_a_released_trial_lets_the_next_caller_be_the_trial(make_breaker):
    breaker = make_breaker()
    fail(breaker, 3)
    time.sleep(0.55)
    trial = breaker.acquire()
    assert trial.trial
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()  # the one permit is out
    before = breaker.state()
    breaker.release(trial)  # its call proved nothing about the provider (say, a long input's timeout)
    assert breaker.state() == before and before["state"] == "half_open"  # neither closed nor re-opened
    assert breaker.acquire().trial is True  # at once, not after trial_timeout
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()  # still bounded: one permit handed back, one reissued


def test_releasing_a_trial_twice_never_frees_more_than_it_took(make_breaker):
    breaker = make_breaker()
    fail(breaker, 3)
    time.sleep(0.55)
    trial = breaker.acquire()
    breaker.release(trial)
    breaker.release(trial)  # a duplicate release: the count stops at zero rather than going below
    assert breaker.acquire().trial is True
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()


def test_a_release_keeps_the_trials_that_already_succeeded(make_breaker):
    breaker = make_breaker(half_open_calls=2)
    fail(breaker, 3)
    time.sleep(0.55)
    first, second = breaker.acquire(), breaker.acquire()
    breaker.record(first, failed=False)
    failures = breaker.state()["consecutive_failures"]
    breaker.release(second)
    state = breaker.state()
    assert state["state"] == "half_open" and state["consecutive_failures"] == failures
    breaker.record(breaker.acquire(), failed=False)  # the second success, counting the first one before the release
    assert breaker.state()["state"] == "closed"


def _stored(breaker) -> str | None:
    """The breaker's document as stored, to tell that an operation wrote nothing."""
    if breaker.redis is not None:
        return breaker.redis.client.get(breaker.redis.k(breaker.key))
    return breaker.local.get(breaker.key)


def test_releasing_a_non_trial_permit_changes_nothing(make_breaker):
    breaker = make_breaker(trial_timeout=30)
    early = breaker.acquire()  # began while closed
    fail(breaker, 2)
    closed_permit = breaker.acquire()
    stored = _stored(breaker)
    breaker.release(closed_permit)
    assert _stored(breaker) == stored and breaker.state()["consecutive_failures"] == 2
    fail(breaker)  # the run of failures was not broken: the third opens it
    time.sleep(0.55)
    assert breaker.acquire().trial is True
    stored = _stored(breaker)
    breaker.release(early)  # a permit from before the breaker opened must not free the trial's place
    assert _stored(breaker) == stored
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()


def _bring_to(breaker, state: str) -> None:
    if state == "closed":
        fail(breaker, 2)  # some history that a release must not touch
    elif state == "open":
        fail(breaker, 3)
    else:
        breaker.force_open()


@pytest.mark.parametrize("state", ["closed", "open", "forced_open"])
def test_a_release_outside_half_open_changes_nothing(make_breaker, state):
    breaker = make_breaker(recovery_timeout=30)
    _bring_to(breaker, state)
    stored, before = _stored(breaker), breaker.state()
    for trial in (True, False):  # a trial permit from an earlier half-open spell, and an ordinary one
        breaker.release(Permit(trial=trial, started=time.monotonic()))
    assert _stored(breaker) == stored and breaker.state() == before
    if state == "closed":
        assert breaker.acquire().trial is False
    else:
        with pytest.raises(ProviderUnavailable):
            breaker.acquire()
