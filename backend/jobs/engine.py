"""The Huey instance for the settings, built on first use: SQLite-backed by default (a file beside a SQLite
DATABASE_URL, else under ./var), Redis-backed when REDIS_URL is set; the same tasks on both. Flask-free.

Huey carries the work and may lose it (it delivers at most once): the job's row is the truth, and the sweeper
hands lost jobs to the engine again (backend/jobs/tasks.py)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from huey import Huey, RedisHuey
from huey.storage import RedisStorage
from sqlalchemy.engine import make_url

from backend.db.engine import ensure_sqlite_directory
from backend.jobs.sqlite_queue import SqliteQueueHuey
from backend.resilience.redis_connect import connection_pool, fail_fast
from backend.settings import Settings

if TYPE_CHECKING:
    from backend.composition import Backend
    from backend.jobs.tasks import JobTasks

QUEUE_NAME = "jobs"
DEFAULT_QUEUE_FILE = Path("./var/jobs-queue.db")
# The queue's connections: named on each connect; a reply may take 5 s, as a worker's BRPOP waits 1 s for one;
# no client retries: a submission whose enqueue fails stays queued in its row for the sweeper, and the consumer
# backs off by itself. A connection lost with a primary is dropped; the next one goes to the primary of the moment.
QUEUE_CONNECTION = {"client_name": "backend-ai-jobs", **fail_fast(1.0), "socket_timeout": 5.0}


class PrefixedRedisStorage(RedisStorage):
    """Huey's Redis storage with every key under REDIS_KEY_PREFIX (Huey's own names start with "huey.")."""

    def __init__(self, name: str = QUEUE_NAME, *, key_prefix: str = "", **kwargs):
        super().__init__(name, **kwargs)
        base = f"{key_prefix}{QUEUE_NAME}:"
        self.queue_key, self.schedule_key = f"{base}queue", f"{base}schedule"
        self.result_key, self.counter_key = f"{base}results", f"{base}counters"
        self.notify_prefix = f"{base}notify:"


class PrefixedRedisHuey(RedisHuey):
    storage_class = PrefixedRedisStorage


def queue_file(database_url: str) -> Path:
    """Where the embedded queue lives: beside a SQLite database file, else ./var/jobs-queue.db."""
    url = make_url(database_url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database)
        return path.with_name(f"{path.stem}-jobs-queue.db")
    return DEFAULT_QUEUE_FILE


def build_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    """A Huey for the settings (no results kept: the job row holds them); ``immediate`` runs tasks in the caller."""
    redis_url = settings.redis_url.get_secret_value()
    if redis_url:
        # No connection is made here: the pool (a plain URL or Sentinel's current primary) connects on first use.
        return PrefixedRedisHuey(QUEUE_NAME, results=False, immediate=immediate, key_prefix=settings.redis_key_prefix,
                                 connection_pool=connection_pool(redis_url, **QUEUE_CONNECTION))
    path = queue_file(settings.database_url)
    ensure_sqlite_directory(f"sqlite:///{path}")
    return SqliteQueueHuey(QUEUE_NAME, results=False, immediate=immediate, filename=str(path))


class JobEngine:
    """The Huey instance and the tasks registered on it, built on first use (never at import or construction)."""

    def __init__(self, settings: Settings, backend: Callable[[], Backend] | None = None, *, immediate: bool = False):
        self._settings = settings
        self._backend = backend
        self._immediate = immediate
        self._tasks: JobTasks | None = None
        self._lock = threading.Lock()

    @property
    def tasks(self) -> JobTasks:
        """The tasks, on a Huey built for the settings at first use."""
        if self._tasks is None:
            with self._lock:
                if self._tasks is None:
                    from backend.jobs.tasks import process_backend, register

                    self._tasks = register(build_huey(self._settings, immediate=self._immediate),
                                           self._backend or process_backend)
        return self._tasks

    @property
    def huey(self) -> Huey:
        return self.tasks.huey

    def enqueue(self, kind: str, job_id: str) -> None:
        """Hand a job to the engine (its row already says queued)."""
        self.tasks.enqueue(kind, job_id)
