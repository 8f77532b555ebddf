"""What a turn is made of: the request as posted, the result, the state of a turn in progress, and its bounds."""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from backend.db.models import Conversation
from backend.media.audio import DecodedAudio
from backend.observability import cost
from backend.resilience import spend
from backend.schemas.caller import Caller
from backend.services import tutor


@dataclass(frozen=True)
class TurnRequest:
    """A learner's turn as posted: text, or audio to transcribe; and its Idempotency-Key, if any."""

    text: str | None = None
    audio: DecodedAudio | None = None
    speak: bool = False
    key: str | None = None

    def fingerprint(self) -> str:
        """What makes two posts the same turn (the key's request hash): the words or the audio's samples."""
        material = {"text": self.text, "audio": self.audio.fingerprint if self.audio else None, "speak": self.speak}
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class TurnResult:
    """Both stored messages; ``replayed`` when they are an earlier post's (same Idempotency-Key)."""

    learner: dict[str, Any]
    tutor: dict[str, Any]
    replayed: bool = False
    provider: str = ""

    def body(self) -> dict[str, Any]:
        return {"learner": self.learner, "tutor": self.tutor}


@dataclass
class Begun:
    """A turn that holds its conversation's lease: what the reply needs, and what it cost so far."""

    caller: Caller
    conversation: Conversation
    token: str
    request: TurnRequest
    history: tutor.History
    deadline: float
    text: str = ""
    book: cost.Ledger = field(default_factory=cost.Ledger)
    corrections: Future | None = None
    # Who pays for the turn's calls: the request's account, kept for the steps a stream takes after the request.
    account: spend.Account | None = field(default_factory=spend.current)


@dataclass(frozen=True)
class TurnSettings:
    """The bounds of turns (from Settings)."""

    lease_seconds: float
    history_tokens: int
    max_turns: int
    deadline_seconds: float
