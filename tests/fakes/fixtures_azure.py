"""Pytest fixtures and test audio for the fake Azure Speech service; import them into a test module to use them."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.audio_samples import pack_floats, speech_like
from tests.fakes.azure_speech import FakeAzureSpeech

FAKE_AZURE_KEY = "fake-azure-key"
RATE = 16000


def speech_pcm(segments: int) -> bytes:
    """Short 'sentences' (0.4 s tones) split by 0.4 s pauses, as raw 16-bit PCM."""
    return pack_floats(speech_like(segments, RATE, voiced=0.4, pause=0.4))


@pytest.fixture
def fake_azure_speech() -> Iterator[FakeAzureSpeech]:
    """A fresh fake per test (counters and settings never leak between tests), requiring FAKE_AZURE_KEY."""
    fake = FakeAzureSpeech(key=FAKE_AZURE_KEY).start()
    try:
        yield fake
    finally:
        fake.stop()
