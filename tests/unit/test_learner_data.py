"""Learner data rights (contract section 7): DELETE /api/me erases exactly the caller's rows, `data export` prints
exactly theirs, `data purge` applies retention. Each test runs on SQLite and on PostgreSQL (``database_url``)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from backend.db import conversations, learner_data, turns
from backend.db.models import Conversation, Message, TurnKey, utcnow
from backend.schemas.caller import Caller

OTHER_KEY_ALICE = Caller("other", "alice")


def as_user(auth, user_id=None):
    return {**auth, "X-User-ID": user_id} if user_id else dict(auth)


def start(client, headers, scenario):
    response = client.post("/api/conversations", json={"scenario": scenario}, headers=headers)
    assert response.status_code == 201
    return response.get_json()["data"]["id"]


def turn(client, headers, conversation_id, text, key=None):
    extra = {"Idempotency-Key": key} if key else {}
    response = client.post(f"/api/conversations/{conversation_id}/messages", json={"text": text},
                           headers={**headers, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def store_directly(database, caller, text):
    """A conversation with one turn (and its key) of a caller this app has no key for, through the repositories."""
    with database.session(write=True) as session:
        conversation = conversations.create(session, caller, scenario="elsewhere", level=None, native_language=None,
                                            language="en-US", voice=None)
    with database.session(write=True) as session:
        turns.take_lease(session, caller, conversation.id, token="t" * 32, seconds=60, retry_after=1, max_turns=10)
        turns.store_turn(session, caller, conversation.id, token="t" * 32, key="other-key-1", request_hash="h" * 64,
                         learner=turns.NewMessage(text, []), tutor=turns.NewMessage("Nice.", []))
    return conversation.id


def count(database, model, caller):
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(
            model.client == caller.client, model.user_id == caller.user_id))


def make_old(database, model, where, **values):
    with database.session(write=True) as session:
        session.execute(update(model).where(where).values(**values))


def service(client):
    return client.application.extensions["backend"].learner_data


@pytest.fixture
def database(data_app):
    return data_app.extensions["backend"].database


@pytest.fixture
def callers(data_client, auth, database, fake_gemini):
    """Alice (two conversations, three turns), Bob and the key itself (one turn each), and another key's alice."""
    alice, bob = as_user(auth, "alice"), as_user(auth, "bob")
    first = start(data_client, alice, "alice at the bakery")
    turn(data_client, alice, first, "Yesterday i recieve a letter from my freind.", key="alice-key-1")
    turn(data_client, alice, first, "Alice likes warm bread.")
    second = start(data_client, alice, "alice at the station")
    turn(data_client, alice, second, "Where the train go?")
    bobs = start(data_client, bob, "bob at the garage")
    turn(data_client, bob, bobs, "Bob fixes old motorbikes.", key="bob-key-1")
    own = start(data_client, auth, "the key's own practice")
    turn(data_client, auth, own, "The key itself speaks here.")
    other = store_directly(database, OTHER_KEY_ALICE, "Other key alice writes poems.")
    return {"alice": [first, second], "bob": [bobs], "own": [own], "other": [other]}


def test_delete_me_erases_exactly_the_callers_rows(data_client, auth, database, callers):
    response = data_client.delete("/api/me", headers=as_user(auth, "alice"))
    assert response.status_code == 200
    assert response.get_json()["data"] == {"deleted": {"conversations": 2, "messages": 6, "jobs": 0, "audio": 0}}
    alice = Caller("tester", "alice")
    assert [count(database, model, alice) for model in (Conversation, Message, TurnKey)] == [0, 0, 0]
    for conversation_id in callers["alice"]:
        assert data_client.get(f"/api/conversations/{conversation_id}",
                               headers=as_user(auth, "alice")).status_code == 404
    # Bob, the key's own data and another key's user of the same name keep everything.
    for caller, conversation_id in ((Caller("tester", "bob"), callers["bob"][0]),
                                    (Caller("tester"), callers["own"][0]), (OTHER_KEY_ALICE, callers["other"][0])):
        with database.session() as session:
            assert list(session.scalars(select(Conversation.id).where(Conversation.client == caller.client,
                                                                      Conversation.user_id == caller.user_id))) == [
                conversation_id]
        assert count(database, Message, caller) == 2
    assert count(database, TurnKey, Caller("tester", "bob")) == 1
    assert count(database, TurnKey, OTHER_KEY_ALICE) == 1
    kept = data_client.get(f"/api/conversations/{callers['bob'][0]}", headers=as_user(auth, "bob"))
    assert [m["text"] for m in kept.get_json()["data"]["messages"]][0] == "Bob fixes old motorbikes."
    assert service(data_client).usage_counts(Caller("tester", "bob")) == {"conversations": 1, "jobs": 0}


def test_delete_me_twice_gives_zeros_the_second_time(data_client, auth, callers):
    first = data_client.delete("/api/me", headers=auth).get_json()["data"]["deleted"]
    assert first == {"conversations": 1, "messages": 2, "jobs": 0, "audio": 0}
    second = data_client.delete("/api/me", headers=auth)
    assert second.status_code == 200
    assert second.get_json()["data"]["deleted"] == {"conversations": 0, "messages": 0, "jobs": 0, "audio": 0}


def test_delete_me_needs_the_client_key_and_a_valid_user_id(data_client, auth, callers):
    assert data_client.delete("/api/me", headers={"X-User-ID": "alice"}).status_code == 401
    assert data_client.delete("/api/me", headers=as_user(auth, "not valid!")).status_code == 422
    assert service(data_client).usage_counts(Caller("tester", "alice")) == {"conversations": 2, "jobs": 0}


def export(data_app, user):
    result = data_app.test_cli_runner().invoke(args=["data", "export", "--user", user])
    assert result.exit_code == 0, result.output
    return result.output, json.loads(result.output)


def test_export_has_the_callers_data_and_nothing_of_another(data_app, data_client, auth, callers):
    output, exported = export(data_app, "tester:alice")
    assert (exported["caller"], exported["client"], exported["user_id"]) == ("tester:alice", "tester", "alice")
    assert [c["id"] for c in exported["conversations"]] == callers["alice"]
    first = exported["conversations"][0]
    assert (first["scenario"], first["language"], first["message_count"]) == ("alice at the bakery", "en-US", 4)
    assert "summary" in first
    # The messages are the ones the API shows, corrections included.
    shown = data_client.get(f"/api/conversations/{first['id']}", headers=as_user(auth, "alice")).get_json()["data"]
    assert [(m["id"], m["role"], m["text"], m["corrections"]) for m in first["messages"]] == [
        (m["id"], m["role"], m["text"], m["corrections"]) for m in shown["messages"]]
    assert any(c["text"] == "recieve" for c in first["messages"][0]["corrections"]), first["messages"][0]
    assert [k["learner_message_id"] for k in first["turn_keys"]] == [first["messages"][0]["id"]]
    assert "alice-key-1" not in output  # the key replays the answer: not handed out
    for foreign in ("Bob fixes", "The key itself", "Other key alice", "bob-key-1", *callers["bob"], *callers["other"]):
        assert foreign not in output


def test_export_of_the_keys_own_data_and_of_an_unknown_caller(data_app, callers):
    _, own = export(data_app, "tester")
    assert [c["id"] for c in own["conversations"]] == callers["own"] and own["user_id"] == ""
    _, unknown = export(data_app, "tester:nobody")
    assert unknown["conversations"] == [] and unknown["caller"] == "tester:nobody"


@pytest.mark.parametrize("user, reason", [(":alice", "needs a client name"), ("tester:not valid!", "a user id is"),
                                          ("", "needs a client name")])
def test_export_refuses_a_malformed_user(data_app, user, reason):
    result = data_app.test_cli_runner().invoke(args=["data", "export", "--user", user])
    assert result.exit_code == 2
    assert "is not KEYNAME:USERID" in result.output and reason in result.output


def test_purge_applies_retention_to_conversations_and_turn_keys(data_app, data_client, auth, database, fake_gemini):
    settings, now = data_app.extensions["backend"].settings, utcnow()
    headers = as_user(auth, "carol")
    old, recent, answering = (start(data_client, headers, name) for name in ("old", "recent", "answering"))
    turn(data_client, headers, old, "This is old.", key="old-1")
    turn(data_client, headers, recent, "This is older.", key="recent-old")
    turn(data_client, headers, recent, "This is new.", key="recent-new")
    retention = timedelta(days=settings.data_retention_days)
    make_old(database, Conversation, Conversation.id == old, updated_at=now - retention - timedelta(days=1))
    make_old(database, Conversation, Conversation.id == recent, updated_at=now - retention + timedelta(days=1))
    # Untouched for long, but a turn is being answered in it right now: kept.
    make_old(database, Conversation, Conversation.id == answering, updated_at=now - retention - timedelta(days=1),
             turn_token="x" * 32, turn_until=now + timedelta(minutes=5))
    make_old(database, TurnKey, TurnKey.key == "recent-old",
             created_at=now - timedelta(hours=settings.idempotency_key_hours + 1))
    make_old(database, TurnKey, TurnKey.key == "recent-new",
             created_at=now - timedelta(hours=settings.idempotency_key_hours - 1))

    result = data_app.test_cli_runner().invoke(args=["data", "purge"])
    assert result.exit_code == 0, result.output
    assert "purged 1 conversation(s)" in result.output and "with 2 message(s)" in result.output
    assert "2 turn key(s)" in result.output  # the old conversation's, and the recent one's expired key
    with database.session() as session:
        assert set(session.scalars(select(Conversation.id))) == {recent, answering}
        assert session.scalar(select(func.count()).select_from(Message).where(Message.conversation_id == old)) == 0
        assert session.scalar(select(func.count()).select_from(Message).where(Message.conversation_id == recent)) == 4
        assert list(session.scalars(select(TurnKey.key))) == ["recent-new"]
    again = data_app.test_cli_runner().invoke(args=["data", "purge"])
    assert "purged 0 conversation(s)" in again.output and "0 turn key(s)" in again.output


def test_purge_works_in_batches(database):
    caller, now = Caller("tester", "dave"), utcnow()
    with database.session(write=True) as session:
        ids = {conversations.create(session, caller, scenario=str(n), level=None, native_language=None,
                                    language="en-US", voice=None).id for n in range(3)}
    make_old(database, Conversation, Conversation.id.in_(ids), updated_at=now - timedelta(days=30))
    deleted = []
    for _ in range(3):
        with database.session(write=True) as session:
            deleted.append(learner_data.purge(session, older_than=now - timedelta(days=7), keys_older_than=now,
                                              limit=2)["conversations"])
    assert deleted == [2, 1, 0]
    assert count(database, Conversation, caller) == 0
