"""POST /api/speech and GET /api/voices through the real Speech SDK against the fake: every format, escaped SSML,
one cache entry in every tier (bytes), single-flight, stale-if-error, outages, validation."""
from __future__ import annotations

import threading

import pytest

from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

INJECTIONS = ["</voice><voice name=\"en-US-GuyNeural\">Hi", "<break time=\"100s\"/>Wait", "Tom &amp; Jerry &lt;3",
              "]]><!-- x --> <speak>", "Bell\x07 and\x00 null"]
FORMATS = {"mp3": ("audio/mpeg", (b"\xff", b"ID3")), "wav": ("audio/wav", (b"RIFF",)), "ogg": ("audio/ogg", (b"OggS",))}


@pytest.fixture
def redis_app(make_app):
    """An app whose cache lives in Redis only (as in Kubernetes), under a prefix of its own."""
    prefix = unique_prefix("speech")
    yield make_app(CACHE_MODE="redis_only", REDIS_URL=MAIN_REDIS_URL, REDIS_KEY_PREFIX=prefix)
    purge(prefix)


def speak(client, auth, **body):
    return client.post("/api/speech", json={"text": "Good morning, how are you?", **body}, headers=auth)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_comes_back_as_audio_of_its_type(client, auth, fake_azure, fmt):
    response = speak(client, auth, format=fmt)
    content_type, magics = FORMATS[fmt]
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.headers["Content-Type"] == content_type
    assert int(response.headers["Content-Length"]) == len(response.data) > 500
    assert response.data.startswith(magics), response.data[:8]
    if fmt == "wav":
        assert response.data[8:12] == b"WAVE"
    assert response.headers["X-Cache"] == "MISS" and response.headers["X-Provider"] == "azure_tts"
    assert response.headers["X-Request-ID"]


@pytest.mark.parametrize("text", INJECTIONS)
def test_markup_in_the_text_is_spoken_never_interpreted(client, auth, fake_azure, text):
    assert speak(client, auth, text=text).status_code == 200
    said = fake_azure.stats()["last_spoken"]
    expected = "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 32)
    assert said["text"] == expected and said["voice"] == "en-US-JennyNeural"


def test_the_same_request_is_one_entry_and_one_synthesis(client, auth, fake_azure):
    first, second = speak(client, auth), speak(client, auth)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.data == second.data
    assert fake_azure.stats()["synthesis_calls"] == 1
    for other in ({"rate": 1.5}, {"format": "wav"}, {"voice": "en-US-GuyNeural"}, {"text": "Another text."}):
        assert speak(client, auth, **other).headers["X-Cache"] == "MISS", other
    assert fake_azure.stats()["synthesis_calls"] == 5


def test_bytes_live_in_redis_and_serve_every_worker(redis_app, make_app, auth, fake_azure):
    first = speak(redis_app.test_client(), auth, format="wav")
    # Another app (another worker or instance) on the same Redis: a hit, identical bytes, no synthesis.
    other = make_app(CACHE_MODE="redis_only", REDIS_URL=MAIN_REDIS_URL,
                     REDIS_KEY_PREFIX=redis_app.extensions["backend"].settings.redis_key_prefix)
    second = speak(other.test_client(), auth, format="wav")
    assert second.headers["X-Cache"] == "HIT" and second.data == first.data
    assert fake_azure.stats()["synthesis_calls"] == 1


def test_identical_concurrent_requests_make_one_synthesis(redis_app, auth, fake_azure):
    fake_azure.configure(latency_ms=400)
    client = redis_app.test_client()
    results = []
    threads = [threading.Thread(target=lambda: results.append(speak(client, auth, text="All at once."))) for _ in
               range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 12
    assert len({r.data for r in results}) == 1
    assert fake_azure.stats()["synthesis_calls"] == 1


def test_an_outage_serves_a_cached_clip_and_refuses_an_uncached_one(make_app, auth, fake_azure):
    client = make_app(CACHE_NAMESPACE_TTLS="speech=1", CACHE_STALE_GRACE_SECONDS=3600,
                      RETRY_MAX_ATTEMPTS=1).test_client()
    cached = speak(client, auth, text="Kept for later.")
    fake_azure.configure(error="503")
    import time

    time.sleep(1.1)  # the entry is now stale: only an outage may serve it
    stale = speak(client, auth, text="Kept for later.")
    assert stale.status_code == 200 and stale.headers["X-Cache"] == "STALE" and stale.data == cached.data
    fresh = speak(client, auth, text="Never said before.")
    assert fresh.status_code in (502, 503) and fresh.mimetype == "application/json"
    assert fresh.get_json()["error"]["code"] in ("PROVIDER_ERROR", "PROVIDER_UNAVAILABLE")


@pytest.mark.parametrize("body, field", [
    ({"rate": 0.4}, "rate"), ({"rate": 2.5}, "rate"), ({"format": "flac"}, "format"), ({"text": ""}, "text"),
    ({"text": "x" * 2001}, "text"), ({"voice": "Jenny"}, "voice"), ({"language": "english"}, "language"),
    ({"text": "\x00\x01\x02"}, "text")])
def test_invalid_requests_are_422(client, auth, fake_azure, body, field):
    response = speak(client, auth, **body)
    assert response.status_code == 422
    assert field in str(response.get_json()["error"]["details"])
    assert fake_azure.stats()["synthesis_calls"] == 0


def test_a_voice_must_speak_the_language(client, auth, fake_azure):
    wrong = speak(client, auth, language="fr-FR", voice="en-US-JennyNeural", text="Bonjour")
    assert wrong.status_code == 422 and "does not speak fr-FR" in wrong.get_json()["error"]["message"]
    right = speak(client, auth, language="fr-FR", voice="fr-FR-DeniseNeural", text="Bonjour")
    assert right.status_code == 200
    assert speak(client, auth, language="fr-FR", text="Bonjour").status_code == 200  # the default French voice
    assert speak(client, auth, language="sw-KE", text="Habari").status_code == 422  # no default: name one


def test_voices_of_a_language_are_cached(client, auth, fake_azure):
    first = client.get("/api/voices", query_string={"language": "fr-FR"}, headers=auth)
    assert first.status_code == 200
    voices = first.get_json()["data"]["voices"]
    assert voices and all(v["locale"] == "fr-FR" and {"name", "locale", "gender"} <= set(v) for v in voices)
    again = client.get("/api/voices", query_string={"language": "fr-FR"}, headers=auth)
    assert again.headers["X-Cache"] == "HIT" and again.get_json()["data"] == first.get_json()["data"]


def test_synthesis_is_counted_and_priced(client, auth, fake_azure):
    from prometheus_client import REGISTRY

    def value(name, labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    chars, cost = value("ai_tts_characters_total", {"provider": "azure_tts"}), value("ai_cost_usd_total",
                                                                                  {"provider": "azure_tts"})
    avoided = value("ai_cost_avoided_usd_total", {"provider": "azure_tts", "reason": "cache"})
    speak(client, auth, text="x" * 1000)
    speak(client, auth, text="x" * 1000)  # a hit: nothing more spent, the same avoided
    assert value("ai_tts_characters_total", {"provider": "azure_tts"}) - chars == 1000
    assert value("ai_cost_usd_total", {"provider": "azure_tts"}) - cost == pytest.approx(1000 / 1e6 * 16.0)
    assert value("ai_cost_avoided_usd_total", {"provider": "azure_tts", "reason": "cache"}) - avoided == \
        pytest.approx(1000 / 1e6 * 16.0)


def test_a_key_is_required(client, fake_azure):
    assert client.post("/api/speech", json={"text": "Hi"}).status_code == 401
