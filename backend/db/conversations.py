"""Conversations and their messages, always read and written for one caller: another caller's row is not found."""
from __future__ import annotations

import base64
import binascii
import functools
import json
import uuid
from datetime import datetime
from typing import Any, NamedTuple, Sequence

from sqlalchemy import and_, bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from backend.db.models import Conversation, Message, utcnow
from backend.db.timing import statement
from backend.errors import NotFound, ValidationFailed
from backend.schemas.caller import Caller

NOT_FOUND = "No such conversation"


def new_id() -> str:
    """A random, unguessable id (32 hex digits)."""
    return uuid.uuid4().hex


def owned(model: type[Conversation] | type[Message], caller: Caller):  # type: ignore[no-untyped-def]
    """The filter every query of a caller's rows carries."""
    return and_(model.client == caller.client, model.user_id == caller.user_id)


def create(session: Session, caller: Caller, *, scenario: str, level: str | None, native_language: str | None,
           language: str, voice: str | None) -> Conversation:
    """A new, empty conversation."""
    now = utcnow()
    conversation = Conversation(id=new_id(), client=caller.client, user_id=caller.user_id, scenario=scenario,
                                level=level, native_language=native_language, language=language, voice=voice,
                                message_count=0, summary="", summarized_count=0, created_at=now, updated_at=now)
    with statement("conversations.create"):
        session.add(conversation)
        session.flush()
    return conversation


def get(session: Session, caller: Caller, conversation_id: str, *, for_update: bool = False) -> Conversation:
    """The caller's conversation, or NOT_FOUND (also when it is someone else's)."""
    query = select(Conversation).where(Conversation.id == conversation_id, owned(Conversation, caller))
    if for_update:
        query = query.with_for_update()
    with statement("conversations.get"):
        conversation = session.scalars(query).first()
    if conversation is None:
        raise NotFound(NOT_FOUND)
    return conversation


def page(session: Session, caller: Caller, *, limit: int, cursor: str | None) -> tuple[list[Conversation], str | None]:
    """The caller's conversations, most recently updated first, from ``cursor`` on; and the next page's cursor."""
    query = select(Conversation).where(owned(Conversation, caller))
    if cursor:
        updated_at, last_id = decode_cursor(cursor)
        query = query.where(or_(Conversation.updated_at < updated_at,
                                and_(Conversation.updated_at == updated_at, Conversation.id < last_id)))
    query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit + 1)
    with statement("conversations.page"):
        rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]) if more else None


def messages(session: Session, conversation: Conversation) -> list[Message]:
    """The conversation's messages, oldest first, whole (the API's read; prompts read `said`)."""
    query = select(Message).where(Message.conversation_id == conversation.id, Message.client == conversation.client,
                                  Message.user_id == conversation.user_id).order_by(Message.seq)
    with statement("messages.all"):
        return list(session.scalars(query))


class Said(NamedTuple):
    """What a prompt needs of a message: its place, who said it and what."""

    seq: int
    role: str
    text: str


def said(session: Session, conversation: Conversation, *, since_seq: int, before: int | None = None,
         newest: int | None = None) -> list[Said]:
    """The conversation's messages from ``since_seq`` (and before ``before``) as the prompts read them, oldest
    first; with ``newest``, only that many of the latest.

    Every turn reads its history window, and every few turns its summary reads what left the window: three columns
    as plain rows from a statement built once, rather than whole ORM objects from a statement built per call
    (SQLAlchemy's construction, cache key and identity map were most of a turn's database CPU)."""
    params: dict[str, Any] = {"conversation_id": conversation.id, "client": conversation.client,
                              "user_id": conversation.user_id, "since_seq": since_seq}
    if before is not None:
        params["before"] = before
    if newest is not None:
        with statement("messages.recent"):
            rows = session.execute(_said_statement(before is not None, True), {**params, "newest": newest}).all()
        return [Said(*row) for row in reversed(rows)]
    with statement("messages.all"):
        return [Said(*row) for row in session.execute(_said_statement(before is not None, False), params)]


@functools.cache
def _said_statement(bounded: bool, newest: bool) -> Any:
    query = select(Message.seq, Message.role, Message.text).where(
        Message.conversation_id == bindparam("conversation_id"), Message.client == bindparam("client"),
        Message.user_id == bindparam("user_id"), Message.seq >= bindparam("since_seq"))
    if bounded:
        query = query.where(Message.seq < bindparam("before"))
    if newest:
        return query.order_by(Message.seq.desc()).limit(bindparam("newest"))
    return query.order_by(Message.seq)


def messages_by_id(session: Session, caller: Caller, ids: Sequence[str]) -> dict[str, Message]:
    """The caller's messages with these ids."""
    with statement("messages.by_id"):
        rows = session.scalars(select(Message).where(Message.id.in_(list(ids)), owned(Message, caller)))
        return {message.id: message for message in rows}


def remove(session: Session, caller: Caller, conversation_id: str) -> None:
    """Delete the caller's conversation with its messages and keys (NOT_FOUND when there is none)."""
    with statement("conversations.delete"):
        deleted = session.execute(delete(Conversation).where(Conversation.id == conversation_id,
                                                             owned(Conversation, caller)))
    if deleted.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(NOT_FOUND)


def count(session: Session, caller: Caller) -> int:
    """How many conversations the caller has."""
    with statement("conversations.count"):
        return session.scalar(select(func.count()).select_from(Conversation).where(owned(Conversation, caller))) or 0


def activity_since(session: Session, since: datetime) -> dict[str, int]:
    """Every caller's conversations started and turns taken since ``since`` (operators' figures: counts only)."""
    with statement("conversations.activity"):
        started = session.scalar(select(func.count()).select_from(Conversation)
                                 .where(Conversation.created_at >= since)) or 0
        turns = session.scalar(select(func.count()).select_from(Message)
                               .where(Message.created_at >= since, Message.role == "tutor")) or 0
    return {"conversations": started, "turns": turns}


def encode_cursor(conversation: Conversation) -> str:
    """An opaque cursor after ``conversation`` in the listing's order."""
    raw = json.dumps([conversation.updated_at.isoformat(), conversation.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor stands for, or VALIDATION_ERROR."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, last_id = json.loads(raw)
        return datetime.fromisoformat(updated_at), str(last_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValidationFailed("Invalid cursor: use next_cursor from the previous page", status=422) from exc
