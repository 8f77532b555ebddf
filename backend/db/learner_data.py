"""Learner data rights: erase and export everything one caller stored, and purge what retention no longer keeps."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from backend.db import budgets
from backend.db import jobs as job_repo
from backend.db.conversations import owned
from backend.db.models import Conversation, Job, Message, SpeechClip, TurnKey, utcnow
from backend.db.timing import statement
from backend.schemas.caller import Caller

# Conversations purged per call (one transaction): a first purge of a long backlog stays within the statement
# timeout, and ids fit in one IN list on every driver.
PURGE_BATCH = 500


def erase(session: Session, caller: Caller) -> dict[str, int]:
    """Delete every conversation, message, turn key and job of the caller; how many of each."""
    # Not the caller's budget override: it is the operator's enforcement record, not the learner's content, and a
    # self-service erase must not lift a stricter budget.
    # Every job, running ones included: their worker finds its lease gone at its next step and stops.
    with statement("learner_data.erase_jobs"):
        jobs = _count(session.execute(delete(Job).where(job_repo.owned(caller))
                                      .execution_options(synchronize_session=False)))
    # Lock the caller's conversations first: a turn being stored now (it holds its conversation's row) finishes
    # before we count, so its messages are counted and deleted here rather than vanishing uncounted by cascade.
    with statement("learner_data.erase_lock"):
        ids = list(session.scalars(select(Conversation.id).where(owned(Conversation, caller))
                                   .order_by(Conversation.id).with_for_update()))
    if not ids:
        return {"conversations": 0, "messages": 0, "turn_keys": 0, "audio": 0, "jobs": jobs}
    # Clips first: deleting their messages would remove them by cascade, uncounted.
    with statement("learner_data.erase_clips"):
        clips = session.execute(delete(SpeechClip).where(SpeechClip.client == caller.client,
                                                         SpeechClip.user_id == caller.user_id)
                                .execution_options(synchronize_session=False))
    with statement("learner_data.erase_messages"):
        messages = session.execute(delete(Message).where(owned(Message, caller))
                                   .execution_options(synchronize_session=False))
    with statement("learner_data.erase_turn_keys"):
        keys = session.execute(delete(TurnKey).where(TurnKey.conversation_id.in_(ids), _owned_keys(caller))
                               .execution_options(synchronize_session=False))
    with statement("learner_data.erase_conversations"):
        conversations = session.execute(delete(Conversation).where(Conversation.id.in_(ids),
                                                                    owned(Conversation, caller))
                                        .execution_options(synchronize_session=False))
    return {"conversations": _count(conversations), "messages": _count(messages), "turn_keys": _count(keys),
            "audio": _count(clips), "jobs": jobs}


def export(session: Session, caller: Caller) -> dict[str, Any]:
    """Everything stored for the caller, as plain JSON-ready data (an unknown caller has no conversations)."""
    with statement("learner_data.export_conversations"):
        rows = list(session.scalars(select(Conversation).where(owned(Conversation, caller))
                                    .order_by(Conversation.created_at, Conversation.id)))
    ids = [row.id for row in rows]
    with statement("learner_data.export_messages"):
        messages = list(session.scalars(select(Message).where(owned(Message, caller))
                                        .order_by(Message.conversation_id, Message.seq)))
    with statement("learner_data.export_turn_keys"):
        keys = list(session.scalars(select(TurnKey).where(TurnKey.conversation_id.in_(ids), _owned_keys(caller))
                                    .order_by(TurnKey.created_at))) if ids else []
    with statement("learner_data.export_clips"):
        clips = list(session.scalars(select(SpeechClip).where(SpeechClip.client == caller.client,
                                                              SpeechClip.user_id == caller.user_id)
                                     .order_by(SpeechClip.created_at)))
    with statement("learner_data.export_jobs"):
        jobs = list(session.scalars(select(Job).where(job_repo.owned(caller)).order_by(Job.created_at, Job.id)))
    budget = budgets.get(session, caller)
    exported = {row.id: _conversation(row) for row in rows}
    for message in messages:
        if message.conversation_id in exported:
            exported[message.conversation_id]["messages"].append(_message(message))
    for key in keys:
        exported[key.conversation_id]["turn_keys"].append(_turn_key(key))
    for clip in clips:
        if clip.conversation_id in exported:
            exported[clip.conversation_id]["speech_clips"].append(
                {"id": clip.id, "message_id": clip.message_id, "voice": clip.voice, "rate": clip.rate,
                 "format": clip.format, "created_at": clip.created_at.isoformat()})
    return {"caller": str(caller), "client": caller.client, "user_id": caller.user_id,
            "exported_at": utcnow().isoformat(), "conversations": list(exported.values()),
            "jobs": [_job(job) for job in jobs], "budget": _budget(budget)}


def purge(session: Session, *, older_than: datetime, keys_older_than: datetime,
          limit: int = PURGE_BATCH) -> dict[str, int]:
    """Delete up to ``limit`` conversations not updated since ``older_than`` (with their messages and keys), up to
    ``limit`` jobs finished before it, and every turn key created before ``keys_older_than``; how many of each.
    Call again until no conversation and no job is left."""
    now = utcnow()
    # A conversation whose turn is being answered right now is not untouched, however old its last message.
    # FOR UPDATE re-checks the condition against a turn committed meanwhile (PostgreSQL), which then keeps it.
    with statement("learner_data.purge_select"):
        ids = list(session.scalars(
            select(Conversation.id)
            .where(Conversation.updated_at < older_than,
                   or_(Conversation.turn_until.is_(None), Conversation.turn_until < now))
            .order_by(Conversation.id).limit(limit).with_for_update()))
    counts = {"conversations": 0, "messages": 0, "turn_keys": 0, "audio": 0, "jobs": 0}
    if ids:
        with statement("learner_data.purge_clips"):
            counts["audio"] = _count(session.execute(delete(SpeechClip).where(SpeechClip.conversation_id.in_(ids))
                                                     .execution_options(synchronize_session=False)))
        with statement("learner_data.purge_messages"):
            counts["messages"] = _count(session.execute(delete(Message).where(Message.conversation_id.in_(ids))
                                                        .execution_options(synchronize_session=False)))
        with statement("learner_data.purge_turn_keys"):
            counts["turn_keys"] = _count(session.execute(delete(TurnKey).where(TurnKey.conversation_id.in_(ids))
                                                         .execution_options(synchronize_session=False)))
        with statement("learner_data.purge_conversations"):
            counts["conversations"] = _count(session.execute(delete(Conversation).where(Conversation.id.in_(ids))
                                                             .execution_options(synchronize_session=False)))
    # Only finished jobs: a queued or running one is the sweeper's to run or to fail, however old.
    with statement("learner_data.purge_jobs"):
        job_ids = list(session.scalars(select(Job.id).where(Job.status.in_(job_repo.FINISHED),
                                                            Job.finished_at < older_than)
                                       .order_by(Job.id).limit(limit)))
        if job_ids:
            counts["jobs"] = _count(session.execute(delete(Job).where(Job.id.in_(job_ids))
                                                    .execution_options(synchronize_session=False)))
    with statement("learner_data.purge_old_turn_keys"):
        counts["turn_keys"] += _count(session.execute(delete(TurnKey).where(TurnKey.created_at < keys_older_than)
                                                      .execution_options(synchronize_session=False)))
    return counts


def _owned_keys(caller: Caller) -> ColumnElement[bool]:
    """The caller filter of turn keys (``owned`` covers conversations and messages)."""
    return and_(TurnKey.client == caller.client, TurnKey.user_id == caller.user_id)


def _conversation(row: Conversation) -> dict[str, Any]:
    # The turn lease (turn_token, turn_until) is bookkeeping, not the learner's data.
    return {"id": row.id, "scenario": row.scenario, "level": row.level, "native_language": row.native_language,
            "language": row.language, "voice": row.voice, "summary": row.summary,
            "message_count": row.message_count, "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(), "messages": [], "turn_keys": [], "speech_clips": []}


def _message(row: Message) -> dict[str, Any]:
    return {"id": row.id, "seq": row.seq, "role": row.role, "text": row.text,
            "corrections": list(row.corrections or []), "audio_url": row.audio_url, "cost_usd": row.cost_usd,
            "created_at": row.created_at.isoformat()}


def _turn_key(row: TurnKey) -> dict[str, Any]:
    # Not the key itself nor the request's hash: with the client's API key, the key replays the turn's answer.
    return {"learner_message_id": row.learner_message_id, "tutor_message_id": row.tutor_message_id,
            "created_at": row.created_at.isoformat()}


def _job(row: Job) -> dict[str, Any]:
    # The lease (token, until, attempts) is bookkeeping, not the learner's data.
    return {"id": row.id, "kind": row.kind, "status": row.status, "inputs": row.inputs, "result": row.result,
            "error": row.error, "progress": row.progress, "created_at": row.created_at.isoformat(),
            "started_at": _iso(row.started_at), "finished_at": _iso(row.finished_at)}


def _budget(override: budgets.Override | None) -> dict[str, Any] | None:
    # None: no override, the default budget applies; {"daily_usd": None}: an operator made the caller unlimited.
    if override is None:
        return None
    return {"daily_usd": override.daily_usd, "updated_at": override.updated_at.isoformat()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def counts(session: Session, caller: Caller) -> dict[str, int]:
    """How many conversations and jobs the caller has stored (GET /api/me/usage)."""
    with statement("learner_data.count_conversations"):
        conversations = session.scalar(select(func.count()).select_from(Conversation)
                                       .where(owned(Conversation, caller)))
    with statement("learner_data.count_jobs"):
        jobs = session.scalar(select(func.count()).select_from(Job).where(job_repo.owned(caller)))
    return {"conversations": int(conversations or 0), "jobs": int(jobs or 0)}
