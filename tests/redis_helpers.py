"""Real Redis for tests: the machine's (unique key prefix per test) or a throwaway server on a spare port."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid

import redis

MAIN_REDIS_URL = "redis://127.0.0.1:6379/0"


def unique_prefix(label: str = "t") -> str:
    """A key prefix no other test uses."""
    return f"test:{label}:{uuid.uuid4().hex[:12]}:"


def purge(prefix: str, url: str = MAIN_REDIS_URL) -> None:
    """Delete every key under prefix."""
    client = redis.Redis.from_url(url)
    names = list(client.scan_iter(match=prefix + "*", count=1000))
    if names:
        client.delete(*names)
    client.close()


def spare_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of our own on a spare port, which tests stop and restart to simulate an outage."""

    def __init__(self, port: int | None = None):
        self.port = port or spare_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
