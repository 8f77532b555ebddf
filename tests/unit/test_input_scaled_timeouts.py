"""Issue 18, defect 2: long (valid) audio must not open the Azure breaker for everyone.

The attack: a 59 s clip needs ~40 s to be streamed by the SDK, over the 30 s per-call timeout; each such request
timed out, was retried (two paid calls) and counted as a breaker failure, so five parallel clips from one key opened
the breaker and another key's 3 s clip got 503. Here the fake Azure is slow in proportion to the audio (as the SDK's
pacing is), with the timeouts scaled down so the tests take seconds: an 8 s clip needs 3.2 s more than a short one.
"""
from __future__ import annotations

import io
import threading

import pytest

from backend.errors import ProviderInputTimeout, ProviderServerError, ProviderTimeout
from backend.providers.azure_speech import AzureSpeechClient
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.policy import ProviderPolicy
from backend.resilience.retry import RetryPolicy
from backend.resilience.store import MemoryStore
from tests.audio_samples import speech_like, speech_wav, wav_bytes
from tests.conftest import CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.envelope import assert_error, assert_ok

OTHER_KEY = "other-client-key-0123456789"
BASE_TIMEOUT = 1.5  # AZURE_SPEECH_TIMEOUT_SECONDS: the limit of a call on short audio
THRESHOLD = 2  # consecutive failures that open the breaker


def long_wav(variant: int = 0) -> bytes:
    """About 8.2 s of 'speech' (ten tones); each variant is a distinct recording, so none is a cache hit."""
    return wav_bytes(speech_like(10, 16000, voiced=0.4, pause=0.4 + 0.01 * variant))


def upload(wav: bytes) -> dict:
    return {"audio": (io.BytesIO(wav), "speech.wav")}


@pytest.fixture
def app(make_app):
    return make_app(API_KEYS=f"tester:{CLIENT_KEY},other:{OTHER_KEY}", AZURE_SPEECH_TIMEOUT_SECONDS=BASE_TIMEOUT,
                    CIRCUIT_BREAKER_FAILURE_THRESHOLD=THRESHOLD, RETRY_MAX_ATTEMPTS=2)


def transcribe(app, wav: bytes, key: str = CLIENT_KEY):
    return app.test_client().post("/api/transcribe", data=upload(wav), headers={"X-API-Key": key},
                                  content_type="multipart/form-data")


def azure_breaker(app) -> dict:
    return app.extensions["backend"].breakers["azure_speech"].state()


def test_long_clip_gets_a_limit_scaled_to_its_length(app, fake_azure):
    # ~0.8 s of recognition plus ~1.7 s of the SDK's pacing: more than the 1.5 s a short clip gets, within 1.5 + 3.2 s.
    fake_azure.configure(latency_ms_per_audio_second=100)
    data = assert_ok(transcribe(app, long_wav()))
    assert data["text"] and data["duration_seconds"] > 8
    assert fake_azure.counters()["calls"] == 1


def test_the_same_clip_times_out_without_the_allowance(fake_azure):
    """The control for the test above: with no time allowed per second of audio, the same clip times out."""
    fake_azure.configure(latency_ms_per_audio_second=100)
    client = AzureSpeechClient(key=FAKE_PROVIDER_KEY, region=None, host=fake_azure.host_url,
                               timeout_seconds=BASE_TIMEOUT, max_concurrency=1, seconds_per_audio_second=0.0)
    pcm = wav_bytes(speech_like(10, 16000, voiced=0.4, pause=0.4))[44:]
    try:
        with pytest.raises(ProviderTimeout) as caught:
            client.transcribe(pcm, 16000, "en-US")
        assert type(caught.value) is ProviderTimeout  # no allowance: the provider's timeout, as before the fix
    finally:
        client.close()


def test_long_clip_timeouts_are_not_retried_and_leave_the_breaker_closed(app, fake_azure):
    fake_azure.configure(latency_ms_per_audio_second=1000)  # 8 s: past even the scaled limit (4.7 s)
    clips = THRESHOLD + 1
    answers: list = [None] * clips

    def send(i: int) -> None:
        answers[i] = transcribe(app, long_wav(i))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(clips)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for response in answers:
        error = assert_error(response, 504, "PROVIDER_TIMEOUT")
        assert "this input needs about" in error["message"]
    assert fake_azure.counters()["calls"] == clips  # one paid call per clip: none was retried
    state = azure_breaker(app)
    assert state["state"] == "closed" and state["failures_in_window"] == 0

    fake_azure.configure(latency_ms_per_audio_second=0)
    assert_ok(transcribe(app, speech_wav(segments=2), key=OTHER_KEY))  # another caller's short clip: 200


def test_short_clip_timeout_is_still_retried_and_counted(make_app, fake_azure):
    app = make_app(AZURE_SPEECH_TIMEOUT_SECONDS=BASE_TIMEOUT, CIRCUIT_BREAKER_FAILURE_THRESHOLD=1,
                   RETRY_MAX_ATTEMPTS=2)
    fake_azure.configure(latency_ms=4000)  # a provider too slow for any clip
    error = assert_error(transcribe(app, speech_wav(segments=1)), 504, "PROVIDER_TIMEOUT")
    assert "this input needs" not in error["message"]
    assert fake_azure.counters()["calls"] == 2  # retried, as a genuine provider timeout should be
    assert azure_breaker(app)["state"] == "open"
    assert_error(transcribe(app, speech_wav(segments=2)), 503, "PROVIDER_UNAVAILABLE")
    assert fake_azure.counters()["calls"] == 2


# --- the policy's part, provider-agnostic ------------------------------------------------------------------------

def make_policy(deadline: float, threshold: int = 1, slow: float = 10.0,
                recovery: float = 60.0) -> tuple[ProviderPolicy, CircuitBreaker]:
    breaker = CircuitBreaker("gemini", BreakerConfig(failure_threshold=threshold, recovery_timeout=recovery),
                             local=MemoryStore(), slow_call_seconds=slow)
    return ProviderPolicy("gemini", "analyze", deadline_seconds=deadline, breaker=breaker,
                          retry=RetryPolicy(3, base=0.01)), breaker


def test_a_retry_that_could_not_finish_in_time_is_not_paid_for():
    policy, breaker = make_policy(deadline=0.3, threshold=1)
    calls = []

    def failing(remaining: float):
        calls.append(remaining)
        threading.Event().wait(0.5)
        raise ProviderServerError("503", provider="gemini")

    with pytest.raises(ProviderServerError):
        policy.execute("analyze:v1:m:long", failing, input_seconds=1.0)
    # 1.3 s of deadline, 0.5 s spent, 1 s needed by the input: a second attempt could not finish, so none is made.
    assert len(calls) == 1
    assert calls[0] > 1.0  # the first attempt had the deadline plus the input's allowance

    calls.clear()
    with pytest.raises(ProviderServerError):  # the same failure on a short input is retried as before
        make_policy(deadline=2.0)[0].execute("analyze:v1:m:short", failing)
    assert len(calls) == 3
    assert breaker.state()["state"] == "open"  # the provider's 503 still counts


def test_an_attempt_the_deadline_cannot_cover_is_refused_before_the_call():
    # A configured deadline that leaves the input less than it needs (here, none at all beyond the allowance):
    # say so instead of paying for a call bound to time out.
    policy, breaker = make_policy(deadline=1e-9)
    calls = []

    def call(remaining: float):
        calls.append(remaining)
        return {"ok": True}

    with pytest.raises(ProviderInputTimeout) as caught:
        policy.execute("analyze:v1:m:doomed", call, input_seconds=1.0)
    assert calls == [] and "Not attempted" in caught.value.message
    assert breaker.state()["calls_in_window"] == 0  # neither a failure nor a success


def test_slowness_is_judged_net_of_the_input():
    policy, breaker = make_policy(deadline=5, threshold=2, slow=0.05)

    def slow(_remaining: float):
        threading.Event().wait(0.15)
        return {"ok": True}

    for i in range(3):  # three slow answers on long inputs: slow only for a short input
        policy.execute(f"analyze:v1:m:long{i}", slow, input_seconds=1.0)
    assert breaker.state()["state"] == "closed"
    for i in range(2):
        policy.execute(f"analyze:v1:m:short{i}", slow)
    assert breaker.state()["state"] == "open"


def test_a_long_inputs_timeout_as_the_half_open_trial_neither_closes_nor_holds_the_breaker():
    """The trial permit goes back unjudged: the breaker stays half-open and the next call is the trial at once."""
    policy, breaker = make_policy(deadline=5, threshold=1, recovery=0.2)
    calls = []

    def provider_down(_remaining: float):
        calls.append("down")
        raise ProviderServerError("503", provider="gemini")

    def too_long_for_the_limit(_remaining: float):
        calls.append("long")
        raise ProviderInputTimeout("Timed out: this input needs about 4 s more than a short one", provider="gemini")

    with pytest.raises(ProviderServerError):
        policy.execute("analyze:v1:m:down", provider_down)
    assert breaker.state()["state"] == "open"
    threading.Event().wait(0.25)  # past the recovery time: the next call is the one trial
    with pytest.raises(ProviderInputTimeout):
        policy.execute("analyze:v1:m:long", too_long_for_the_limit, input_seconds=1.0)
    assert breaker.state()["state"] == "half_open"  # it proved nothing about the provider: not closed

    def short_and_still_down(_remaining: float):
        calls.append("short")
        raise ProviderServerError("503", provider="gemini")

    with pytest.raises(ProviderServerError):  # admitted at once as the trial (no 503 from the breaker) ...
        policy.execute("analyze:v1:m:short", short_and_still_down)
    assert breaker.state()["state"] == "open"  # ... and its verdict, the provider's failure, re-opens the breaker
    assert calls[-2:] == ["long", "short"] and calls.count("short") == 1  # the trial's one attempt: no retry

    threading.Event().wait(0.25)
    with pytest.raises(ProviderInputTimeout):
        policy.execute("analyze:v1:m:long2", too_long_for_the_limit, input_seconds=1.0)
    assert policy.execute("analyze:v1:m:short2", lambda _remaining: {"ok": True}).value == {"ok": True}
    assert breaker.state()["state"] == "closed"  # a short call that succeeds as the trial closes it


def test_the_callers_bad_input_as_the_half_open_trial_does_not_close_the_breaker():
    """A request refused on our side before the provider answered proves nothing: the permit goes back."""
    from backend.errors import ValidationFailed

    policy, breaker = make_policy(deadline=5, threshold=1, recovery=0.2)

    def provider_down(_remaining: float):
        raise ProviderServerError("503", provider="gemini")

    def bad_input(_remaining: float):
        raise ValidationFailed("the audio is not 16-bit PCM")

    with pytest.raises(ProviderServerError):
        policy.execute("analyze:v1:m:down", provider_down)
    threading.Event().wait(0.25)
    with pytest.raises(ValidationFailed):
        policy.execute("analyze:v1:m:bad", bad_input)
    assert breaker.state()["state"] == "half_open"
    with pytest.raises(ProviderServerError):  # the next caller is the trial, and its failure re-opens
        policy.execute("analyze:v1:m:down2", provider_down)
    assert breaker.state()["state"] == "open"
