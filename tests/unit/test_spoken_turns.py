"""Spoken tutor replies: `speak` synthesises the reply in the conversation's voice, `audio_url` serves it to its
caller only, a synthesis failure leaves the turn whole. Each test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

from tests.conftest import CLIENT_KEY
from tests.conversation_helpers import OTHER_KEY, sse_events, start, turn


def test_speak_returns_an_audio_url_that_serves_the_reply(data_client, auth, fake_gemini, fake_azure):
    conversation = start(data_client, auth, language="fr-FR", voice="fr-FR-HenriNeural")
    tutor = turn(data_client, conversation, auth, text="Bonjour, je voudrais un café.", speak=True
                 ).get_json()["data"]["tutor"]
    assert tutor["audio_url"] and tutor["audio_url"].startswith("/api/speech/")
    spoken = fake_azure.stats()["last_spoken"]
    assert (spoken["text"], spoken["voice"], spoken["language"]) == (tutor["text"], "fr-FR-HenriNeural", "fr-FR")
    clip = data_client.get(tutor["audio_url"], headers=auth)
    assert clip.status_code == 200 and clip.headers["Content-Type"] == "audio/mpeg"
    assert clip.headers["X-Cache"] == "HIT"  # synthesised during the turn
    assert fake_azure.stats()["synthesis_calls"] == 1
    stored = data_client.get(f"/api/conversations/{conversation}", headers=auth).get_json()["data"]["messages"]
    assert stored[1]["audio_url"] == tutor["audio_url"] and stored[0]["audio_url"] is None


def test_without_speak_nothing_is_synthesised(data_client, auth, fake_gemini, fake_azure):
    conversation = start(data_client, auth)
    assert turn(data_client, conversation, auth).get_json()["data"]["tutor"]["audio_url"] is None
    assert fake_azure.stats()["synthesis_calls"] == 0


def test_the_default_voice_of_the_language_speaks_when_none_was_chosen(data_client, auth, fake_gemini, fake_azure):
    conversation = start(data_client, auth, language="de-DE")
    turn(data_client, conversation, auth, text="Guten Tag!", speak=True)
    assert fake_azure.stats()["last_spoken"]["voice"] == "de-DE-KatjaNeural"


def test_a_clip_is_its_callers_alone(make_app, database_url, fake_gemini, fake_azure):
    client = make_app(DATABASE_URL=database_url, API_KEYS=f"tester:{CLIENT_KEY},other:{OTHER_KEY}").test_client()
    alice = {"X-API-Key": CLIENT_KEY, "X-User-ID": "alice"}
    conversation = start(client, alice)
    url = turn(client, conversation, alice, speak=True).get_json()["data"]["tutor"]["audio_url"]
    for headers in ({**alice, "X-User-ID": "bob"}, {"X-API-Key": CLIENT_KEY}, {"X-API-Key": OTHER_KEY,
                                                                               "X-User-ID": "alice"}):
        response = client.get(url, headers=headers)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "NOT_FOUND"
    assert client.get(url, headers=alice).status_code == 200
    assert client.get("/api/speech/" + "0" * 32, headers=alice).status_code == 404


def test_a_synthesis_failure_leaves_the_turn_whole(make_app, database_url, auth, fake_gemini, fake_azure):
    client = make_app(DATABASE_URL=database_url, RETRY_MAX_ATTEMPTS=1).test_client()
    fake_azure.configure(error="503")
    conversation = start(client, auth)
    response = turn(client, conversation, auth, text="Can you say that aloud?", speak=True)
    assert response.status_code == 201
    assert response.get_json()["data"]["tutor"]["audio_url"] is None and response.get_json()["data"]["tutor"]["text"]
    from prometheus_client import REGISTRY

    assert (REGISTRY.get_sample_value("tutor_speech_total", {"outcome": "failed"}) or 0) >= 1


def test_a_streamed_turn_speaks_too(data_client, auth, fake_gemini, fake_azure):
    conversation = start(data_client, auth)
    raw = data_client.post(f"/api/conversations/{conversation}/messages", json={"text": "Hello!", "speak": True},
                           headers={**auth, "Accept": "text/event-stream"}).get_data(as_text=True)
    done = sse_events(raw)[-1]
    assert done[0] == "done" and done[1]["tutor"]["audio_url"].startswith("/api/speech/")
    assert data_client.get(done[1]["tutor"]["audio_url"], headers=auth).status_code == 200


def test_erasing_the_caller_counts_and_removes_their_clips(data_client, auth, fake_gemini, fake_azure):
    conversation = start(data_client, auth)
    url = turn(data_client, conversation, auth, speak=True).get_json()["data"]["tutor"]["audio_url"]
    turn(data_client, conversation, auth, text="And again.", speak=True)
    deleted = data_client.delete("/api/me", headers=auth).get_json()["data"]["deleted"]
    assert deleted == {"conversations": 1, "messages": 4, "jobs": 0, "audio": 2}
    assert data_client.get(url, headers=auth).status_code == 404


def test_a_voice_that_does_not_speak_the_conversations_language_is_refused(data_client, auth):
    response = data_client.post("/api/conversations", json={"language": "fr-FR", "voice": "en-US-JennyNeural"},
                                headers=auth)
    assert response.status_code == 422


def test_an_export_lists_the_callers_clips(data_app, data_client, auth, fake_gemini, fake_azure):
    import json

    conversation = start(data_client, auth)
    url = turn(data_client, conversation, auth, speak=True).get_json()["data"]["tutor"]["audio_url"]
    result = data_app.test_cli_runner().invoke(args=["data", "export", "--user", "tester"])
    exported = json.loads(result.output)
    (clip,) = exported["conversations"][0]["speech_clips"]
    assert url.endswith(clip["id"]) and clip["voice"] == "en-US-JennyNeural" and clip["format"] == "mp3"
