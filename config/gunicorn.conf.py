"""gunicorn settings: bounded gthread workers (WEB_CONCURRENCY x WEB_THREADS) on PORT, JSON logs, clean worker exit."""
import gc
import glob
import math
import os
import tempfile

from gunicorn import glogging

from backend.http.context import EXTENSION
from backend.serving import spread
from backend.serving.worker import BoundedThreadWorker
from backend.settings import ConfigError, load_settings

# Validated here too, so a bad variable stops the master with its name instead of crash-looping workers.
try:
    _settings = load_settings()
except ConfigError as exc:
    raise SystemExit(str(exc)) from None

bind = [f"{os.environ.get('HOST', '0.0.0.0')}:{_settings.port}"]
# gthread, but a thread is given only to a request whose head has fully arrived, and every read from a client is
# bounded (HEADER_TIMEOUT_SECONDS, BODY_TIMEOUT_SECONDS): slow clients cannot hold the threads (see the module).
worker_class = BoundedThreadWorker.configured(header_timeout=_settings.header_timeout_seconds,
                                              body_timeout=_settings.body_timeout_seconds)
workers = _settings.web_concurrency
threads = _settings.web_threads
# All connections of one worker: requests in threads, connections still sending their head (a socket and at most
# 64 KiB each, no thread) and idle keep-alive ones (gunicorn keeps worker_connections - threads of them). A
# worker stops accepting as soon as its threads are busy (the worker does that), so this only bounds sockets and
# memory; gunicorn's default (1000) would let one process near a 1024 file-descriptor limit.
worker_connections = threads + 256
# For gthread workers this is a heartbeat timeout: a worker whose main loop stalls this long is restarted.
# Requests are bounded by our own deadline (REQUEST_DEADLINE_SECONDS) and the audio_url download limits.
timeout = max(60, int(_settings.request_deadline_seconds) + 15)
# On SIGTERM a worker first drains for SHUTDOWN_DRAIN_SECONDS, still accepting while /health/ready says 503
# (backend/serving/drain.py); then the requests in flight (already paid for upstream) may finish: the deadline as
# the longest allowed input extends it (a minute of audio adds ~55 s) + an audio_url download (20 s) + margin.
# The master kills what is left once this has passed since the SIGTERM.
graceful_timeout = int(_settings.longest_request_seconds) + 25 + math.ceil(_settings.shutdown_drain_seconds)
keepalive = 5
# Heartbeat files in memory, not on a possibly slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Each worker builds its own app after the fork: SDK clients, pools and sockets are never shared across a fork.
preload_app = False
# One instance per port; a shared default control socket path would make two instances on one host collide.
control_socket_disable = True

# Prometheus multiprocess mode: every worker writes its samples under this directory; it must be set before
# any worker imports prometheus_client, and emptied at start so counters of a previous run do not leak in.
metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"backend-ai-metrics-{_settings.port}"))
accesslog = None  # the app writes one JSON access line per request itself


class QuietAccessLogger(glogging.Logger):
    """gunicorn's logger without its access line: with logconfig_dict set, gunicorn would still build every
    request's access atoms only to drop them."""

    def access(self, resp, req, environ, request_time):  # noqa: D102  (gunicorn's signature)
        return None


logger_class = QuietAccessLogger
errorlog = "-"
loglevel = _settings.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                 "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                 "rename_fields": {"levelname": "level", "asctime": "time"}},
        "text": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": _settings.log_format,
                             "stream": "ext://sys.stderr"}},
    "loggers": {"gunicorn.error": {"handlers": ["console"], "level": _settings.log_level, "propagate": False}},
    # The app installs its own root handler (with request ids); gunicorn's default would print every line twice.
    "root": {"level": _settings.log_level, "handlers": []},
}


def worker_exit(server, worker):
    """Shut the worker's provider pools down so no recognizer thread outlives it."""
    app = getattr(worker, "wsgi", None)
    backend = getattr(app, "extensions", {}).get(EXTENSION) if app is not None else None
    if backend is not None:
        backend.close()


def post_worker_init(worker):
    """Warm the worker's provider clients, then say that it takes requests (operators and tests wait on this
    line)."""
    backend = getattr(worker.wsgi, "extensions", {}).get(EXTENSION)
    if backend is not None:
        backend.warm_up()
        # The app's drain state, which the worker's SIGTERM begins and /health/ready reads.
        worker.drain = backend.drain
    # The imported libraries and the app are some 130,000 objects that live as long as the worker: left to the
    # collector, every full collection walks them all (about 70 ms, measured, stalling every thread of the
    # worker). Frozen, they are never scanned again.
    gc.collect()
    gc.freeze()
    worker.log.info("worker ready (pid %s)", worker.pid)


def on_starting(server):
    """Start without the metric files of a previous run (they would be counted again). Only prometheus-client's
    own *.db files are removed: the directory may be one an operator chose, holding other things."""
    os.makedirs(metrics_dir, mode=0o700, exist_ok=True)
    for stale in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(stale)


def pre_fork(server, worker):
    """A slot for the worker in the table of connections per worker, by which each takes only its share of new
    connections (backend/serving/spread.py): made by the master before the first fork, shared by every worker."""
    spread.assign(server, worker)


def child_exit(server, worker):
    """Free a dead worker's slot in the connection table; mark its live gauges so they stop counting (its counters
    stay, so totals survive restarts)."""
    spread.release(server, worker)
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
