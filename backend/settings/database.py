"""Learner data settings: the database (DATABASE_*), retention, and the limits of tutor conversations."""
from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class DatabaseSettings(BaseModel):
    """Where learner data lives, how long a request waits for it, and how conversations are bounded."""

    # SQLite (one host, WAL) by default, so `make run` needs nothing installed; PostgreSQL in production.
    database_url: str = "sqlite:///./var/backend-ai.db"
    # Connections per worker process (no overflow): sessions are held only around statements, never across a
    # model call, so a few serve all of a worker's threads.
    database_pool_size: int = Field(5, ge=1, le=100)
    # Wait for a pooled connection, connect, lock (SQLite busy timeout) or statement (PostgreSQL statement_timeout).
    database_timeout_seconds: float = Field(2.0, gt=0, le=60)
    # Conversations untouched for longer, and finished jobs, are deleted by `flask --app wsgi data purge`.
    data_retention_days: int = Field(365, ge=1, le=36500)
    # Idempotency keys of turns are kept at least this long (the contract's minimum is 24 h).
    idempotency_key_hours: int = Field(48, ge=24, le=24 * 365)
    max_turns_per_conversation: int = Field(200, ge=1, le=10_000)
    # The prompt carries the most recent turns within this many (estimated) tokens; older ones are summarised.
    conversation_history_tokens: int = Field(3000, ge=200, le=200_000)
    # Streamed replies in flight per worker process (each holds a thread for its whole length); beyond it, 503.
    # Unset: a quarter of WEB_THREADS (8 of 32), so streams cannot take the threads other requests need.
    stream_max_concurrency: int | None = Field(None, ge=1, le=1024)

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be sqlite:///PATH or postgresql+psycopg://user:pass@host:port/db")
        # psycopg 3 is the driver we ship; a bare postgresql:// would make SQLAlchemy look for psycopg2.
        return value.replace("postgresql://", "postgresql+psycopg://", 1) if value.startswith("postgresql://") \
            else value

    # Named apart from Settings' own validator of the same kind: a method of the same name would replace this one.
    @field_validator("stream_max_concurrency", mode="before")
    @classmethod
    def _empty_stream_limit_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
