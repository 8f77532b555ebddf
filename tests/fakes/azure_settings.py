"""Settings of the fake Azure Speech service: what it does to the next connections, and how they are changed."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

DEFAULT_TRANSCRIPT = ["The quick brown fox jumps.", "She sells sea shells.", "It is a sunny day."]
# Handshake refusals (401, 429, 500, 503), connection faults (hang, reset) and answers without a result (nomatch,
# malformed); stall, reset_audio and empty are synthesis's (audio that stops, is cut, or never comes).
ERRORS = {"401", "429", "500", "503", "hang", "reset", "nomatch", "malformed", "stall", "reset_audio", "empty"}
RECOGNITION_FAILURES = {"stall": "hang", "reset_audio": "reset", "empty": "nomatch"}  # what those mean to recognition


@dataclass
class FakeSpeechSettings:
    """What the fake does to the next connections."""

    latency_ms: int = 0
    # Extra delay per second of audio in a session's first turn: a service slow in proportion to the input.
    latency_ms_per_audio_second: int = 0
    error: str | None = None  # one of ERRORS; always applied unless error_rate or fail_next narrows it
    error_rate: float | None = None  # chance 0..1 that a connection fails (with `error`, default 503)
    fail_next: int = 0  # the next N connections fail (with `error`, default 503), later ones succeed
    transcript: list[str] = field(default_factory=lambda: list(DEFAULT_TRANSCRIPT))
    key: str | None = None  # when set, any other subscription key is refused with 401


def pick_failure(settings: FakeSpeechSettings, rng: random.Random) -> str | None:
    """The failure the next connection gets, if any; counts ``fail_next`` down."""
    if settings.fail_next > 0:
        settings.fail_next -= 1
        failure = settings.error or "503"
        if settings.fail_next == 0:
            settings.error = None  # heal: the error was for these N only, later connections succeed
        return failure
    if settings.error_rate is not None:
        return (settings.error or "503") if rng.random() < settings.error_rate else None
    return settings.error


def settings_from_query(query: dict[str, list[str]]) -> dict:
    """Turn ``/_fake/config`` query parameters into settings (empty or "none" clears error, error_rate, key)."""
    parsers = {"latency_ms": int, "latency_ms_per_audio_second": int, "fail_next": int, "transcript": sentences,
               "error_rate": lambda v: None if v.lower() in ("", "none") else float(v),
               "error": lambda v: None if v.lower() in ("", "none") else v,
               "key": lambda v: None if v.lower() in ("", "none") else v}
    changes = {}
    for name, values in query.items():
        if name not in parsers:
            raise TypeError(f"unknown setting {name!r}")
        changes[name] = parsers[name](values[-1])
    return changes


def sentences(text: str) -> list[str]:
    """Split a transcript given as ``First sentence.|Second one.``."""
    return [sentence.strip() for sentence in text.split("|") if sentence.strip()]
