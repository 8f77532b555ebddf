"""Wire formats of the fake Azure Speech service: USP frames, handshake replies, segmentation, phrase JSON."""
from __future__ import annotations

import hashlib
import json
import struct
import uuid
from array import array
from datetime import datetime, timezone
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.http11 import Response

TICKS_PER_SECOND = 10_000_000  # the service counts offsets and durations in 100 ns ticks
RIFF_HEADER_BYTES = 44
FRAME_MS = 20
SILENCE_GAP_MS = 300  # a quieter stretch at least this long splits two segments
MIN_SEGMENT_MS = 100  # shorter bursts are clicks, not speech
ENERGY_THRESHOLD = 500  # RMS in 16-bit units; speech-like test tones are far above, silence is 0


def parse_text_frame(message: str) -> tuple[dict[str, str], str]:
    """Split a text frame into lower-cased headers and its body."""
    head, _, body = message.partition("\r\n\r\n")
    return _parse_headers(head), body


def parse_binary_frame(message: bytes) -> tuple[dict[str, str], bytes]:
    """Split a binary frame (2-byte big-endian header length, headers, payload)."""
    (header_length,) = struct.unpack(">H", message[:2])
    head = message[2:2 + header_length].decode("ascii", "replace")
    return _parse_headers(head), message[2 + header_length:]


def _parse_headers(head: str) -> dict[str, str]:
    headers = {}
    for line in head.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def text_frame(path: str, request_id: str, body: dict) -> str:
    """Encode one server message the way the service sends it."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (f"Path:{path}\r\nX-RequestId:{request_id}\r\nX-Timestamp:{stamp}\r\n"
            f"Content-Type:application/json; charset=utf-8\r\n\r\n{json.dumps(body)}")


def audio_frame(request_id: str, stream_id: str, payload: bytes) -> bytes:
    """Encode one binary ``audio`` message of a synthesis (2-byte big-endian header length, headers, bytes)."""
    head = f"X-RequestId:{request_id}\r\nContent-Type:audio/x-wav\r\nX-StreamId:{stream_id}\r\nPath:audio\r\n"
    return struct.pack(">H", len(head)) + head.encode("ascii") + payload


def http_response(status: HTTPStatus, text: str, extra_headers: dict[str, str] | None = None,
                  content_type: str = "text/plain; charset=utf-8") -> Response:
    """A plain HTTP answer to a handshake: a refusal, or a control endpoint's reply."""
    body = text.encode()
    headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)), **(extra_headers or {})})
    return Response(status.value, status.phrase, headers, body)


def json_response(payload: dict | list, status: HTTPStatus = HTTPStatus.OK) -> Response:
    """A control endpoint's JSON reply."""
    return http_response(status, json.dumps(payload), content_type="application/json")


def turn_start_body() -> dict:
    """Body of ``turn.start``."""
    return {"context": {"serviceTag": uuid.uuid4().hex}}


def split_wav_stream(audio: bytes) -> tuple[bytes, int]:
    """Return (PCM, sample rate) of a turn's audio; every turn begins with a RIFF header."""
    if audio[:4] == b"RIFF" and len(audio) >= RIFF_HEADER_BYTES:
        (rate,) = struct.unpack("<I", audio[24:28])
        return audio[RIFF_HEADER_BYTES:], rate or 16000
    return audio, 16000


def speech_segments(pcm: bytes, rate: int) -> list[tuple[int, int]]:
    """Return (start, end) sample indexes of loud stretches separated by silence gaps."""
    samples = array("h", pcm[: len(pcm) - len(pcm) % 2])
    frame = max(1, rate * FRAME_MS // 1000)
    gap_frames = SILENCE_GAP_MS // FRAME_MS
    segments: list[list[int]] = []
    quiet_run = gap_frames
    for start in range(0, len(samples), frame):
        chunk = samples[start:start + frame]
        loud = sum(s * s for s in chunk) / len(chunk) > ENERGY_THRESHOLD ** 2
        if loud and quiet_run >= gap_frames:
            segments.append([start, start + len(chunk)])
        elif loud:
            segments[-1][1] = start + len(chunk)
        quiet_run = 0 if loud else quiet_run + 1
    min_samples = rate * MIN_SEGMENT_MS // 1000
    return [(s, e) for s, e in segments if e - s >= min_samples]


def ticks(samples: int, rate: int) -> int:
    """Convert a sample count into 100 ns ticks."""
    return samples * TICKS_PER_SECOND // rate


def audio_digest(pcm: bytes) -> bytes:
    """Stable fingerprint of audio: the same audio always yields the same scores."""
    return hashlib.sha256(pcm).digest()


def _spread_words(words: list[str], offset: int, duration: int) -> list[dict]:
    """Give each word an equal share of the segment's time."""
    share = duration // max(1, len(words))
    return [{"Word": w, "Offset": offset + i * share, "Duration": share} for i, w in enumerate(words)]


def _lexical(text: str) -> str:
    return " ".join("".join(c for c in w if c.isalnum() or c == "'") for w in text.lower().split())


def recognized_phrase(text: str, offset: int, duration: int, digest: bytes) -> dict:
    """A detailed ``speech.phrase`` body for one recognised segment."""
    lexical = _lexical(text)
    confidence = round(0.80 + (digest[0] % 19) / 100, 4)
    best = {"Confidence": confidence, "Lexical": lexical, "ITN": lexical, "MaskedITN": lexical, "Display": text,
            "Words": _spread_words(lexical.split(), offset, duration)}
    return {"RecognitionStatus": "Success", "Offset": offset, "Duration": duration, "DisplayText": text,
            "NBest": [best]}


def assessed_phrase(words: list[str], offset: int, duration: int, digest: bytes, prosody: bool) -> dict:
    """A ``speech.phrase`` body carrying pronunciation scores derived from the audio's digest."""
    text = " ".join(words)
    phrase = recognized_phrase(text, offset, duration, digest)
    best = phrase["NBest"][0]
    accuracies = []
    for i, word in enumerate(best["Words"]):
        accuracy = float(55 + digest[(i + 1) % len(digest)] % 46)  # 55..100: below 70 counts as mispronounced
        accuracies.append(accuracy)
        word["PronunciationAssessment"] = {
            "AccuracyScore": accuracy, "ErrorType": "Mispronunciation" if accuracy < 70 else "None"}
    accuracy = round(sum(accuracies) / max(1, len(accuracies)), 1)
    fluency = float(70 + digest[-1] % 31)
    completeness = 100.0  # the fake "hears" every reference word
    scores = {"AccuracyScore": accuracy, "FluencyScore": fluency, "CompletenessScore": completeness}
    if prosody:
        scores["ProsodyScore"] = float(60 + digest[-2] % 41)
    scores["PronScore"] = round(sum(scores.values()) / len(scores), 1)
    best["PronunciationAssessment"] = scores
    return phrase


def assessed_phrases(assessment: dict, pcm: bytes, rate: int, segments: list[tuple[int, int]]) -> list[dict]:
    """Spread the reference words over the segments, one assessed phrase per segment that gets words."""
    words = assessment.get("referenceText", "").split()
    if not words:
        return [status_phrase("NoMatch", 0, ticks(len(pcm) // 2, rate))]
    if len(segments) > len(words):  # fewer words than segments: the last phrase spans the rest
        segments = segments[:len(words) - 1] + [(segments[len(words) - 1][0], segments[-1][1])]
    per_segment, extra = divmod(len(words), len(segments))
    phrases, taken = [], 0
    for index, (start, end) in enumerate(segments):
        count = per_segment + (1 if index < extra else 0)
        digest = audio_digest(pcm[start * 2:end * 2])
        phrases.append(assessed_phrase(words[taken:taken + count], ticks(start, rate), ticks(end - start, rate),
                                       digest, bool(assessment.get("enableProsodyAssessment"))))
        taken += count
    return phrases


def status_phrase(status: str, offset: int, duration: int) -> dict:
    """A ``speech.phrase`` body without a result (NoMatch, InitialSilenceTimeout, EndOfDictation)."""
    return {"RecognitionStatus": status, "Offset": offset, "Duration": duration}
