"""The synthesis half of the fake Azure Speech service: text-to-speech over USP, and the voice list.

Per call the SDK sends ``synthesis.context`` (the output format) and ``ssml`` with one X-RequestId; the fake answers
``turn.start`` (required: without it the SDK waits 80 s), binary ``audio`` frames and ``turn.end``. A synthesizer keeps
its websocket across calls, so failures are picked per call: the first call of a connection gets the failure picked
at its handshake, later calls pick their own. How the SDK takes each injected failure (1.53):
``401``/``429``/``500``/``503`` refuse the handshake (AuthenticationFailure, no retry; TooManyRequests,
ServiceUnavailable, ServiceError after one retry); on an already open connection ``429`` closes it with 4429
(TooManyRequests), ``500``/``503`` with 1011 (ServiceError, after a retry), and ``401`` drops it and refuses the
reconnection. ``reset`` drops the connection before any audio (ConnectionFailure after a retry), ``hang`` answers
nothing (the SDK waits 80 s), ``stall`` sends one chunk then nothing (ServiceTimeout after 3 s), ``reset_audio``
one chunk then drops the connection (ConnectionFailure), ``empty``/``nomatch``/``malformed`` a turn without audio.
Unreadable SSML, an unknown voice or format close the websocket with 1007 and the service's text (BadRequest).
"""
from __future__ import annotations

import asyncio
import collections
import http
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes import azure_tts_audio as tts
from tests.fakes import azure_usp as usp
from tests.fakes.azure_voices import VOICES_PATH, known_voice, voice_list

if TYPE_CHECKING:
    from tests.fakes.azure_speech import FakeAzureSpeech

WEBSOCKET_PATH = "/cognitiveservices/websocket/v1"
HANDSHAKE_STATUS = {"401": http.HTTPStatus.UNAUTHORIZED, "429": http.HTTPStatus.TOO_MANY_REQUESTS,
                    "500": http.HTTPStatus.INTERNAL_SERVER_ERROR, "503": http.HTTPStatus.SERVICE_UNAVAILABLE}
CLOSE_CODES = {"429": 4429, "500": 1011, "503": 1011}  # how a failure is told on a connection already open
RETRY_AFTER_SECONDS = 1
BAD_REQUEST_CLOSE = 1007
DEFAULT_FORMAT = "audio-24khz-48kbitrate-mono-mp3"  # the service's default when the context names none
AUDIO_CHUNK_BYTES = 4096
SPOKEN_LOG = 200
HUNG_VOICE_LIST_SECONDS = 30.0  # past websockets' open_timeout (10 s), which then drops the request
LINGER_SECONDS = 1.0  # how long a voice-list connection waits for the client to close it (the SDK does at once)
__all__ = ["FakeSynthesis", "SynthesisSession", "VOICES_PATH", "WEBSOCKET_PATH", "refusal"]


def refusal(failure: str) -> Response:
    """A refused handshake (or voice-list request); a 429 carries Retry-After."""
    extra = {"Retry-After": str(RETRY_AFTER_SECONDS)} if failure == "429" else {}
    text = "invalid subscription key" if failure == "401" else "injected failure"
    return usp.http_response(HANDSHAKE_STATUS[failure], text, extra)


@dataclass
class SynthesisSession:
    """One synthesis websocket: the failure its first call gets, and the calls being answered."""

    failure: str | None
    first: bool = True
    tasks: set = field(default_factory=set)


class FakeSynthesis:
    """Answers synthesis connections and voice-list requests for a FakeAzureSpeech, keeping its own counters."""

    def __init__(self, fake: FakeAzureSpeech):
        self._fake = fake
        self.in_flight = 0  # calls being answered right now (a reset leaves the live ones counted)
        self.reset()

    def reset(self) -> None:
        with self._fake.lock:
            self.calls = self.connections = self.voice_list_calls = 0
            self.peak_in_flight = 0  # the most calls answered at once since the reset
            self._spoken: collections.deque[dict] = collections.deque(maxlen=SPOKEN_LOG)
            self._requeued: list[str] = []

    def stats(self) -> dict:
        """Synthesis calls (``ssml`` messages received), handshakes, voice-list requests, the most calls answered at
        once, and the last speech."""
        with self._fake.lock:
            return {"synthesis_calls": self.calls, "synthesis_connections": self.connections,
                    "voice_list_calls": self.voice_list_calls, "synthesis_peak": self.peak_in_flight,
                    "last_spoken": dict(self._spoken[-1]) if self._spoken else None}

    def spoken(self) -> list[dict]:
        """What was spoken (oldest first): request id, text, voice, language, rate, format and audio bytes."""
        with self._fake.lock:
            return [dict(entry) for entry in self._spoken]

    # --- voice list (plain HTTP on the websocket port) -------------------------------------------------------------

    async def voice_list(self, connection: ServerConnection, request: Request) -> Response:
        """Answer ``GET /cognitiveservices/voices/list``; the answer is written here, websockets sends nothing more."""
        failure = self._fake.pick_failure(request.headers.get("Ocp-Apim-Subscription-Key"))
        with self._fake.lock:
            self.voice_list_calls += 1
        if failure in ("hang", "stall"):
            await self._fake.idle(HUNG_VOICE_LIST_SECONDS)
        if failure in ("reset", "reset_audio"):
            connection.transport.abort()
        else:
            await asyncio.sleep(self._fake.settings.latency_ms / 1000)
            answer = refusal(failure) if failure in HANDSHAKE_STATUS else usp.json_response(
                [] if failure in ("empty", "nomatch", "malformed") else voice_list())
            await self._answer_and_linger(connection, answer)
        return usp.http_response(http.HTTPStatus.GONE, "")  # never sent: the connection is closed by now

    async def _answer_and_linger(self, connection: ServerConnection, answer: Response) -> None:
        """Send a plain HTTP answer and let the client close first: the SDK's HTTP client fails with
        HTTPAPI_READ_DATA_FAILED when the server ends the connection right after the answer, as websockets does."""
        connection.transport.write(answer.serialize())
        closed = asyncio.shield(connection.connection_lost_waiter)
        stopping = asyncio.ensure_future(self._fake.idle(LINGER_SECONDS))
        await asyncio.wait([closed, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        connection.transport.abort()

    # --- synthesis websocket -----------------------------------------------------------------------------------------

    def handshake(self, request: Request) -> Response | SynthesisSession:
        """Refuse the handshake as injected, or the session the connection will carry."""
        with self._fake.lock:
            self.connections += 1
            requeued = self._requeued.pop(0) if self._requeued else None
        failure = requeued or self._fake.pick_failure(request.headers.get("Ocp-Apim-Subscription-Key"))
        if failure in HANDSHAKE_STATUS:
            return refusal(failure)
        return SynthesisSession(failure=failure)

    async def serve(self, ws: ServerConnection, session: SynthesisSession) -> None:
        """Read the client's messages; answer each ``ssml`` in a task of its own (a hung one blocks no other)."""
        contexts: dict[str, dict] = {}
        try:
            async for message in ws:
                if not isinstance(message, str):
                    continue
                headers, body = usp.parse_text_frame(message)
                request_id = headers.get("x-requestid", "")
                if headers.get("path") == "synthesis.context":
                    contexts[request_id] = json.loads(body or "{}")
                elif headers.get("path") == "ssml":
                    failure = session.failure if session.first else self._fake.pick_failure(None, check_key=False)
                    session.first = False
                    task = asyncio.create_task(self._answer(ws, request_id, contexts.pop(request_id, {}), body,
                                                            failure))
                    session.tasks.add(task)
                    task.add_done_callback(session.tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            for task in list(session.tasks):
                task.cancel()

    async def _answer(self, ws: ServerConnection, request_id: str, context: dict, ssml: str,
                      failure: str | None) -> None:
        with self._fake.lock:
            self.calls += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if failure in CLOSE_CODES:
                return await ws.close(CLOSE_CODES[failure], "injected failure")
            if failure in HANDSHAKE_STATUS or failure == "reset":
                if failure in HANDSHAKE_STATUS:  # 401 on an open connection: the reconnection is refused
                    with self._fake.lock:
                        self._requeued.append(failure)
                return ws.transport.abort()
            if failure == "hang":
                return
            format_name = context.get("synthesis", {}).get("audio", {}).get("outputFormat") or DEFAULT_FORMAT
            try:
                speech = tts.read_ssml(ssml)
                if not known_voice(speech.voice):
                    raise tts.BadSsml(f"Unsupported voice {speech.voice}.")
                empty = failure in ("empty", "nomatch", "malformed")
                data = b"" if empty else await asyncio.to_thread(tts.audio, speech, format_name)
            except ValueError as exc:  # BadSsml, or an output format the fake does not speak
                return await ws.close(BAD_REQUEST_CLOSE, str(exc)[:120])
            self._record(request_id, speech, format_name, data)
            await asyncio.sleep(self._latency_seconds(speech))
            await self._stream(ws, request_id, data, failure)
        except ConnectionClosed:
            return
        finally:
            with self._fake.lock:
                self.in_flight -= 1

    async def _stream(self, ws: ServerConnection, request_id: str, data: bytes, failure: str | None) -> None:
        await ws.send(usp.text_frame("turn.start", request_id, usp.turn_start_body()))
        stream_id = uuid.uuid4().hex
        for start in range(0, len(data), AUDIO_CHUNK_BYTES):
            await ws.send(usp.audio_frame(request_id, stream_id, data[start:start + AUDIO_CHUNK_BYTES]))
            if failure == "reset_audio":
                return ws.transport.abort()
            if failure == "stall":
                await asyncio.Event().wait()  # until the connection closes and the task is cancelled
        await ws.send(usp.text_frame("turn.end", request_id, {}))

    def _latency_seconds(self, speech: tts.Speech) -> float:
        """The injected delay before a call's first message: fixed, plus a share per second of speech."""
        seconds = len(speech.text) * tts.CHAR_MS / 1000 / speech.rate
        settings = self._fake.settings
        return (settings.latency_ms + settings.latency_ms_per_audio_second * seconds) / 1000

    def _record(self, request_id: str, speech: tts.Speech, format_name: str, data: bytes) -> None:
        with self._fake.lock:
            self._spoken.append({"request_id": request_id, "text": speech.text, "voice": speech.voice,
                                 "language": speech.language, "rate": speech.rate, "format": format_name,
                                 "bytes": len(data)})
