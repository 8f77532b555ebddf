"""The turn's statements, built once and run with bound parameters (backend/db/turns.py, conversations.said): the
window and the summary read exactly the rows asked for, a stored turn reads back as the ORM sees it, and the
leases stay exclusive. On SQLite and PostgreSQL (``database_url``)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from backend.db import conversations, turns
from backend.db.engine import Database
from backend.db.models import Conversation, Message, TurnKey, utcnow
from backend.errors import Conflict, NotFound
from backend.schemas.caller import Caller

ANA, BEN = Caller("key", "ana"), Caller("key", "ben")


@pytest.fixture
def database(database_url):
    database = Database(database_url, pool_size=2)
    yield database
    database.dispose()


def new_conversation(database, caller):
    with database.session(write=True) as session:
        return conversations.create(session, caller, scenario="at the market", level="B1", native_language=None,
                                    language="en-US", voice=None)


def take_turn(database, caller, conversation_id, n, *, key=None):
    with database.session(write=True) as session:
        turns.take_lease(session, caller, conversation_id, token=f"token-{n}", seconds=60, retry_after=1,
                         max_turns=100)
    with database.session(write=True) as session:
        return turns.store_turn(session, caller, conversation_id, token=f"token-{n}", key=key, request_hash="h" * 64,
                                learner=turns.NewMessage(f"learner {n}", [{"text": "a", "correction": "b",
                                                                           "explanation": "c"}]),
                                tutor=turns.NewMessage(f"tutor {n}", [], cost_usd=0.25, audio_url=f"/clip/{n}"))


def test_said_reads_the_window_and_what_left_it_in_order(database):
    ana = new_conversation(database, ANA)
    for n in range(6):
        take_turn(database, ANA, ana.id, n)
    ben = new_conversation(database, BEN)
    take_turn(database, BEN, ben.id, 99)
    with database.session() as session:
        conversation = conversations.get(session, ANA, ana.id)
        everything = conversations.said(session, conversation, since_seq=0)
        window = conversations.said(session, conversation, since_seq=2, newest=4)
        older = conversations.said(session, conversation, since_seq=2, before=8)
        older_newest = conversations.said(session, conversation, since_seq=0, before=8, newest=3)
    assert [m.seq for m in everything] == list(range(12))
    assert [(m.role, m.text) for m in everything[:2]] == [("learner", "learner 0"), ("tutor", "tutor 0")]
    assert [m.seq for m in window] == [8, 9, 10, 11]  # the newest four, oldest first
    assert [m.seq for m in older] == [2, 3, 4, 5, 6, 7]  # from since_seq, before the window
    assert [m.seq for m in older_newest] == [5, 6, 7]
    assert all("99" not in m.text for m in everything)  # another caller's conversation is not read


def test_a_stored_turn_reads_back_as_returned(database):
    ana = new_conversation(database, ANA)
    learner, tutor = take_turn(database, ANA, ana.id, 1, key="key-1")
    with database.session() as session:
        stored = {m.id: m for m in session.scalars(select(Message).where(Message.conversation_id == ana.id))}
        row = conversations.get(session, ANA, ana.id)
        key = session.scalars(select(TurnKey).where(TurnKey.conversation_id == ana.id)).one()
    assert set(stored) == {learner.id, tutor.id}
    for returned in (learner, tutor):
        kept = stored[returned.id]
        assert (kept.seq, kept.role, kept.text, kept.corrections, kept.audio_url, kept.cost_usd) == (
            returned.seq, returned.role, returned.text, returned.corrections, returned.audio_url, returned.cost_usd)
        assert kept.created_at == returned.created_at and kept.created_at.tzinfo is not None
    assert stored[learner.id].corrections == [{"text": "a", "correction": "b", "explanation": "c"}]
    assert (stored[tutor.id].seq, stored[tutor.id].audio_url, stored[tutor.id].cost_usd) == (1, "/clip/1", 0.25)
    assert (row.message_count, row.turn_token, row.turn_until) == (2, None, None)
    assert (key.learner_message_id, key.tutor_message_id) == (learner.id, tutor.id)


def test_a_lease_is_exclusive_until_it_ends_or_expires(database):
    ana = new_conversation(database, ANA)
    with database.session(write=True) as session:
        held = turns.take_lease(session, ANA, ana.id, token="first", seconds=60, retry_after=1, max_turns=10)
    assert held.turn_token == "first"
    with pytest.raises(Conflict), database.session(write=True) as session:
        turns.take_lease(session, ANA, ana.id, token="second", seconds=60, retry_after=1, max_turns=10)
    with pytest.raises(Conflict), database.session(write=True) as session:  # not the holder: nothing is stored
        turns.store_turn(session, ANA, ana.id, token="second", key=None, request_hash="h",
                         learner=turns.NewMessage("x", []), tutor=turns.NewMessage("y", []))
    with pytest.raises(NotFound), database.session(write=True) as session:  # not ben's conversation to take
        turns.take_lease(session, BEN, ana.id, token="ben", seconds=60, retry_after=1, max_turns=10)
    with database.session(write=True) as session:  # the lease ran out: the next turn takes it
        session.get(Conversation, ana.id).turn_until = utcnow() - timedelta(seconds=1)
    with database.session(write=True) as session:
        assert turns.take_lease(session, ANA, ana.id, token="third", seconds=60, retry_after=1,
                                max_turns=10).turn_token == "third"
    with database.session(write=True) as session:
        turns.release_lease(session, BEN, ana.id, "third")  # not ben's: nothing changes
    with database.session() as session:
        assert conversations.get(session, ANA, ana.id).turn_token == "third"
    with database.session(write=True) as session:
        turns.release_lease(session, ANA, ana.id, "third")
    with database.session() as session:
        assert conversations.get(session, ANA, ana.id).turn_token is None


def test_a_summary_is_extended_only_from_what_it_covered(database):
    ana = new_conversation(database, ANA)
    with database.session(write=True) as session:
        assert turns.extend_summary(session, ANA, ana.id, covered=0, summary="first", new_covered=8)
    with database.session(write=True) as session:  # a second summariser started from the same state: refused
        assert not turns.extend_summary(session, ANA, ana.id, covered=0, summary="stale", new_covered=6)
        assert not turns.extend_summary(session, BEN, ana.id, covered=8, summary="ben's", new_covered=12)
    with database.session() as session:
        row = conversations.get(session, ANA, ana.id)
    assert (row.summary, row.summarized_count) == ("first", 8)
