"""The embedded job queue: Huey's SQLite storage with shorter holds of its write lock and finer waits for it.

Every POST /api/lessons inserts a message here while the job workers take messages out, so the time a writer holds
the lock and how a refused writer waits make the enqueue's tail. Huey's storage opens an exclusive transaction
around a select and a delete (four calls, each a chance for another thread to take the GIL while the lock is held),
every second reads its schedule under the exclusive lock even when it is empty, fsyncs every commit, and waits
with SQLite's coarse busy back-off. Here a message is put in, and one taken out, by one autocommit statement each,
refused tries are repeated in sub-millisecond steps (backend.db.sqlite_lock), the schedule is read under the lock
only when something is due, and commits are synchronous=NORMAL: in WAL mode a commit survives the process being
killed, and what a power loss could take (the last messages) the sweeper hands over again from the job rows."""
from __future__ import annotations

from typing import Any

from huey import SqliteHuey
from huey.storage import SqliteStorage

from backend.db.sqlite_lock import write_locked


class SqliteQueueStorage(SqliteStorage):
    """Huey's SqliteStorage (same file and tables), with the writes on the hot path reshaped as said above."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        if self._fsync is None:
            conn.execute("pragma synchronous=NORMAL")
        return conn

    def _write(self, sql: str, params: tuple) -> list[tuple]:
        """One autocommit statement under the storage's lock, tried again while another connection writes."""
        with self.lock:
            conn = self.conn
            return write_locked(conn, lambda: conn.execute(sql, params).fetchall(), busy_ms=int(self._timeout * 1000))

    def enqueue(self, data: bytes, priority: float | None = None) -> None:
        self._write("insert into task (queue, data, priority) values (?, ?, ?)",
                    (self.name, self.to_blob(data), priority or 0))

    def dequeue(self) -> bytes | None:
        # A read first, which takes no lock: an idle worker's polls never contend with an enqueue.
        if not self.sql("select 1 from task where queue = ? limit 1", (self.name,), results=True):
            return None
        taken = self._write("delete from task where id = (select id from task where queue = ? "
                            "order by priority desc, id limit 1) returning data", (self.name,))
        return bytes(taken[0][0]) if taken else None

    def read_schedule(self, ts: Any) -> list[bytes]:
        if not self.sql("select 1 from schedule where queue = ? and timestamp <= ? limit 1",
                        (self.name, ts.timestamp()), results=True):
            return []
        return list(super().read_schedule(ts))


class SqliteQueueHuey(SqliteHuey):
    storage_class = SqliteQueueStorage
