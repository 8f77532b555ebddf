"""Command-line tools: `flask --app wsgi check`, `flask --app wsgi cache clear`; and how the app built for one of
them reports an invalid setting and logs."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import click
from flask import Flask
from flask.cli import AppGroup, ScriptInfo

from backend.cli_data import data_group
from backend.http.context import current_backend
from backend.resilience.store import StoreUnavailable
from backend.settings import ConfigError, Settings

# click's status for a usage error: the command was not run as given. gunicorn.conf.py stops the server on the same
# error with the same line.
CONFIG_ERROR_STATUS = 2


def register(app: Flask) -> None:
    """Attach the commands to the app."""
    app.cli.add_command(check)
    app.cli.add_command(cache_group)
    app.cli.add_command(breaker_group)
    app.cli.add_command(db_group)
    app.cli.add_command(data_group)


def _flask_command() -> click.Context | None:
    """The `flask` executable's context, when it is what is building the app (not gunicorn, a worker or a test)."""
    ctx = click.get_current_context(silent=True)
    return ctx if ctx is not None and ctx.find_object(ScriptInfo) is not None else None


def running_a_command() -> bool:
    """Whether the app is built for an operator's command (`flask --app wsgi check`, `db upgrade`, ...); `flask run`
    serves, so it is not one."""
    ctx = _flask_command()
    return ctx is not None and ctx.command.name != "run"


@contextmanager
def one_line_config_errors() -> Iterator[None]:
    """Under the `flask` executable, an invalid setting ends the command with one line on stderr naming the variable
    and status 2. SystemExit, not a ClickException: flask loads the app while resolving the command name, where it
    prints a traceback for any other exception (`--help`) or turns its own NoAppException into "No such command".
    Elsewhere (gunicorn's workers, tests) ConfigError propagates unchanged."""
    try:
        yield
    except ConfigError as exc:
        if _flask_command() is None:
            raise
        click.echo(" ".join(str(exc).split()), err=True)  # one line even if a message quoted a newline
        raise SystemExit(CONFIG_ERROR_STATUS) from None


def log_style(settings: Settings) -> tuple[str, str]:
    """(level, format) of the log lines. The server's and the job worker's are as configured: JSON by default, for
    a log pipeline. A command's result is its own output, read by a person at a terminal or in a release or Job
    log: INFO lines (alembic's, the app's start-up notes) would bury it and JSON would make the rest hard to read,
    so short text lines (backend/observability/logging.py) at WARNING and above. LOG_FORMAT and LOG_LEVEL set
    explicitly (environment or .env) still win: a cron job or a migration Job whose stderr feeds the server's
    pipeline sets LOG_FORMAT=json; LOG_LEVEL=DEBUG diagnoses a command."""
    if not running_a_command():
        return settings.log_level, settings.log_format
    explicit = settings.model_fields_set
    return (settings.log_level if "log_level" in explicit else "WARNING",
            settings.log_format if "log_format" in explicit else "command")


@click.command("check")
def check() -> None:
    """Validate the configuration and report what is configured and reachable."""
    backend = current_backend()
    settings = backend.settings
    health = backend.shared.health()
    click.echo(f"configuration: ok (APP_ENV={settings.app_env})")
    click.echo(f"cache: mode {health['mode']}, serving from {health['backend']}"
               + (", REDIS UNREACHABLE" if health["fallback_active"] else ""))
    click.echo(f"client auth: {'on, %d key(s)' % len(settings.client_keys) if settings.client_keys else 'OFF'}")
    click.echo(f"admin endpoints: {'on' if settings.admin_api_key.get_secret_value() else 'disabled'}")
    for provider in backend.providers:
        click.echo(f"{provider.name}: {'configured' if provider.configured else 'not configured'}")
    database = backend.database.health()
    click.echo(f"database: {database['dialect']}, {'reachable' if database['status'] == 'ok' else 'UNREACHABLE'}"
               + (f", {_schema_state(settings.database_url)}" if database["status"] == "ok" else ""))
    if health.get("disk") == "failing":
        click.echo("cache disk: FAILING (full or unwritable): serving from memory")
    if health["fallback_active"]:
        raise SystemExit(1)


def _schema_state(url: str) -> str:
    """Whether the database's schema is the code's (its migrations applied)."""
    from backend.db.migrate import current, head

    at, newest = current(url), head()
    return f"schema at {at}" if at == newest else f"schema at {at or 'none'}, code needs {newest}: run db upgrade"


cache_group = AppGroup("cache", help="Cache administration.")


@cache_group.command("clear")
@click.option("--namespace", default=None, help="Only this namespace (analyze, subtopics, explanation, ...).")
def cache_clear(namespace: str | None) -> None:
    """Clear the cache for every worker and instance sharing it."""
    try:
        result = current_backend().shared.cache.clear(namespace)
    except StoreUnavailable as exc:
        raise click.ClickException(f"{exc.summary}: the cache was not cleared") from None
    removed = ", ".join(f"{count} from {tier}" for tier, count in result["removed"].items())
    click.echo(f"cleared {result['namespace']}: {removed or 'nothing stored'}")


breaker_group = AppGroup("breaker", help="Circuit breaker administration.")


@breaker_group.command("reset")
@click.argument("name", required=False)
def breaker_reset(name: str | None) -> None:
    """Close a breaker (or all) for every worker and instance sharing its state."""
    known = current_backend().providers.names()
    if name is not None and name not in known:
        raise click.BadParameter(f"{name!r} is not one of {', '.join(known)}", param_hint="NAME")
    for breaker_name, breaker in current_backend().breakers.items():
        if name in (None, breaker_name):
            try:
                breaker.reset()
            except StoreUnavailable as exc:
                raise click.ClickException(f"{exc.summary}: {breaker_name} was not reset") from None
            click.echo(f"{breaker_name}: {breaker.state()['state']}")


db_group = AppGroup("db", help="Database schema (Alembic migrations).")


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="The revision to bring the database to.")
def db_upgrade(revision: str) -> None:
    """Apply the migrations to DATABASE_URL (run before serving a new release)."""
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    from backend.db.engine import ensure_sqlite_directory
    from backend.db.migrate import current, upgrade

    url = current_backend().settings.database_url
    try:
        if url.startswith("sqlite"):
            ensure_sqlite_directory(url)  # a fresh checkout's ./var, before the revision it is at is read
        before = current(url)
        upgrade(url, revision)
        after = current(url)
    except OperationalError as exc:
        # The driver's reason (refused, unknown host, authentication failed), which never holds the password;
        # migrations bind no learner data that a statement's text could quote.
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise click.ClickException(f"DATABASE_URL: the database cannot be used: {reason}") from None
    except CommandError as exc:  # alembic's: a revision it does not know, or not reachable from where the database is
        raise click.BadParameter(str(exc), param_hint="'--revision'") from None
    # Alembic's own "Running upgrade" lines are INFO, below a command's log level: say here what changed.
    click.echo(f"database at revision {after}" + (" (unchanged)" if after == before else f" (was {before or 'empty'})"))
