"""The PostgreSQL test helpers: databases of their own on the shared server, and a private server that can go down."""
from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests import pg_helpers
from tests.integration.servers import free_port
from tests.pg_helpers import PostgresServer, connect, create_database, drop_database, postgres_admin_url


def database_exists(admin_url: str, name: str) -> bool:
    with connect(admin_url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def test_a_created_database_is_unique_empty_and_gone_once_dropped():
    admin = postgres_admin_url()
    first, second = create_database(admin), create_database(admin)
    try:
        names = make_url(first).database, make_url(second).database
        assert names[0] != names[1] and all(name.startswith("backend_ai_test_") for name in names)
        assert make_url(first).drivername == "postgresql+psycopg"
        with connect(first) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (names[0],)
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    finally:
        drop_database(first)
        drop_database(second)
    assert not database_exists(admin, names[0]) and not database_exists(admin, names[1])


def test_drop_ends_connections_still_open_on_the_database():
    url = create_database(postgres_admin_url())
    holder = connect(url)
    try:
        drop_database(url)
        assert not database_exists(postgres_admin_url(), make_url(url).database)
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")  # terminated by DROP ... WITH (FORCE)
    finally:
        holder.close()


def test_admin_url_prefers_the_environment(monkeypatch):
    monkeypatch.setenv("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:1/elsewhere")
    assert postgres_admin_url() == "postgresql+psycopg://postgres@127.0.0.1:1/elsewhere"


def test_no_server_is_a_clear_failure_not_a_skip(monkeypatch):
    monkeypatch.delenv("TEST_POSTGRES_URL", raising=False)
    monkeypatch.setattr(pg_helpers, "DEFAULT_ADMIN_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(RuntimeError, match="scripts/ensure-postgres.sh"):
        postgres_admin_url()


def test_a_private_server_goes_down_and_comes_back_with_its_data():
    with PostgresServer() as server:
        assert make_url(server.url).port == server.port
        with connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            conn.execute("CREATE TABLE survivors (name text)")
            conn.execute("INSERT INTO survivors VALUES ('kept')")

        server.stop()
        with pytest.raises(psycopg.OperationalError):
            connect(server.url, timeout=2)

        server.restart()
        with connect(server.url) as conn:
            assert conn.execute("SELECT name FROM survivors").fetchall() == [("kept",)]
        data = server.root
    assert not data.exists()  # close() removed the data directory
    with pytest.raises(psycopg.OperationalError):
        connect(server.url, timeout=2)
