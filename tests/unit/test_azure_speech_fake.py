"""The fake Azure Speech service itself: plain-HTTP control, refused handshakes, recognize-once, process mode."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.fakes.azure_speech import DEFAULT_TRANSCRIPT, FakeAzureSpeech
from tests.fakes.fixtures_azure import (
    FAKE_AZURE_KEY,
    RATE,
    fake_azure_speech,  # noqa: F401  (fixture)
    speech_pcm,
)

ROOT = Path(__file__).resolve().parents[2]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_fake_is_controlled_over_plain_http(fake_azure_speech):  # noqa: F811
    base = f"http://127.0.0.1:{fake_azure_speech.port}/_fake"

    settings = _get_json(f"{base}/config?latency_ms=5&error=503&fail_next=2&transcript=A.|B.")
    assert (settings["latency_ms"], settings["error"], settings["fail_next"], settings["transcript"]) == (
        5, "503", 2, ["A.", "B."])
    assert _get_json(f"{base}/calls") == {"calls": 0, "connections": 0}
    assert _get_json(f"{base}/reset")["error"] is None and fake_azure_speech.settings.key == FAKE_AZURE_KEY


def _handshake_status(fake: FakeAzureSpeech) -> tuple[int, str | None]:
    """Open one websocket the way the SDK does; (101 or the refusal's status, its Retry-After)."""
    url = f"{fake.host_url}/speech/recognition/conversation/cognitiveservices/v1?language=en-US"
    try:
        with connect(url, subprotocols=["USP"], additional_headers={"Ocp-Apim-Subscription-Key": FAKE_AZURE_KEY}):
            return 101, None
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.headers.get("Retry-After")


def test_fake_refuses_handshakes_as_configured(fake_azure_speech):  # noqa: F811
    fake_azure_speech.configure(error="429")
    assert _handshake_status(fake_azure_speech) == (429, "1")
    fake_azure_speech.configure(error=None, fail_next=1)
    assert [_handshake_status(fake_azure_speech)[0] for _ in range(2)] == [503, 101]
    fake_azure_speech.configure(error_rate=1.0)
    assert _handshake_status(fake_azure_speech)[0] == 503
    fake_azure_speech.configure(error_rate=0.0)
    assert _handshake_status(fake_azure_speech)[0] == 101
    assert fake_azure_speech.counters() == {"calls": 0, "connections": 5}


def test_fake_answers_recognize_once_with_the_first_segment(fake_azure_speech):  # noqa: F811
    import azure.cognitiveservices.speech as speechsdk

    config = speechsdk.SpeechConfig(host=fake_azure_speech.host_url, subscription=FAKE_AZURE_KEY)
    stream = speechsdk.audio.PushAudioInputStream(speechsdk.audio.AudioStreamFormat(RATE, 16, 1))
    stream.write(speech_pcm(2))
    stream.close()
    recognizer = speechsdk.SpeechRecognizer(config, language="en-US",
                                            audio_config=speechsdk.audio.AudioConfig(stream=stream))

    result = recognizer.recognize_once()

    assert (result.reason, result.text) == (speechsdk.ResultReason.RecognizedSpeech, DEFAULT_TRANSCRIPT[0])
    del recognizer


def test_fake_runs_as_a_process():
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.azure_speech", "--port", "0", "--error", "503"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        port = banner.rsplit(":", 1)[1].strip()
        assert _get_json(f"http://127.0.0.1:{port}/_fake/config?key=none")["error"] == "503"
    finally:
        process.terminate()
        process.wait(10)
