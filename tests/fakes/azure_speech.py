"""A fake Azure Speech service speaking the SDK's USP websocket protocol, with latency and error injection.

Recognition is answered here; synthesis (``/cognitiveservices/websocket/v1``) and the voice list
(``/cognitiveservices/voices/list``) in tests/fakes/azure_synthesis.py, on the same port.
Run it: ``python -m tests.fakes.azure_speech --port 5000 [--latency-ms 200] [--error 503] [--key secret]``;
point the SDK at it with ``SpeechConfig(host="ws://127.0.0.1:5000", subscription=KEY)``.
Control it over plain HTTP on the same port: ``/_fake/calls`` (recognition), ``/_fake/stats`` (recognition and
synthesis), ``/_fake/reset``, ``/_fake/config?...``.
"""
from __future__ import annotations

import argparse
import asyncio
import http
import json
import random
import threading
from dataclasses import asdict
from typing import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes import azure_synthesis as synthesis
from tests.fakes import azure_usp as usp
from tests.fakes.azure_recognition import Session, phrases_for
from tests.fakes.azure_settings import (
    DEFAULT_TRANSCRIPT,
    ERRORS,
    RECOGNITION_FAILURES,
    FakeSpeechSettings,
    pick_failure,
    sentences,
    settings_from_query,
)


class FakeAzureSpeech:
    """The fake service; embeddable (``start``/``stop`` on a background loop) or run as a process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **settings):
        self.host = host
        self.port = port
        self._initial = settings
        self._lock = threading.Lock()
        self._rng = random.Random(0)  # seeded so an error rate fails the same connections on every run
        self.settings = FakeSpeechSettings(**settings)
        self.calls = 0
        self.connections = 0
        self.phrases: list[dict] = []  # every speech.phrase body sent, for tests to compare against
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future | None = None
        self.synthesis = synthesis.FakeSynthesis(self)

    @property
    def lock(self) -> threading.Lock:
        """Guards settings and counters (shared with the synthesis half)."""
        return self._lock

    async def idle(self, seconds: float) -> None:
        """Sleep, but no longer than the server runs: a handshake still waiting would hold up ``stop``."""
        if self._stopped is not None:
            await asyncio.wait([asyncio.shield(self._stopped)], timeout=seconds)

    @property
    def host_url(self) -> str:
        """The value for ``SpeechConfig(host=...)``."""
        return f"ws://{self.host}:{self.port}"

    def configure(self, **changes) -> FakeSpeechSettings:
        """Change some settings; unknown names raise TypeError."""
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self.settings, name):
                    raise TypeError(f"unknown setting {name!r}")
                if name == "error" and value not in ERRORS | {None}:
                    raise ValueError(f"error must be one of {sorted(ERRORS)}")
                setattr(self.settings, name, value)
            return self.settings

    def reset(self) -> None:
        """Zero the counters and restore the settings the fake was created with."""
        with self._lock:
            self.settings = FakeSpeechSettings(**self._initial)
            self.calls = self.connections = 0
            self.phrases = []
            self._rng = random.Random(0)
        self.synthesis.reset()

    def counters(self) -> dict:
        """Recognition sessions (connections that sent audio) and raw connection attempts."""
        with self._lock:
            return {"calls": self.calls, "connections": self.connections}

    def stats(self) -> dict:
        """Recognition counters plus synthesis ones (``synthesis_calls``, ``last_spoken``, ...)."""
        return {**self.counters(), **self.synthesis.stats()}

    def pick_failure(self, key: str | None, *, check_key: bool = True) -> str | None:
        """The failure of a new connection or call: "401" for a wrong key (when checked), else per the settings."""
        with self._lock:
            if check_key and self.settings.key is not None and key != self.settings.key:
                return "401"
            return pick_failure(self.settings, self._rng)

    def start(self) -> "FakeAzureSpeech":
        """Serve on a background thread with its own event loop; returns once the port is bound."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self.serve_forever(ready.set),),
                                        name="fake-azure-speech", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Azure Speech did not start")
        return self

    def stop(self) -> None:
        """Close the server and every open connection, then end the background thread."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._release)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()
        self._loop = self._thread = None

    def _release(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    async def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until ``stop`` is called (or forever when run as a process); ``on_ready`` runs once bound."""
        self._stopped = asyncio.get_running_loop().create_future()
        async with serve(self._handle, self.host, self.port, subprotocols=["USP"],
                         process_request=self._process_request, max_size=None, close_timeout=1) as server:
            self.port = server.sockets[0].getsockname()[1]
            if on_ready is not None:
                on_ready()
            await self._stopped

    # --- handshake: control endpoints, auth and refused handshakes --------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | Awaitable[Response] | None:
        url = urlsplit(request.path)
        if url.path.startswith("/_fake/"):
            return self._control(url.path, parse_qs(url.query))
        if url.path == synthesis.VOICES_PATH:
            return self.synthesis.voice_list(connection, request)  # a coroutine: websockets awaits it
        if url.path == synthesis.WEBSOCKET_PATH:
            answer = self.synthesis.handshake(request)
            if isinstance(answer, Response):
                return answer
            connection.fake_session = answer
            return None
        with self._lock:
            self.connections += 1
        failure = self.pick_failure(request.headers.get("Ocp-Apim-Subscription-Key"))
        failure = RECOGNITION_FAILURES.get(failure, failure)  # a synthesis-only failure's counterpart
        if failure in synthesis.HANDSHAKE_STATUS:
            return synthesis.refusal(failure)
        connection.fake_session = Session(interactive="/interactive/" in url.path, failure=failure)
        return None

    def _control(self, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/_fake/calls":
            return usp.json_response(self.counters())
        if path == "/_fake/stats":
            return usp.json_response(self.stats())
        if path == "/_fake/reset":
            self.reset()
            return usp.json_response(asdict(self.settings))
        if path == "/_fake/config":
            try:
                self.configure(**settings_from_query(query))
            except (TypeError, ValueError) as exc:
                return usp.json_response({"error": str(exc)}, http.HTTPStatus.BAD_REQUEST)
            return usp.json_response(asdict(self.settings))
        return usp.json_response({"error": "unknown control path"}, http.HTTPStatus.NOT_FOUND)

    # --- websocket: turns of audio in, recognition results out ---------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        session = ws.fake_session
        if isinstance(session, synthesis.SynthesisSession):
            return await self.synthesis.serve(ws, session)
        try:
            while True:
                turn = await self._receive_turn(ws, session)
                if turn is None:
                    return
                request_id, context, audio = turn
                if not session.answered:  # later turns only re-send the unrecognised tail; delay the first one
                    session.answered = True
                    await asyncio.sleep(self._latency_seconds(audio))
                for path, body in self._answer_turn(session, context, audio):
                    await ws.send(usp.text_frame(path, request_id, body))
        except ConnectionClosed:
            return

    async def _receive_turn(self, ws: ServerConnection, session: Session) -> tuple[str, dict, bytes] | None:
        """Read one turn (speech.context, then audio up to the empty end frame); None when the client left."""
        context: dict = {}
        audio = bytearray()
        async for message in ws:
            if isinstance(message, str):
                headers, body = usp.parse_text_frame(message)
                if headers.get("path") == "speech.context":
                    context = json.loads(body or "{}")
                continue
            headers, payload = usp.parse_binary_frame(message)
            if not session.counted:
                session.counted = True
                with self._lock:
                    self.calls += 1
                if session.failure == "reset":
                    ws.transport.abort()  # drop the TCP connection without a close frame
                    return None
                if session.failure == "hang":
                    async for _ in ws:  # keep reading so the client never blocks, answer nothing
                        pass
                    return None
            if not payload:
                return headers.get("x-requestid", ""), context, bytes(audio)
            audio += payload
        return None

    def _latency_seconds(self, audio: bytes) -> float:
        """The injected delay before answering a session: fixed, plus a share proportional to the audio's length."""
        pcm, rate = usp.split_wav_stream(audio)
        audio_seconds = len(pcm) / 2 / rate if rate else 0.0
        return (self.settings.latency_ms + self.settings.latency_ms_per_audio_second * audio_seconds) / 1000

    def _answer_turn(self, session: Session, context: dict, audio: bytes) -> list[tuple[str, dict]]:
        """The messages answering one turn, in the order the service sends them."""
        pcm, rate = usp.split_wav_stream(audio)
        phrases = phrases_for(session, context, pcm, rate, self.settings.transcript or DEFAULT_TRANSCRIPT)
        heard = phrases[0]["RecognitionStatus"] != "EndOfDictation"
        messages: list[tuple[str, dict]] = [("turn.start", usp.turn_start_body())]
        if heard:
            messages.append(("speech.startDetected", {"Offset": phrases[0]["Offset"]}))
        messages += [("speech.phrase", p) for p in phrases]
        if heard:
            messages.append(("speech.endDetected", {"Offset": phrases[-1]["Offset"] + phrases[-1]["Duration"]}))
        messages.append(("turn.end", {}))
        with self._lock:
            self.phrases += phrases
        return messages


def main(argv: list[str] | None = None) -> None:
    """Run the fake in the foreground."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--latency-ms-per-audio-second", type=int, default=0)
    parser.add_argument("--error", choices=sorted(ERRORS))
    parser.add_argument("--error-rate", type=float)
    parser.add_argument("--fail-next", type=int, default=0)
    parser.add_argument("--key")
    parser.add_argument("--transcript", help="sentences separated by |")
    args = parser.parse_args(argv)
    settings = {"latency_ms": args.latency_ms, "latency_ms_per_audio_second": args.latency_ms_per_audio_second,
                "error": args.error, "error_rate": args.error_rate,
                "fail_next": args.fail_next, "key": args.key}
    if args.transcript:
        settings["transcript"] = sentences(args.transcript)
    fake = FakeAzureSpeech(args.host, args.port, **settings)
    try:
        asyncio.run(fake.serve_forever(lambda: print(f"fake Azure Speech on {fake.host_url}", flush=True)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
