"""What every HTTP fake shares: serving from a daemon thread, stopping with its open connections, its port."""
from __future__ import annotations

import socket
import threading

from tests.fakes.gemini_server import Server


class ThreadedFake:
    """start()/stop() and `with` for a fake whose ``handler`` serves requests; subclasses set ``handler`` and
    ``thread_name`` and hold ``host``, ``_port``, ``_lock``, ``_sockets`` (open connections) and ``_stopping``."""

    handler: type
    thread_name = "fake"

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
