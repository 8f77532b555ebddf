"""Command-line tools: `flask --app wsgi check`, `flask --app wsgi cache clear`."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from backend.cli_data import data_group
from backend.http.context import current_backend
from backend.resilience.store import StoreUnavailable


def register(app: Flask) -> None:
    """Attach the commands to the app."""
    app.cli.add_command(check)
    app.cli.add_command(cache_group)
    app.cli.add_command(breaker_group)
    app.cli.add_command(db_group)
    app.cli.add_command(data_group)


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
    click.echo(f"cleared {result['namespace']}: {result['removed']}")


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
    from backend.db.migrate import current, upgrade

    url = current_backend().settings.database_url
    upgrade(url, revision)
    click.echo(f"database at revision {current(url)}")
