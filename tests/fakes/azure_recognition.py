"""What the fake Azure Speech recognises in one turn's audio: a phrase per speech segment, pronunciation scores
when asked, or the status phrase a failure or silence calls for (tests/fakes/azure_speech.py sends them)."""
from __future__ import annotations

from dataclasses import dataclass

from tests.fakes import azure_usp as usp


@dataclass
class Session:
    """State of one websocket connection across its turns."""

    interactive: bool
    failure: str | None
    sentence: int = 0
    counted: bool = False
    answered: bool = False


def phrases_for(session: Session, context: dict, pcm: bytes, rate: int, transcript: list[str]) -> list[dict]:
    """One phrase per speech segment (the transcript's sentences in turn), or a single status phrase that
    acknowledges the whole turn's audio."""
    total = usp.ticks(len(pcm) // 2, rate)
    segments = usp.speech_segments(pcm, rate)
    if not segments:
        # Acknowledging the audio matters: continuous mode re-sends unacknowledged audio in another turn.
        return [usp.status_phrase("InitialSilenceTimeout" if session.interactive else "EndOfDictation", 0, total)]
    if session.failure == "nomatch":
        return [usp.status_phrase("NoMatch", 0, total)]
    if session.failure == "malformed":  # results without NBest, words or scores
        return [{**usp.status_phrase("Success", usp.ticks(s, rate), usp.ticks(e - s, rate)), "DisplayText": "?"}
                for s, e in segments]
    if session.interactive:  # recognize-once ends after the first utterance
        segments = segments[:1]
    assessment = context.get("phraseDetection", {}).get("enrichment", {}).get("pronunciationAssessment")
    if assessment is not None:
        return usp.assessed_phrases(assessment, pcm, rate, segments)
    phrases = []
    for start, end in segments:
        text = transcript[session.sentence % len(transcript)]
        session.sentence += 1
        digest = usp.audio_digest(pcm[start * 2:end * 2])
        phrases.append(usp.recognized_phrase(text, usp.ticks(start, rate), usp.ticks(end - start, rate), digest))
    return phrases
