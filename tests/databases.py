"""Databases for the data tests: every one runs on SQLite and on a real PostgreSQL (``database_url`` fixture).

The schema is made by the real migrations once per session and per database kind; each test then starts from
empty tables (a copy of the migrated SQLite file; TRUNCATE on PostgreSQL), so tests stay independent and fast.
"""
from __future__ import annotations

import shutil

import pytest
from sqlalchemy import create_engine, text

from backend.db.migrate import upgrade
from backend.db.models import Base

DATABASES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated, empty SQLite database to copy from."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database():
    """A migrated database of its own on the test PostgreSQL server, for the whole session."""
    from tests.pg_helpers import create_database, drop_database, postgres_admin_url

    url = create_database(postgres_admin_url())
    upgrade(url)
    yield url
    drop_database(url)


def empty_postgres(url: str) -> None:
    """Remove every row (the schema stays)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    """The URL of an empty, migrated database: SQLite (a file of this test's) or PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "backend-ai.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    empty_postgres(url)
    return url
