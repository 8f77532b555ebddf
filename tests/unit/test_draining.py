"""Draining before a stop: readiness says 503 while the app still serves, and what SIGTERM does in the worker.

The worker's side runs here over a stand-in for gunicorn's gthread worker (the hooks it overrides, recording what
reaches them); tests/integration/test_draining.py proves the whole under real gunicorn and load."""
from __future__ import annotations

import pytest

from backend.http.context import backend_of
from backend.serving.drain import Drain, DrainingWorker
from tests.envelope import assert_error, assert_ok


def test_readiness_answers_503_while_draining_and_everything_else_still_serves(make_app, auth):
    app = make_app(SHUTDOWN_DRAIN_SECONDS="5")
    client = app.test_client()
    assert assert_ok(client.get("/health/ready"))["ready"] is True
    assert backend_of(app).drain.begin()
    response = client.get("/health/ready")
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert error["details"] == {"draining": True}
    assert 1 <= int(response.headers["Retry-After"]) <= 5  # the rest of the window
    # Liveness is unchanged (the process is healthy), and requests are still answered during the window.
    assert client.get("/health").get_json() == {"status": "ok"}
    assert assert_ok(client.post("/api/analyze", json={"text": "I recieve many letter."}, headers=auth))["errors"]
    assert assert_ok(client.get("/health/cache"))


def test_an_app_that_is_not_draining_is_ready(make_app):
    # Another app of the same process is not affected: each app's Drain is its own (the composition root's).
    draining, other = make_app(), make_app()
    backend_of(draining).drain.begin()
    assert assert_ok(other.test_client().get("/health/ready"))["ready"] is True


def test_a_drain_begins_once_and_is_over_after_its_window():
    drain = Drain(60)
    assert not drain.draining and not drain.over() and drain.remaining() == 60
    assert drain.begin() and drain.draining
    started = drain.started
    assert not drain.begin() and drain.started == started  # a second SIGTERM does not restart the window
    assert 0 < drain.remaining() <= 60 and not drain.over()
    drain.started = started - 61  # as if the window had passed
    assert drain.over() and drain.remaining() == 0
    instant = Drain(0)
    assert instant.begin() and instant.over()


class GThreadStandIn:
    """The gthread hooks DrainingWorker builds on, recording their calls."""

    def __init__(self) -> None:
        self.alive = True
        self.calls: list[str] = []
        self.deferred: list = []
        self.method_queue = self
        self.log = self

    def defer(self, callback, *args) -> None:
        self.deferred.append(callback)

    def info(self, message, *args) -> None:
        self.calls.append("log: " + (message % args).split(":")[0])

    def handle_exit(self, sig, frame) -> None:
        self.calls.append("gthread stop")
        self.alive = False

    def murder_pending(self) -> None:
        self.calls.append("murder_pending")

    def handle_request(self, req, conn) -> bool:
        self.calls.append("request")
        return True


class Worker(DrainingWorker, GThreadStandIn):
    pass


class Request:
    must_close = False

    def force_close(self) -> None:
        self.must_close = True


def worker(seconds: float | None) -> Worker:
    made = Worker()
    made.drain = None if seconds is None else Drain(seconds)
    return made


def test_sigterm_begins_the_window_and_the_worker_keeps_serving():
    w = worker(60)
    w.handle_exit(15, None)
    assert w.alive and w.drain.draining and "gthread stop" not in w.calls
    for callback in w.deferred:  # the main loop wakes up and logs
        callback()
    assert w.calls == ["log: draining for 60 s"]
    w.murder_pending()
    assert w.alive, "the window is still open"
    request = Request()
    assert w.handle_request(request, None) and request.must_close, "every response closes its connection"


def test_a_second_sigterm_changes_nothing_and_the_window_end_stops_the_worker():
    w = worker(60)
    w.handle_exit(15, None)
    started = w.drain.started
    w.handle_exit(15, None)
    assert w.alive and w.drain.started == started and len(w.deferred) == 1
    w.drain.started = started - 61
    w.murder_pending()
    assert not w.alive and w.calls[-1] == "log: drain window over"
    w.handle_exit(15, None)  # once stopped, as gthread's (a no-op)
    assert w.calls.count("gthread stop") == 1


@pytest.mark.parametrize("seconds", [0, None], ids=["no window", "no drain given"])
def test_without_a_window_sigterm_is_gunicorns_stop(seconds):
    w = worker(seconds)
    w.handle_exit(15, None)
    assert not w.alive and w.calls == ["gthread stop"] and w.deferred == []
    request = Request()
    w.handle_request(request, None)
    assert request.must_close is (seconds is not None)  # a drain that began (instantly) still closes
