"""The job worker process: `python -m backend.jobs.worker [-w THREADS]` runs Huey's consumer in-process with thread
workers. SIGTERM is a graceful stop: running jobs stop at their next step boundary and are handed back (steps in
flight finish first and fill the cache), the consumer joins its threads, and the process exits. A second SIGTERM,
or SIGINT, stops at once (Huey's own behaviour)."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

from huey.consumer import Consumer, Scheduler

from backend.jobs.engine import JobEngine

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 2
# How often the scheduler enqueues periodic tasks (Huey's default is a minute): the sweeper runs this often, so a
# dead worker's job runs again soon after its lease runs out.
SWEEP_SECONDS = 10
# After a graceful stop, how long steps already asked of a model may take to finish (their answers fill the cache,
# so the worker continuing the job does not pay for them again).
STEPS_GRACE_SECONDS = 30.0


class SweepingScheduler(Scheduler):
    """Huey's scheduler, checking periodic tasks every SWEEP_SECONDS."""

    periodic_task_seconds = SWEEP_SECONDS


class JobConsumer(Consumer):
    """Huey's consumer with SIGTERM as the graceful signal, which also asks running jobs to stop and hand back."""

    scheduler_class = SweepingScheduler

    def __init__(self, engine: JobEngine, threads: int):
        super().__init__(engine.huey, workers=threads, worker_type="thread", periodic=True, scheduler_interval=1,
                         max_delay=1.0, graceful_signal="TERM")
        self._stopping: threading.Event = engine.tasks.stopping

    def _handle_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGTERM:
            logger.info("SIGTERM: stopping gracefully; running jobs are handed back at their next step")
            self._stopping.set()
        super()._handle_signal(signum, frame)


def _let_steps_finish(seconds: float) -> None:
    """Wait (bounded) for lesson steps still running on the generators' threads, before their clients close."""
    deadline = time.monotonic() + seconds
    for thread in threading.enumerate():
        if thread.name.startswith("lesson") and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def _serve_metrics(port: int) -> None:
    """GET /metrics on ``port`` (every interface, like the web server's HOST default), from a daemon thread:
    this process's samples, or every process's of PROMETHEUS_MULTIPROC_DIR when one is set."""
    import os

    from prometheus_client import start_http_server

    from backend.observability.metrics import aggregated_registry

    start_http_server(port, addr=os.environ.get("HOST", "0.0.0.0"), registry=aggregated_registry())
    logger.info("job worker metrics on port %s", port)


def main(argv: list[str] | None = None) -> int:
    """Run the worker until SIGTERM or SIGINT; 2 at once when a setting is invalid."""
    from backend.composition import build_backend
    from backend.observability.logging import configure_logging
    from backend.settings import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        # As gunicorn.conf.py and the flask commands: one line naming the variable, and a usage error's status
        # (2), so a supervisor's crash loop shows the cause instead of a traceback.
        print(" ".join(str(exc).split()), file=sys.stderr)
        return 2
    default = int(getattr(settings, "job_worker_threads", DEFAULT_THREADS))
    parser = argparse.ArgumentParser(description="Run background job workers (Huey's consumer, thread workers).")
    parser.add_argument("-w", "--workers", type=int, default=default, help=f"worker threads (default {default})")
    args = parser.parse_args(argv)
    configure_logging(settings.log_level, settings.log_format)
    if settings.job_worker_metrics_port:
        _serve_metrics(settings.job_worker_metrics_port)
    backend = build_backend(settings)
    engine = JobEngine(settings, lambda: backend)
    try:
        JobConsumer(engine, max(1, args.workers)).run()
        _let_steps_finish(STEPS_GRACE_SECONDS)
    finally:
        backend.close()
    logger.info("job worker exited")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
