"""Streamed turns (Accept: text/event-stream): delta events as the provider's chunks arrive, then done with both
stored messages; an error event and nothing stored when it fails after starting; ordinary error responses before
it starts; a bound on streams per worker. Each test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import threading

from tests.conversation_helpers import reply_requests, sse_events, start

STREAM = {"Accept": "text/event-stream"}


def _post(client, conversation, headers, text="Tell me about your weekend.", **kwargs):
    return client.post(f"/api/conversations/{conversation}/messages", json={"text": text},
                       headers={**headers, **STREAM}, **kwargs)


def _messages(client, conversation, headers):
    return client.get(f"/api/conversations/{conversation}", headers=headers).get_json()["data"]["messages"]


def test_deltas_then_done_with_both_stored_messages(data_client, auth, fake_gemini):
    fake_gemini.configure(chunk_size=12)
    conversation = start(data_client, auth)
    response = _post(data_client, conversation, auth)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream" and response.headers["Cache-Control"] == "no-cache"
    events = sse_events(response.get_data(as_text=True))
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"} and len(names) >= 4
    done = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "delta") == done["tutor"]["text"]
    stored = _messages(data_client, conversation, auth)
    assert [m["id"] for m in stored] == [done["learner"]["id"], done["tutor"]["id"]]
    assert len(reply_requests(fake_gemini)) == 1  # one model call: the stream is the reply


def test_the_first_delta_comes_before_the_reply_is_complete(data_app, auth, fake_gemini):
    fake_gemini.configure(chunk_size=8, chunk_latency_ms=300)
    client = data_app.test_client()
    conversation = start(client, auth)
    response = _post(client, conversation, auth, buffered=False)
    chunks = iter(response.response)
    first = next(chunks).decode()
    assert first.startswith("event: delta")
    # The turn is not stored yet: the reply is still being written.
    assert _messages(data_app.test_client(), conversation, auth) == []
    rest = "".join(chunk.decode() for chunk in chunks)
    response.close()
    assert sse_events(first + rest)[-1][0] == "done"


def test_a_failure_after_the_first_piece_is_an_error_event_and_stores_nothing(data_client, auth, fake_gemini):
    fake_gemini.configure(chunk_size=8, error="stream_reset", fault_after_chunks=1)
    conversation = start(data_client, auth)
    events = sse_events(_post(data_client, conversation, auth).get_data(as_text=True))
    assert events[0][0] == "delta" and events[-1][0] == "error"
    assert {"code", "message"} <= set(events[-1][1])
    assert "done" not in [name for name, _ in events]
    assert _messages(data_client, conversation, auth) == []
    fake_gemini.configure(error=None)
    assert sse_events(_post(data_client, conversation, auth).get_data(as_text=True))[-1][0] == "done"


def test_failures_before_the_stream_starts_are_ordinary_errors(data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    missing = _post(data_client, "0" * 32, auth)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "NOT_FOUND"
    fake_gemini.configure(error="400")
    refused = _post(data_client, conversation, auth)
    assert refused.status_code == 502 and refused.mimetype == "application/json"
    assert _messages(data_client, conversation, auth) == []


def test_a_replayed_key_streams_the_first_answer_as_done(data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    headers = {**auth, "Idempotency-Key": "stream-1"}
    first = sse_events(_post(data_client, conversation, headers).get_data(as_text=True))[-1]
    again = sse_events(_post(data_client, conversation, headers).get_data(as_text=True))
    assert again == [first]
    assert len(reply_requests(fake_gemini)) == 1


def test_a_learner_who_goes_away_leaves_nothing_stored_and_nothing_held(data_app, auth, fake_gemini):
    fake_gemini.configure(chunk_size=8, chunk_latency_ms=100)
    client = data_app.test_client()
    conversation = start(client, auth)
    response = _post(client, conversation, auth, buffered=False)
    next(iter(response.response))
    response.close()  # the connection dropped after the first piece
    assert _messages(client, conversation, auth) == []
    streams = data_app.extensions["backend"].streams
    assert streams.slots.in_use == 0
    fake_gemini.configure(chunk_latency_ms=0)
    assert sse_events(_post(client, conversation, auth).get_data(as_text=True))[-1][0] == "done"


def test_streams_beyond_the_bound_get_503_with_retry_after(make_app, database_url, auth, fake_gemini):
    app = make_app(DATABASE_URL=database_url, STREAM_MAX_CONCURRENCY=1)
    fake_gemini.configure(chunk_size=8, chunk_latency_ms=200)
    client = app.test_client()
    first_conversation, second_conversation = start(client, auth), start(client, auth)
    opened = _post(client, first_conversation, auth, buffered=False)
    next(iter(opened.response))
    refused = _post(app.test_client(), second_conversation, auth)
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert refused.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    opened.close()
    fake_gemini.configure(chunk_latency_ms=0)
    assert _post(client, second_conversation, auth).status_code == 200


def test_a_json_turn_is_not_held_by_the_stream_bound(make_app, database_url, auth, fake_gemini):
    app = make_app(DATABASE_URL=database_url, STREAM_MAX_CONCURRENCY=1)
    fake_gemini.configure(chunk_size=8, chunk_latency_ms=150)
    client = app.test_client()
    first, second = start(client, auth), start(client, auth)
    opened = _post(client, first, auth, buffered=False)
    next(iter(opened.response))
    done = threading.Event()

    def plain():
        response = client.post(f"/api/conversations/{second}/messages", json={"text": "Hi."}, headers=auth)
        assert response.status_code == 201
        done.set()

    worker = threading.Thread(target=plain)
    worker.start()
    worker.join(timeout=30)
    opened.close()
    assert done.is_set()


def test_without_a_model_both_kinds_of_turn_say_what_to_configure(make_app, database_url, auth):
    client = make_app(DATABASE_URL=database_url, GEMINI_API_KEY="").test_client()
    conversation = start(client, auth)
    streamed = _post(client, conversation, auth)
    plain = client.post(f"/api/conversations/{conversation}/messages", json={"text": "Hi."}, headers=auth)
    assert streamed.status_code == plain.status_code == 503
    assert streamed.get_json()["error"] == plain.get_json()["error"]
    assert streamed.get_json()["error"]["code"] == "PROVIDER_NOT_CONFIGURED"
    assert "GEMINI_API_KEY" in plain.get_json()["error"]["message"]
    assert _messages(client, conversation, auth) == []
