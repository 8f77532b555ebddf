"""The fake Azure synthesis service itself, spoken to over USP as the SDK does: turns, audio, failures, voice list."""
from __future__ import annotations

import contextlib
import io
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Iterator

import pytest
import soundfile
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import FAKE_PROVIDER_KEY
from tests.fakes import azure_usp as usp
from tests.fakes.azure_speech import FakeAzureSpeech

PCM16K = "raw-16khz-16bit-mono-pcm"
BYTES_PER_CHAR_16K = 16000 * 50 // 1000 * 2  # one 50 ms tone of 16-bit samples per character at rate 1.0


def document(text: str, voice: str = "en-US-JennyNeural", rate: str | None = None) -> str:
    inner = text if rate is None else f'<prosody rate="{rate}">{text}</prosody>'
    return (f'<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US">'
            f'<voice name="{voice}">{inner}</voice></speak>')


def client_frame(path: str, request_id: str, body: str, content_type: str = "application/json") -> str:
    return f"Path:{path}\r\nX-RequestId:{request_id}\r\nContent-Type:{content_type}\r\n\r\n{body}"


@contextlib.contextmanager
def open_synthesis(fake: FakeAzureSpeech, key: str = FAKE_PROVIDER_KEY) -> Iterator[ClientConnection]:
    """A synthesis websocket opened as the SDK opens it, its speech.config sent."""
    with connect(f"{fake.host_url}/cognitiveservices/websocket/v1", subprotocols=["USP"],
                 additional_headers={"Ocp-Apim-Subscription-Key": key, "X-ConnectionId": uuid.uuid4().hex}) as ws:
        ws.send(client_frame("speech.config", uuid.uuid4().hex, json.dumps({"context": {"system": {"name": "t"}}})))
        yield ws


def request(ws: ClientConnection, ssml: str, fmt: str = PCM16K) -> str:
    """Send one call's two messages, as the SDK does; returns its request id."""
    request_id = uuid.uuid4().hex
    ws.send(client_frame("synthesis.context", request_id, json.dumps({"synthesis": {"audio": {"outputFormat": fmt}}})))
    ws.send(client_frame("ssml", request_id, ssml, "application/ssml+xml"))
    return request_id


def answer(ws: ClientConnection, request_id: str, timeout: float = 10) -> tuple[list[tuple[str, dict]], bytes]:
    """Read one call's answer: its text messages (path, body) in order, and the audio bytes of its binary frames."""
    messages, audio = [], bytearray()
    while not messages or messages[-1][0] != "turn.end":
        message = ws.recv(timeout)
        if isinstance(message, str):
            headers, body = usp.parse_text_frame(message)
            assert headers["x-requestid"] == request_id
            messages.append((headers["path"], json.loads(body)))
        else:
            headers, payload = usp.parse_binary_frame(message)
            assert (headers["path"], headers["x-requestid"]) == ("audio", request_id)
            messages.append(("audio", {}))
            audio += payload
    return messages, bytes(audio)


def synthesize(fake: FakeAzureSpeech, ssml: str, fmt: str = PCM16K) -> bytes:
    with open_synthesis(fake) as ws:
        return answer(ws, request(ws, ssml, fmt))[1]


def test_a_call_is_answered_with_turn_start_audio_and_turn_end(fake_azure):
    with open_synthesis(fake_azure) as ws:
        messages, audio = answer(ws, request(ws, document("Hello there")))

    paths = [path for path, _ in messages]
    assert paths[0] == "turn.start" and paths[-1] == "turn.end" and set(paths[1:-1]) == {"audio"}
    int(messages[0][1]["context"]["serviceTag"], 16)  # the tag the SDK requires, in hex
    assert len(audio) == len("Hello there") * BYTES_PER_CHAR_16K
    stats = fake_azure.stats()
    assert (stats["synthesis_calls"], stats["synthesis_connections"], stats["calls"], stats["connections"]) == (
        1, 1, 0, 0)
    assert fake_azure.counters() == {"calls": 0, "connections": 0}  # recognition's counters are its own


def test_spoken_text_is_the_text_content_of_the_voice(fake_azure):
    escaped = "a &lt;/voice&gt;&lt;break time=&quot;9s&quot;/&gt; &amp;amp; ]]&gt;"
    synthesize(fake_azure, document(escaped, rate="1.5"))

    last = fake_azure.stats()["last_spoken"]
    assert (last["text"], last["voice"], last["language"], last["rate"]) == (
        'a </voice><break time="9s"/> &amp; ]]>', "en-US-JennyNeural", "en-US", 1.5)


@pytest.mark.parametrize("rate, factor", [("1.0", 1), ("2.0", 0.5), ("0.5", 2), ("+100%", 0.5), ("-50%", 2),
                                          ("x-slow", 2), ("medium", 1)])
def test_length_follows_the_text_and_falls_with_the_rate(fake_azure, rate, factor):
    short, long = (synthesize(fake_azure, document(text, rate=rate)) for text in ("abcd", "abcdabcd"))

    assert len(long) == 2 * len(short)
    assert len(short) == pytest.approx(4 * BYTES_PER_CHAR_16K * factor, abs=4)


def test_audio_is_deterministic_and_depends_on_text_voice_and_rate(fake_azure):
    same = [synthesize(fake_azure, document("Good morning")) for _ in range(2)]
    others = [synthesize(fake_azure, document("Good evening")),
              synthesize(fake_azure, document("Good morning", voice="en-US-GuyNeural")),
              synthesize(fake_azure, document("Good morning", rate="1.2"))]

    assert same[0] == same[1]
    assert all(other != same[0] for other in others)


@pytest.mark.parametrize("fmt, magic, rate", [("audio-16khz-32kbitrate-mono-mp3", b"\xff", 16000),
                                              ("audio-24khz-48kbitrate-mono-mp3", b"\xff", 24000),
                                              ("ogg-16khz-16bit-mono-opus", b"OggS", 16000),
                                              ("ogg-24khz-16bit-mono-opus", b"OggS", 24000),
                                              ("riff-24khz-16bit-mono-pcm", b"RIFF", 24000)])
def test_compressed_formats_are_real_files(fake_azure, fmt, magic, rate):
    text = "This is a real file."
    first, second = (synthesize(fake_azure, document(text), fmt) for _ in range(2))

    assert first.startswith(magic) and first == second  # Ogg's stream serial is fixed, not time-seeded
    samples, sample_rate = soundfile.read(io.BytesIO(first))
    assert sample_rate == rate
    assert len(samples) / sample_rate == pytest.approx(len(text) * 0.05, abs=0.1)
    assert fake_azure.stats()["last_spoken"]["format"] == fmt


@pytest.mark.parametrize("ssml, reason", [(document("hi", voice="en-US-NobodyNeural"), "Unsupported voice"),
                                          ("<speak>not closed", "SSML is invalid"),
                                          (document("hi", rate="fastest"), "SSML is invalid")])
def test_unreadable_requests_close_the_connection_with_1007(fake_azure, ssml, reason):
    with open_synthesis(fake_azure) as ws:
        request(ws, ssml)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(10)
    assert closed.value.rcvd.code == 1007 and closed.value.rcvd.reason.startswith(reason)
    assert fake_azure.stats()["last_spoken"] is None


def handshake(fake: FakeAzureSpeech, key: str = FAKE_PROVIDER_KEY) -> tuple[int, str | None]:
    try:
        with open_synthesis(fake, key):
            return 101, None
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.headers.get("Retry-After")


def test_handshakes_are_refused_as_injected(fake_azure):
    assert handshake(fake_azure, key="wrong") == (401, None)
    for error, status in (("401", 401), ("500", 500), ("503", 503)):
        fake_azure.configure(error=error)
        assert handshake(fake_azure)[0] == status
    fake_azure.configure(error="429")
    assert handshake(fake_azure) == (429, "1")
    fake_azure.configure(error="500", fail_next=1)  # the failure is for the next one only, then it heals
    assert [handshake(fake_azure)[0] for _ in range(2)] == [500, 101]
    assert fake_azure.stats()["synthesis_connections"] == 7 and fake_azure.counters()["connections"] == 0


def test_a_hung_call_answers_nothing_and_the_next_call_is_answered(fake_azure):
    fake_azure.configure(error="hang")
    with open_synthesis(fake_azure) as ws:
        request(ws, document("first"))
        with pytest.raises(TimeoutError):
            ws.recv(0.5)
        fake_azure.configure(error=None)  # failures are picked per call on an open connection
        messages, audio = answer(ws, request(ws, document("second")))
    assert len(audio) == len("second") * BYTES_PER_CHAR_16K
    assert fake_azure.stats()["synthesis_calls"] == 2


@pytest.mark.parametrize("error, paths", [("stall", ["turn.start", "audio"]), ("empty", ["turn.start", "turn.end"])])
def test_audio_that_stalls_or_never_comes(fake_azure, error, paths):
    fake_azure.configure(error=error)
    seen = []
    with open_synthesis(fake_azure) as ws:
        request(ws, document("a sentence long enough for more than one chunk" * 4))
        try:
            while len(seen) < 3:
                message = ws.recv(0.5)
                seen.append(usp.parse_text_frame(message)[0]["path"] if isinstance(message, str) else "audio")
        except TimeoutError:
            pass
    assert seen == paths


def test_latency_delays_each_call(fake_azure):
    fake_azure.configure(latency_ms=300)
    with open_synthesis(fake_azure) as ws:
        for _ in range(2):
            started = time.monotonic()
            answer(ws, request(ws, document("hi")))
            assert time.monotonic() - started >= 0.3


def get_json(url: str, key: str = FAKE_PROVIDER_KEY):
    call = urllib.request.Request(url, headers={"Ocp-Apim-Subscription-Key": key})
    with urllib.request.urlopen(call, timeout=10) as response:
        return json.loads(response.read())


def test_the_voice_list_is_in_azures_shape(fake_azure):
    voices = get_json(f"http://127.0.0.1:{fake_azure.port}/cognitiveservices/voices/list")

    jenny = next(v for v in voices if v["ShortName"] == "en-US-JennyNeural")
    assert jenny == {**jenny, "Gender": "Female", "Locale": "en-US", "VoiceType": "Neural",
                     "Name": "Microsoft Server Speech Text to Speech Voice (en-US, JennyNeural)"}
    for short_name in ("en-US-GuyNeural", "fr-FR-DeniseNeural", "de-DE-KatjaNeural", "es-ES-ElviraNeural"):
        assert short_name in {v["ShortName"] for v in voices}
    assert all(sum(v["Locale"] == locale for v in voices) >= 2 for locale in {v["Locale"] for v in voices})
    with pytest.raises(urllib.error.HTTPError) as refused:
        get_json(f"http://127.0.0.1:{fake_azure.port}/cognitiveservices/voices/list", key="wrong")
    refused.value.close()
    assert refused.value.code == 401
    assert fake_azure.stats()["voice_list_calls"] == 2


def test_stats_are_served_and_reset(fake_azure):
    synthesize(fake_azure, document("counted"))
    base = f"http://127.0.0.1:{fake_azure.port}/_fake"

    stats = get_json(f"{base}/stats")
    assert (stats["synthesis_calls"], stats["last_spoken"]["text"]) == (1, "counted")
    assert get_json(f"{base}/calls") == {"calls": 0, "connections": 0}
    get_json(f"{base}/reset")
    assert get_json(f"{base}/stats") == {"calls": 0, "connections": 0, "synthesis_calls": 0,
                                         "synthesis_connections": 0, "voice_list_calls": 0, "synthesis_peak": 0,
                                         "last_spoken": None}
