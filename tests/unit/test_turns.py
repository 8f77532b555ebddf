"""A learner's turn (JSON): both messages stored together, the tutor's prompt (language, level, scenario, history,
summary), corrections of real errors, failures that store nothing, fallback, audio turns, turn limits, cost.
Each test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

from sqlalchemy import select

from backend.db.models import Conversation, Message
from tests.audio_samples import speech_wav
from tests.conversation_helpers import (
    contents_text,
    correction_requests,
    reply_requests,
    start,
    system_text,
    turn,
)


def _stored(app, conversation_id):
    """The conversation's rows, read straight from the database."""
    with app.extensions["backend"].database.session() as session:
        conversation = session.get(Conversation, conversation_id)
        messages = list(session.scalars(select(Message).where(Message.conversation_id == conversation_id)
                                        .order_by(Message.seq)))
    return conversation, messages


def test_a_turn_stores_the_learners_message_and_the_tutors_reply(data_app, data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    response = turn(data_client, conversation, auth, text="I like to drink coffee in the morning.")
    assert response.status_code == 201
    body = response.get_json()
    learner, tutor = body["data"]["learner"], body["data"]["tutor"]
    assert (learner["role"], learner["text"], learner["audio_url"]) == (
        "learner", "I like to drink coffee in the morning.", None)
    assert tutor["role"] == "tutor" and tutor["text"] and tutor["corrections"] == []
    assert body["meta"]["provider"] == "gemini"
    row, messages = _stored(data_app, conversation)
    assert [m.id for m in messages] == [learner["id"], tutor["id"]]
    assert row.message_count == 2 and row.turn_token is None and row.updated_at >= row.created_at


def test_the_tutor_is_told_the_language_level_and_scenario(data_client, auth, fake_gemini):
    conversation = start(data_client, auth, scenario="buying a train ticket", level="A2", language="fr-FR",
                         native_language="English")
    turn(data_client, conversation, auth, text="Bonjour, je voudrais un billet pour Lyon.")
    (request,) = reply_requests(fake_gemini)
    system = system_text(request)
    assert "Language: fr-FR" in system and "A2" in system and "buying a train ticket" in system
    assert "English" in system
    assert contents_text(request).endswith("Bonjour, je voudrais un billet pour Lyon.")


def test_the_prompt_carries_the_earlier_turns_in_order(data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    for text in ("My name is Ana.", "I live in Lisbon.", "I work as a nurse."):
        assert turn(data_client, conversation, auth, text=text).status_code == 201
    last = reply_requests(fake_gemini)[-1]
    roles = [content.get("role") for content in last["contents"]]
    assert roles == ["user", "model", "user", "model", "user"]
    said = contents_text(last)
    assert said.index("My name is Ana.") < said.index("I live in Lisbon.") < said.index("I work as a nurse.")


def test_older_turns_leave_the_window_and_are_summarised(make_app, database_url, auth, fake_gemini):
    app = make_app(DATABASE_URL=database_url, CONVERSATION_HISTORY_TOKENS=200)
    client = app.test_client()
    conversation = start(client, auth)
    for n in range(12):
        assert turn(client, conversation, auth, text=f"Fact number {n}: " + "my garden has many roses. " * 3
                    ).status_code == 201
        app.extensions["backend"].executor.submit(lambda: None).result()  # the summary runs beside the turn
    row, _ = _stored(app, conversation)
    assert row.summarized_count > 0 and row.summary
    last = reply_requests(fake_gemini)[-1]
    assert "Fact number 0:" not in contents_text(last)  # out of the window...
    assert "Earlier in this conversation" in system_text(last)  # ...but summarised: the fake's summary quotes it
    assert "Fact number 0" in system_text(last).split("Earlier in this conversation")[1]


def test_corrections_point_at_real_errors_of_the_learners_text(data_client, auth, fake_gemini):
    conversation = start(data_client, auth, level="B1")
    text = "Yesterday my freind and me discuss about the weather becuase it was wierd."
    learner = turn(data_client, conversation, auth, text=text).get_json()["data"]["learner"]
    assert learner["corrections"], learner
    for correction in learner["corrections"]:
        assert correction["text"].lower() in text.lower() and correction["correction"] != correction["text"]
    (request,) = correction_requests(fake_gemini)
    assert text in contents_text(request)


def test_a_failed_model_call_stores_nothing_and_frees_the_conversation(data_app, data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    fake_gemini.configure(error="400")
    response = turn(data_client, conversation, auth)
    assert response.status_code == 502
    row, messages = _stored(data_app, conversation)
    assert messages == [] and row.message_count == 0 and row.turn_token is None
    fake_gemini.configure(error=None)
    assert turn(data_client, conversation, auth).status_code == 201  # no 409: the lease was given back


def test_the_fallback_model_answers_when_gemini_is_down(make_app, database_url, auth, fake_gemini, fake_openai):
    app = make_app(DATABASE_URL=database_url, FALLBACK_LLM_BASE_URL=fake_openai.base_url,
                   FALLBACK_LLM_API_KEY="fake-provider-key", FALLBACK_LLM_MODEL="fallback-test",
                   RETRY_MAX_ATTEMPTS=1)
    client = app.test_client()
    conversation = start(client, auth, level="B2")
    fake_gemini.configure(error="503")
    response = turn(client, conversation, auth, text="What should I see in Porto?")
    assert response.status_code == 201
    assert response.get_json()["meta"]["provider"] == "fallback"
    assert fake_openai.calls >= 1


def test_turns_are_never_cached_or_shared(data_client, auth, fake_gemini):
    first, second = start(data_client, auth), start(data_client, auth)
    for conversation in (first, second):
        response = turn(data_client, conversation, auth, text="Exactly the same words.")
        assert response.status_code == 201 and "X-Cache" not in response.headers
    assert len(reply_requests(fake_gemini)) == 2


def test_a_spoken_turn_is_transcribed_first(data_client, auth, fake_gemini, fake_azure):
    fake_azure.configure(transcript=["I would like a table for two."])
    conversation = start(data_client, auth)
    response = data_client.post(f"/api/conversations/{conversation}/messages", headers=auth,
                                data={"audio": (__import__("io").BytesIO(speech_wav(segments=1)), "turn.wav")},
                                content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["data"]["learner"]["text"] == "I would like a table for two."
    assert contents_text(reply_requests(fake_gemini)[-1]).endswith("I would like a table for two.")


def test_a_full_conversation_refuses_more_turns(make_app, database_url, auth, fake_gemini):
    client = make_app(DATABASE_URL=database_url, MAX_TURNS_PER_CONVERSATION=2).test_client()
    conversation = start(client, auth)
    assert [turn(client, conversation, auth).status_code for _ in range(2)] == [201, 201]
    refused = turn(client, conversation, auth)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "CONFLICT" and "new one" in refused.get_json()["error"]["message"]


def test_each_turn_records_what_it_cost(data_app, data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    turn(data_client, conversation, auth, text="I has a question about my homework.")
    _, (learner, tutor) = _stored(data_app, conversation)
    assert tutor.cost_usd > 0 and learner.cost_usd == 0


def test_invalid_turns_are_refused_before_any_model_call(data_client, auth, fake_gemini):
    conversation = start(data_client, auth)
    for body in ({"text": ""}, {"text": "x" * 2001}, {"text": "hi", "extra": 1}, {}):
        response = data_client.post(f"/api/conversations/{conversation}/messages", json=body, headers=auth)
        assert response.status_code == 422, body
    plain = data_client.post(f"/api/conversations/{conversation}/messages", data="hi", headers=auth,
                             content_type="text/plain")
    assert plain.status_code == 415
    assert fake_gemini.calls == 0


def test_corrections_never_take_a_slot_a_reply_needs(make_app, database_url, auth, fake_gemini):
    """The corrections run beside the reply with a bulkhead of their own: with room for one Gemini call per worker,
    a turn still gets both its reply and its corrections (one shared slot refused one of them)."""
    client = make_app(DATABASE_URL=database_url, GEMINI_MAX_CONCURRENCY=1).test_client()
    fake_gemini.configure(latency_ms=300)
    conversation = start(client, auth)
    response = turn(client, conversation, auth, text="My freind and me went to the cinema.")
    assert response.status_code == 201
    assert response.get_json()["data"]["learner"]["corrections"]
    assert len(correction_requests(fake_gemini)) == 1


def test_turns_count_as_ai_calls_and_other_routes_do_not(make_app, database_url, auth, fake_gemini):
    client = make_app(DATABASE_URL=database_url, RATE_LIMIT_AI="2/minute").test_client()
    conversation = start(client, auth)
    assert [turn(client, conversation, auth).status_code for _ in range(3)] == [201, 201, 429]
    assert client.post("/api/analyze", json={"text": "One more."}, headers=auth).status_code == 429  # one budget
    listing = client.get("/api/conversations", headers=auth)
    assert listing.status_code == 200 and listing.headers["X-RateLimit-Limit"] != "2"
