"""Audio decoding: every supported WAV layout becomes 16 kHz mono PCM16; everything else is refused."""
from __future__ import annotations

import io
import json
import struct
import time
import wave

import numpy as np
import pytest
import soundfile as sf

from backend.errors import UnsupportedMediaType, ValidationFailed
from backend.media import audio as audio_mod
from backend.media.audio import decode_audio, wav_bytes
from tests.audio_samples import pack_floats, silence_wav, speech_like, speech_wav
from tests.audio_samples import wav_bytes as make_wav

SPEECH_SECONDS = 0.2 + 3 * (0.8 + 0.6)  # what speech_like(3) lasts


def _duration_ok(decoded, expected: float) -> bool:
    return abs(decoded.duration_seconds - expected) <= expected * 0.01


@pytest.mark.parametrize("sampwidth", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_pcm_layouts_become_16k_mono(sampwidth, channels, rate):
    decoded = decode_audio(speech_wav(3, rate, channels, sampwidth), max_seconds=60)
    assert decoded.sample_rate == 16000
    assert len(decoded.pcm16) % 2 == 0
    assert _duration_ok(decoded, SPEECH_SECONDS)
    assert decoded.source_sample_rate == rate
    assert decoded.source_channels == channels
    assert decoded.source_format == f"WAV/{ {1: 'PCM_U8', 2: 'PCM_16', 3: 'PCM_24', 4: 'PCM_32'}[sampwidth] }"
    pcm = np.frombuffer(decoded.pcm16, "<i2")
    # The tones were written at half scale; the downmix and resampling must keep that level.
    assert 0.45 * 32767 < np.abs(pcm).max() < 0.55 * 32767


def test_16k_pcm16_mono_passes_through_bit_exact():
    data = speech_wav(2, 16000, 1, 2)
    with wave.open(io.BytesIO(data)) as w:
        frames = w.readframes(w.getnframes())
    assert decode_audio(data, max_seconds=60).pcm16 == frames


def test_fingerprint_depends_on_the_samples_only():
    data = speech_wav(2, 44100, 2, 2)
    first, again = decode_audio(data, max_seconds=60), decode_audio(bytes(data), max_seconds=60)
    assert first.fingerprint == again.fingerprint
    assert len(first.fingerprint) == 64
    # The same samples in another container (FLAC) give the same key.
    samples, rate = sf.read(io.BytesIO(data), dtype="int16")
    flac = io.BytesIO()
    sf.write(flac, samples, rate, format="FLAC", subtype="PCM_16")
    decoded_flac = decode_audio(flac.getvalue(), max_seconds=60)
    assert decoded_flac.source_format == "FLAC/PCM_16"
    assert decoded_flac.fingerprint == first.fingerprint
    assert decode_audio(speech_wav(3, 44100), max_seconds=60).fingerprint != first.fingerprint


def test_float_wav():
    samples = np.array(speech_like(2, 22050), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, samples, 22050, format="WAV", subtype="FLOAT")
    decoded = decode_audio(buf.getvalue(), max_seconds=60)
    assert decoded.source_format == "WAV/FLOAT"
    assert _duration_ok(decoded, len(samples) / 22050)


def test_float_wav_with_out_of_range_values_is_clipped():
    samples = np.array([0.0, 5.0, -5.0, np.nan, np.inf] * 4000, dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, samples, 16000, format="WAV", subtype="FLOAT")
    pcm = np.frombuffer(decode_audio(buf.getvalue(), max_seconds=60).pcm16, "<i2")
    assert pcm.max() == 32767 and pcm.min() == -32768


def test_extensible_wav():
    samples = np.array(speech_like(1, 48000), dtype="float32")
    stereo = np.stack([samples, samples], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, 48000, format="WAVEX", subtype="PCM_24")
    data = buf.getvalue()
    fmt_at = data.index(b"fmt ")
    assert struct.unpack_from("<H", data, fmt_at + 8)[0] == 0xFFFE  # WAVE_FORMAT_EXTENSIBLE
    decoded = decode_audio(data, max_seconds=60)
    assert decoded.source_format == "WAVEX/PCM_24"
    assert decoded.source_channels == 2
    assert _duration_ok(decoded, len(samples) / 48000)


def test_wav_bytes_round_trips():
    decoded = decode_audio(speech_wav(1, 44100, 2, 3), max_seconds=60)
    out = wav_bytes(decoded)
    assert out[:4] == b"RIFF" and out[8:12] == b"WAVE" and len(out) == 44 + len(decoded.pcm16)
    with wave.open(io.BytesIO(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(w.getnframes()) == decoded.pcm16
    assert decode_audio(out, max_seconds=60).fingerprint == decoded.fingerprint


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 30


@pytest.mark.parametrize("data", [
    b"",
    b"hello, this is not audio at all",
    json.dumps({"audio": "nope"}).encode(),
    _png(),
    pack_floats(speech_like(1, 16000)),                # raw PCM without a header
    speech_wav(1)[:30],                                 # truncated header
    b"RIFF\x24\x00\x00\x00WAVE",                        # magic only
    b"RIFF" + b"\xff" * 4 + b"WAVE" + b"\x00" * 200,    # a RIFF/WAVE shell with garbage inside
    b"fLaC" + b"\x00" * 100,
    b"OggS" + b"\x00" * 100,
    b"ID3\x03\x00" + b"\x00" * 500,                     # MP3 is not accepted
], ids=["empty", "text", "json", "png", "raw-pcm", "truncated-header", "magic-only", "garbage-riff",
        "garbage-flac", "garbage-ogg", "mp3"])
def test_non_audio_is_415(data):
    with pytest.raises(UnsupportedMediaType) as info:
        decode_audio(data, max_seconds=60)
    assert info.value.status == 415


def test_wav_with_truncated_body_decodes_what_is_there():
    data = speech_wav(3, 16000)
    decoded = decode_audio(data[: len(data) // 2], max_seconds=60)
    assert 0 < decoded.duration_seconds < SPEECH_SECONDS / 2 + 0.05


def test_name_is_irrelevant():
    """Content decides: there is no name or content type parameter, and a text 'file.wav' is refused."""
    with pytest.raises(UnsupportedMediaType):
        decode_audio(b"this file is called recording.wav", max_seconds=60)


@pytest.mark.parametrize("rate", [4000, 96000])
def test_unsupported_sample_rate_is_415(rate):
    with pytest.raises(UnsupportedMediaType, match="sample rate"):
        decode_audio(silence_wav(0.5, rate), max_seconds=60)


def test_more_than_two_channels_is_415():
    with pytest.raises(UnsupportedMediaType, match="channel"):
        decode_audio(make_wav([0.0] * 8000, rate=16000, channels=4), max_seconds=60)


def test_unsupported_encoding_is_415():
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000, dtype="float32"), 16000, format="WAV", subtype="IMA_ADPCM")
    with pytest.raises(UnsupportedMediaType, match="IMA_ADPCM"):
        decode_audio(buf.getvalue(), max_seconds=60)


@pytest.mark.parametrize("seconds", [0.0, 0.05])
def test_empty_or_too_short_is_422(seconds):
    with pytest.raises(ValidationFailed) as info:
        decode_audio(silence_wav(seconds), max_seconds=60)
    assert info.value.status == 422


def test_too_long_is_422_from_the_header_without_decoding(monkeypatch):
    rate, seconds = 48000, 61
    data = make_wav([], rate=rate, channels=2, sampwidth=4)
    # A real 61 s stereo 32-bit WAV (about 23 MB of zeros) with a correct header.
    body = bytes(rate * seconds * 2 * 4)
    header = bytearray(data[:44])
    struct.pack_into("<I", header, 4, 36 + len(body))
    struct.pack_into("<I", header, 40, len(body))

    def no_read(*args, **kwargs):
        raise AssertionError("samples were decoded")

    monkeypatch.setattr(audio_mod.sf.SoundFile, "read", no_read)
    started = time.perf_counter()
    with pytest.raises(ValidationFailed, match="60 seconds") as info:
        decode_audio(bytes(header) + body, max_seconds=60)
    assert info.value.status == 422
    assert time.perf_counter() - started < 0.5


def test_exactly_at_the_limit_is_accepted():
    decoded = decode_audio(silence_wav(2.0), max_seconds=2.0)
    assert decoded.duration_seconds == pytest.approx(2.0)


def test_30s_44k_stereo_decodes_quickly():
    rate = 44100
    t = np.arange(30 * rate) / rate
    tone = (0.4 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    sf.write(buf, np.stack([tone, tone], axis=1), rate, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    decode_audio(data, max_seconds=60)  # warm up
    started = time.perf_counter()
    decoded = decode_audio(data, max_seconds=60)
    elapsed = time.perf_counter() - started
    assert _duration_ok(decoded, 30.0)
    assert elapsed < 1.0, f"decoding took {elapsed:.3f}s"
