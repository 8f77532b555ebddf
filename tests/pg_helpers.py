"""Real PostgreSQL for tests: a database of its own per test on the shared server, or a private throwaway server."""
from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from tests.integration.servers import free_port

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SERVER_SETTINGS = "-c fsync=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=50"


def postgres_admin_url() -> str:
    """The shared server's admin URL: $TEST_POSTGRES_URL, else 127.0.0.1:5432; never a skip when there is none."""
    url = os.environ.get("TEST_POSTGRES_URL", "").strip()
    if url:
        return url
    try:
        connect(DEFAULT_ADMIN_URL, timeout=2).close()
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            "PostgreSQL tests need a server: nothing answers on 127.0.0.1:5432 and TEST_POSTGRES_URL is unset. "
            "Run `make test`, or export TEST_POSTGRES_URL=$(bash scripts/ensure-postgres.sh | tail -1)") from exc
    return DEFAULT_ADMIN_URL


def connect(url: str, *, timeout: float = 5) -> psycopg.Connection:
    """An autocommit psycopg connection from a SQLAlchemy URL (CREATE/DROP DATABASE cannot run in a transaction)."""
    parts = make_url(url)
    params = {"host": parts.host, "port": parts.port, "user": parts.username, "password": parts.password,
              "dbname": parts.database}
    return psycopg.connect(autocommit=True, connect_timeout=max(1, int(timeout)),
                           **{key: value for key, value in params.items() if value is not None})


def create_database(admin_url: str) -> str:
    """Create a uniquely named empty database and return its SQLAlchemy URL."""
    name = f"backend_ai_test_{uuid.uuid4().hex[:16]}"
    with connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _render(make_url(admin_url).set(drivername="postgresql+psycopg", database=name))


def drop_database(url: str, admin_url: str | None = None) -> None:
    """Drop the database of url, ending its open connections (admin_url defaults to its server's postgres db)."""
    parts = make_url(url)
    admin = admin_url or _render(parts.set(database="postgres"))
    with connect(admin) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(parts.database)))


@contextmanager
def temporary_database(admin_url: str | None = None) -> Iterator[str]:
    """A fresh database for the duration of the block, dropped afterwards."""
    admin = admin_url or postgres_admin_url()
    url = create_database(admin)
    try:
        yield url
    finally:
        drop_database(url, admin)


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def server_bindir() -> Path:
    """Where pg_ctl and initdb live: pg_config's bindir, else the newest /usr/lib/postgresql/N/bin."""
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for candidate in filter(None, candidates):
        if (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError("no PostgreSQL server binaries (pg_ctl, initdb): run `bash scripts/system-deps.sh test`")


def _version(path: str) -> int:
    number = Path(path).parent.name
    return int(number) if number.isdigit() else 0


def _as_server_user(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; as root we hand the server to the postgres OS user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], timeout: float = 60) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")


def _stop_quietly(pg_ctl: str, data: str) -> None:
    if Path(data, "postmaster.pid").exists():
        subprocess.run(_as_server_user([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=30, check=False)


def _remove(pg_ctl: str, data: str, root: str) -> None:
    _stop_quietly(pg_ctl, data)
    shutil.rmtree(root, ignore_errors=True)


_templates: dict[Path, Path] = {}


def _template(bindir: Path) -> Path:
    """An initdb'd data directory made once per process: each server copies it (cheaper than initdb)."""
    if bindir not in _templates:
        root = Path(tempfile.mkdtemp(prefix="backend-ai-pg-template-"))
        atexit.register(shutil.rmtree, root, True)
        root.chmod(0o755)
        data = root / "data"
        data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        # 1 MB WAL segments instead of 16: less to write now and to copy for every server.
        _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
              "--wal-segsize=1", "--no-instructions"])
        _templates[bindir] = data
    return _templates[bindir]


class PostgresServer:
    """A PostgreSQL of our own on a spare port, which tests stop and restart to simulate an outage."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.bindir = server_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="backend-ai-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        # Even if a test forgets close(), the server must not outlive the test run.
        self._finalizer = weakref.finalize(self, _remove, str(self.bindir / "pg_ctl"), str(self.data), str(self.root))

    def start(self) -> "PostgresServer":
        """Create the data directory on first use, start on our port and wait until it accepts connections."""
        if not (self.data / "PG_VERSION").exists():
            self._init()
        try:
            _run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "30",
                  "-o", f"-p {self.port} {SERVER_SETTINGS}", "start"])
        except RuntimeError as exc:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}: {exc}\n{log}") from exc
        connect(self.url, timeout=5).close()
        return self

    def stop(self) -> None:
        """Kill the server at once, as an outage would (the next start recovers from the log)."""
        _stop_quietly(str(self.bindir / "pg_ctl"), str(self.data))

    def restart(self) -> "PostgresServer":
        """Start again on the same port with the same data."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the data directory."""
        self._finalizer()

    def _init(self) -> None:
        self.root.chmod(0o755)  # the postgres user must reach its data directory
        # cp -a keeps the owner (postgres) and the 0700 mode PostgreSQL insists on.
        subprocess.run(["cp", "-a", str(_template(self.bindir)), str(self.data)], check=True, timeout=60)
        self.log_path.touch()
        if os.geteuid() == 0:
            shutil.chown(self.log_path, "postgres", "postgres")
        # Loopback only, and the socket in our own directory rather than a shared /run/postgresql.
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{self.data}'\n")

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
