"""Azure Speech adapter: transcription and pronunciation assessment through the Speech SDK on a bounded pool.

SDK behaviour this relies on (azure-cognitiveservices-speech 1.53, observed against tests/fakes/azure_speech.py):
- failures never raise; they arrive as a ``canceled`` event whose ``cancellation_details.code`` names the cause,
  and the normal end of the audio arrives as a ``canceled`` event too (reason EndOfStream);
- a refused handshake (503, 429) or a dropped connection is retried by the SDK itself, 5 connection attempts in
  about 1 s, before it cancels; a 401 is not retried; a 429's Retry-After is not passed on;
- exceptions raised inside event callbacks are swallowed by the SDK, so callbacks only record what they receive;
- after a session that hit the deadline, releasing the recognizer blocks for about 10 s (about 1 s after a failure);
  waiting on ``stop_continuous_recognition_async()`` of an ended session makes that worse, so a stop is only
  requested, and only for a session still running;
- a callback still connected when the recognizer is released can abort the interpreter at exit;
- the SDK sends the first ~5 s of audio at once and paces the rest: at twice real time up to about 30 s of audio,
  then at about real time (measured against the fake: 16 s of audio took 5.7 s, 32 s 13.5 s, 45 s 25.7 s,
  60 s 40.8 s). So a call's time limit grows by one second per second of audio beyond the first 5 s (see
  ``input_seconds``); the time-out of a call whose audio accounts for half its limit or more is the input's.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backend import errors
from backend.providers import azure_results

PROVIDER = "azure_speech"
log = logging.getLogger(__name__)
MAX_ASSESSMENT_SECONDS = 30.0  # the service refuses to assess longer audio
UNPACED_AUDIO_SECONDS = 5.0  # the SDK sends this much audio without pacing it
SECONDS_PER_AUDIO_SECOND = 1.0  # time allowed per further second of audio: the SDK never paced slower than this
CANCELED_GRACE_SECONDS = 0.5  # after its own service timeout the SDK reports the stop before the cancellation


def _speech_sdk():
    """Import the SDK on first use: importing it loads native libraries, which must not happen at import time."""
    import azure.cognitiveservices.speech as speechsdk

    return speechsdk


class _PendingCall:
    """Hands a worker's outcome to the caller, who stops waiting at the deadline."""

    def __init__(self, deadline: float, limit: float, input_seconds: float):
        self.deadline = deadline
        self.limit = limit  # the call's whole time limit, of which input_seconds are for the audio's length
        self.input_seconds = input_seconds
        self.finished = threading.Event()
        self.value: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def succeed(self, value: dict[str, Any]) -> None:
        self.value = value
        self.finished.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.finished.set()


class _RecognitionEvents:
    """Records the events of one continuous recognition (the SDK calls these from its own threads)."""

    def __init__(self):
        self.recognized: list[Any] = []
        self.canceled: list[Any] = []
        self.canceled_seen = threading.Event()
        self.stopped = threading.Event()

    def on_recognized(self, event: Any) -> None:
        self.recognized.append(event.result)

    def on_canceled(self, event: Any) -> None:
        self.canceled.append(event.result)
        self.canceled_seen.set()

    def on_stopped(self, _event: Any) -> None:
        self.stopped.set()


class AzureSpeechClient:
    """Speech-to-text and pronunciation assessment; every SDK call runs on a worker with a deadline."""

    def __init__(self, *, key: str, region: str | None, host: str | None, timeout_seconds: float, max_concurrency: int,
                 seconds_per_audio_second: float = SECONDS_PER_AUDIO_SECOND):
        self._key = key
        self._region = region
        self._host = host
        self._timeout_seconds = timeout_seconds  # the limit of a call on short audio
        self._seconds_per_audio_second = seconds_per_audio_second
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_concurrency), thread_name_prefix="azure-speech")
        self._closed = False

    def transcribe(self, pcm16: bytes, sample_rate: int, language: str, *, timeout: float | None = None) -> dict:
        """Recognise every sentence of mono 16-bit PCM; an utterance-free recording gives an empty transcript."""
        _check_pcm(pcm16, sample_rate)
        audio_seconds = round(len(pcm16) / 2 / sample_rate, 3)

        def summarise(phrases: list[azure_results.Phrase]) -> dict:
            return azure_results.transcript(phrases, language, audio_seconds)

        return self._run(pcm16, sample_rate, language, None, summarise, timeout)

    def assess_pronunciation(self, pcm16: bytes, sample_rate: int, reference_text: str, language: str, *,
                             timeout: float | None = None) -> dict:
        """Score how ``reference_text`` was pronounced; audio without speech scores zero with every word omitted."""
        _check_pcm(pcm16, sample_rate)
        if not reference_text.strip():
            raise errors.ValidationFailed("reference_text must not be empty")
        if len(pcm16) / 2 / sample_rate > MAX_ASSESSMENT_SECONDS:
            raise errors.ValidationFailed(
                f"pronunciation assessment is limited to {MAX_ASSESSMENT_SECONDS:.0f} s of audio", status=422)

        def summarise(phrases: list[azure_results.Phrase]) -> dict:
            if not phrases:
                return azure_results.unheard_assessment(reference_text)
            return azure_results.assessment(phrases)

        return self._run(pcm16, sample_rate, language, reference_text, summarise, timeout)

    def input_seconds(self, audio_seconds: float) -> float:
        """The time a recording needs beyond a short one's: the SDK paces audio after its first few seconds."""
        return max(0.0, audio_seconds - UNPACED_AUDIO_SECONDS) * self._seconds_per_audio_second

    def close(self) -> None:
        """Stop accepting calls; workers still releasing SDK objects finish in the background."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, pcm16, sample_rate, language, reference_text, summarise, timeout) -> dict:
        if self._closed:
            raise errors.ProviderUnavailable("the Azure Speech client is closed", provider=PROVIDER)
        if not self._key or not (self._host or self._region):
            raise errors.ProviderNotConfigured("Azure Speech needs a key and a region or host", provider=PROVIDER)
        # The limit grows with the audio: a minute of audio needs ~40 s just to be streamed (see the module).
        input_seconds = self.input_seconds(len(pcm16) / 2 / sample_rate)
        limit = self._timeout_seconds + input_seconds
        limit = limit if timeout is None else min(timeout, limit)
        call = _PendingCall(time.monotonic() + limit, limit, input_seconds)
        try:
            self._pool.submit(self._recognize, call, pcm16, sample_rate, language, reference_text, summarise)
        except RuntimeError as exc:  # the pool was shut down between the check and the submit
            raise errors.ProviderUnavailable("the Azure Speech client is closed", provider=PROVIDER) from exc
        if not call.finished.wait(max(0.0, call.remaining())):
            raise _timeout(call)
        if call.error is not None:
            raise call.error
        assert call.value is not None  # a finished call holds a value or an error
        return call.value

    def _recognize(self, call: _PendingCall, pcm16, sample_rate, language, reference_text, summarise) -> None:
        """Worker body: one continuous recognition; publishes the outcome, then releases the SDK objects here."""
        if call.remaining() <= 0:  # waited in the queue past the deadline; the caller has already given up
            return call.fail(_timeout(call))
        recognizer = None
        events = _RecognitionEvents()
        try:
            speechsdk = _speech_sdk()
            recognizer = self._recognizer(speechsdk, pcm16, sample_rate, language)
            if reference_text is not None:
                _assessment_config(speechsdk, reference_text).apply_to(recognizer)
            recognizer.recognized.connect(events.on_recognized)
            recognizer.canceled.connect(events.on_canceled)
            recognizer.session_stopped.connect(events.on_stopped)
            recognizer.start_continuous_recognition_async().get()
            if not events.stopped.wait(max(0.0, call.remaining())):
                return call.fail(_timeout(call))
            # A finished stream is reported as a cancellation too; wait briefly for it so a late error is not lost.
            events.canceled_seen.wait(max(0.0, min(CANCELED_GRACE_SECONDS, call.remaining())))
            _raise_for_cancellation(speechsdk, events.canceled)
            phrases = [_phrase(speechsdk, result, reference_text is not None) for result in events.recognized
                       if result.reason == speechsdk.ResultReason.RecognizedSpeech]
            call.succeed(summarise(phrases))
        except errors.AppError as exc:
            call.fail(_detached(exc))
        except Exception as exc:  # anything the SDK or its native layer throws must not escape raw
            log.warning("Azure Speech SDK failed", exc_info=exc)
            call.fail(errors.ProviderError(f"Azure Speech SDK failed ({type(exc).__name__})", provider=PROVIDER))
        finally:
            # Release on this worker, never later on whichever thread drops the last reference: releasing blocks
            # for 1-10 s, and a recognizer kept alive by a stray reference was seen to stall later recognitions.
            _release(recognizer, stop=not events.stopped.is_set())
            del recognizer, events

    def _recognizer(self, speechsdk, pcm16: bytes, sample_rate: int, language: str):
        if self._host:
            config = speechsdk.SpeechConfig(host=self._host, subscription=self._key)
        else:
            config = speechsdk.SpeechConfig(subscription=self._key, region=self._region)
        config.output_format = speechsdk.OutputFormat.Detailed
        config.request_word_level_timestamps()
        stream_format = speechsdk.audio.AudioStreamFormat(samples_per_second=sample_rate, bits_per_sample=16,
                                                          channels=1)
        stream = speechsdk.audio.PushAudioInputStream(stream_format)
        stream.write(pcm16)
        stream.close()  # the end of the stream is what ends continuous recognition
        audio = speechsdk.audio.AudioConfig(stream=stream)
        return speechsdk.SpeechRecognizer(speech_config=config, audio_config=audio, language=language)


def _assessment_config(speechsdk, reference_text: str):
    # The JSON form is the only way the Python SDK exposes the dimension; it also carries prosody.
    return speechsdk.PronunciationAssessmentConfig(json_string=json.dumps({
        "referenceText": reference_text, "gradingSystem": "HundredMark", "granularity": "Phoneme",
        "dimension": "Comprehensive", "enableMiscue": True, "enableProsodyAssessment": True}))


def _phrase(speechsdk, result, assessed: bool) -> azure_results.Phrase:
    body = json.loads(result.json) if result.json else {}
    scores = _read_assessment(speechsdk, result) if assessed else None
    return azure_results.Phrase(body=body, offset_ticks=result.offset, duration_ticks=result.duration,
                                assessment=scores)


def _read_assessment(speechsdk, result) -> dict[str, Any]:
    """Read a phrase's scores through the SDK's own reader, which leaves attributes unset when they are missing."""
    try:
        scores = speechsdk.PronunciationAssessmentResult(result)
        return {"accuracy_score": scores.accuracy_score, "fluency_score": scores.fluency_score,
                "completeness_score": scores.completeness_score, "pronunciation_score": scores.pronunciation_score,
                "prosody_score": scores.prosody_score,
                "words": [{"word": w.word, "accuracy_score": w.accuracy_score,
                           "error_type": azure_results.word_error_type(w.error_type)} for w in scores.words]}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise errors.ProviderBadResponse("Azure Speech returned a phrase without pronunciation scores",
                                         provider=PROVIDER) from exc


def _raise_for_cancellation(speechsdk, canceled: list[Any]) -> None:
    """Raise the mapped error of the first real failure; the end of the audio also arrives as a cancellation."""
    for result in canceled:
        details = result.cancellation_details
        if details.reason == speechsdk.CancellationReason.Error:
            raise _cancellation_error(speechsdk, details.code, details.error_details)


def _cancellation_error(speechsdk, code, details: str) -> errors.ProviderError:
    codes = speechsdk.CancellationErrorCode
    kinds = {codes.AuthenticationFailure: errors.ProviderAuthError, codes.Forbidden: errors.ProviderAuthError,
             codes.TooManyRequests: errors.ProviderRateLimited, codes.ConnectionFailure: errors.ProviderConnectionError,
             codes.ServiceTimeout: errors.ProviderTimeout, codes.BadRequest: errors.ProviderRejected}
    kind = kinds.get(code, errors.ProviderServerError)  # ServiceError, ServiceUnavailable (503) and the rest
    # The SDK's details name its session id and internals: useful in our logs, not in an answer to a client.
    log.warning("Azure Speech canceled the recognition: %s: %s", code.name, details)
    message = ("Azure Speech refused our credentials" if kind is errors.ProviderAuthError
               else f"Azure Speech canceled the recognition ({code.name})")
    return kind(message, provider=PROVIDER, details={"cancellation_code": code.name})


def _release(recognizer, *, stop: bool) -> None:
    """Drop the callbacks and, if the session is still running, ask it to stop (without waiting for it)."""
    if recognizer is None:
        return
    # Stopping a session that already ended makes the native release wait behind every other release in the process.
    actions = [recognizer.stop_continuous_recognition_async] if stop else []
    actions += [recognizer.recognized.disconnect_all, recognizer.canceled.disconnect_all,
                recognizer.session_stopped.disconnect_all]
    for action in actions:
        try:
            action()
        except Exception:  # cleanup is best effort; the outcome was already published
            pass


def _detached(exc: BaseException) -> BaseException:
    """Drop the tracebacks: their frames hold SDK objects, which must be released on the worker, not with the error."""
    link: BaseException | None = exc
    for _ in range(8):  # the chain is short; the bound only guards against a cycle
        if link is None:
            break
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return exc


def _timeout(call: _PendingCall) -> errors.ProviderTimeout:
    """Azure's time-out, or the input's when the audio's length accounts for half the call's limit or more."""
    return errors.timeout_for_input(f"Azure Speech did not answer within {call.limit:.1f} s", provider=PROVIDER,
                                    limit=call.limit, input_seconds=call.input_seconds)


def _check_pcm(pcm16: bytes, sample_rate: int) -> None:
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise errors.ValidationFailed("sample_rate must be a positive integer")
    if len(pcm16) % 2:
        raise errors.ValidationFailed("16-bit PCM must have an even number of bytes")
