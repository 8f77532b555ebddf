"""What every HTTP fake shares: its settings checked against a table, canned answers, call counting with injected
faults, control routes, serving from a daemon thread and stopping with its open connections."""
from __future__ import annotations

import collections
import copy
import ipaddress
import random
import socket
import threading

from tests.fakes.fake_settings import SettingsTable
from tests.fakes.gemini_server import Server

REQUEST_LOG = 200  # requests kept by requests(): enough for a conversation's calls, bounded for long benchmarks


def loopback(host):
    """Refuse to listen anywhere but on this machine."""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"the fake listens on loopback addresses only, not {host!r}")
    return host


class ThreadedFake:
    """The shared half of a fake. Subclasses set ``handler``, ``thread_name``, ``settings`` (a SettingsTable) and
    ``kinds`` (the kinds of call counted apart), and may extend ``reset``."""

    handler: type
    thread_name = "fake"
    settings: SettingsTable
    kinds: tuple[str, ...] = ()

    def __init__(self, port=0, host="127.0.0.1", **config):
        self.host, self._port = loopback(host), port
        self._lock = threading.Lock()
        self._initial = {k: self.settings.normalize(k, v) for k, v in {**self.settings.defaults, **config}.items()}
        self._server = self._thread = None
        self._stopping = threading.Event()
        self._sockets = set()
        self.reset()

    # --- lifecycle

    def start(self):
        """Listen and serve from a daemon thread; returns self."""
        self._stopping.clear()
        self._server = Server((self.host, self._port), self.handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=self.thread_name,
                                        daemon=True)  # short poll: stop() returns fast
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and drop open connections, hanging, streaming and idle keep-alive ones included."""
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            with self._lock:
                sockets = list(self._sockets)
            for sock in sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        """The bound port (the real one when started with port 0)."""
        return self._server.server_address[1] if self._server else self._port

    def serve_until_interrupted(self, name, verbose=False):
        """The command line's loop: start, say where, serve until Ctrl-C, stop."""
        self.start()
        self._server.verbose = verbose
        print(f"fake {name} listening on {self.base_url}", flush=True)
        try:
            self._thread.join()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def wait(self, seconds):
        """Sleep unless the server is stopping; True when it is."""
        return self._stopping.wait(seconds)

    # --- control

    def configure(self, **changes):
        """Change settings (names as in the settings table); returns the current config."""
        with self._lock:
            checked = {name: self.settings.normalize(name, value) for name, value in changes.items()}
            self.config.update(checked)
            if "seed" in checked:
                self._rng = random.Random(self.config["seed"])
            return dict(self.config)

    def script(self, entries):
        """Queue canned answers (objects: see the subclass for their fields), each for one call."""
        entries = [entries] if isinstance(entries, dict) else list(entries)
        if not all(isinstance(e, dict) for e in entries):
            raise ValueError("script entries must be objects")
        with self._lock:
            self._script.extend(entries)
            return len(self._script)

    def reset(self, config=True):
        """Forget calls and script; with config=True also restore the starting settings."""
        with self._lock:
            if config:
                self.config = dict(self._initial)
                self._rng = random.Random(self.config["seed"])
            self._script, self._calls, self._last = [], 0, None
            self._by_kind, self._by_model = dict.fromkeys(self.kinds, 0), {}
            self._requests = collections.deque(maxlen=REQUEST_LOG)

    @property
    def calls(self):
        """How many calls arrived, failed and injected ones included."""
        return self._calls

    def requests(self):
        """The last REQUEST_LOG requests, oldest first, as copies (see the subclass for an entry's shape)."""
        with self._lock:
            return copy.deepcopy(list(self._requests))

    def read_control(self, path):
        """Answer a GET control route (/_fake/calls, /_fake/config, /_fake/requests); None for any other path."""
        if path == "/_fake/calls":
            return self.stats()
        if path == "/_fake/config":
            return self.configure()
        if path == "/_fake/requests":
            return {"requests": self.requests()}
        return None

    def control(self, path, body):
        """Answer a control route (/_fake/config, /_fake/script, /_fake/reset); None for any other path.
        ValueError or TypeError for a bad body, which the handler answers in its provider's error shape."""
        if path == "/_fake/config":
            return self.configure(**(body or {}))
        if path == "/_fake/script":
            return {"script_pending": self.script(body or [])}
        if path == "/_fake/reset":
            self.reset(config=body.get("config", True) if isinstance(body, dict) else True)
            return {"reset": True, "config": self.configure()}
        return None

    def _count(self, kind, model, request, logged=None):
        """Count one call (under the lock), log it (``logged``, else the request body) and take a copy of the config
        to answer it with."""
        self._calls += 1
        self._by_kind[kind] += 1
        if model:
            self._by_model[model] = self._by_model.get(model, 0) + 1
        self._last = request
        self._requests.append(request if logged is None else logged)
        return dict(self.config)

    def _fault(self, cfg):
        """The fault to inject into this call, if any (under the lock): the next N calls, a rate, or always."""
        if cfg["fail_next"] > 0:
            self.config["fail_next"] -= 1
            if self.config["fail_next"] == 0:
                self.config["error"] = None  # heal: back to normal answers
            return cfg["error"] or "503"
        if cfg["error_rate"] > 0:
            return (cfg["error"] or "503") if self._rng.random() < cfg["error_rate"] else None
        return cfg["error"] or None
