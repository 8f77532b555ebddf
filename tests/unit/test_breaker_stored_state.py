"""A breaker's stored state that this version cannot use (garbage, other shapes, another Redis type): read as
closed and repaired, and the Lua and Python twins agreeing on which documents are malformed and on release."""
from __future__ import annotations

import json
import time

import pytest

from backend.errors import ProviderUnavailable
from backend.resilience.breaker import CircuitBreaker, Permit
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.store import MemoryStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix
from tests.unit.breaker_helpers import breaker_factory, fail  # noqa: F401  (the make_breaker fixture)

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
