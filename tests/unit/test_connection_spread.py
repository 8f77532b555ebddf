"""Spreading connections: a worker accepts only while it holds no more than the others (backend/serving/spread.py).

The worker's side runs here over a stand-in for gunicorn's gthread worker (the hooks it overrides, recording what
reaches them); tests/integration/test_connection_spread.py proves the whole under real gunicorn."""
from __future__ import annotations

import multiprocessing
import time
from types import SimpleNamespace

from backend.serving.spread import (
    HELD_BACK_IDLE_POLL_SECONDS,
    HELD_BACK_POLL_SECONDS,
    MOVING_SECONDS,
    OUT,
    SLACK_SHARE,
    STALE_SECONDS,
    TURN_SECONDS,
    ConnectionTable,
    SpreadingWorker,
    assign,
    release,
)


class GThreadStandIn:
    """The gthread hooks SpreadingWorker builds on, recording what reaches them."""

    def __init__(self) -> None:
        self.accepting: bool | None = None
        self.waited: list[float] = []

    def set_accept_enabled(self, enabled: bool) -> None:
        self.accepting = enabled

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        self.waited.append(timeout)


class Worker(SpreadingWorker, GThreadStandIn):
    def __init__(self, table: ConnectionTable | None, slot: int | None, connections: int = 0) -> None:
        GThreadStandIn.__init__(self)
        if table is not None and slot is not None:
            assert table.claim(set(range(slot))) == slot  # as the master does before the fork
        self.connection_table, self.connection_slot, self.nr_conns = table, slot, connections
        self.draining = False

    def stands_aside(self) -> bool:
        return self.draining

    def take(self) -> None:
        """One accepted connection, as BoundedThreadWorker.accept counts it."""
        self.nr_conns += 1
        self.accepted()


def _write(table: ConnectionTable) -> None:
    table.held[1] = 7


def test_the_table_is_shared_with_the_processes_forked_after_it():
    table = ConnectionTable(4)
    assert list(table.held) == [OUT] * 4
    child = multiprocessing.get_context("fork").Process(target=_write, args=(table,))
    child.start()
    child.join(10)
    assert child.exitcode == 0 and table.held[1] == 7


def test_a_worker_takes_the_next_connection_only_while_it_holds_no_more_than_the_others():
    table = ConnectionTable(4)
    a, b = Worker(table, 0), Worker(table, 1)
    a.set_accept_enabled(True)
    b.set_accept_enabled(True)
    assert a.accepting and b.accepting and list(table.held[:2]) == [0, 0]
    a.take()
    assert a.accepting is False and a.held_back and table.held[0] == 1  # 1 > 0: the next goes to b
    b.take()
    assert b.accepting and table.held[1] == 1  # 1 <= 1
    b.take()
    assert b.accepting is False and b.held_back  # 2 > 1
    a.set_accept_enabled(True)  # gunicorn asks again on its next turn
    assert a.accepting and not a.held_back


def test_a_held_back_worker_looks_again_soon_and_publishes_closed_connections_on_every_turn():
    table = ConnectionTable(4)
    a, b = Worker(table, 0, connections=5), Worker(table, 1, connections=2)
    b.set_accept_enabled(True)
    a.set_accept_enabled(True)
    assert a.held_back and b.accepting
    a.wait_for_and_dispatch_events(1.0)
    b.wait_for_and_dispatch_events(1.0)
    assert a.waited == [HELD_BACK_POLL_SECONDS] and b.waited == [TURN_SECONDS]
    a.nr_conns = 0  # its clients left (kept-alive connections closed on the loop)
    a.wait_for_and_dispatch_events(1.0)
    assert table.held[0] == 0
    b.take()
    assert b.held_back  # 3 > 0


def test_a_worker_that_cannot_accept_holds_no_other_back():
    table = ConnectionTable(4)
    busy, other = Worker(table, 0), Worker(table, 1, connections=9)
    busy.set_accept_enabled(True)
    busy.set_accept_enabled(False)  # its threads are all busy, or it stops
    assert table.held[0] == OUT and not busy.held_back
    other.set_accept_enabled(True)
    assert other.accepting
    # Nor does a slot still empty (a worker booting) or freed (one that exited).
    assert table.others(excluding=1, now=time.monotonic()) == (None, 0)


def test_a_worker_whose_loop_is_stuck_holds_no_other_back():
    table = ConnectionTable(4)
    stuck, other = Worker(table, 0), Worker(table, 1, connections=9)
    stuck.set_accept_enabled(True)
    other.set_accept_enabled(True)
    assert other.held_back  # 9 > 0
    table.seen[0] = time.monotonic() - STALE_SECONDS - 1  # its loop has not turned since (gunicorn kills it later)
    other.set_accept_enabled(True)
    assert other.accepting and not other.held_back
    stuck.wait_for_and_dispatch_events(1.0)  # it turns again: it counts again
    other.set_accept_enabled(True)
    assert other.held_back


def test_a_draining_worker_stands_aside_while_another_accepts_and_accepts_alone():
    table = ConnectionTable(4)
    old, new = Worker(table, 0), Worker(table, 1, connections=10)
    old.draining = True
    new.set_accept_enabled(True)
    old.set_accept_enabled(True)
    assert table.held[0] == OUT and old.held_back and not old.accepting and new.accepting
    new.set_accept_enabled(False)  # draining too (a stop): every worker accepts as before
    old.set_accept_enabled(True)
    assert old.accepting


def test_a_worker_without_a_slot_accepts_as_gunicorn_does():
    lone = Worker(None, None, connections=50)
    lone.set_accept_enabled(True)
    assert lone.accepting and not lone.held_back
    table = ConnectionTable(1)
    Worker(table, 0).set_accept_enabled(True)
    beyond = Worker(table, None, connections=50)
    beyond.set_accept_enabled(True)
    assert beyond.accepting


def test_the_master_gives_each_worker_a_free_slot_in_one_table_and_frees_it_when_the_worker_exits():
    server = SimpleNamespace(WORKERS={})
    first, second = SimpleNamespace(), SimpleNamespace()
    assign(server, first)
    server.WORKERS[101] = first
    assign(server, second)
    server.WORKERS[102] = second
    assert first.connection_table is second.connection_table is server.connection_table
    assert (first.connection_slot, second.connection_slot) == (0, 1)
    server.connection_table.held[0] = 3
    release(server, first)  # child_exit: killed workers too
    del server.WORKERS[101]
    assert server.connection_table.held[0] == OUT
    replacement = SimpleNamespace()
    assign(server, replacement)
    assert replacement.connection_slot == 0 and replacement.connection_table is server.connection_table
    release(SimpleNamespace(), SimpleNamespace())  # a master without a table: nothing to do


def test_a_slot_freed_without_child_exit_starts_from_nothing_for_its_next_worker():
    server = SimpleNamespace(WORKERS={})
    gone = SimpleNamespace()
    assign(server, gone)
    server.connection_table.held[0], server.connection_table.seen[0] = 7, time.monotonic()
    # gunicorn's kill_worker found the process gone: worker_exit ran, child_exit did not, the slot is free again
    replacement = SimpleNamespace()
    assign(server, replacement)
    assert replacement.connection_slot == 0
    assert server.connection_table.held[0] == OUT and server.connection_table.seen[0] == 0.0


def test_a_worker_may_run_an_eighth_ahead_of_the_others_once_they_hold_eight():
    table = ConnectionTable(4)
    a, b = Worker(table, 0, connections=8), Worker(table, 1, connections=7)
    b.set_accept_enabled(True)
    a.set_accept_enabled(True)
    assert a.held_back  # 8 > 7: below eight, no slack
    b.nr_conns = 16
    b.set_accept_enabled(True)
    a.nr_conns = 18
    a.set_accept_enabled(True)
    assert SLACK_SHARE == 8 and a.accepting and not a.held_back  # 18 <= 16 + 16 // 8
    a.take()
    assert a.held_back and not a.accepting  # 19 > 18


def test_a_held_back_worker_looks_again_soon_only_while_the_others_counts_move():
    table = ConnectionTable(4)
    a, b = Worker(table, 0, connections=5), Worker(table, 1, connections=2)
    b.set_accept_enabled(True)
    a.set_accept_enabled(True)
    a.wait_for_and_dispatch_events(1.0)
    a._others_moved -= MOVING_SECONDS  # as if that long passed
    a.set_accept_enabled(True)  # and nothing moved meanwhile
    a.wait_for_and_dispatch_events(1.0)
    b.take()  # the other accepts: a burst is being taken
    a.set_accept_enabled(True)
    a.wait_for_and_dispatch_events(1.0)
    assert a.held_back and a.waited == [HELD_BACK_POLL_SECONDS, HELD_BACK_IDLE_POLL_SECONDS, HELD_BACK_POLL_SECONDS]
