"""What the fake Azure synthesis service speaks: SSML read as a server reads it, and deterministic audio from it.

The audio is a tone per character (silence for white space), so its length grows with the text spoken and shrinks
with the prosody rate; the voice shifts the pitch. PCM formats get the samples, ``audio-*-mp3`` real MP3 and
``ogg-*-opus`` real Ogg/Opus, both encoded by libsndfile (through soundfile) in memory.
"""
from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from xml.etree import ElementTree

import numpy as np
import soundfile

SSML_NS = "{http://www.w3.org/2001/10/synthesis}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
CHAR_MS = 50.0  # one character at rate 1.0
AMPLITUDE = 0.3
# Azure's named rates, as multipliers of the voice's default.
NAMED_RATES = {"x-slow": 0.5, "slow": 0.64, "medium": 1.0, "default": 1.0, "fast": 1.55, "x-fast": 2.0}
_FORMAT = re.compile(r"(raw|riff|audio|ogg)-(\d+)(khz|hz)-.*-(pcm|mp3|opus)")


class BadSsml(ValueError):
    """The SSML cannot be spoken; the service closes the websocket with 1007 and this text."""


@dataclass(frozen=True)
class Speech:
    """What one ``ssml`` message asks for: who speaks, in which language, how fast, and the text spoken."""

    voice: str
    language: str
    rate: float
    text: str


def read_ssml(ssml: str) -> Speech:
    """Parse SSML as the service does: the spoken text is the text content of each ``<voice>``."""
    try:
        root = ElementTree.fromstring(ssml)
    except ElementTree.ParseError as exc:
        raise BadSsml("SSML is invalid") from exc
    if root.tag != f"{SSML_NS}speak":
        raise BadSsml("SSML is invalid: the root element must be speak")
    voices = root.findall(f"{SSML_NS}voice")
    if not voices:
        raise BadSsml("SSML is invalid: no voice element")
    rate = 1.0
    for prosody in root.iter(f"{SSML_NS}prosody"):
        if prosody.get("rate") is not None:
            rate = parse_rate(prosody.get("rate", ""))
    text = "".join("".join(voice.itertext()) for voice in voices)
    return Speech(voice=voices[0].get("name", ""), language=root.get(XML_LANG, ""), rate=rate, text=text)


def parse_rate(value: str) -> float:
    """Azure's rate forms: a multiplier ("1.5"), a relative change ("+50%", "-20%", "50%") or a name ("fast")."""
    value = value.strip().lower()
    try:
        if value in NAMED_RATES:
            rate = NAMED_RATES[value]
        elif value.endswith("%"):
            rate = 1.0 + float(value[:-1]) / 100
        else:
            rate = float(value)
    except ValueError as exc:
        raise BadSsml(f"SSML is invalid: prosody rate {value!r}") from exc
    if not 0.5 <= rate <= 3.0 or rate != rate:
        raise BadSsml(f"SSML is invalid: prosody rate {value!r} is out of range")
    return rate


def output_format(name: str) -> tuple[str, int]:
    """(kind, sample rate) of an output format name: kind raw | riff | mp3 | opus. ValueError when unsupported."""
    match = _FORMAT.fullmatch(name)
    pcm_container = match is not None and match[1] in ("raw", "riff")
    if match is None or pcm_container != (match[4] == "pcm") or (pcm_container and "-16bit-mono-" not in name):
        raise ValueError(f"unsupported output format {name!r}")
    rate = int(match[2]) * (1000 if match[3] == "khz" else 1)
    return (match[1] if match[4] == "pcm" else match[4]), rate


def samples(speech: Speech, rate: int) -> np.ndarray:
    """The spoken audio as float32 in -1..1: a tone per character, silence for white space."""
    per_char = max(1, round(rate * CHAR_MS / 1000 / speech.rate))
    base = 150.0 + (zlib.crc32(speech.voice.encode()) % 100) * 2  # each voice speaks at its own pitch
    t = np.arange(per_char, dtype=np.float64) / rate
    fade = np.minimum(1.0, np.minimum(np.arange(per_char), np.arange(per_char)[::-1]) / max(1, per_char // 10))
    silence = np.zeros(per_char)
    pieces = [silence if char.isspace() else AMPLITUDE * fade * np.sin(2 * np.pi * (base + (ord(char) % 48) * 25) * t)
              for char in speech.text]
    return (np.concatenate(pieces) if pieces else np.zeros(0)).astype(np.float32)


def audio(speech: Speech, format_name: str) -> bytes:
    """The bytes the service streams for ``speech`` in ``format_name`` (deterministic for the same input)."""
    kind, rate = output_format(format_name)
    signal = samples(speech, rate)
    if kind == "raw":
        return (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()
    if not len(signal):
        return b""
    buffer = io.BytesIO()
    if kind == "riff":
        soundfile.write(buffer, signal, rate, format="WAV", subtype="PCM_16")
    elif kind == "mp3":
        soundfile.write(buffer, signal, rate, format="MP3", subtype="MPEG_LAYER_III")
    else:
        soundfile.write(buffer, signal, rate, format="OGG", subtype="OPUS")
        return fixed_ogg_serial(buffer.getvalue(), zlib.crc32(speech.text.encode()))
    return buffer.getvalue()


def fixed_ogg_serial(data: bytes, serial: int) -> bytes:
    """Give every Ogg page the same stream serial (libsndfile picks a time-seeded one) and fix the page CRCs."""
    out = bytearray(data)
    position = 0
    while position + 27 <= len(out) and out[position:position + 4] == b"OggS":
        segments = out[position + 26]
        size = 27 + segments + sum(out[position + 27:position + 27 + segments])
        out[position + 14:position + 18] = struct.pack("<I", serial & 0xFFFFFFFF)
        out[position + 22:position + 26] = b"\0\0\0\0"
        out[position + 22:position + 26] = struct.pack("<I", _ogg_crc(bytes(out[position:position + size])))
        position += size
    return bytes(out)


_BIT_REVERSED = bytes(int(f"{value:08b}"[::-1], 2) for value in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, initial value 0) through zlib's reflected
    CRC-32 of the bit-reversed bytes; zlib's initial and final inversions cancel against the CRC of as many zeros."""
    reflected = zlib.crc32(page.translate(_BIT_REVERSED)) ^ zlib.crc32(bytes(len(page)))
    return int(f"{reflected:032b}"[::-1], 2)
