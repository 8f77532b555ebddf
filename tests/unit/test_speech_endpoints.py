"""Transcription and pronunciation through the real Azure Speech SDK against the fake (USP over websocket)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.audio_samples import silence_wav, speech_wav
from tests.envelope import assert_error, assert_ok


def upload(wav: bytes, name: str = "speech.wav", **fields) -> dict:
    return {"audio": (__import__("io").BytesIO(wav), name), **fields}


def test_transcribe_multi_sentence_audio(client, auth, fake_azure):
    response = client.post("/api/transcribe", data=upload(speech_wav(segments=3)), headers=auth,
                           content_type="multipart/form-data")
    data = assert_ok(response)
    assert set(data) == {"text", "confidence", "duration_seconds", "language", "words"}
    sentences = fake_azure.settings.transcript
    assert all(sentence.rstrip(".") in data["text"] for sentence in sentences[:3])
    assert 0 <= data["confidence"] <= 1 and data["language"] == "en-US"
    offsets = [w["offset_seconds"] for w in data["words"]]
    assert offsets == sorted(offsets) and all(w["duration_seconds"] > 0 for w in data["words"])
    assert response.headers["X-Cache"] == "MISS"


@pytest.mark.parametrize("rate, channels, width", [(8000, 1, 1), (22050, 2, 2), (44100, 1, 3), (48000, 2, 4)])
def test_transcribe_accepts_pcm_layouts(client, auth, rate, channels, width):
    wav = speech_wav(segments=1, rate=rate, channels=channels, sampwidth=width)
    data = assert_ok(client.post("/api/transcribe", data=upload(wav), headers=auth,
                                 content_type="multipart/form-data"))
    assert data["text"]


def test_same_audio_is_a_cache_hit_whatever_the_file_name(client, auth, fake_azure):
    wav = speech_wav(segments=2)
    client.post("/api/transcribe", data=upload(wav, "a.wav"), headers=auth, content_type="multipart/form-data")
    second = client.post("/api/transcribe", data=upload(wav, "b.wav"), headers=auth,
                         content_type="multipart/form-data")
    assert second.headers["X-Cache"] == "HIT"
    assert fake_azure.counters()["calls"] == 1


def test_pronunciation_scores(client, auth):
    response = client.post("/api/pronunciation", headers=auth, content_type="multipart/form-data",
                           data=upload(speech_wav(segments=1), reference_text="The quick brown fox jumps."))
    data = assert_ok(response)
    for score in ("accuracy_score", "fluency_score", "completeness_score", "pronunciation_score"):
        assert 0 <= data[score] <= 100
    assert [w["word"].lower().strip(".") for w in data["words"]] == ["the", "quick", "brown", "fox", "jumps"]
    assert {w["error_type"] for w in data["words"]} <= {"None", "Omission", "Insertion", "Mispronunciation"}


def test_pronunciation_needs_a_reference_text(client, auth):
    error = assert_error(client.post("/api/pronunciation", data=upload(speech_wav(1)), headers=auth,
                                     content_type="multipart/form-data"), 422, "VALIDATION_ERROR")
    assert "reference_text" in {d["field"] for d in error["details"]}


def test_missing_audio_file(client, auth):
    error = assert_error(client.post("/api/transcribe", data={"language": "en-US"}, headers=auth,
                                     content_type="multipart/form-data"), 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "audio"


@pytest.mark.parametrize("payload", [b"not audio at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
                                     b"RIFF\x24\x00\x00\x00WAVEfmt ", b"{\"json\": true}"])
def test_non_audio_named_wav_is_415(client, auth, payload, fake_azure):
    assert_error(client.post("/api/transcribe", data=upload(payload, "speech.wav"), headers=auth,
                             content_type="multipart/form-data"), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert fake_azure.counters()["connections"] == 0


def test_audio_longer_than_the_limit_is_422(make_app, auth):
    client = make_app(MAX_AUDIO_SECONDS=1).test_client()
    assert_error(client.post("/api/transcribe", data=upload(silence_wav(2.0)), headers=auth,
                             content_type="multipart/form-data"), 422, "VALIDATION_ERROR")


def test_upload_over_max_audio_bytes_is_413(make_app, auth):
    client = make_app(MAX_AUDIO_BYTES=20_000).test_client()
    assert_error(client.post("/api/transcribe", data=upload(silence_wav(2.0)), headers=auth,
                             content_type="multipart/form-data"), 413, "PAYLOAD_TOO_LARGE")


def test_wrong_content_type_is_415(client, auth):
    assert_error(client.post("/api/transcribe", data=b"raw", headers={**auth, "Content-Type": "audio/wav"}),
                 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("fault, status, code", [("503", 502, "PROVIDER_ERROR"), ("hang", 504, "PROVIDER_TIMEOUT")])
def test_speech_provider_failures(make_app, auth, fake_azure, fault, status, code):
    client = make_app(AZURE_SPEECH_TIMEOUT_SECONDS=2, RETRY_MAX_ATTEMPTS=1).test_client()
    fake_azure.configure(error=fault)
    assert_error(client.post("/api/transcribe", data=upload(speech_wav(1)), headers=auth,
                             content_type="multipart/form-data"), status, code)


def test_wrong_speech_key_is_an_auth_error(make_app, auth):
    client = make_app(AZURE_SPEECH_KEY="wrong").test_client()
    error = assert_error(client.post("/api/transcribe", data=upload(speech_wav(1)), headers=auth,
                                     content_type="multipart/form-data"), 502, "PROVIDER_ERROR")
    assert "credentials" in error["message"] and "SessionId" not in error["message"]


def test_speech_not_configured(make_app, auth):
    client = make_app(AZURE_SPEECH_KEY="").test_client()
    error = assert_error(client.post("/api/transcribe", data=upload(speech_wav(1)), headers=auth,
                                     content_type="multipart/form-data"), 503, "PROVIDER_NOT_CONFIGURED")
    assert "AZURE_SPEECH_KEY" in error["message"]


class _AudioHost(BaseHTTPRequestHandler):
    wav = speech_wav(segments=2)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(self.wav)))
        self.end_headers()
        self.wfile.write(self.wav)

    def log_message(self, *args):
        pass


@pytest.fixture
def audio_host():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AudioHost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_audio_url_refused_when_no_host_is_allowed(client, auth):
    error = assert_error(client.post("/api/transcribe", json={"audio_url": "https://example.org/a.wav"},
                                     headers=auth), 422, "VALIDATION_ERROR")
    assert "AUDIO_URL_ALLOWED_HOSTS" in error["message"]


def test_audio_url_host_not_in_allowlist(make_app, auth):
    client = make_app(AUDIO_URL_ALLOWED_HOSTS="media.example.org").test_client()
    assert_error(client.post("/api/transcribe", json={"audio_url": "https://evil.example.net/a.wav"},
                             headers=auth), 422, "VALIDATION_ERROR")


def test_audio_url_to_loopback_is_refused_even_when_allowed(make_app, auth, audio_host):
    port = audio_host.server_address[1]
    client = make_app(AUDIO_URL_ALLOWED_HOSTS=f"127.0.0.1:{port}", AUDIO_URL_ALLOW_HTTP=True).test_client()
    url = f"http://127.0.0.1:{port}/a.wav"
    error = assert_error(client.post("/api/transcribe", json={"audio_url": url}, headers=auth), 422,
                         "VALIDATION_ERROR")
    assert "non-public" in error["message"]


def test_audio_url_from_an_allowed_internal_host(make_app, auth, audio_host):
    port = audio_host.server_address[1]
    client = make_app(AUDIO_URL_ALLOWED_HOSTS=f"127.0.0.1:{port}", AUDIO_URL_ALLOW_HTTP=True,
                      AUDIO_URL_ALLOW_PRIVATE=True).test_client()
    url = f"http://127.0.0.1:{port}/a.wav"
    data = assert_ok(client.post("/api/transcribe", json={"audio_url": url, "language": "en-US"}, headers=auth))
    assert data["text"]
    scores = assert_ok(client.post("/api/pronunciation", headers=auth, json={
        "audio_url": url, "reference_text": "It is a sunny day."}))
    assert scores["words"]
