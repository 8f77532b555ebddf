"""Writes nobody waits for, sent to Redis together: one round trip where a paid miss used to spend four.

An uncached call ends with four writes whose replies change nothing for the request: the breaker's record, the
budget's settlement, the cache entry and the flight lock handed on as DONE. One by one they cost four round trips,
each a system call pair, a parse and a wait for the GIL on a busy worker. Inside ``RedisStore.deferring()`` they
are queued on the thread and go out as one pipeline when the block ends, or just before the thread's next command
of its own: Redis still sees each thread's commands in the order the thread issued them, so nothing another
reader could observe changes order (the cache entry is still written before the lock that points to it is handed
on), and a later read on the same thread sees its own writes.

A write that fails in the batch runs its ``failed`` callback (the breaker and the meter then count locally, as
they do when Redis is down); a script Redis forgot (NOSCRIPT after a restart) is sent again on its own.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Write:
    """One queued write: ``issue`` sends it through a client or a pipeline; ``replied`` gets its reply, ``failed`` is
    called instead when it could not be applied."""

    issue: Callable[[Any], Any]
    replied: Callable[[Any], object] | None = None
    failed: Callable[[], object] | None = None


def script_write(script: Any, keys: list[str], args: list[Any]) -> Callable[[Any], Any]:
    """How to send a registered Lua script: EVALSHA in a pipeline (a Script object there would first ask SCRIPT
    EXISTS, a round trip of its own), the Script itself on a client (which loads it when Redis has forgotten it)."""

    def issue(client: Any) -> Any:
        if isinstance(client, redis.client.Pipeline):
            return client.evalsha(script.sha, len(keys), *keys, *args)
        return script(keys=keys, args=args, client=client)

    return issue


class Batches:
    """The writes each thread has queued, while a ``deferring()`` block is open on it."""

    def __init__(self) -> None:
        self._local = threading.local()

    def open(self) -> bool:
        """Start queueing on this thread; False when a batch is already open (the outer block sends it)."""
        if getattr(self._local, "writes", None) is not None:
            return False
        self._local.writes = []
        return True

    def close(self) -> list[Write]:
        """Stop queueing on this thread; the writes still to send."""
        writes, self._local.writes = self._local.writes, None
        return writes

    def queue(self, write: Write) -> bool:
        """Queue a write when a batch is open on this thread; False when it must be sent now."""
        writes = getattr(self._local, "writes", None)
        if writes is None:
            return False
        writes.append(write)
        return True

    def take(self) -> list[Write]:
        """The writes queued so far (the batch stays open): sent before a command that cannot wait."""
        writes = getattr(self._local, "writes", None)
        if not writes:
            return []
        self._local.writes = []
        return writes


def settle_replies(writes: list[Write], replies: list[Any], resend: Callable[[Write], None],
                   refused: Callable[[BaseException], bool]) -> None:
    """Hand each write its reply; a forgotten script goes again on its own, any other error counts as a failure
    (``refused`` says whether it also means Redis takes no writes at all)."""
    for write, reply in zip(writes, replies, strict=True):
        if isinstance(reply, redis.exceptions.NoScriptError):
            resend(write)
        elif isinstance(reply, Exception):
            refused(reply)
            run_failed(write)
        else:
            run_replied(write, reply)


def run_replied(write: Write, reply: Any) -> None:
    """A write was applied: its callback reads the reply. Like a fallback, it never turns the request into an error
    (the batch is sent as a block ends, maybe while the request's own exception is on its way)."""
    if write.replied is None:
        return
    try:
        write.replied(reply)
    except Exception:
        logger.exception("reading the reply of a redis write failed")


def run_failed(write: Write) -> None:
    """A write could not be applied: its fallback runs (it must never turn the request into an error)."""
    if write.failed is None:
        return
    try:
        write.failed()
    except Exception:  # a fallback store that fails too has logged it; the request's answer stands
        logger.exception("fallback for a failed redis write failed")
