"""The breaker's semantics, identical on Redis (Lua) and on the local stores (Python)."""
from __future__ import annotations

import json
import time

import pytest

from backend.errors import ProviderUnavailable
from backend.resilience.breaker import CircuitBreaker, Permit
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.store import MemoryStore, StoreUnavailable
from backend.resilience.store_disk import DiskStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, RedisServer, purge, unique_prefix


@pytest.fixture(params=["memory", "disk", "redis"])
def make_breaker(request, tmp_path):
    made = []

    def build(slow: float = 5.0, **config):
        local = DiskStore(tmp_path / "disk") if request.param == "disk" else MemoryStore()
        redis = RedisStore(MAIN_REDIS_URL, prefix=prefix) if request.param == "redis" else None
        defaults = dict(failure_threshold=3, minimum_calls=100, recovery_timeout=0.5, half_open_calls=1)
        breaker = CircuitBreaker("gemini", BreakerConfig(**{**defaults, **config}), local=local, redis=redis,
                                 slow_call_seconds=slow)
        made.append(breaker)
        return breaker

    prefix = unique_prefix("breaker")
    yield build
    purge(prefix)


def fail(breaker, times=1):
    for _ in range(times):
        breaker.record(breaker.acquire(), failed=True)


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


def test_two_processes_share_one_breaker_through_redis():
    prefix = unique_prefix("shared-breaker")
    config = BreakerConfig(failure_threshold=2, recovery_timeout=30)
    one = CircuitBreaker("azure_speech", config, local=MemoryStore(), redis=RedisStore(MAIN_REDIS_URL, prefix=prefix))
    two = CircuitBreaker("azure_speech", config, local=MemoryStore(), redis=RedisStore(MAIN_REDIS_URL, prefix=prefix))
    fail(one, 1)
    fail(two, 1)
    assert one.state()["state"] == two.state()["state"] == "open"
    two.reset()
    assert one.acquire().trial is False
    purge(prefix)


def test_a_refusal_is_believed_briefly_without_reading_shared_state(make_breaker):
    breaker = make_breaker(failure_threshold=1, recovery_timeout=30)
    fail(breaker)
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()
    reads = []
    original = breaker._run
    breaker._run = lambda *args, **kwargs: reads.append(args) or original(*args, **kwargs)
    with pytest.raises(ProviderUnavailable) as refused:
        breaker.refuse_if_known_open()
    assert reads == [] and 25 <= refused.value.retry_after <= 30
    time.sleep(breaker.open_hint_seconds + 0.05)
    breaker.refuse_if_known_open()  # the hint is stale: the caller goes on to acquire(), which reads the state


def test_no_process_believes_an_old_refusal_once_a_reset_returns(make_breaker):
    mine, other = make_breaker(failure_threshold=1, recovery_timeout=30), None
    fail(mine)
    with pytest.raises(ProviderUnavailable):
        mine.acquire()
    other = make_breaker(failure_threshold=1, recovery_timeout=30)  # same shared state in the redis case
    other._open_hint = mine._open_hint  # it saw the same refusal just now
    started = time.monotonic()
    mine.reset()
    assert time.monotonic() - started >= mine.open_hint_seconds
    mine.refuse_if_known_open()
    other.refuse_if_known_open()  # its hint has expired by the time the reset returned


# Stored states this version cannot use: garbage, other JSON types, an older shape, wrong types, bad buckets.
MALFORMED = [
    "not json", "[]", "5", "null", '"open"', "{}",
    '{"state": "open", "failures": 7, "opened": 1700000000}',  # an older shape: no buckets, other field names
    ('{"state": "melted", "opened_at": 0, "next_probe_at": 0, "consecutive": 0, "buckets": {}, "trials": 0,'
     ' "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "open", "opened_at": "yesterday", "next_probe_at": 0, "consecutive": 0, "buckets": {},'
     ' "trials": 0, "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "half_open", "opened_at": 0, "next_probe_at": 0, "consecutive": 0, "buckets": {}, "trials": true,'
     ' "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "closed", "opened_at": 0, "next_probe_at": 0, "consecutive": null, "buckets": {}, "trials": 0,'
     ' "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "closed", "opened_at": 0, "next_probe_at": 0, "consecutive": 0, "buckets": [[1, 0]], "trials": 0,'
     ' "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "closed", "opened_at": 0, "next_probe_at": 0, "consecutive": 0, "buckets": {"abc": [1, 0]},'
     ' "trials": 0, "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "closed", "opened_at": 0, "next_probe_at": 0, "consecutive": 0, "buckets": {"17": 3}, "trials": 0,'
     ' "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "closed", "opened_at": 0, "next_probe_at": 0, "consecutive": 0, "buckets": {"17": [1, 2, 3]},'
     ' "trials": 0, "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "open", "opened_at": 0, "next_probe_at": 1e999, "consecutive": 0, "buckets": {}, "trials": 0,'
     ' "trial_ok": 0, "trial_since": 0}'),
    ('{"state": "open", "opened_at": 0, "next_probe_at": -5, "consecutive": 0, "buckets": {}, "trials": 0,'
     ' "trial_ok": 0, "trial_since": 0}'),
    "[" * 5000 + "]" * 5000,  # deeper than either JSON parser nests
]
# Shapes both twins accept: the current one with an unknown extra field, and an empty bucket list.
ACCEPTED = [
    ('{"state": "forced_open", "opened_at": 1, "next_probe_at": 0, "consecutive": 0, "buckets": {}, "trials": 0,'
     ' "trial_ok": 0, "trial_since": 0, "note": "from a newer version"}'),
    ('{"state": "forced_open", "opened_at": 1, "next_probe_at": 0, "consecutive": 0, "buckets": [], "trials": 0,'
     ' "trial_ok": 0, "trial_since": 0}'),
]


def _store_raw(breaker, raw: str) -> None:
    """Put a document under the breaker's key as another version (or a hand edit) would have."""
    if breaker.redis is not None:
        breaker.redis.client.set(breaker.redis.k(breaker.key), raw)
    else:
        breaker.local.set(breaker.key, raw)


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_stored_state_reads_as_closed_and_is_repaired_by_the_next_write(make_breaker, raw, caplog):
    breaker = make_breaker()
    _store_raw(breaker, raw)
    assert breaker.state()["state"] == "closed"
    permit = breaker.acquire()
    assert permit.trial is False
    breaker.record(permit, failed=True)
    state = breaker.state()
    assert state["state"] == "closed" and state["consecutive_failures"] == 1 and state["calls_in_window"] == 1
    fail(breaker, 2)
    assert breaker.state()["state"] == "open"  # the machine works on from the repaired document
    assert sum("unexpected shape" in r.getMessage() for r in caplog.records) == 1  # logged once, not per call


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_a_release_on_a_malformed_state_is_not_an_error(make_breaker, raw, caplog):
    breaker = make_breaker()
    _store_raw(breaker, raw)
    breaker.release(Permit(trial=True, started=time.monotonic()))  # read as closed: nothing to give back
    assert breaker.state()["state"] == "closed"
    fail(breaker, 3)
    assert breaker.state()["state"] == "open"
    assert sum("unexpected shape" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_operators_can_change_a_breaker_whose_state_is_malformed(make_breaker, raw):
    breaker = make_breaker()
    _store_raw(breaker, raw)
    breaker.force_open()
    assert breaker.state()["state"] == "forced_open"
    breaker.reset()
    assert breaker.state()["state"] == "closed"


@pytest.mark.parametrize("raw", ACCEPTED, ids=range(len(ACCEPTED)))
def test_both_twins_accept_the_current_shape_with_extras(make_breaker, raw, caplog):
    breaker = make_breaker()
    _store_raw(breaker, raw)
    with pytest.raises(ProviderUnavailable):
        breaker.acquire()
    assert breaker.state()["state"] == "forced_open"
    assert not any("unexpected shape" in r.getMessage() for r in caplog.records)


def test_the_twins_agree_on_every_document_which_is_malformed():
    from backend.resilience import breaker_state as machine

    prefix = unique_prefix("breaker-twins")
    store = RedisStore(MAIN_REDIS_URL, prefix=prefix)
    script = store.script(machine.LUA)
    config = BreakerConfig()
    try:
        for op in ("acquire", "release"):
            for raw in MALFORMED + ACCEPTED:
                store.client.set(store.k("b"), raw)
                _, _, _, malformed = script(keys=[store.k("b")], args=[op, *config.args(), 0, 1])
                assert (bool(malformed), machine.parse(raw)[1]) == (raw in MALFORMED,) * 2, (op, raw[:80])
    finally:
        purge(prefix)
        store.close()


def _document(state: str, trials: float, trial_ok: int = 0) -> str:
    return json.dumps({"state": state, "opened_at": 1700000000.5, "next_probe_at": 1700000060.5, "consecutive": 3,
                       "buckets": {"1700000000": [4, 3]}, "trials": trials, "trial_ok": trial_ok,
                       "trial_since": 1700000001.25})


# Every state, and in half-open every count of permits out (a hand-edited fraction included), for release.
RELEASE_CASES = [_document("closed", 0), _document("open", 0), _document("forced_open", 0),
                 _document("half_open", 0), _document("half_open", 1), _document("half_open", 2, trial_ok=1),
                 _document("half_open", 0.5), _document("half_open", 1.5), _document("open", 1)]


def test_the_twins_release_alike_and_write_only_what_changes():
    from backend.resilience import breaker_state as machine
    from backend.resilience.breaker import _apply_local

    prefix = unique_prefix("breaker-release-twins")
    store = RedisStore(MAIN_REDIS_URL, prefix=prefix)
    script = store.script(machine.LUA)
    config = BreakerConfig(half_open_calls=2)
    try:
        for raw in RELEASE_CASES:
            for trial in (0, 1):
                store.client.set(store.k("b"), raw)
                answer, _, _, malformed = script(keys=[store.k("b")], args=["release", *config.args(), 0, trial])
                written, (py_answer, _, py_malformed) = _apply_local(raw, "release", 0.0, False, bool(trial), config)
                after = store.client.get(store.k("b"))
                assert (answer, bool(malformed)) == (py_answer, py_malformed) == ("ok", False)
                if written is None:
                    assert after == raw, (raw, trial)  # neither twin wrote
                else:
                    assert json.loads(after) == json.loads(written), (raw, trial)
                    assert json.loads(after)["trials"] == max(json.loads(raw)["trials"] - 1, 0)
                expect_change = trial and '"half_open"' in raw and json.loads(raw)["trials"] > 0
                assert (written is not None) == bool(expect_change), (raw, trial)
    finally:
        purge(prefix)
        store.close()


def test_another_redis_type_under_the_key_is_malformed_state_not_an_error(caplog):
    prefix = unique_prefix("breaker-type")
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=1), local=MemoryStore(),
                             redis=RedisStore(MAIN_REDIS_URL, prefix=prefix))
    breaker.redis.client.hset(breaker.redis.k(breaker.key), "state", "open")
    try:
        assert breaker.state()["state"] == "closed"
        breaker.release(Permit(trial=True, started=time.monotonic()))  # read as closed: no error, nothing written
        assert breaker.redis.client.type(breaker.redis.k(breaker.key)) == "hash"
        assert breaker.acquire().trial is False
        assert breaker.redis.available()  # answered by Redis, not by the local fallback
        fail(breaker)
        assert breaker.state()["state"] == "open"
        assert breaker.redis.client.type(breaker.redis.k(breaker.key)) == "string"
    finally:
        purge(prefix)


def test_redis_times_the_breaker_whatever_each_workers_clock_says():
    """Workers an hour apart share one window and one recovery deadline, both on Redis's clock."""
    prefix = unique_prefix("breaker-clock")
    config = BreakerConfig(failure_threshold=100, failure_rate=0.5, minimum_calls=4, recovery_timeout=30)

    def worker(skew: float) -> CircuitBreaker:
        return CircuitBreaker("gemini", config, local=MemoryStore(), redis=RedisStore(MAIN_REDIS_URL, prefix=prefix),
                              clock=lambda: time.time() + skew)

    behind, ahead = worker(-3600), worker(+3600)
    try:
        fail(behind, 2)
        fail(ahead, 2)  # with each worker's own clock, the other's buckets fall out of the window: 2 calls, not 4
        assert ahead.state()["state"] == behind.state()["state"] == "open"
        with pytest.raises(ProviderUnavailable) as refused:
            ahead.acquire()  # an hour ahead, its own clock would say the recovery time has long passed
        assert 25 <= refused.value.retry_after <= 30
        with pytest.raises(ProviderUnavailable) as refused:
            behind.acquire()  # an hour behind: its clock would make the wait an hour and a half
        assert 25 <= refused.value.retry_after <= 30
        with pytest.raises(ProviderUnavailable) as refused:
            behind.refuse_if_known_open()  # the remembered refusal runs on this process's monotonic time
        assert 25 <= refused.value.retry_after <= 30
    finally:
        purge(prefix)


def test_the_python_twin_uses_the_clock_it_is_given(tmp_path):
    now = [1_000_000.0]
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=2, recovery_timeout=30),
                             local=DiskStore(tmp_path / "disk"), clock=lambda: now[0])
    fail(breaker, 2)
    assert breaker.state()["opened_at"] == 1_000_000.0
    now[0] += 31
    assert breaker.acquire().trial is True


def test_operator_changes_are_refused_while_redis_is_down_and_nothing_is_half_applied():
    with RedisServer() as server:
        local = MemoryStore()
        breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=1, recovery_timeout=30), local=local,
                                 redis=RedisStore(server.url, prefix="b:", timeout=0.2, probe_interval=0.2))
        fail(breaker)
        server.stop()
        with pytest.raises(StoreUnavailable) as refused:
            breaker.force_open()
        assert refused.value.store == "redis"
        with pytest.raises(StoreUnavailable):
            breaker.reset()
        assert local.get(breaker.key) is None  # neither change went to the local fallback
        assert breaker.acquire().trial is False  # the outage itself still fails open onto local state
        server.start()
        time.sleep(0.25)
        breaker.force_open()
        with pytest.raises(ProviderUnavailable):
            breaker.acquire()
