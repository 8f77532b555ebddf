"""Databases for the benchmarks: a fresh migrated SQLite or PostgreSQL database, and conversations seeded with a
long history, written as a turn stores them."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

from backend.schemas.caller import Caller
from bench.harness import learner_text

HISTORY = 50  # stored turns before any timing: the prompt then carries a full window and the summary is due
CLIENT = "bench"  # the key's name in service_env's API_KEYS: the caller the seeded rows belong to
TUTOR_SAID = ('Good, let\'s keep going (turn {n}). You wrote: "{quote}". A small correction: say \'went\' instead of '
              '\'go\'. What did you buy at the market?')


def seed(url: str, users: list[int]) -> dict[int, str]:
    """A conversation of HISTORY stored turns per user, written through backend.db as a turn stores them (posting
    them would take minutes of fake latency and measure nothing)."""
    from backend.db import conversations as repo
    from backend.db.engine import Database
    from backend.db.models import Message, utcnow

    database, ids = Database(url, pool_size=1), {}
    try:
        for user in users:
            caller = Caller(CLIENT, f"user-{user}")
            with database.session(write=True) as session:
                conversation = repo.create(session, caller, scenario="at the market", level="B1",
                                           native_language=None, language="en-US", voice=None)
                now = utcnow()
                for seq in range(2 * HISTORY):
                    said = learner_text(seq // 2)
                    text = said if seq % 2 == 0 else TUTOR_SAID.format(n=seq // 2 + 1, quote=said[:79])
                    session.add(Message(id=repo.new_id(), conversation_id=conversation.id, client=CLIENT,
                                        user_id=caller.user_id, seq=seq, role="tutor" if seq % 2 else "learner",
                                        text=text, corrections=[], audio_url=None, cost_usd=0.0, created_at=now))
                conversation.message_count = 2 * HISTORY
                session.flush()
            ids[user] = conversation.id
    finally:
        database.dispose()
    return ids


@contextmanager
def migrated(kind: str) -> Iterator[str]:
    """The URL of a fresh, migrated database of this kind, removed afterwards."""
    from backend.db.migrate import upgrade

    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-db-")
        url = f"sqlite:///{folder}/bench.db"
        try:
            upgrade(url)
            yield url
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    from tests.pg_helpers import create_database, drop_database, postgres_admin_url

    url = create_database(postgres_admin_url())
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)
