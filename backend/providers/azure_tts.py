"""Azure speech synthesis: text spoken as mp3, wav or ogg through the Speech SDK's SpeechSynthesizer, on a bounded pool.

SDK behaviour this relies on (azure-cognitiveservices-speech 1.53, observed against tests/fakes/azure_synthesis.py):
- ``speak_ssml_async(...).get()`` has no timeout, and a silent service holds it for 80 s: each call runs on a pool
  worker that waits for the call's completion event until the deadline, then ends it with ``stop_speaking_async()``
  (about 20 ms; the result is CancelledByUser). A stop issued before the SDK has started the request is lost
  (2 of 5 right after the speak call; 60 of 60 once ``synthesis_started`` had fired), so the stop waits for that;
- one synthesizer keeps its websocket between calls. Measured through this client against the fake (mp3, one
  sentence, 40 calls per thread, median): a new synthesizer per call 42 ms a call (22 calls/s) on one thread and
  54 ms (73 calls/s) on four; one synthesizer per worker thread, reused, 20 ms (45 calls/s) and 30 ms (129 calls/s).
  Creating one costs 0.05 ms: the difference is opening and closing its websocket, which to Azure also pays TCP and
  TLS round trips. So each worker keeps one synthesizer per output format, and drops it after any failure or stop
  (the next call opens a fresh one);
- failures never raise: see azure_tts_errors for how each arrives and what it becomes.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from backend import errors
from backend.media import ssml
from backend.providers import azure_tts_errors
from backend.providers.azure_tts_errors import PROVIDER

log = logging.getLogger(__name__)
# 24 kHz is the neural voices' own rate (no resampling); the same characters are billed whatever the format.
FORMATS = {"mp3": "Audio24Khz48KBitRateMonoMp3", "wav": "Riff24Khz16BitMonoPcm", "ogg": "Ogg24Khz16BitMonoOpus"}
STOP_WAIT_SECONDS = 0.5  # for the request to have started, then for each stop to take effect
STOP_ATTEMPTS = 3
# A voice list cannot be stopped (the SDK gives up on a silent server after about 20 s): a hung one must not hold a
# synthesis worker, so voice lists have workers of their own.
VOICE_LIST_WORKERS = 2


def _speech_sdk():
    """Import the SDK on first use: importing it loads native libraries, which must not happen at import time."""
    import azure.cognitiveservices.speech as speechsdk

    return speechsdk


class _PendingCall:
    """Hands a worker's outcome to the caller, who stops waiting at the deadline."""

    def __init__(self, limit: float):
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.finished = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def succeed(self, value: Any) -> None:
        self.value = value
        self.finished.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.finished.set()


class _Synthesizer:
    """One SDK synthesizer reused by one worker thread, with the events that tell when its current call ends."""

    def __init__(self, sdk_synthesizer: Any):
        self.sdk = sdk_synthesizer
        self.busy = False
        self._started = threading.Event()
        self._finished = threading.Event()
        # Callbacks only set events (the SDK swallows what they raise). A call's end is awaited before its result is
        # read, so no late event of one call can end the next call's wait; a stopped synthesizer is never reused.
        sdk_synthesizer.synthesis_started.connect(lambda _event: self._started.set())
        sdk_synthesizer.synthesis_completed.connect(lambda _event: self._finished.set())
        sdk_synthesizer.synthesis_canceled.connect(lambda _event: self._finished.set())

    def speak(self, document: str, remaining: Callable[[], float]) -> Any | None:
        """The SDK's result, or None when the deadline came first and the call was stopped."""
        self._started.clear()
        self._finished.clear()
        future = self.sdk.speak_ssml_async(document)
        if self._finished.wait(remaining()):
            return future.get()
        self._stop()
        return None

    def _stop(self) -> None:
        self._started.wait(STOP_WAIT_SECONDS)
        for _ in range(STOP_ATTEMPTS):
            self.sdk.stop_speaking_async().get()
            if self._finished.wait(STOP_WAIT_SECONDS):
                return
        log.warning("Azure speech synthesis did not stop; its synthesizer is dropped")

    def release(self) -> None:
        """Drop the callbacks (one still connected when the SDK object goes can abort the interpreter) and the SDK
        object, on the calling thread."""
        sdk, self.sdk = self.sdk, None
        if sdk is None:
            return
        for signal in (sdk.synthesis_started, sdk.synthesis_completed, sdk.synthesis_canceled):
            try:
                signal.disconnect_all()
            except Exception:  # cleanup is best effort
                pass


class AzureSynthesisClient:
    """Text-to-speech and the voice list; every SDK call runs on a worker and is bounded by the caller's deadline."""

    def __init__(self, *, key: str, region: str | None = None, host: str | None = None, timeout_seconds: float,
                 max_concurrency: int):
        self._key = key
        self._region = region
        self._host = host
        self._timeout_seconds = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_concurrency), thread_name_prefix="azure-tts")
        self._voice_pool = ThreadPoolExecutor(max_workers=VOICE_LIST_WORKERS, thread_name_prefix="azure-voices")
        self._local = threading.local()  # each worker's synthesizers, by output format
        self._live: set[_Synthesizer] = set()
        self._lock = threading.Lock()
        self._closed = False

    def synthesize(self, text: str, language: str, voice: str, rate: float = 1.0, fmt: str = "mp3", *,
                   timeout: float | None = None) -> bytes:
        """``text`` spoken by ``voice`` at ``rate`` (0.5-2.0) as mp3, wav (a RIFF file) or ogg (Ogg/Opus)."""
        if fmt not in FORMATS:
            raise errors.ValidationFailed(f"format must be one of {', '.join(FORMATS)}",
                                          details=[{"field": "format", "message": "unknown format"}])
        document = ssml.build_ssml(text, language=language, voice=voice, rate=rate)
        return self._run(self._pool, lambda call: self._speak(call, document, fmt), timeout)

    def voices(self, language: str, *, timeout: float | None = None) -> list[dict[str, str]]:
        """The voices of ``language`` (e.g. en-US), each ``{"name", "locale", "gender"}``; none for a language
        Azure does not speak."""
        locale = ssml.normalize_language(language)
        return self._run(self._voice_pool, lambda call: self._list_voices(call, locale), timeout)

    def warm_up(self) -> None:
        """Load the SDK's native libraries now rather than in a first request (no connection is made)."""
        if self._key and (self._host or self._region):
            self._config(_speech_sdk(), None)

    def close(self) -> None:
        """Stop accepting calls and release the idle synthesizers; busy ones are released by their worker."""
        with self._lock:
            self._closed = True
            idle = [synthesizer for synthesizer in self._live if not synthesizer.busy]
            self._live.difference_update(idle)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._voice_pool.shutdown(wait=False, cancel_futures=True)
        for synthesizer in idle:
            synthesizer.release()

    # --- calls on the pool ------------------------------------------------------------------------------------------

    def _run(self, pool: ThreadPoolExecutor, work: Callable[[_PendingCall], None], timeout: float | None) -> Any:
        if self._closed:
            raise errors.ProviderUnavailable("the Azure synthesis client is closed", provider=PROVIDER)
        if not self._key or not (self._host or self._region):
            raise errors.ProviderNotConfigured("Azure Speech needs a key and a region or host", provider=PROVIDER)
        call = _PendingCall(self._timeout_seconds if timeout is None else min(timeout, self._timeout_seconds))
        try:
            pool.submit(self._guarded, work, call)
        except RuntimeError as exc:  # the pool was shut down between the check and the submit
            raise errors.ProviderUnavailable("the Azure synthesis client is closed", provider=PROVIDER) from exc
        if not call.finished.wait(call.remaining()):
            raise _timeout(call)
        if call.error is not None:
            raise call.error
        return call.value

    def _guarded(self, work: Callable[[_PendingCall], None], call: _PendingCall) -> None:
        """Worker body: run ``work``, turning anything the SDK throws into a provider error for the caller."""
        if call.remaining() <= 0:  # waited in the queue past the deadline; the caller has already given up
            return call.fail(_timeout(call))
        try:
            work(call)
        except errors.AppError as exc:
            call.fail(exc.with_traceback(None))
        except Exception as exc:  # the SDK's native layer must not escape raw
            log.warning("Azure Speech SDK failed", exc_info=exc)
            call.fail(errors.ProviderError(f"Azure Speech SDK failed ({type(exc).__name__})", provider=PROVIDER))

    def _speak(self, call: _PendingCall, document: str, fmt: str) -> None:
        speechsdk = _speech_sdk()
        synthesizer = self._synthesizer(speechsdk, fmt)
        keep = False
        try:
            result = synthesizer.speak(document, call.remaining)
            if result is None:
                return call.fail(_timeout(call))
            call.succeed(_audio(speechsdk, result, fmt))
            keep = True
        finally:
            synthesizer.busy = False
            if not keep or self._closed:  # a failed or stopped synthesizer is not trusted with another call
                self._drop(synthesizer, fmt)

    def _list_voices(self, call: _PendingCall, locale: str) -> None:
        speechsdk = _speech_sdk()
        # All voices, filtered here: asked for one locale, the SDK reports a locale without voices as a failure.
        synthesizer = speechsdk.SpeechSynthesizer(speech_config=self._config(speechsdk, None), audio_config=None)
        result = synthesizer.get_voices_async("").get()
        if result.reason != speechsdk.ResultReason.VoicesListRetrieved:
            raise azure_tts_errors.voice_list_error(result.error_details)
        call.succeed([{"name": v.short_name, "locale": v.locale, "gender": v.gender.name} for v in result.voices
                      if v.locale.lower() == locale.lower()])

    # --- synthesizers -------------------------------------------------------------------------------------------

    def _synthesizer(self, speechsdk: Any, fmt: str) -> _Synthesizer:
        """This worker's synthesizer for ``fmt`` (created on first use), marked busy so close() leaves it alone."""
        own: dict[str, _Synthesizer] | None = getattr(self._local, "synthesizers", None)
        if own is None:
            own = self._local.synthesizers = {}
        if fmt not in own:
            config = self._config(speechsdk, getattr(speechsdk.SpeechSynthesisOutputFormat, FORMATS[fmt]))
            own[fmt] = _Synthesizer(speechsdk.SpeechSynthesizer(speech_config=config, audio_config=None))
        with self._lock:
            if self._closed:
                raise errors.ProviderUnavailable("the Azure synthesis client is closed", provider=PROVIDER)
            own[fmt].busy = True
            self._live.add(own[fmt])
        return own[fmt]

    def _drop(self, synthesizer: _Synthesizer, fmt: str) -> None:
        getattr(self._local, "synthesizers", {}).pop(fmt, None)
        with self._lock:
            self._live.discard(synthesizer)
        synthesizer.release()

    def _config(self, speechsdk: Any, output_format: Any) -> Any:
        if self._host:
            config = speechsdk.SpeechConfig(host=self._host, subscription=self._key)
        else:
            config = speechsdk.SpeechConfig(subscription=self._key, region=self._region)
        if output_format is not None:
            config.set_speech_synthesis_output_format(output_format)
        # A safety net only: a call that outlives its stop gives up after about twice this (the SSML is resent at
        # this mark, which the deadline always precedes). Without it a silent service holds the worker 80 s.
        config.set_property_by_name("SpeechSynthesis_FirstChunkTimeoutMs", str(int(self._timeout_seconds * 1000)))
        return config


def _audio(speechsdk: Any, result: Any, fmt: str) -> bytes:
    """The audio of a finished synthesis, or the error it ended with."""
    if result.reason == speechsdk.ResultReason.Canceled:
        details = result.cancellation_details
        raise azure_tts_errors.cancellation_error(details.error_code.name, details.error_details)
    data = bytes(result.audio_data or b"")
    if not data:
        raise errors.ProviderBadResponse("Azure Speech synthesised no audio", provider=PROVIDER)
    if not _looks_like(fmt, data):
        raise errors.ProviderBadResponse(f"Azure Speech returned audio that is not {fmt}", provider=PROVIDER)
    return data


def _looks_like(fmt: str, data: bytes) -> bool:
    """Whether ``data`` starts as a file of ``fmt`` does (an ID3 tag or an MPEG frame sync for mp3)."""
    if fmt == "wav":
        return data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    if fmt == "ogg":
        return data[:4] == b"OggS"
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _timeout(call: _PendingCall) -> errors.ProviderTimeout:
    return errors.ProviderTimeout(f"Azure speech synthesis did not answer within {call.limit:.1f} s",
                                  provider=PROVIDER)
