"""POST /api/speech hits from Redis in one round trip (the clip read with the AI limits' script), on a real Redis:
the same answer, limits as exact as before (a refused request serves nothing, an invalid one still takes its
slot), nothing read ahead outliving its request, and each distinct body parsed once."""
from __future__ import annotations

import pytest
import redis
from prometheus_client import REGISTRY

from backend.speech.parsed import synthesis_request
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

TEXT = "The train to the coast leaves at nine."


@pytest.fixture
def redis_tier(make_app):
    """An app whose every hit is a Redis GET: redis_only, with a memory tier too small for any clip."""
    prefix = unique_prefix("speech-ahead")

    def build(**overrides):
        return make_app(CACHE_MODE="redis_only", CACHE_MEMORY_MAX_BYTES=1024, REDIS_URL=MAIN_REDIS_URL,
                        REDIS_KEY_PREFIX=prefix, **overrides)

    yield build
    purge(prefix)


class Sent:
    """The commands this process sends to Redis, one entry per write (a round trip): a spy that calls through."""

    def __init__(self, monkeypatch):
        self.writes: list[bytes] = []
        original = redis.connection.AbstractConnection.send_packed_command

        def spied(connection, command, check_health=True):
            self.writes.append(command if isinstance(command, bytes) else b"".join(command))
            return original(connection, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", spied)

    def reading_the_clip(self) -> list[bytes]:
        return [w for w in self.writes if b"GET" in w and b"cache:speech:" in w]


def speak(client, auth, text=TEXT, **headers):
    return client.post("/api/speech", json={"text": text}, headers={**auth, **headers})


def hits(tier: str) -> float:
    return REGISTRY.get_sample_value("cache_tier_lookups_total",
                                     {"namespace": "speech", "tier": tier, "result": "hit"}) or 0.0


def test_a_redis_tier_hit_is_one_round_trip_and_the_same_answer(redis_tier, auth, fake_azure, monkeypatch):
    app = redis_tier()
    client = app.test_client()
    first = speak(client, auth)
    app.extensions["backend"].shared.cache.generation_refresh = 3600  # no generation read inside the measured hit
    speak(client, auth)
    before = hits("redis")
    sent = Sent(monkeypatch)
    second = speak(client, auth)
    assert second.status_code == 200 and second.headers["X-Cache"] == "HIT"
    assert second.data == first.data and second.headers["Content-Type"] == "audio/mpeg"
    assert int(second.headers["Content-Length"]) == len(second.data) > 500
    assert second.headers["X-Provider"] == "azure_tts" and second.headers["X-RateLimit-Limit"]
    assert len(sent.writes) == 1 and sent.reading_the_clip() == sent.writes  # limits and clip: one write, one trip
    assert hits("redis") == before + 1  # still counted as the Redis tier's hit
    assert fake_azure.stats()["synthesis_calls"] == 1


def test_a_clip_in_the_memory_tier_is_not_read_from_redis(make_app, auth, fake_azure, monkeypatch):
    prefix = unique_prefix("speech-ahead")
    try:
        client = make_app(CACHE_MODE="redis", REDIS_URL=MAIN_REDIS_URL, REDIS_KEY_PREFIX=prefix).test_client()
        speak(client, auth)
        before = hits("memory")
        sent = Sent(monkeypatch)
        assert speak(client, auth).headers["X-Cache"] == "HIT"
        assert hits("memory") == before + 1 and sent.reading_the_clip() == []
    finally:
        purge(prefix)


def test_a_refused_request_is_refused_and_serves_nothing(redis_tier, auth, fake_azure):
    app = redis_tier(RATE_LIMIT_AI="2/minute")
    client = app.test_client()
    assert speak(client, auth).headers["X-Cache"] == "MISS"
    assert speak(client, auth).headers["X-Cache"] == "HIT"
    before = hits("redis")
    refused = speak(client, auth)
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "RATE_LIMITED"
    assert refused.headers["Retry-After"] and refused.mimetype == "application/json"
    assert hits("redis") == before  # read with the limits' script, never looked up nor counted
    # What the limits' script read for it was dropped with the request (the test client runs it on this thread).
    local = app.extensions["backend"].shared.redis._prefetches._local
    assert not getattr(local, "asked", None) and not getattr(local, "got", None)


def test_an_invalid_request_still_takes_its_slot_before_it_is_refused(redis_tier, auth, fake_azure):
    client = redis_tier(RATE_LIMIT_AI="1/minute").test_client()
    invalid = client.post("/api/speech", json={"text": TEXT, "rate": 9}, headers=auth)
    assert invalid.status_code == 422 and invalid.get_json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.post("/api/speech", json={"text": TEXT, "rate": 9}, headers=auth).status_code == 429
    assert fake_azure.stats()["synthesis_calls"] == 0


def test_without_a_valid_key_nothing_is_read_ahead(redis_tier, auth, fake_azure, monkeypatch):
    client = redis_tier().test_client()
    speak(client, auth)
    sent = Sent(monkeypatch)
    response = speak(client, {"X-API-Key": "not-a-key"})
    assert response.status_code == 401 and sent.reading_the_clip() == []


def test_each_distinct_body_is_parsed_once(app):
    body = b'{"text": "Parsed once.", "format": "wav"}'
    with app.test_request_context("/api/speech", method="POST", data=body, content_type="application/json"):
        first = synthesis_request()
    with app.test_request_context("/api/speech", method="POST", data=body, content_type="application/json"):
        assert synthesis_request() is first
    assert (first.text, first.format, first.voice, first.rate) == ("Parsed once.", "wav", "en-US-JennyNeural", 1.0)


@pytest.mark.parametrize("body, content_type, status", [
    (b'{"text": "x", "rate": 9}', "application/json", 422), (b'{"text": "x"}', "text/plain", 400),
    (b'{"text": ', "application/json", 400)])
def test_a_body_that_does_not_parse_is_refused_every_time(client, auth, fake_azure, body, content_type, status):
    for _ in range(2):
        response = client.post("/api/speech", data=body, headers={**auth, "Content-Type": content_type})
        assert response.status_code == status and response.mimetype == "application/json"
