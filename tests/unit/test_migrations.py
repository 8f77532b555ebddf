"""The checked-in Alembic migrations: they build exactly the models' schema on SQLite and PostgreSQL, go down to
nothing and up again, and run from the app's CLI (`flask --app wsgi db upgrade`)."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from backend.db.migrate import alembic_config, current, downgrade, upgrade
from backend.db.models import Base
from tests.databases import DATABASES
from tests.pg_helpers import create_database, drop_database, postgres_admin_url

MODEL_TABLES = set(Base.metadata.tables)


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert revision is not None
    return revision


@pytest.fixture(params=DATABASES)
def fresh_url(request, tmp_path):
    """An empty database that no migration has touched: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = create_database(postgres_admin_url())
    yield url
    drop_database(url)


def differences(url: str) -> list:
    """What Alembic's autogenerate would change to make the database match the models (nothing, when in step)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_the_models_schema(fresh_url):
    assert current(fresh_url) is None
    upgrade(fresh_url)
    assert current(fresh_url) == head()
    assert MODEL_TABLES <= tables(fresh_url)
    assert differences(fresh_url) == []


def test_downgrade_to_base_then_upgrade_again(fresh_url):
    upgrade(fresh_url)
    downgrade(fresh_url, "base")
    assert current(fresh_url) is None
    assert tables(fresh_url) & MODEL_TABLES == set()
    upgrade(fresh_url)
    assert current(fresh_url) == head()
    assert differences(fresh_url) == []


def test_upgrade_twice_changes_nothing(fresh_url):
    upgrade(fresh_url)
    upgrade(fresh_url)
    assert current(fresh_url) == head()
    assert differences(fresh_url) == []


def test_cli_db_upgrade_applies_the_migrations_and_prints_the_revision(make_app, fresh_url):
    runner = make_app(DATABASE_URL=fresh_url).test_cli_runner()
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"database at revision {head()}" in result.output
    assert differences(fresh_url) == []
    again = runner.invoke(args=["db", "upgrade"])
    assert again.exit_code == 0 and f"database at revision {head()}" in again.output


def test_upgrade_creates_the_directory_of_the_default_style_sqlite_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default DATABASE_URL is relative: ./var/backend-ai.db
    url = "sqlite:///./var/backend-ai.db"
    upgrade(url)
    assert (tmp_path / "var" / "backend-ai.db").is_file()
    assert current(url) == head()


def test_check_says_whether_the_schema_is_the_codes(make_app, tmp_path):
    """`flask check` tells an operator who forgot the release step to run it."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    runner = app.test_cli_runner()
    with app.app_context():  # `check` is a plain command: the flask executable pushes the context itself
        assert "schema at none, code needs" in runner.invoke(args=["check"]).output
        assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
        assert f"schema at {head()}" in runner.invoke(args=["check"]).output
