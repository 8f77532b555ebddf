"""Tutor conversations as the API shows them: create, list, read, delete, always for one caller."""
from __future__ import annotations

import threading
import time
from typing import Any

from backend.db import conversations as repo
from backend.db.engine import Database
from backend.db.models import Conversation, Message, start_of_today
from backend.errors import DatabaseUnavailable
from backend.schemas.caller import Caller
from backend.schemas.conversations import ConversationCreate, ConversationPage
from backend.services.speech_out import voice_for


def conversation_view(conversation: Conversation, *, messages: list[Message] | None = None) -> dict[str, Any]:
    """A conversation as the API shows it: with its messages when read, with their count when listed."""
    view: dict[str, Any] = {"id": conversation.id, "scenario": conversation.scenario, "level": conversation.level,
                            "language": conversation.language}
    if messages is None:
        view.update(created_at=conversation.created_at.isoformat(), updated_at=conversation.updated_at.isoformat(),
                    message_count=conversation.message_count)
        return view
    view.update(native_language=conversation.native_language, voice=conversation.voice,
                created_at=conversation.created_at.isoformat(), updated_at=conversation.updated_at.isoformat(),
                messages=[message_view(message) for message in messages])
    return view


def message_view(message: Message) -> dict[str, Any]:
    """A message as the API shows it (corrections on the learner's, audio on the tutor's)."""
    return {"id": message.id, "role": message.role, "text": message.text, "created_at": message.created_at.isoformat(),
            "corrections": list(message.corrections or []) if message.role == "learner" else [],
            "audio_url": message.audio_url}


class ConversationService:
    """The caller's conversations in the database."""

    # The dashboard polls every 5 s per viewer: today's counts are read at most this often per worker.
    ACTIVITY_SECONDS = 5.0

    def __init__(self, database: Database):
        self._db = database
        self._activity: tuple[float, dict[str, Any]] | None = None
        self._activity_lock = threading.Lock()

    def create(self, caller: Caller, request: ConversationCreate) -> dict[str, Any]:
        """A new conversation, empty."""
        if request.voice is not None:
            voice_for(request.language, request.voice)  # 422 for a voice that does not speak the language
        with self._db.session(write=True) as session:
            conversation = repo.create(session, caller, scenario=request.scenario, level=request.level,
                                       native_language=request.native_language, language=request.language,
                                       voice=request.voice)
        return conversation_view(conversation, messages=[])

    def page(self, caller: Caller, request: ConversationPage) -> dict[str, Any]:
        """One page of the caller's conversations, most recently updated first."""
        with self._db.session() as session:
            rows, cursor = repo.page(session, caller, limit=request.limit, cursor=request.cursor)
        return {"conversations": [conversation_view(row) for row in rows], "next_cursor": cursor}

    def read(self, caller: Caller, conversation_id: str) -> dict[str, Any]:
        """The conversation with its messages, oldest first."""
        with self._db.session() as session:
            conversation = repo.get(session, caller, conversation_id)
            messages = repo.messages(session, conversation)
        return conversation_view(conversation, messages=messages)

    def delete(self, caller: Caller, conversation_id: str) -> None:
        """Delete the conversation, its messages and its turn keys."""
        with self._db.session(write=True) as session:
            repo.remove(session, caller, conversation_id)

    def activity_today(self) -> dict[str, Any]:
        """Conversations started and turns taken today (UTC), and whether the database answers; for operators."""
        with self._activity_lock:
            if self._activity is not None and time.monotonic() - self._activity[0] < self.ACTIVITY_SECONDS:
                return self._activity[1]
            midnight = start_of_today()
            try:
                with self._db.session() as session:
                    figures: dict[str, Any] = {**repo.activity_since(session, midnight), "database": "ok"}
            except DatabaseUnavailable:
                figures = {"conversations": None, "turns": None, "database": "unreachable"}
            self._activity = (time.monotonic(), figures)
            return figures
