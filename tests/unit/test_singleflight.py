"""Single-flight: one computation per key among threads, and across processes through the store."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.errors import ProviderServerError
from backend.resilience.singleflight import DONE, SingleFlight
from backend.resilience.store import MemoryStore


def slow(value, calls, seconds=0.3):
    def compute():
        calls.append(1)
        time.sleep(seconds)
        return value
    return compute


def test_threads_share_one_computation():
    flights, calls = SingleFlight(None), []
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: flights.run("k", slow("v", calls), lambda: None,
                                                      time.monotonic() + 5), range(20)))
    assert calls == [1]
    assert [value for value, _ in results] == ["v"] * 20
    assert sum(led for _, led in results) == 1


def test_followers_get_the_leaders_error():
    flights, calls = SingleFlight(None), []

    def failing():
        calls.append(1)
        time.sleep(0.2)
        raise ProviderServerError("boom", provider="gemini")

    def run(_):
        try:
            flights.run("k", failing, lambda: None, time.monotonic() + 5)
        except ProviderServerError as exc:
            return exc.message
    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(run, range(10))) == ["boom"] * 10
    assert calls == [1]


def test_a_follower_in_another_process_takes_the_cached_result():
    store, shared = MemoryStore(), {}
    leader_side, follower_side = SingleFlight(store), SingleFlight(store)  # two processes, one store
    calls: list[int] = []

    def lead():
        def compute():
            calls.append(1)
            time.sleep(0.3)
            shared["k"] = "v"
            return "v"
        return leader_side.run("k", compute, lambda: shared.get("k"), time.monotonic() + 5)

    leader = threading.Thread(target=lead)
    leader.start()
    time.sleep(0.05)
    value, led = follower_side.run("k", slow("other", calls), lambda: shared.get("k"), time.monotonic() + 5)
    leader.join()
    assert (value, led) == ("v", False) and calls == [1]


def test_a_dead_leaders_lock_expires_and_a_follower_takes_over():
    store = MemoryStore()
    store.add("flight:k", "dead-leader", ttl=0.4)  # a leader that crashed without releasing or renewing
    calls: list[int] = []
    started = time.monotonic()
    value, led = SingleFlight(store).run("k", slow("mine", calls, 0.01), lambda: None, time.monotonic() + 5)
    assert (value, led) == ("mine", True) and calls == [1]
    assert time.monotonic() - started >= 0.35


def test_a_live_leader_keeps_its_lock_past_the_ttl():
    store = MemoryStore()
    flights = SingleFlight(store, lock_ttl=0.3)
    holder = threading.Thread(target=lambda: flights.run("k", slow("v", [], 1.0), lambda: None,
                                                         time.monotonic() + 5))
    holder.start()
    time.sleep(0.8)  # well past one lock_ttl: the renewer must have extended it
    assert store.get("flight:k") is not None
    holder.join()
    assert store.get("flight:k") == DONE  # finished: the marker outlives the flight briefly


def test_a_leaders_error_reaches_its_followers_in_other_processes():
    store = MemoryStore()
    store.add("flight:k", "leader-token", ttl=5)

    def leader_fails():
        time.sleep(0.2)  # the follower is polling by now
        store.set("flight-error:k:leader-token",
                  '{"type": "ProviderServerError", "message": "upstream 500", "provider": "gemini"}', 2)
        store.delete_if_equals("flight:k", "leader-token")
    threading.Thread(target=leader_fails).start()
    calls: list[int] = []
    with pytest.raises(ProviderServerError, match="upstream 500"):
        SingleFlight(store).run("k", slow("x", calls), lambda: None, time.monotonic() + 2)
    assert calls == []


def test_a_caller_arriving_after_a_failed_flight_makes_a_fresh_attempt():
    store = MemoryStore()
    first, second = SingleFlight(store), SingleFlight(store)  # two processes, one store

    def failing():
        raise ProviderServerError("boom", provider="gemini")
    with pytest.raises(ProviderServerError):
        first.run("k", failing, lambda: None, time.monotonic() + 5)
    calls: list[int] = []
    assert second.run("k", slow("fresh", calls, 0.01), lambda: None, time.monotonic() + 5) == ("fresh", True)
    assert calls == [1]


def test_waiting_is_bounded_by_the_deadline():
    store = MemoryStore()
    store.add("flight:k", "someone", ttl=30)
    from backend.errors import ProviderTimeout
    with pytest.raises(ProviderTimeout):
        SingleFlight(store).run("k", slow("x", []), lambda: None, time.monotonic() + 0.3)


def test_a_caller_arriving_just_after_another_process_finished_takes_its_result():
    """The lookup missed, then the other leader stored and released before our lock attempt: no second call."""
    store = MemoryStore()
    shared: dict[str, str] = {}
    first, second = SingleFlight(store), SingleFlight(store)  # two processes, one store
    calls: list[int] = []

    def compute():
        calls.append(1)
        shared["k"] = "v"
        return "v"
    assert first.run("k", compute, lambda: shared.get("k"), time.monotonic() + 5) == ("v", True)
    # The second process looked the key up before the first stored it; it now finds the finished flight's marker.
    assert second.run("k", compute, lambda: shared.get("k"), time.monotonic() + 5) == ("v", False)
    assert calls == [1]


def test_a_finished_flight_whose_value_is_not_visible_does_not_hold_the_next_caller():
    """The DONE marker without a readable value (expired at once, or another cache generation): lead at once."""
    store = MemoryStore()
    flights, calls = SingleFlight(store, done_ttl=30), []
    assert flights.run("k", slow("first", calls, 0.01), lambda: None, time.monotonic() + 5) == ("first", True)
    started = time.monotonic()
    assert flights.run("k", slow("second", calls, 0.01), lambda: None, time.monotonic() + 5) == ("second", True)
    assert calls == [1, 1] and time.monotonic() - started < 1


def test_a_failed_flight_leaves_no_marker():
    store = MemoryStore()

    def failing():
        raise ProviderServerError("boom", provider="gemini")
    with pytest.raises(ProviderServerError):
        SingleFlight(store).run("k", failing, lambda: None, time.monotonic() + 5)
    assert store.get("flight:k") is None
