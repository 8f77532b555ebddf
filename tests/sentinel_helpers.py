"""A Redis Sentinel deployment of our own for tests: a primary, a replica and three sentinels on spare loopback ports,
all plain `redis-server` processes (sentinel mode is built into it: `redis-server <conf> --sentinel`)."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, TypeVar

import redis

from tests.redis_helpers import spare_port

T = TypeVar("T")
SERVICE = "backend-ai-primary"


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll until condition() is truthy (Redis errors count as not yet); its value, or AssertionError naming what."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class Node:
    """One redis-server process (a data node or a sentinel), logging to a file in the deployment's directory."""

    def __init__(self, name: str, directory: Path, args: list[str], port: int):
        self.name, self.directory, self.args, self.port = name, directory, args, port
        self.process: subprocess.Popen | None = None

    def start(self) -> "Node":
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        with open(self.directory / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen([binary, *self.args], cwd=self.directory, stdout=log, stderr=log)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last words to the replicas or the sentinels."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class SentinelDeployment:
    """A primary, one replica of it and three sentinels watching it (quorum 2), with short failure detection."""

    def __init__(self, directory: Path, *, password: str | None = None, sentinel_password: str | None = None,
                 tls: bool = False, down_after_ms: int = 1000, failover_timeout_ms: int = 2000):
        self.directory, self.password, self.sentinel_password = directory, password, sentinel_password
        self.directory.mkdir(parents=True, exist_ok=True)
        # TLS: every node (sentinels too) listens only on TLS, replicates and monitors over it; no client certs.
        self.ca = make_certificates(directory / "tls") if tls else None
        self.client_tls = {"ssl": True, "ssl_ca_certs": str(self.ca)} if self.ca else {}
        certificates = directory / "tls"
        tls_lines = [f"tls-cert-file {certificates / 'server.crt'}", f"tls-key-file {certificates / 'server.key'}",
                     f"tls-ca-cert-file {self.ca}", "tls-auth-clients no", "tls-replication yes"] if tls else []

        def listen(port: int) -> list[str]:  # config lines, for a file or (with -- before each) the command line
            return ["port 0", f"tls-port {port}", *tls_lines] if tls else [f"port {port}"]

        auth = ["--requirepass", password, "--masterauth", password] if password else []
        data = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory),
                "--repl-diskless-sync-delay", "0", *auth]  # the first sync starts at once, not after 5 s
        self.primary_port, self.replica_port = spare_port(), spare_port()
        self.data = {port: Node(name, directory, [*_arguments(listen(port)), *data, *replicating], port)
                     for name, port, replicating in [
                         ("primary", self.primary_port, []),
                         ("replica", self.replica_port, ["--replicaof", "127.0.0.1", str(self.primary_port)])]}
        self.sentinels: list[Node] = []
        # Each sentinel is told its peers and the replica up front (the lines Sentinel itself writes into its file):
        # finding them by their hello messages and the primary's INFO takes several seconds more.
        ports, ids = [spare_port() for _ in range(3)], [f"{i + 1:040x}" for i in range(3)]
        for i, port in enumerate(ports):
            conf = directory / f"sentinel-{i}.conf"  # Sentinel rewrites its file: one writable copy each
            conf.write_text("\n".join([
                *listen(port), "bind 127.0.0.1", f"dir {directory}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2",
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
                f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}",
                f"sentinel parallel-syncs {SERVICE} 1", f"sentinel myid {ids[i]}",
                f"sentinel known-replica {SERVICE} 127.0.0.1 {self.replica_port}",
                *(f"sentinel known-sentinel {SERVICE} 127.0.0.1 {ports[j]} {ids[j]}" for j in range(3) if j != i),
                *([f"sentinel auth-pass {SERVICE} {password}"] if password else []),
                *([f"requirepass {sentinel_password}"] if sentinel_password else []), ""]))
            self.sentinels.append(Node(f"sentinel-{i}", directory, [str(conf), "--sentinel"], port))

    def url(self, db: int = 0, query: str = "", scheme: str = "redis+sentinel") -> str:
        """REDIS_URL for this deployment."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}{hosts}/{SERVICE}/{db}" + (f"?{query}" if query else "")

    def client(self, port: int) -> redis.Redis:
        """A direct client of one data node (not through the sentinels)."""
        return redis.Redis("127.0.0.1", port, password=self.password, socket_timeout=2, decode_responses=True,
                           **self.client_tls)

    def sentinel_client(self, node: Node) -> redis.Redis:
        return redis.Redis("127.0.0.1", node.port, password=self.sentinel_password, socket_timeout=2,
                           decode_responses=True, **self.client_tls)

    def master_port(self, node: Node | None = None) -> int:
        """The primary's port as a sentinel (the first unless named) reports it."""
        address = self.sentinel_client(node or self.sentinels[0]).sentinel_get_master_addr_by_name(SERVICE)
        return int(address[1])

    def start(self, timeout: float = 30.0) -> "SentinelDeployment":
        """Start every process, then wait until the replica has synced and every sentinel knows the replica and
        both other sentinels (without that a failover cannot be authorised)."""
        for node in self.data.values():
            node.start()
        wait_for(lambda: _info(self.client(self.replica_port), "replication").get("master_link_status") == "up",
                 timeout, "the replica to sync")
        for node in self.sentinels:
            node.start()
        for node in self.sentinels:
            wait_for(lambda node=node: self._knows_everyone(node), timeout, f"{node.name} to know its peers")
        return self

    def _knows_everyone(self, node: Node) -> bool:
        state = self.sentinel_client(node).sentinel_master(SERVICE)
        return int(state["num-other-sentinels"]) == len(self.sentinels) - 1 and int(state["num-slaves"]) >= 1

    def kill_primary(self) -> int:
        """kill -9 the current primary; its port."""
        port = self.master_port()
        self.data[port].kill()
        return port

    def wait_for_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until every sentinel names another primary and that node answers as a master; its port."""
        def promoted() -> int | None:
            ports = {self.master_port(node) for node in self.sentinels}
            if len(ports) != 1 or old_port in ports:
                return None
            port = ports.pop()
            return port if _info(self.client(port), "replication").get("role") == "master" else None
        return wait_for(promoted, timeout, "the sentinels to promote the replica")

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data.values()]:
            node.kill()

    def __enter__(self) -> "SentinelDeployment":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def make_certificates(directory: Path) -> Path:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it (openssl); the CA's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (["req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test"],
                    ["req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
                    ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "server.crt", "-days", "1", "-extfile", "san.ext"]):
        subprocess.run(["openssl", *command], cwd=directory, check=True, capture_output=True)
    return directory / "ca.crt"


def _arguments(lines: list[str]) -> list[str]:
    """Config lines as redis-server arguments: "tls-port 1234" -> "--tls-port", "1234"."""
    return [part for line in lines for part in (f"--{line.split(' ', 1)[0]}", line.split(" ", 1)[1])]


def _info(client: redis.Redis, section: str) -> dict:
    try:
        return client.info(section)
    finally:
        client.close()
