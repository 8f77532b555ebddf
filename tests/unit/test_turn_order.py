"""Turns are idempotent (Idempotency-Key) and ordered (a turn posted while another is answered is 409 with
Retry-After; a dead turn's lease expires). Each test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from backend.db.models import Conversation, utcnow
from backend.errors import Conflict
from backend.schemas.caller import Caller
from backend.services.turn_types import TurnRequest
from tests.conversation_helpers import reply_requests, start, turn


def test_the_same_key_gives_the_first_answer_without_a_second_call(data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    headers = {**auth, "Idempotency-Key": "turn-0001"}
    first = turn(data_client, conversation, headers, text="I am learning Spanish.")
    again = turn(data_client, conversation, headers, text="I am learning Spanish.")
    assert first.status_code == again.status_code == 201
    assert again.get_json()["data"] == first.get_json()["data"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(reply_requests(fake_gemini)) == 1
    messages = data_client.get(f"/api/conversations/{conversation}", headers=auth).get_json()["data"]["messages"]
    assert len(messages) == 2


def test_the_same_key_with_another_body_is_422(data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    headers = {**auth, "Idempotency-Key": "turn-0002"}
    assert turn(data_client, conversation, headers, text="First words.").status_code == 201
    reused = turn(data_client, conversation, headers, text="Other words.")
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "VALIDATION_ERROR"
    assert turn(data_client, conversation, headers, text="First words.", speak=True).status_code == 422


def test_keys_belong_to_one_conversation_and_one_caller(data_client, auth, fake_gemini):
    first, second = start(data_client, auth), start(data_client, auth)
    headers = {**auth, "Idempotency-Key": "shared-key"}
    one = turn(data_client, first, headers, text="Hello there.").get_json()["data"]
    two = turn(data_client, second, headers, text="Hello there.").get_json()["data"]
    assert one["tutor"]["id"] != two["tutor"]["id"]
    assert len(reply_requests(fake_gemini)) == 2


def test_a_malformed_key_is_422(data_client, auth):
    conversation = start(data_client, auth)
    for key in ("", "x" * 256, "with space", "tab\there"):
        response = turn(data_client, conversation, {**auth, "Idempotency-Key": key})
        assert response.status_code == 422, key


def test_a_turn_posted_while_another_is_answered_is_409(data_app, auth, fake_gemini):
    fake_gemini.configure(latency_ms=1500)
    client = data_app.test_client()
    conversation = start(client, auth)
    answered = {}
    first = threading.Thread(target=lambda: answered.setdefault("first", turn(client, conversation, auth)))
    first.start()
    while fake_gemini.calls == 0:  # the first turn holds the lease once its model call is under way
        time.sleep(0.01)
    second = turn(data_app.test_client(), conversation, auth, text="Are you there?")
    first.join()
    assert answered["first"].status_code == 201
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "CONFLICT"
    assert int(second.headers["Retry-After"]) >= 1
    fake_gemini.configure(latency_ms=0)
    assert turn(client, conversation, auth, text="Are you there?").status_code == 201  # free again
    messages = client.get(f"/api/conversations/{conversation}", headers=auth).get_json()["data"]["messages"]
    assert [m["role"] for m in messages] == ["learner", "tutor", "learner", "tutor"]


def test_a_repeated_key_while_the_first_post_is_answered_is_409_then_the_answer(data_app, auth, fake_gemini):
    fake_gemini.configure(latency_ms=1000)
    client = data_app.test_client()
    conversation = start(client, auth)
    headers = {**auth, "Idempotency-Key": "retry-me"}
    answered = {}
    first = threading.Thread(target=lambda: answered.setdefault("first", turn(client, conversation, headers)))
    first.start()
    while fake_gemini.calls == 0:
        time.sleep(0.01)
    assert turn(data_app.test_client(), conversation, headers).status_code == 409
    first.join()
    replay = turn(client, conversation, headers)
    assert replay.status_code == 201 and replay.get_json()["data"] == answered["first"].get_json()["data"]
    assert len(reply_requests(fake_gemini)) == 1


def test_a_dead_turns_lease_expires(data_app, data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    database = data_app.extensions["backend"].database
    with database.session(write=True) as session:  # a worker took the turn, then died
        session.execute(update(Conversation).where(Conversation.id == conversation)
                        .values(turn_token="f" * 32, turn_until=utcnow() + timedelta(seconds=60)))
    assert turn(data_client, conversation, auth).status_code == 409
    with database.session(write=True) as session:  # ...and its lease ran out
        session.execute(update(Conversation).where(Conversation.id == conversation)
                        .values(turn_until=utcnow() - timedelta(seconds=1)))
    assert turn(data_client, conversation, auth).status_code == 201


def test_a_reply_that_outlived_its_lease_is_not_stored(data_app, data_client, auth, fake_gemini):
    """Another turn took the expired lease meanwhile: storing the late reply would interleave two turns."""
    conversation = start(data_client, auth)
    backend = data_app.extensions["backend"]
    begun = backend.turns.begin(Caller("tester"), conversation, TurnRequest(text="Late words."))
    with backend.database.session(write=True) as session:
        session.execute(update(Conversation).where(Conversation.id == conversation)
                        .values(turn_token="e" * 32, turn_until=utcnow() + timedelta(seconds=60)))
    backend.turns.prepare(begun)
    with pytest.raises(Conflict):
        backend.turns.finish(begun, "A late reply.", "gemini")
    messages = data_client.get(f"/api/conversations/{conversation}", headers=auth).get_json()["data"]["messages"]
    assert messages == []
