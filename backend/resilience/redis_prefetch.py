"""Reads that ride along with a thread's next Lua script: a Redis-tier cache hit in one round trip, not two.

A cache hit on the AI endpoints made two round trips to Redis: the rate limits' script (backend.resilience.rate_window),
then the GET of the cached entry, each a pool checkout, a send, a wait for the reply (the GIL given up and taken
back) and a parse. A view that knows, before the limits are taken, which entry it will read asks for it
(``RedisStore.prefetch_bytes``); the thread's next script call then sends the script and those GETs in one pipeline,
and the entry is handed to the ``get_bytes`` that asks for it. The limits stay exact: the script decides as before,
and an entry read for a request it refuses is dropped with the request (``RedisStore.forget_prefetched``).

The script's reply comes through the binary connection (an entry is bytes): it is decoded as the text client would
have, so callers see the same reply either way. A script Redis forgot (NOSCRIPT after a restart) is sent again on
its own, which loads it; the reads that rode with it are kept.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import redis


class Prefetches:
    """Per thread: the reads asked for (sent with the next script call), and the replies not yet taken."""

    def __init__(self) -> None:
        self._local = threading.local()

    def ask(self, name: str) -> None:
        """Read ``name`` (a full Redis key) with this thread's next script call."""
        asked = getattr(self._local, "asked", None)
        if asked is None:
            self._local.asked = asked = []
        if name not in asked:
            asked.append(name)

    def asked(self) -> list[str]:
        """The reads to send now (no longer asked for once returned)."""
        asked = getattr(self._local, "asked", None)
        if not asked:
            return []
        self._local.asked = []
        return asked

    def got(self, names: list[str], replies: list[Any]) -> None:
        """Keep the replies of reads sent (an error is not kept: that read is made again when asked for)."""
        got = getattr(self._local, "got", None)
        if got is None:
            self._local.got = got = {}
        for name, reply in zip(names, replies, strict=True):
            if not isinstance(reply, Exception):
                got[name] = reply

    def take(self, name: str) -> tuple[bool, bytes | None]:
        """(True, the value read) once for a read made ahead, else (False, None): read it now."""
        got = getattr(self._local, "got", None)
        if not got or name not in got:
            return False, None
        return True, got.pop(name)

    def drop(self, name: str) -> None:
        """Forget a read of ``name``, asked for or made: this thread is writing the key."""
        asked, got = getattr(self._local, "asked", None), getattr(self._local, "got", None)
        if asked and name in asked:
            asked.remove(name)
        if got:
            got.pop(name, None)

    def forget(self) -> None:
        """Forget every read of this thread (its request is over: a later one must read afresh)."""
        self._local.asked = None
        self._local.got = None


class RidingScript:
    """A registered Lua script that carries this thread's prefetched reads (see the module doc); otherwise, and on
    a pipeline or a client given, it is the script as redis-py calls it."""

    def __init__(self, script: Any, binary: Any, prefetches: Prefetches):
        self.script = script
        self.sha = script.sha  # redis_batch.script_write sends EVALSHA in pipelines by it
        self._binary = binary
        self._prefetches = prefetches

    def __call__(self, keys: list[Any] | None = None, args: list[Any] | None = None, client: Any = None) -> Any:
        names = self._prefetches.asked() if client is None else []
        if not names:
            return self.script(keys=keys, args=args, client=client)
        keys, args = list(keys or []), list(args or [])
        reply, *reads = self._send([("EVALSHA", self.sha, len(keys), *keys, *args), *(("GET", n) for n in names)])
        self._prefetches.got(names, reads)
        if isinstance(reply, redis.exceptions.NoScriptError):
            return self.script(keys=keys, args=args)  # loads it, as a call on its own does
        if isinstance(reply, Exception):
            raise reply
        return decoded(reply)

    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The commands in one write on one pooled connection, and their replies in order, an error reply in its
        place: a pipeline without redis-py's Pipeline, whose bookkeeping cost half of what the round trip saved.
        A connection that failed mid-way is closed, never handed back with replies unread."""
        pool = self._binary.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)


def decoded(reply: Any, decode: Callable[[bytes], str] = lambda b: b.decode()) -> Any:
    """A reply of the binary connection as the text one gives it (decode_responses=True: bytes become str)."""
    if isinstance(reply, bytes):
        return decode(reply)
    if isinstance(reply, list):
        return [decoded(item, decode) for item in reply]
    return reply
