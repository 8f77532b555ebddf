"""The Azure Speech adapter, driving the real Speech SDK against the fake USP service."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from backend import errors
from backend.providers import azure_results, azure_speech
from backend.providers.azure_speech import AzureSpeechClient
from tests.fakes.azure_speech import DEFAULT_TRANSCRIPT, FakeAzureSpeech
from tests.fakes.fixtures_azure import (
    FAKE_AZURE_KEY,
    RATE,
    fake_azure_speech,  # noqa: F401  (fixture)
    speech_pcm,
)

REFERENCE = "Hello there, my good friend."
SDK_CONNECTION_ATTEMPTS = 5  # the SDK retries a refused handshake or a dropped connection itself, 5 attempts in ~1 s


def make_client(fake: FakeAzureSpeech, *, key: str = FAKE_AZURE_KEY, host: str | None = None,
                timeout_seconds: float = 10.0, max_concurrency: int = 2) -> AzureSpeechClient:
    return AzureSpeechClient(key=key, region=None, host=host or fake.host_url, timeout_seconds=timeout_seconds,
                             max_concurrency=max_concurrency)


@pytest.fixture
def client(fake_azure_speech):  # noqa: F811  (the imported fixture)
    speech = make_client(fake_azure_speech)
    yield speech
    speech.close()


def recognised(fake: FakeAzureSpeech) -> list[dict]:
    """The phrases the fake sent with a result (it also sends bare status phrases for silence)."""
    return [p for p in fake.phrases if p["RecognitionStatus"] == "Success"]


def raised_by(call) -> errors.ProviderError:
    """Run ``call`` expecting a provider error; every one must name the provider."""
    with pytest.raises(errors.ProviderError) as caught:
        call()
    assert caught.value.provider == "azure_speech"
    return caught.value


# First on purpose: after a timeout the SDK needs ~10 s to release the recognizer, in a pool worker that
# interpreter exit waits for; running this test first lets that release overlap the other tests.
def test_hung_service_times_out_at_the_callers_deadline(client, fake_azure_speech):  # noqa: F811
    fake_azure_speech.configure(error="hang")
    started = time.monotonic()

    error = raised_by(lambda: client.transcribe(speech_pcm(1), RATE, "en-US", timeout=1.5))
    assert type(error) is errors.ProviderTimeout
    assert 1.5 <= time.monotonic() - started < 1.5 + 3  # generous: the point is that it does not hang


# --- transcription -----------------------------------------------------------------------------------------------

def test_transcribe_returns_every_segment_in_order(client, fake_azure_speech):  # noqa: F811
    result = client.transcribe(speech_pcm(3), RATE, "en-US")

    assert result["text"] == " ".join(DEFAULT_TRANSCRIPT)
    assert [w["word"] for w in result["words"]] == " ".join(DEFAULT_TRANSCRIPT).lower().replace(".", "").split()
    offsets = [w["offset_seconds"] for w in result["words"]]
    assert offsets == sorted(offsets) and offsets[0] == pytest.approx(0.2, abs=0.03)  # after the leading silence
    assert result["duration_seconds"] == pytest.approx(len(speech_pcm(3)) / 2 / RATE)
    assert result["language"] == "en-US"
    confidences = [p["NBest"][0]["Confidence"] for p in recognised(fake_azure_speech)]
    assert result["confidence"] == pytest.approx(sum(confidences) / 3, abs=0.01)  # equal segments: plain mean
    assert fake_azure_speech.counters() == {"calls": 1, "connections": 1}


def test_transcript_sentences_cycle_through_the_configured_transcript(client, fake_azure_speech):  # noqa: F811
    fake_azure_speech.configure(transcript=["One.", "Two."])

    assert client.transcribe(speech_pcm(3), RATE, "en-US")["text"] == "One. Two. One."


def test_silence_and_nomatch_give_an_empty_transcript(client, fake_azure_speech):  # noqa: F811
    silent = client.transcribe(b"\0" * RATE, RATE, "en-US")
    fake_azure_speech.configure(error="nomatch")
    unmatched = client.transcribe(speech_pcm(2), RATE, "en-US")

    for result in (silent, unmatched):
        assert (result["text"], result["words"], result["confidence"]) == ("", [], 0.0)


def test_latency_delays_but_does_not_break_a_call(client, fake_azure_speech):  # noqa: F811
    fake_azure_speech.configure(latency_ms=300)
    started = time.monotonic()

    assert client.transcribe(speech_pcm(1), RATE, "en-US")["text"] == DEFAULT_TRANSCRIPT[0]
    assert time.monotonic() - started >= 0.3


def test_word_offsets_follow_the_sdk_offset_of_their_phrase():
    phrase = azure_results.Phrase(body={"Offset": 0, "DisplayText": "Hi.", "NBest": [
        {"Confidence": 0.9, "Words": [{"Word": "hi", "Offset": 1_000_000, "Duration": 2_000_000}]}]},
        offset_ticks=50_000_000, duration_ticks=3_000_000)

    words = azure_results.transcript([phrase], "en-US", 6.0)["words"]

    assert words == [{"word": "hi", "offset_seconds": 5.1, "duration_seconds": 0.2}]


# --- pronunciation -----------------------------------------------------------------------------------------------

def test_assessment_returns_the_services_scores_and_word_errors(client, fake_azure_speech):  # noqa: F811
    result = client.assess_pronunciation(speech_pcm(2), RATE, REFERENCE, "en-US")

    phrases = recognised(fake_azure_speech)
    assert len(phrases) == 2 and result["recognized_text"] == " ".join(p["DisplayText"] for p in phrases)
    assert result["recognized_text"] == "Hello there, my good friend."
    sent_scores = [p["NBest"][0]["PronunciationAssessment"] for p in phrases]
    for ours, theirs in [("accuracy_score", "AccuracyScore"), ("fluency_score", "FluencyScore"),
                         ("completeness_score", "CompletenessScore"), ("pronunciation_score", "PronScore"),
                         ("prosody_score", "ProsodyScore")]:
        assert result[ours] == pytest.approx(sum(s[theirs] for s in sent_scores) / 2, abs=0.01)  # equal lengths
    sent_words = [w for p in phrases for w in p["NBest"][0]["Words"]]
    assert result["words"] == [{"word": w["Word"], "accuracy_score": w["PronunciationAssessment"]["AccuracyScore"],
                                "error_type": w["PronunciationAssessment"]["ErrorType"]} for w in sent_words]
    assert "Mispronunciation" in {w["error_type"] for w in result["words"]}


def test_assessment_of_the_same_audio_is_repeatable(client):
    first = client.assess_pronunciation(speech_pcm(2), RATE, REFERENCE, "en-US")
    second = client.assess_pronunciation(speech_pcm(2), RATE, REFERENCE, "en-US")

    assert first == second


def test_assessment_without_speech_omits_every_reference_word(client):
    result = client.assess_pronunciation(b"\0" * RATE, RATE, REFERENCE, "en-US")

    assert result["recognized_text"] == "" and result["pronunciation_score"] == 0.0
    assert [(w["word"], w["error_type"]) for w in result["words"]] == [
        (w, "Omission") for w in ["Hello", "there", "my", "good", "friend"]]


def test_assessment_refuses_audio_over_30_seconds_before_calling(client, fake_azure_speech):  # noqa: F811
    with pytest.raises(errors.ValidationFailed) as caught:
        client.assess_pronunciation(b"\0" * (31 * RATE * 2), RATE, REFERENCE, "en-US")

    assert caught.value.status == 422
    assert fake_azure_speech.counters()["connections"] == 0


# --- failures ----------------------------------------------------------------------------------------------------

def test_wrong_key_is_an_auth_error_and_not_retried(fake_azure_speech):  # noqa: F811
    speech = make_client(fake_azure_speech, key="wrong-key")

    assert type(raised_by(lambda: speech.transcribe(speech_pcm(1), RATE, "en-US"))) is errors.ProviderAuthError
    assert fake_azure_speech.counters() == {"calls": 0, "connections": 1}  # a 401 is final for the SDK
    speech.close()


@pytest.mark.parametrize("error, expected", [("503", errors.ProviderServerError),
                                             ("429", errors.ProviderRateLimited)])
def test_refused_handshakes_are_retried_by_the_sdk_then_mapped(client, fake_azure_speech,  # noqa: F811
                                                              error, expected):
    # The SDK reports 503 as ServiceUnavailable and 429 as TooManyRequests, each after its own 5 handshakes.
    fake_azure_speech.configure(error=error)

    assert type(raised_by(lambda: client.transcribe(speech_pcm(1), RATE, "en-US"))) is expected
    assert fake_azure_speech.counters() == {"calls": 0, "connections": SDK_CONNECTION_ATTEMPTS}


def test_dropped_connection_is_a_connection_error(client, fake_azure_speech):  # noqa: F811
    fake_azure_speech.configure(error="reset")

    assert type(raised_by(lambda: client.transcribe(speech_pcm(1), RATE, "en-US"))) is errors.ProviderConnectionError
    # Every reconnect re-sends the audio, so each attempt is also a recognition session.
    assert fake_azure_speech.counters() == {"calls": SDK_CONNECTION_ATTEMPTS, "connections": SDK_CONNECTION_ATTEMPTS}


def test_assessment_without_scores_is_a_bad_response(client, fake_azure_speech):  # noqa: F811
    fake_azure_speech.configure(error="malformed")

    assert type(raised_by(lambda: client.assess_pronunciation(speech_pcm(1), RATE, REFERENCE, "en-US"))) \
        is errors.ProviderBadResponse


def test_a_few_refusals_are_absorbed_by_the_sdks_own_retries(client, fake_azure_speech):  # noqa: F811
    fake_azure_speech.configure(fail_next=2)

    assert client.transcribe(speech_pcm(1), RATE, "en-US")["text"] == DEFAULT_TRANSCRIPT[0]
    assert fake_azure_speech.counters() == {"calls": 1, "connections": 3}


def test_unreachable_host_is_a_connection_error(fake_azure_speech):  # noqa: F811
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    speech = make_client(fake_azure_speech, host=f"ws://127.0.0.1:{closed_port}")

    assert type(raised_by(lambda: speech.transcribe(speech_pcm(1), RATE, "en-US"))) is errors.ProviderConnectionError
    speech.close()


def test_unexpected_sdk_exceptions_become_provider_errors(client, monkeypatch):
    def broken_sdk():
        raise RuntimeError("native layer exploded")

    monkeypatch.setattr(azure_speech, "_speech_sdk", broken_sdk)

    error = raised_by(lambda: client.transcribe(speech_pcm(1), RATE, "en-US"))
    # The SDK's own words stay in our log; the client learns only what kind of failure it was.
    assert type(error) is errors.ProviderError and error.message == "Azure Speech SDK failed (RuntimeError)"


def test_missing_configuration_closed_client_and_bad_input_are_refused(fake_azure_speech):  # noqa: F811
    assert type(raised_by(lambda: make_client(fake_azure_speech, key="").transcribe(b"", RATE, "en-US"))) \
        is errors.ProviderNotConfigured
    speech = make_client(fake_azure_speech)
    with pytest.raises(errors.ValidationFailed):
        speech.transcribe(b"\0\0\0", RATE, "en-US")
    speech.close()
    assert type(raised_by(lambda: speech.transcribe(b"", RATE, "en-US"))) is errors.ProviderUnavailable
    assert fake_azure_speech.counters()["connections"] == 0


# --- concurrency -------------------------------------------------------------------------------------------------

def test_concurrent_calls_all_succeed_through_a_bounded_pool(fake_azure_speech):  # noqa: F811
    fake_azure_speech.configure(latency_ms=250)
    speech = make_client(fake_azure_speech, max_concurrency=2)
    results: list[str] = []
    failures: list[BaseException] = []

    def one_call():
        try:
            results.append(speech.transcribe(speech_pcm(2), RATE, "en-US")["text"])
        except BaseException as exc:  # collected so the assertion can show it
            failures.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=one_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    speech.close()

    assert failures == [] and results == [" ".join(DEFAULT_TRANSCRIPT[:2])] * 8
    assert fake_azure_speech.counters()["calls"] == 8
    assert time.monotonic() - started >= 4 * 0.25  # two at a time: at least four rounds of the fake's latency
