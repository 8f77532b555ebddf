"""The Azure synthesis adapter, driving the real Speech SDK's SpeechSynthesizer against the fake USP service."""
from __future__ import annotations

import io
import socket
import threading
import time
import wave

import pytest
import soundfile

from backend import errors
from backend.media.ssml import speakable_text
from backend.providers.azure_tts import AzureSynthesisClient
from tests.conftest import FAKE_PROVIDER_KEY
from tests.fakes.azure_speech import FakeAzureSpeech

JENNY, GUY = "en-US-JennyNeural", "en-US-GuyNeural"
SECONDS_PER_CHAR = 0.05  # the fake speaks a 50 ms tone per character at rate 1.0


def make_client(fake: FakeAzureSpeech, *, key: str = FAKE_PROVIDER_KEY, host: str | None = None,
                timeout_seconds: float = 10.0, max_concurrency: int = 1) -> AzureSynthesisClient:
    return AzureSynthesisClient(key=key, region=None, host=host or fake.host_url, timeout_seconds=timeout_seconds,
                                max_concurrency=max_concurrency)


@pytest.fixture
def client(fake_azure):
    """One worker: every call of a test reuses the same synthesizer unless one is dropped."""
    synthesis = make_client(fake_azure)
    yield synthesis
    synthesis.close()


def raised_by(call) -> errors.ProviderError:
    with pytest.raises(errors.ProviderError) as caught:
        call()
    assert caught.value.provider == "azure_tts"
    return caught.value


# --- timeouts first: a stopped call leaves nothing behind that later tests could wait for -------------------------

@pytest.mark.parametrize("fault", ["hang", "stall"])
def test_a_silent_or_stalled_service_times_out_at_the_deadline_and_frees_the_worker(client, fake_azure, fault):
    fake_azure.configure(error=fault)
    started = time.monotonic()

    error = raised_by(lambda: client.synthesize("Are you there?", "en-US", JENNY, timeout=1.5))

    assert type(error) is errors.ProviderTimeout
    assert 1.5 <= time.monotonic() - started < 1.5 + 2  # generous: the point is that it does not wait 80 s
    fake_azure.configure(error=None)
    assert client.synthesize("Still there.", "en-US", JENNY)  # the only worker was freed by the stop
    assert fake_azure.stats()["synthesis_calls"] == 2  # the stopped call was not sent again


def test_audio_that_stops_is_the_sdks_own_timeout_when_the_deadline_is_further(client, fake_azure):
    fake_azure.configure(error="stall")  # the SDK gives up after 3 s without a frame

    error = raised_by(lambda: client.synthesize("A long wait.", "en-US", JENNY, timeout=8))
    assert type(error) is errors.ProviderTimeout and error.details == {"cancellation_code": "ServiceTimeout"}


# --- formats -----------------------------------------------------------------------------------------------------

def duration(audio: bytes) -> float:
    samples, rate = soundfile.read(io.BytesIO(audio))
    return len(samples) / rate


def test_mp3_is_a_real_mp3(client):
    audio = client.synthesize("Good morning, class.", "en-US", JENNY, 1.0, "mp3")

    assert audio[:3] == b"ID3" or (audio[0] == 0xFF and audio[1] & 0xE0 == 0xE0)
    assert duration(audio) == pytest.approx(len("Good morning, class.") * SECONDS_PER_CHAR, abs=0.1)


def test_ogg_is_a_real_ogg_opus_file(client):
    audio = client.synthesize("Good morning, class.", "en-US", JENNY, 1.0, "ogg")

    assert audio[:4] == b"OggS" and b"OpusHead" in audio[:64]
    assert duration(audio) == pytest.approx(len("Good morning, class.") * SECONDS_PER_CHAR, abs=0.1)


def test_wav_is_a_complete_riff_file(client):
    audio = client.synthesize("Good morning, class.", "en-US", JENNY, 1.0, "wav")

    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
    assert int.from_bytes(audio[4:8], "little") == len(audio) - 8
    with wave.open(io.BytesIO(audio)) as clip:
        assert (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()) == (1, 2, 24000)
        assert clip.getnframes() == round(len("Good morning, class.") * SECONDS_PER_CHAR * 24000)


@pytest.mark.parametrize("fmt", ["mp3", "wav", "ogg"])
def test_the_same_input_gives_the_same_bytes_and_any_change_other_bytes(client, fmt):
    same = [client.synthesize("See you tomorrow.", "en-US", JENNY, 1.0, fmt) for _ in range(2)]
    others = [client.synthesize("See you Monday.", "en-US", JENNY, 1.0, fmt),
              client.synthesize("See you tomorrow.", "en-US", GUY, 1.0, fmt),
              client.synthesize("See you tomorrow.", "en-US", JENNY, 1.5, fmt)]

    assert same[0] == same[1]
    assert len({same[0], *others}) == 4


def test_a_faster_rate_gives_shorter_audio(client, fake_azure):
    slow, fast = (client.synthesize("Slowly, then fast.", "en-US", JENNY, rate, "wav") for rate in (0.5, 2.0))

    assert duration(slow) == pytest.approx(4 * duration(fast), rel=0.02)
    assert fake_azure.stats()["last_spoken"]["rate"] == 2.0


# --- the text is spoken, never interpreted ------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '</prosody></voice><voice name="en-US-GuyNeural">I am Guy now',
    'Wait <break time="100s"/> for it',
    "Fish &amp; chips &lt;3 &#169; &nbsp; &",
    "<![CDATA[raw]]> and ]]> too",
    '<prosody rate="x-slow">slow</prosody> "quoted" \'single\'',
    "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY e 'boom'>]>&e;",
    "bell\x07 escape\x1b null\x00 tab\tnewline\n",
])
def test_markup_and_control_characters_in_the_text_are_spoken_as_text(client, fake_azure, text):
    client.synthesize(text, "en-US", JENNY, 1.25, "mp3")

    spoken = fake_azure.stats()["last_spoken"]
    assert spoken["text"] == speakable_text(text)
    assert (spoken["voice"], spoken["language"], spoken["rate"]) == (JENNY, "en-US", 1.25)


@pytest.mark.parametrize("arguments", [
    ("Hello", "en-US", JENNY, 1.0, "flac"),  # not one of our formats
    ("Hello", "en-US", 'en-US-Jenny" xml:lang="fr', 1.0, "mp3"),
    ("Hello", "english", JENNY, 1.0, "mp3"),
    ("Hello", "en-US", JENNY, 2.5, "mp3"),
    ("\x00\x01 ", "en-US", JENNY, 1.0, "mp3"),
])
def test_bad_arguments_are_refused_before_any_call(client, fake_azure, arguments):
    with pytest.raises(errors.ValidationFailed):
        client.synthesize(*arguments)
    assert fake_azure.stats()["synthesis_connections"] == 0


# --- failures ------------------------------------------------------------------------------------------------------

FAULTS = [("401", errors.ProviderAuthError), ("429", errors.ProviderRateLimited), ("500", errors.ProviderServerError),
          ("503", errors.ProviderServerError), ("reset", errors.ProviderConnectionError),
          ("reset_audio", errors.ProviderConnectionError), ("empty", errors.ProviderBadResponse)]


@pytest.mark.parametrize("connection", ["new", "reused"])
@pytest.mark.parametrize("fault, kind", FAULTS)
def test_each_failure_becomes_its_error(client, fake_azure, fault, kind, connection):
    if connection == "reused":  # the failure then meets a synthesizer whose websocket is already open
        client.synthesize("Warm up.", "en-US", JENNY)
    fake_azure.configure(error=fault)

    error = raised_by(lambda: client.synthesize("Hello there.", "en-US", JENNY))
    assert type(error) is kind


def test_a_wrong_key_is_an_auth_error_and_nothing_is_spoken(fake_azure):
    synthesis = make_client(fake_azure, key="not-the-key")
    try:
        error = raised_by(lambda: synthesis.synthesize("Hello.", "en-US", JENNY))
    finally:
        synthesis.close()
    assert type(error) is errors.ProviderAuthError and error.details == {"cancellation_code": "AuthenticationFailure"}
    assert fake_azure.stats()["synthesis_calls"] == 0


def test_an_unknown_voice_is_rejected(client, fake_azure):
    error = raised_by(lambda: client.synthesize("Hello.", "en-US", "en-US-NobodyNeural"))

    assert type(error) is errors.ProviderRejected and not error.counts_for_breaker
    assert fake_azure.stats()["synthesis_connections"] == 1  # refused requests are not retried


def test_an_unreachable_service_is_a_connection_error(fake_azure):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    synthesis = make_client(fake_azure, host=f"ws://127.0.0.1:{closed_port}")
    try:
        assert type(raised_by(lambda: synthesis.synthesize("Hello.", "en-US", JENNY))) is errors.ProviderConnectionError
    finally:
        synthesis.close()


def test_a_synthesizer_is_reused_until_a_call_fails(client, fake_azure):
    for _ in range(3):
        client.synthesize("Reused.", "en-US", JENNY)
    assert fake_azure.stats()["synthesis_connections"] == 1

    fake_azure.configure(error="empty")
    raised_by(lambda: client.synthesize("Nothing comes back.", "en-US", JENNY))
    fake_azure.configure(error=None)
    client.synthesize("A fresh one.", "en-US", JENNY)
    assert fake_azure.stats()["synthesis_connections"] == 2


def test_calls_run_in_parallel_up_to_the_pool_size(fake_azure):
    texts = [f"Sentence number {i}." for i in range(8)]
    synthesis = make_client(fake_azure, max_concurrency=4)
    try:
        expected = {text: synthesis.synthesize(text, "en-US", JENNY) for text in texts}
        fake_azure.configure(latency_ms=300)  # long enough for every worker's call to overlap
        results: dict[str, bytes] = {}
        threads = [threading.Thread(target=lambda t=text: results.__setitem__(t, synthesis.synthesize(
            t, "en-US", JENNY))) for text in texts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        synthesis.close()

    assert results == expected
    stats = fake_azure.stats()
    assert (stats["synthesis_calls"], stats["synthesis_peak"]) == (16, 4)
    assert stats["synthesis_connections"] <= 4  # one websocket per worker, kept across its calls


# --- voices ----------------------------------------------------------------------------------------------------------

def test_voices_of_a_language(client, fake_azure):
    voices = client.voices("en-US")

    assert {"name": JENNY, "locale": "en-US", "gender": "Female"} in voices
    assert {"name": GUY, "locale": "en-US", "gender": "Male"} in voices
    assert {voice["locale"] for voice in voices} == {"en-US"}
    assert client.voices("fr-fr") == [{"name": "fr-FR-DeniseNeural", "locale": "fr-FR", "gender": "Female"},
                                      {"name": "fr-FR-HenriNeural", "locale": "fr-FR", "gender": "Male"}]
    assert client.voices("xx-XX") == []
    assert fake_azure.stats()["voice_list_calls"] == 3


def test_a_malformed_language_is_refused_before_any_call(client, fake_azure):
    with pytest.raises(errors.ValidationFailed):
        client.voices("english")
    assert fake_azure.stats()["voice_list_calls"] == 0


@pytest.mark.parametrize("fault, kind", [("401", errors.ProviderAuthError), ("429", errors.ProviderRateLimited),
                                         ("500", errors.ProviderServerError), ("503", errors.ProviderServerError),
                                         ("reset", errors.ProviderConnectionError)])
def test_voice_list_failures_become_their_errors(client, fake_azure, fault, kind):
    fake_azure.configure(error=fault)

    assert type(raised_by(lambda: client.voices("en-US"))) is kind


def test_a_hung_voice_list_times_out_at_the_deadline(client, fake_azure):
    fake_azure.configure(error="hang")
    started = time.monotonic()

    assert type(raised_by(lambda: client.voices("en-US", timeout=1.0))) is errors.ProviderTimeout
    assert time.monotonic() - started < 1.0 + 2


# --- lifecycle -------------------------------------------------------------------------------------------------------

def test_warm_up_makes_no_call(client, fake_azure):
    client.warm_up()

    stats = fake_azure.stats()
    assert (stats["synthesis_connections"], stats["voice_list_calls"]) == (0, 0)


def test_a_client_without_credentials_is_not_configured(fake_azure):
    synthesis = make_client(fake_azure, key="")
    try:
        assert type(raised_by(lambda: synthesis.synthesize("Hi.", "en-US", JENNY))) is errors.ProviderNotConfigured
    finally:
        synthesis.close()


def test_a_closed_client_refuses_calls(fake_azure):
    synthesis = make_client(fake_azure)
    synthesis.synthesize("Before closing.", "en-US", JENNY)
    synthesis.close()

    assert type(raised_by(lambda: synthesis.synthesize("After.", "en-US", JENNY))) is errors.ProviderUnavailable
    assert type(raised_by(lambda: synthesis.voices("en-US"))) is errors.ProviderUnavailable
