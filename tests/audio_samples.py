"""Real WAV files generated for tests: tones separated by silence, in any PCM layout."""
from __future__ import annotations

import io
import math
import struct
import wave


def tone_samples(seconds: float, rate: int, freq: float = 220.0, amplitude: float = 0.5) -> list[float]:
    """Return a sine tone as floats in -1..1."""
    n = int(seconds * rate)
    return [amplitude * math.sin(2 * math.pi * freq * i / rate) for i in range(n)]


def speech_like(segments: int = 3, rate: int = 16000, voiced: float = 0.8, pause: float = 0.6) -> list[float]:
    """Return tones separated by silences: one 'sentence' per tone, for multi-phrase recognition."""
    out: list[float] = [0.0] * int(0.2 * rate)
    for i in range(segments):
        out += tone_samples(voiced, rate, freq=180.0 + 40 * i)
        out += [0.0] * int(pause * rate)
    return out


def wav_bytes(samples: list[float], rate: int = 16000, channels: int = 1, sampwidth: int = 2) -> bytes:
    """Encode float samples as a PCM WAV (8, 16, 24 or 32 bit; the mono signal copied to each channel)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sampwidth)
        w.setframerate(rate)
        frames = bytearray()
        for s in samples:
            frames += _encode_sample(s, sampwidth) * channels
        w.writeframes(bytes(frames))
    return buf.getvalue()


def _encode_sample(value: float, sampwidth: int) -> bytes:
    """Encode one sample in WAV's integer layout (8-bit unsigned, wider signed little-endian)."""
    value = max(-1.0, min(1.0, value))
    if sampwidth == 1:
        return bytes([int(round(value * 127)) + 128])
    peak = (1 << (8 * sampwidth - 1)) - 1
    return int(round(value * peak)).to_bytes(sampwidth, "little", signed=True)


def speech_wav(segments: int = 3, rate: int = 16000, channels: int = 1, sampwidth: int = 2) -> bytes:
    """Return a WAV of ``segments`` tone 'sentences' separated by pauses."""
    return wav_bytes(speech_like(segments, rate), rate=rate, channels=channels, sampwidth=sampwidth)


def silence_wav(seconds: float, rate: int = 16000) -> bytes:
    """Return a WAV of pure silence."""
    return wav_bytes([0.0] * int(seconds * rate), rate=rate)


def pack_floats(samples: list[float]) -> bytes:
    """Return 16-bit little-endian PCM without a header (raw audio, which must be refused)."""
    return b"".join(struct.pack("<h", int(s * 32767)) for s in samples)
