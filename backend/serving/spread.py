"""Spreading connections evenly over the workers: a worker takes a new one only while it holds no more than the others.

gunicorn's workers share one listening socket, each waiting on it in its own poller. A new connection wakes every
idle worker and the first to run accepts it; still running, it is also first for the next one. Clients that
connect together (a pool after a reload, a load generator) thus land mostly on one worker, and kept alive they stay
there: measured (bench/connection_spread.py), wrk -c16 held 13/3 over 2 workers and 10/5/0 over 3; 8 Python clients
anything from 4/4 to 8/0, and up to 8/0/0 over 3. With CPU-bound requests that worker's GIL then does most of the
work while the others idle: spread evenly, uncached calls under wrk ran 1.12x (2 workers) and 1.19x (3) as fast,
their p99 0.30x and 0.73x, cache hits unchanged.

Here every worker writes how many connections it holds into a table that the master makes before the first fork
(an anonymous shared mapping, one slot per worker: assign() and release() are its pre_fork and child_exit hooks),
and accepts only while it holds no more than the fewest held by any other worker that accepts (an eighth more once
that is 8 or more, SLACK_SHARE: workers accepting a burst together then do not wait on the slowest at every
connection). A worker that cannot accept now (its threads busy, worker_connections reached, booting, stopping) is
left out, so it never holds the others back; a draining worker stands aside, accepting only while no other worker
can (a reload's new workers take the connections its `Connection: close` sends back; on a stop every worker drains
and all accept as before). A worker held back looks again on every turn of its loop, at least every
HELD_BACK_POLL_SECONDS while the others' counts move (they change without waking it). A worker whose loop has not
turned for STALE_SECONDS (stuck, until gunicorn's timeout kills it) is left out too: it never holds new connections
hostage.

Why not gunicorn's reuse_port (a listening socket per worker): the kernel hashes connections over the sockets, even
only on average (8 clients still 6/2), and a connection queued on the socket of a worker that stops is reset: 4 of
181 requests failed over 3 reloads, none here (bench/connection_spread.py measures both).

No gunicorn import here: the worker (backend/serving/worker.py) mixes this in, config/gunicorn.conf.py wires the
hooks.
"""
from __future__ import annotations

import ctypes
import mmap
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gunicorn.workers.gthread import ThreadWorker as _GThreadWorker
else:
    _GThreadWorker = object

# WEB_CONCURRENCY is at most 64, and a reload runs the old and the new workers side by side; a worker beyond the
# table's slots (more added with TTIN) accepts as gunicorn does.
SLOTS = 128
OUT = -1  # a slot whose worker takes no connections now
# A worker held back looks again this soon while the others' counts move (a burst being accepted), and at the
# slower pace once they stand still (an uneven spread that only closing connections will even out): it is not
# woken when another worker accepts. A burst of 200 connections over 4 workers got its first answers at p50 300 ms,
# max 630 ms when held-back workers looked every 20 ms and none could run ahead (gunicorn's own accept: 90 / 140 ms);
# with the faster look and SLACK_SHARE, 80 / 130 ms (python -m bench.connection_spread, "burst").
HELD_BACK_POLL_SECONDS = 0.005
HELD_BACK_IDLE_POLL_SECONDS = 0.02
MOVING_SECONDS = 0.1  # the others' counts changed this lately: a burst is being accepted
# A worker may run this share ahead of the fewest held by another (0 below 8): workers accepting a burst together
# do not wait on the slowest at every connection, and the spread stays within 1/8 (+1) of even.
SLACK_SHARE = 8
# A worker writes the time into its slot on every turn of its loop (at least every TURN_SECONDS). One whose loop has
# not turned for STALE_SECONDS is stuck (gunicorn kills it after `timeout`): it must not hold the others back
# meanwhile, and while it still looks alive with the fewest connections, the others accept no more than one each.
TURN_SECONDS = 0.5
STALE_SECONDS = 1.5


class ConnectionTable:
    """Connections held by each worker slot, in memory the master shares with the workers it forks."""

    def __init__(self, slots: int = SLOTS) -> None:
        class Layout(ctypes.Structure):
            _fields_ = [("used", ctypes.c_int32),  # slots ever claimed: the workers look no further
                        ("held", ctypes.c_int32 * slots),
                        ("seen", ctypes.c_double * slots)]  # time.monotonic() (one clock for all processes)

        self._memory = mmap.mmap(-1, ctypes.sizeof(Layout))  # anonymous and shared: every later fork sees it
        self._table = Layout.from_buffer(self._memory)
        self.held, self.seen = self._table.held, self._table.seen
        self.held[:] = [OUT] * slots

    def claim(self, taken: set[int | None]) -> int | None:
        """A free slot (master side, before a fork), None when all are taken."""
        slot = next((slot for slot in range(len(self.held)) if slot not in taken), None)
        if slot is not None:
            # A slot freed without child_exit (gunicorn's kill_worker finding the process gone) may still hold its
            # last worker's count: the new worker starts from nothing.
            self.held[slot], self.seen[slot] = OUT, 0.0
            self._table.used = max(self._table.used, slot + 1)
        return slot

    def others(self, excluding: int, now: float) -> tuple[int | None, int]:
        """(fewest, total): the fewest connections held by a worker that accepts, other than `excluding`, among
        those whose loop turned lately (None when there is none), and what all of those hold together."""
        used = self._table.used
        fresh = now - STALE_SECONDS
        counts = [held for slot, (held, seen) in enumerate(zip(self.held[:used], self.seen[:used], strict=True))
                  if held != OUT and seen >= fresh and slot != excluding]
        return min(counts, default=None), sum(counts)


def assign(server: Any, worker: Any) -> None:
    """gunicorn's pre_fork hook: the table (made at the first fork, kept across reloads) and a slot for the worker."""
    table = getattr(server, "connection_table", None)
    if table is None:
        table = server.connection_table = ConnectionTable()
    worker.connection_table = table
    worker.connection_slot = table.claim({getattr(w, "connection_slot", None) for w in server.WORKERS.values()})


def release(server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: a worker that exited, killed too, no longer counts."""
    table, slot = getattr(server, "connection_table", None), getattr(worker, "connection_slot", None)
    if table is not None and slot is not None:
        table.held[slot] = OUT


class SpreadingWorker(_GThreadWorker):
    """What spreading changes in gunicorn's gthread worker: a mixin, listed before ThreadWorker."""

    connection_table: ConnectionTable | None = None  # given by assign(); None: accept as gunicorn does
    connection_slot: int | None = None
    nr_conns: int  # gunicorn's: the connections this worker holds
    held_back = False  # able to accept, but holding more connections than another worker that accepts
    _able = False  # would accept, were it not for the others
    _published = OUT
    _others_total: int | None = None  # what the others held at the last look
    _others_moved = 0.0  # when that last changed (time.monotonic())

    def stands_aside(self) -> bool:
        """Whether this worker takes connections only while no other worker can (a draining one)."""
        return False

    def set_accept_enabled(self, enabled: bool) -> None:
        """Accept only within this worker's share (gunicorn asks again on every turn of its loop while it does not
        accept)."""
        self._able = enabled
        self.publish()
        self.held_back = enabled and not self.within_share()
        super().set_accept_enabled(enabled and not self.held_back)

    def within_share(self) -> bool:
        """Whether this worker may take the next connection: it holds no more than any other that accepts."""
        table, slot = self.connection_table, self.connection_slot
        if table is None or slot is None:
            return True
        now = time.monotonic()
        fewest, total = table.others(slot, now)
        if total != self._others_total:
            self._others_total, self._others_moved = total, now
        return fewest is None or (not self.stands_aside() and self.nr_conns <= fewest + fewest // SLACK_SHARE)

    def publish(self) -> None:
        """Write this worker's connections into its slot (OUT while it does not accept, or stands aside), and that
        its loop turns."""
        table, slot = self.connection_table, self.connection_slot
        if table is None or slot is None:
            return
        table.seen[slot] = time.monotonic()
        value = self.nr_conns if self._able and not self.stands_aside() else OUT
        if value != self._published:
            table.held[slot] = self._published = value

    def accepted(self) -> None:
        """After each accept: stop once past this worker's share, so the next connection goes to another."""
        if self._able:
            self.set_accept_enabled(True)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """Each turn of the loop: publish the count (connections closed meanwhile); a worker held back waits less,
        and none waits longer than TURN_SECONDS, so that its slot says it is alive."""
        self.publish()
        if self.held_back:
            moving = time.monotonic() - self._others_moved < MOVING_SECONDS
            timeout = HELD_BACK_POLL_SECONDS if moving else HELD_BACK_IDLE_POLL_SECONDS
        super().wait_for_and_dispatch_events(min(timeout, TURN_SECONDS))
