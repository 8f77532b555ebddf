"""The write side of a turn: its lease (turns of one conversation never interleave, across workers and instances),
its idempotency key, and the one transaction that stores the learner's message with the tutor's reply."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from backend.db import conversations
from backend.db.models import Conversation, Message, TurnKey, utcnow
from backend.db.timing import statement
from backend.errors import Conflict
from backend.schemas.caller import Caller

BUSY = "Another turn of this conversation is being answered; retry when it is done"


@dataclass(frozen=True)
class NewMessage:
    """A message to store: its text, and the corrections (learner) or audio and cost (tutor)."""

    text: str
    corrections: list[dict[str, str]]
    audio_url: str | None = None
    cost_usd: float = 0.0


def find_key(session: Session, caller: Caller, conversation_id: str, key: str) -> TurnKey | None:
    """The record of an earlier turn posted with this Idempotency-Key, if any."""
    with statement("turn_keys.get"):
        return session.scalars(select(TurnKey).where(
            TurnKey.conversation_id == conversation_id, TurnKey.key == key, TurnKey.client == caller.client,
            TurnKey.user_id == caller.user_id)).first()


def take_lease(session: Session, caller: Caller, conversation_id: str, *, token: str, seconds: float,
               retry_after: float, max_turns: int) -> Conversation:
    """Hold the conversation's turn until answered (or ``seconds`` pass: a dead worker's lease expires).

    One conditional UPDATE decides, atomically on both databases: PostgreSQL takes the row's lock for it and
    SQLite its write lock, so two workers or instances can never both hold a lease. Nothing is held while the
    model answers; the lease is a row value, so a request that dies leaves nothing locked for longer than it.
    """
    now = utcnow()
    with statement("conversations.take_lease"):
        taken = session.scalars(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.client == caller.client,
                   Conversation.user_id == caller.user_id, Conversation.message_count < 2 * max_turns,
                   or_(Conversation.turn_until.is_(None), Conversation.turn_until < now))
            .values(turn_token=token, turn_until=now + timedelta(seconds=seconds))
            .returning(Conversation)
            .execution_options(synchronize_session=False)).first()
    if taken is not None:
        return taken
    # Refused: say why (read only on this slow path, so a turn costs one statement here).
    conversation = conversations.get(session, caller, conversation_id)
    if conversation.message_count >= 2 * max_turns:
        raise Conflict(f"This conversation has reached its {max_turns} turns: start a new one",
                       details={"max_turns": max_turns})
    raise Conflict(BUSY, retry_after=retry_after)


def release_lease(session: Session, caller: Caller, conversation_id: str, token: str) -> None:
    """Give the turn back without storing anything (the reply failed, or the client went away)."""
    with statement("conversations.release_lease"):
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.client == caller.client,
                   Conversation.user_id == caller.user_id, Conversation.turn_token == token)
            .values(turn_token=None, turn_until=None)
            .execution_options(synchronize_session=False))


def store_turn(session: Session, caller: Caller, conversation_id: str, *, token: str, learner: NewMessage,
               tutor: NewMessage, key: str | None, request_hash: str) -> tuple[Message, Message]:
    """Store both messages (and the key) and end the lease, in the caller's one transaction. A lease that expired
    and was taken by another turn makes this a CONFLICT: the reply is not stored, so no turn interleaves."""
    now = utcnow()
    # Ending the lease and counting the messages is one conditional UPDATE: it locks the row (PostgreSQL) or the
    # database (SQLite) until the commit, and finds nothing when the lease is no longer this turn's.
    with statement("conversations.finish_turn"):
        count = session.scalars(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.client == caller.client,
                   Conversation.user_id == caller.user_id, Conversation.turn_token == token)
            .values(message_count=Conversation.message_count + 2, updated_at=now, turn_token=None, turn_until=None)
            .returning(Conversation.message_count)
            .execution_options(synchronize_session=False)).first()
    if count is None:
        raise Conflict("This turn took longer than its lease and another turn began; send it again",
                       retry_after=1.0)
    seq = count - 2
    stored = (_message(conversation_id, caller, seq, "learner", learner, now),
              _message(conversation_id, caller, seq + 1, "tutor", tutor, now))
    with statement("messages.insert"):
        session.add_all(stored)
        if key is not None:
            session.add(TurnKey(conversation_id=conversation_id, key=key, client=caller.client,
                                user_id=caller.user_id, request_hash=request_hash, learner_message_id=stored[0].id,
                                tutor_message_id=stored[1].id, created_at=now))
        session.flush()
    return stored


def extend_summary(session: Session, caller: Caller, conversation_id: str, *, covered: int, summary: str,
                   new_covered: int) -> bool:
    """Replace the summary if nobody extended it meanwhile (it covered ``covered`` messages); whether it did."""
    with statement("conversations.extend_summary"):
        result = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.client == caller.client,
                   Conversation.user_id == caller.user_id, Conversation.summarized_count == covered)
            .values(summary=summary, summarized_count=new_covered)
            .execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


def _message(conversation_id: str, caller: Caller, seq: int, role: str, new: NewMessage, now: datetime) -> Message:
    return Message(id=conversations.new_id(), conversation_id=conversation_id, client=caller.client,
                   user_id=caller.user_id, seq=seq, role=role, text=new.text, corrections=new.corrections,
                   audio_url=new.audio_url, cost_usd=new.cost_usd, created_at=now)
