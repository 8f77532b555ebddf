"""Conversations: create, list (cursor pages, most recently updated first), read, delete; every caller's own.
Each test runs on SQLite and on PostgreSQL (the ``database_url`` fixture)."""
from __future__ import annotations

import pytest

from tests.conftest import CLIENT_KEY
from tests.conversation_helpers import OTHER_KEY, start, turn


@pytest.fixture
def two_keys(make_app, database_url):
    """An app with two client keys, on an empty database."""
    return make_app(DATABASE_URL=database_url, API_KEYS=f"tester:{CLIENT_KEY},other:{OTHER_KEY}").test_client()


def test_create_answers_201_with_the_contract_fields(data_client, auth):
    response = data_client.post("/api/conversations", headers=auth,
                                json={"scenario": "ordering coffee in Paris", "level": "A2", "language": "fr-FR",
                                      "native_language": "English", "voice": "fr-FR-DeniseNeural"})
    assert response.status_code == 201
    data = response.get_json()["data"]
    assert {"id", "scenario", "level", "language", "voice", "created_at", "updated_at", "messages"} <= set(data)
    assert (data["scenario"], data["level"], data["language"], data["voice"], data["messages"]) == (
        "ordering coffee in Paris", "A2", "fr-FR", "fr-FR-DeniseNeural", [])
    assert len(data["id"]) == 32


def test_defaults_and_an_empty_body(data_client, auth):
    data = data_client.post("/api/conversations", headers=auth).get_json()["data"]
    assert (data["scenario"], data["level"], data["language"]) == ("free conversation", None, "en-US")


@pytest.mark.parametrize("body", [{"scenario": ""}, {"scenario": "x" * 501}, {"level": "D1"},
                                  {"language": "english please"}, {"surprise": 1}])
def test_invalid_fields_are_422(data_client, auth, body):
    response = data_client.post("/api/conversations", headers=auth, json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_listing_pages_most_recently_updated_first(data_client, auth, fake_gemini):
    ids = [start(data_client, auth, scenario=f"scenario {n}") for n in range(5)]
    assert turn(data_client, ids[1], auth).status_code == 201  # updated last: first in the list
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = data_client.get("/api/conversations", query_string=query, headers=auth).get_json()["data"]
        assert len(page["conversations"]) <= 2
        seen += page["conversations"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [c["id"] for c in seen] == [ids[1], ids[4], ids[3], ids[2], ids[0]]
    assert seen[0]["message_count"] == 2 and seen[1]["message_count"] == 0
    assert {"id", "scenario", "level", "language", "created_at", "updated_at", "message_count"} == set(seen[0])


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"cursor": "not-a-cursor"}])
def test_bad_paging_is_422(data_client, auth, query):
    assert data_client.get("/api/conversations", query_string=query, headers=auth).status_code == 422


def test_read_gives_the_messages_in_order(data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    for text in ("First message.", "Second message.", "Third message."):
        assert turn(data_client, conversation, auth, text=text).status_code == 201
    data = data_client.get(f"/api/conversations/{conversation}", headers=auth).get_json()["data"]
    assert [m["role"] for m in data["messages"]] == ["learner", "tutor"] * 3
    assert [m["text"] for m in data["messages"][::2]] == ["First message.", "Second message.", "Third message."]


def test_delete_removes_it_with_its_messages(data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    turn(data_client, conversation, auth)
    assert data_client.delete(f"/api/conversations/{conversation}", headers=auth).get_json()["data"] == {
        "deleted": True}
    assert data_client.get(f"/api/conversations/{conversation}", headers=auth).status_code == 404
    assert data_client.delete(f"/api/conversations/{conversation}", headers=auth).status_code == 404
    assert data_client.get("/api/conversations", headers=auth).get_json()["data"]["conversations"] == []


def test_unknown_ids_are_404(data_client, auth):
    for path in ("/api/conversations/" + "0" * 32, "/api/conversations/nope"):
        response = data_client.get(path, headers=auth)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "NOT_FOUND"


def test_a_key_is_required(data_client):
    assert data_client.post("/api/conversations", json={}).status_code == 401
    assert data_client.get("/api/conversations").status_code == 401


@pytest.mark.parametrize("user_id", ["", "x" * 129, "bob smith", "bob/../alice", "ü"])
def test_a_malformed_user_id_is_422(data_client, auth, user_id):
    response = data_client.get("/api/conversations", headers={**auth, "X-User-ID": user_id})
    assert response.status_code == 422


def test_callers_never_see_each_others_conversations(two_keys, fake_gemini):
    alice = {"X-API-Key": CLIENT_KEY, "X-User-ID": "alice"}
    callers = {"alice": alice, "bob": {**alice, "X-User-ID": "bob"}, "key itself": {"X-API-Key": CLIENT_KEY},
               "other key, same user": {"X-API-Key": OTHER_KEY, "X-User-ID": "alice"}}
    conversation = start(two_keys, alice, scenario="alice's secret plans")
    assert turn(two_keys, conversation, alice).status_code == 201
    for name, headers in callers.items():
        if name == "alice":
            continue
        for response in (two_keys.get(f"/api/conversations/{conversation}", headers=headers),
                         turn(two_keys, conversation, headers),
                         two_keys.delete(f"/api/conversations/{conversation}", headers=headers)):
            assert response.status_code == 404, name
            assert response.get_json()["error"]["code"] == "NOT_FOUND"
        assert two_keys.get("/api/conversations", headers=headers).get_json()["data"]["conversations"] == [], name
    # Alice's conversation is untouched: one turn, still there.
    data = two_keys.get(f"/api/conversations/{conversation}", headers=alice).get_json()["data"]
    assert len(data["messages"]) == 2
