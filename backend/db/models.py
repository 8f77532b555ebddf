"""The learner data model (SQLAlchemy 2, typed). Every row carries its owner (client, user_id), and every
repository query filters by it, so another caller's row is simply not found."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on PostgreSQL (timestamptz) and SQLite (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(timezone.utc)


def start_of_today() -> datetime:
    """Midnight of today, UTC: where operators' "today" figures begin."""
    return utcnow().replace(hour=0, minute=0, second=0, microsecond=0)


class Base(DeclarativeBase):
    """Declarative base of every model."""


class Conversation(Base):
    """A tutor conversation: its settings, its running summary, and the lease of the turn being answered."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    scenario: Mapped[str] = mapped_column(String(500))
    level: Mapped[str | None] = mapped_column(String(2))
    native_language: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(35))
    voice: Mapped[str | None] = mapped_column(String(100))
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    # The summary covers the first ``summarized_count`` messages (by seq); it is extended as the window slides.
    summary: Mapped[str] = mapped_column(Text, default="")
    summarized_count: Mapped[int] = mapped_column(Integer, default=0)
    # The turn being answered, if any: who holds it and until when (a dead worker's lease simply expires).
    turn_token: Mapped[str | None] = mapped_column(String(32))
    turn_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_conversations_owner_updated", "client", "user_id", "updated_at", "id"),
                      Index("ix_conversations_updated", "updated_at"), Index("ix_conversations_created", "created_at"))


class Message(Base):
    """One message of a conversation, the learner's or the tutor's, in order (seq)."""

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    client: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    corrections: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    audio_url: Mapped[str | None] = mapped_column(String(500))
    # What the turn's model calls cost (on the tutor's message), for usage and budgets.
    cost_usd: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
                      Index("ix_messages_owner", "client", "user_id"), Index("ix_messages_created", "created_at"))


class TurnKey(Base):
    """An Idempotency-Key of a turn: the request it came with (hash) and the messages it produced."""

    __tablename__ = "turn_keys"

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"),
                                                 primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    client: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    learner_message_id: Mapped[str] = mapped_column(String(32))
    tutor_message_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SpeechClip(Base):
    """A tutor reply spoken aloud: what was synthesised, for whom. The audio itself lives in the cache (every tier,
    keyed by what was synthesised); a clip evicted from it is synthesised again, identically, when asked for."""

    __tablename__ = "speech_clips"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    client: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(35))
    voice: Mapped[str] = mapped_column(String(100))
    rate: Mapped[float] = mapped_column(default=1.0)
    format: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_speech_clips_owner", "client", "user_id"),)


class Job(Base):
    """A background job (a lesson): the truth about it, whatever the job engine delivered or lost. A worker holds
    it by a lease (token, until when) that it renews; a dead worker's lease expires and the job is claimed again."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    client: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # queued | running | succeeded | failed | cancelled
    # Set when a running job is cancelled: its worker learns it when it next renews or reports progress.
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SQL NULL (not JSON null) while there is none, so "IS NULL" means what it says.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    progress: Mapped[float] = mapped_column(default=0.0)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_jobs_owner_status", "client", "user_id", "status"),
                      Index("ix_jobs_status_lease", "status", "lease_until"), Index("ix_jobs_created", "created_at"))


class BudgetOverride(Base):
    """An operator's daily USD budget for one caller, in place of the default: kept in the database because it is an
    enforcement decision that must outlive restarts and caches. ``daily_usd`` None is an explicit "unlimited"."""

    __tablename__ = "budget_overrides"

    client: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True, default="")
    daily_usd: Mapped[float | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
