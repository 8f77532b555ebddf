"""Spoken tutor replies a caller may fetch again (GET /api/speech/{id})."""
from __future__ import annotations

from backend.db import speech_clips
from backend.db.engine import Database
from backend.db.speech_clips import Spoken
from backend.schemas.caller import Caller


class ClipService:
    """The caller's clips in the database (their audio is the synthesis cache's)."""

    def __init__(self, database: Database):
        self._db = database

    def get(self, caller: Caller, clip_id: str) -> Spoken:
        """What the caller's clip says and how, or NOT_FOUND."""
        with self._db.session() as session:
            return speech_clips.get(session, caller, clip_id)
