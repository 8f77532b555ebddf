"""Turn Azure Speech phrase results into the service's transcription and pronunciation dictionaries."""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

TICKS_PER_SECOND = 10_000_000  # Azure counts offsets and durations in 100 ns ticks
SCORE_NAMES = ("accuracy_score", "fluency_score", "completeness_score", "pronunciation_score")


@dataclass(frozen=True)
class Phrase:
    """One recognised phrase: the service's detailed JSON, the SDK's timing and, when assessed, its scores."""

    body: dict[str, Any]
    offset_ticks: int
    duration_ticks: int
    assessment: dict[str, Any] | None = None


def transcript(phrases: list[Phrase], language: str, audio_seconds: float) -> dict[str, Any]:
    """Join the phrases of a continuous recognition into one transcript."""
    texts, words, confidences, weights = [], [], [], []
    for phrase in phrases:
        best = _best(phrase)
        text = phrase.body.get("DisplayText") or best.get("Display") or ""
        if text:
            texts.append(text)
        confidences.append(_clamp(float(best.get("Confidence", 0.0)), 0.0, 1.0))
        weights.append(max(phrase.duration_ticks, 0))
        words += _timed_words(phrase, best)
    return {"text": " ".join(texts), "confidence": _weighted_mean(confidences, weights),
            "duration_seconds": audio_seconds, "language": language, "words": words}


def assessment(phrases: list[Phrase]) -> dict[str, Any]:
    """Combine the assessed phrases: scores weighted by phrase duration, words in spoken order."""
    weights = [max(p.duration_ticks, 0) for p in phrases]
    scored = [p.assessment or {} for p in phrases]
    texts = (p.body.get("DisplayText") or _best(p).get("Display") for p in phrases)
    result: dict[str, Any] = {"recognized_text": " ".join(filter(None, texts))}
    for name in SCORE_NAMES:
        result[name] = _weighted_mean([float(s.get(name) or 0.0) for s in scored], weights)
    prosody = [s.get("prosody_score") for s in scored]
    # Prosody is only meaningful when every phrase carries it (the service omits it when not requested).
    result["prosody_score"] = (None if None in prosody
                               else _weighted_mean([float(v) for v in prosody if v is not None], weights))
    result["words"] = [word for s in scored for word in s.get("words", [])]
    return result


def unheard_assessment(reference_text: str) -> dict[str, Any]:
    """The assessment of audio without speech: zero scores, every reference word omitted."""
    words = [w.strip(string.punctuation) for w in reference_text.split()]
    return {"recognized_text": "", **{name: 0.0 for name in SCORE_NAMES}, "prosody_score": 0.0,
            "words": [{"word": w, "accuracy_score": 0.0, "error_type": "Omission"} for w in words if w]}


WORD_ERROR_TYPES = ("None", "Omission", "Insertion", "Mispronunciation")


def word_error_type(value: Any) -> str:
    """The contract's four error types; prosody findings (UnexpectedBreak, Monotone, ...) are not word errors."""
    return value if value in WORD_ERROR_TYPES else "None"


def _best(phrase: Phrase) -> dict[str, Any]:
    nbest = phrase.body.get("NBest") or [{}]
    return nbest[0] if isinstance(nbest[0], dict) else {}


def _timed_words(phrase: Phrase, best: dict[str, Any]) -> list[dict[str, Any]]:
    # The SDK shifts a phrase's own offset to the whole stream but may leave the JSON relative to its turn,
    # so words are placed relative to the phrase and then moved by the SDK's offset.
    shift = phrase.offset_ticks - int(phrase.body.get("Offset", phrase.offset_ticks))
    return [{"word": w.get("Word", ""),
             "offset_seconds": round((int(w.get("Offset", 0)) + shift) / TICKS_PER_SECOND, 3),
             "duration_seconds": round(int(w.get("Duration", 0)) / TICKS_PER_SECOND, 3)}
            for w in best.get("Words") or []]


def _weighted_mean(values: list[float], weights: list[int]) -> float:
    if not values:
        return 0.0
    total = sum(weights)
    if total <= 0:
        return round(sum(values) / len(values), 4)
    return round(sum(v * w for v, w in zip(values, weights, strict=True)) / total, 4)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
