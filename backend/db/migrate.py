"""Alembic, driven from code: `flask --app wsgi db upgrade` (a release step in production; `make run` and
`make demo` run it before serving). The scripts live in backend/db/migrations, checked in."""
from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from backend.db.engine import ensure_sqlite_directory

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """Alembic's configuration for ``url``, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Percent signs in a URL (escaped passwords) would be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head() -> str | None:
    """The newest revision of the checked-in migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (all migrations by default)."""
    # Alembic announces each of its plugins at INFO; the migrations it runs are what an operator reads.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)  # the first `db upgrade` of a fresh checkout creates ./var
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database at ``url`` back to ``revision`` (``base``: no tables of ours at all)."""
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
