"""Decode learner audio by its content into 16 kHz mono 16-bit PCM for the speech provider."""
from __future__ import annotations

import hashlib
import io
import math
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from backend.errors import UnsupportedMediaType, ValidationFailed

TARGET_RATE = 16000
_UNKNOWN_FRAMES = 2**63 - 1
MIN_SOURCE_RATE = 8000
MAX_SOURCE_RATE = 48000

# Containers we accept, by magic bytes, with the libsndfile formats each may legitimately decode to.
# Anything else never reaches libsndfile, which would otherwise try its own guessing (e.g. MPEG sync words).
_CONTAINERS = (
    ("WAV", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WAVE", frozenset({"WAV", "WAVEX"})),
    ("FLAC", lambda d: d[:4] == b"fLaC", frozenset({"FLAC"})),
    ("OGG", lambda d: d[:4] == b"OggS", frozenset({"OGG"})),
)

# Sample encodings we decode; the exotic codecs libsndfile also knows (ADPCM, GSM, MP3-in-WAV...) are
# refused to keep the attack surface and the set of surprises small.
_SUBTYPES = frozenset({
    "PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW", "VORBIS", "OPUS",
})


@dataclass(frozen=True)
class DecodedAudio:
    """Audio normalised for the speech SDK, with what we learned about the source."""

    pcm16: bytes             # mono, 16 kHz, signed 16-bit little-endian
    sample_rate: int         # always TARGET_RATE
    duration_seconds: float
    source_format: str       # e.g. "WAV/PCM_16"
    source_sample_rate: int
    source_channels: int
    fingerprint: str         # sha256 hex of pcm16: the same audio in another container gives the same key


def _unsupported(message: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(message, details={"field": "audio"})


def _sniff(data: bytes) -> tuple[str, frozenset[str]]:
    """Return the container named by the magic bytes, or refuse the data."""
    if not data:
        raise _unsupported("audio is empty")
    for name, matches, formats in _CONTAINERS:
        if matches(data):
            return name, formats
    raise _unsupported("audio is not a supported format (expected WAV, FLAC or Ogg)")


def decode_audio(data: bytes, *, max_seconds: float, min_seconds: float = 0.1) -> DecodedAudio:
    """Decode WAV/FLAC/Ogg bytes into 16 kHz mono PCM16, refusing what we cannot or should not decode.

    415 for anything that is not decodable audio, an unsupported encoding, more than two channels or
    a sample rate outside 8000..48000 Hz; 422 for audio that is decodable but too short or too long.
    """
    container, formats = _sniff(data)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            fmt, subtype = f.format, f.subtype
            rate, channels, header_frames = f.samplerate, f.channels, f.frames
            if fmt not in formats:
                raise _unsupported(f"audio content does not match its {container} header")
            if subtype not in _SUBTYPES:
                raise _unsupported(f"unsupported {fmt} encoding {subtype}")
            if not 1 <= channels <= 2:
                raise _unsupported(f"unsupported channel count {channels} (mono or stereo only)")
            if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
                raise _unsupported(
                    f"unsupported sample rate {rate} Hz (accepted: {MIN_SOURCE_RATE}..{MAX_SOURCE_RATE} Hz)")
            limit = int(math.floor(max_seconds * rate))
            # Refuse from the header alone: a huge file must not be decoded just to be refused.
            # libsndfile reports an unknown length (streamed FLAC/Ogg) as the largest count.
            if limit < header_frames < _UNKNOWN_FRAMES:
                raise _too_long(max_seconds)
            # An unknown length is read only up to one frame past the limit.
            samples = f.read(frames=min(header_frames, limit + 1), dtype="float32", always_2d=True)
    except (UnsupportedMediaType, ValidationFailed):
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError, EOFError, struct.error):
        raise _unsupported("audio could not be decoded (corrupt or truncated)") from None

    frames = samples.shape[0]
    if frames > limit:
        raise _too_long(max_seconds)
    pcm16 = _to_pcm16(samples, rate) if frames else b""
    # Resampling a handful of frames can leave nothing, hence the check on the output too.
    if not pcm16 or frames / rate < min_seconds:
        raise ValidationFailed(f"audio is too short (minimum {min_seconds:g} seconds)",
                               status=422, details={"field": "audio", "min_seconds": min_seconds})
    return DecodedAudio(
        pcm16=pcm16,
        sample_rate=TARGET_RATE,
        duration_seconds=len(pcm16) / 2 / TARGET_RATE,
        source_format=f"{fmt}/{subtype}",
        source_sample_rate=rate,
        source_channels=channels,
        fingerprint=hashlib.sha256(pcm16).hexdigest(),
    )


def _too_long(max_seconds: float) -> ValidationFailed:
    return ValidationFailed(f"audio is longer than the limit of {max_seconds:g} seconds",
                            status=422, details={"field": "audio", "max_seconds": max_seconds})


def _to_pcm16(samples: np.ndarray, rate: int) -> bytes:
    """Downmix, resample to 16 kHz and quantise to little-endian int16."""
    # Float WAVs may carry NaN, Inf or huge values: overflow is expected and handled, not worth a warning.
    with np.errstate(all="ignore"):
        mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
        mono = np.clip(np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        if rate != TARGET_RATE:
            mono = soxr.resample(mono, rate, TARGET_RATE, quality="HQ")
        # libsndfile scales integer PCM by 1/32768, so scaling back by 32768 keeps 16-bit input bit-exact.
        scaled = np.rint(mono * 32768.0)
        np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype("<i2").tobytes()


def wav_bytes(audio: DecodedAudio) -> bytes:
    """Return the decoded audio as a canonical 16-bit mono PCM WAV (44-byte header + samples)."""
    size = len(audio.pcm16)
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + size, b"WAVE",
        b"fmt ", 16, 1, 1, audio.sample_rate, audio.sample_rate * 2, 2, 16,
        b"data", size,
    )
    return header + audio.pcm16
