"""Spoken tutor replies of one caller: what was synthesised (the audio is in the cache, keyed by it)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import SpeechClip, utcnow
from backend.db.timing import statement
from backend.errors import NotFound
from backend.schemas.caller import Caller


@dataclass(frozen=True)
class Spoken:
    """What a clip says and how: the synthesis request it was made from."""

    text: str
    language: str
    voice: str
    rate: float
    format: str


def add(session: Session, caller: Caller, *, clip_id: str, conversation_id: str, message_id: str,
        spoken: Spoken) -> SpeechClip:
    """Record a tutor reply's clip (in the turn's transaction)."""
    clip = SpeechClip(id=clip_id, conversation_id=conversation_id, message_id=message_id,
                      client=caller.client, user_id=caller.user_id, text=spoken.text, language=spoken.language,
                      voice=spoken.voice, rate=spoken.rate, format=spoken.format, created_at=utcnow())
    with statement("speech_clips.insert"):
        session.add(clip)
        session.flush()
    return clip


def get(session: Session, caller: Caller, clip_id: str) -> Spoken:
    """The caller's clip, or NOT_FOUND (also when it is someone else's)."""
    with statement("speech_clips.get"):
        clip = session.scalars(select(SpeechClip).where(
            SpeechClip.id == clip_id, SpeechClip.client == caller.client,
            SpeechClip.user_id == caller.user_id)).first()
    if clip is None:
        raise NotFound("No such speech clip")
    return Spoken(clip.text, clip.language, clip.voice, clip.rate, clip.format)
