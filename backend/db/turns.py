"""The write side of a turn: its lease (turns of one conversation never interleave, across workers and instances),
its idempotency key, and the one transaction that stores the learner's message with the tutor's reply.

Every turn runs the same few statements, so each is built once (bound parameters, functools.cache) and the
messages go in as one multi-row INSERT of plain values rather than through the ORM's unit of work: SQLAlchemy
building a statement, its cache key and the objects' bookkeeping on every turn were most of the turn's database
CPU (`python -m bench.conversation` measures the turn).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
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
        taken = session.execute(_take_lease(), {
            **_owner(caller, conversation_id), "p_max_messages": 2 * max_turns, "p_now": now, "p_token": token,
            "p_until": now + timedelta(seconds=seconds)}).first()
    if taken is not None:
        # The row as it now stands, for the turn to read (not attached to the session: it writes through statements).
        return Conversation(**taken._mapping)
    # Refused: say why (read only on this slow path, so a turn costs one statement here).
    conversation = conversations.get(session, caller, conversation_id)
    if conversation.message_count >= 2 * max_turns:
        raise Conflict(f"This conversation has reached its {max_turns} turns: start a new one",
                       details={"max_turns": max_turns})
    raise Conflict(BUSY, retry_after=retry_after)


def release_lease(session: Session, caller: Caller, conversation_id: str, token: str) -> None:
    """Give the turn back without storing anything (the reply failed, or the client went away)."""
    with statement("conversations.release_lease"):
        session.execute(_release_lease(), {**_owner(caller, conversation_id), "p_token": token})


def store_turn(session: Session, caller: Caller, conversation_id: str, *, token: str, learner: NewMessage,
               tutor: NewMessage, key: str | None, request_hash: str) -> tuple[Message, Message]:
    """Store both messages (and the key) and end the lease, in the caller's one transaction. A lease that expired
    and was taken by another turn makes this a CONFLICT: the reply is not stored, so no turn interleaves."""
    now = utcnow()
    # Ending the lease and counting the messages is one conditional UPDATE: it locks the row (PostgreSQL) or the
    # database (SQLite) until the commit, and finds nothing when the lease is no longer this turn's.
    with statement("conversations.finish_turn"):
        count = session.scalars(_finish_turn(), {**_owner(caller, conversation_id), "p_token": token,
                                                 "p_now": now}).first()
    if count is None:
        raise Conflict("This turn took longer than its lease and another turn began; send it again",
                       retry_after=1.0)
    seq = count - 2
    rows = [_message(conversation_id, caller, seq, "learner", learner, now),
            _message(conversation_id, caller, seq + 1, "tutor", tutor, now)]
    with statement("messages.insert"):
        session.execute(_insert(Message), rows)
    if key is not None:
        with statement("turn_keys.insert"):
            session.execute(_insert(TurnKey), {
                "conversation_id": conversation_id, "key": key, "client": caller.client, "user_id": caller.user_id,
                "request_hash": request_hash, "learner_message_id": rows[0]["id"],
                "tutor_message_id": rows[1]["id"], "created_at": now})
    # As stored, for the answer (not attached to the session: nothing else is written through them).
    return Message(**rows[0]), Message(**rows[1])


def extend_summary(session: Session, caller: Caller, conversation_id: str, *, covered: int, summary: str,
                   new_covered: int) -> bool:
    """Replace the summary if nobody extended it meanwhile (it covered ``covered`` messages); whether it did."""
    with statement("conversations.extend_summary"):
        result = session.execute(_extend_summary(), {**_owner(caller, conversation_id), "p_covered": covered,
                                                     "p_summary": summary, "p_new_covered": new_covered})
    return result.rowcount == 1  # type: ignore[attr-defined]


def _message(conversation_id: str, caller: Caller, seq: int, role: str, new: NewMessage,
             now: datetime) -> dict[str, Any]:
    return {"id": conversations.new_id(), "conversation_id": conversation_id, "client": caller.client,
            "user_id": caller.user_id, "seq": seq, "role": role, "text": new.text, "corrections": new.corrections,
            "audio_url": new.audio_url, "cost_usd": new.cost_usd, "created_at": now}


def _owner(caller: Caller, conversation_id: str) -> dict[str, str]:
    return {"p_conversation_id": conversation_id, "p_client": caller.client, "p_user_id": caller.user_id}


# The statements, built on first use, on the tables rather than the mapped classes: an ORM-enabled UPDATE is copied
# (annotated) on every execution and its cache key computed anew, which cost as much as the rest of its execution.
# The parameters are named p_*: SQLAlchemy keeps a column's own name for its SET clause.
_CONVERSATIONS = cast(Table, Conversation.__table__)


def _owned() -> Any:
    columns = _CONVERSATIONS.c
    return update(_CONVERSATIONS).where(columns.id == bindparam("p_conversation_id"),
                                        columns.client == bindparam("p_client"),
                                        columns.user_id == bindparam("p_user_id"))


@functools.cache
def _insert(model: type[Message] | type[TurnKey]) -> Any:
    """A plain INSERT of the table's rows. With RETURNING, SQLAlchemy sends a turn's two messages as one multi-row
    INSERT on either database ("insertmanyvalues"); without it, psycopg's executemany runs a pipeline per call."""
    table = cast(Table, model.__table__)
    return insert(table).returning(*table.primary_key.columns)


@functools.cache
def _take_lease() -> Any:
    columns = _CONVERSATIONS.c
    return (_owned().where(columns.message_count < bindparam("p_max_messages"),
                           or_(columns.turn_until.is_(None), columns.turn_until < bindparam("p_now")))
            .values(turn_token=bindparam("p_token"), turn_until=bindparam("p_until"))
            .returning(*columns))


@functools.cache
def _release_lease() -> Any:
    return _owned().where(_CONVERSATIONS.c.turn_token == bindparam("p_token")).values(turn_token=None,
                                                                                      turn_until=None)


@functools.cache
def _finish_turn() -> Any:
    columns = _CONVERSATIONS.c
    return (_owned().where(columns.turn_token == bindparam("p_token"))
            .values(message_count=columns.message_count + 2, updated_at=bindparam("p_now"), turn_token=None,
                    turn_until=None)
            .returning(columns.message_count))


@functools.cache
def _extend_summary() -> Any:
    columns = _CONVERSATIONS.c
    return (_owned().where(columns.summarized_count == bindparam("p_covered"))
            .values(summary=bindparam("p_summary"), summarized_count=bindparam("p_new_covered")))
