"""Learner data commands: `flask --app wsgi data export --user KEYNAME:USERID`, `flask --app wsgi data purge`."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from backend.errors import DatabaseUnavailable
from backend.http.context import current_backend
from backend.schemas.caller import Caller

data_group = AppGroup("data", help="Learner data: export one caller's, purge what retention no longer keeps.")


def _caller(_ctx: click.Context, _param: click.Parameter, value: str) -> Caller:
    try:
        return Caller.parse(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not KEYNAME:USERID (or KEYNAME alone): {exc}") from None


@data_group.command("export")
@click.option("--user", "caller", required=True, callback=_caller, metavar="KEYNAME:USERID",
              help="The caller: the client key's name, and the X-User-ID within it (omit for the key's own data).")
def export(caller: Caller) -> None:
    """Print everything stored for one caller as JSON."""
    try:
        exported = current_backend().learner_data.export(caller)
    except DatabaseUnavailable as exc:
        raise click.ClickException(f"{exc.message}: nothing was exported") from None
    click.echo(json.dumps(exported, ensure_ascii=False, indent=2))


@data_group.command("purge")
def purge() -> None:
    """Delete conversations untouched for DATA_RETENTION_DAYS and turn keys older than IDEMPOTENCY_KEY_HOURS."""
    service = current_backend().learner_data
    try:
        counts = service.purge()
    except DatabaseUnavailable as exc:
        raise click.ClickException(f"{exc.message}: batches purged before the outage stay purged") from None
    click.echo(f"purged {counts['conversations']} conversation(s) untouched for "
               f"{service.retention.conversation_days} days, with {counts['messages']} message(s) and "
               f"{counts['audio']} spoken repl(ies); {counts.get('jobs', 0)} finished job(s); "
               f"{counts['turn_keys']} turn key(s) (kept {service.retention.key_hours} h)")
