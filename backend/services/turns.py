"""A learner's turn: ordered (one at a time per conversation), idempotent (Idempotency-Key), atomic (both messages
stored together once the reply is complete), through the policy of every provider call.

Two model calls per turn, made concurrently: the reply as plain text (it can stream to the learner from its first
piece) and the corrections as JSON against a schema (checked against the learner's words, repaired like every
structured answer, with its own fallback down to in-process corrections). One call answering both would have to be
JSON, whose reply field cannot be streamed safely before the object is complete; the corrections call adds the
learner's message (a few hundred tokens) and nothing to the wait, since it runs while the reply is written.
"""
from __future__ import annotations

import contextvars
import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Sequence

from backend.db import conversations as repo
from backend.db import speech_clips, turns
from backend.db.engine import Database
from backend.db.speech_clips import Spoken
from backend.errors import AppError, ProviderError, ProviderNotConfigured, ValidationFailed
from backend.llm.client import Message as Turn
from backend.llm.client import input_text
from backend.llm.corrections import CORRECTIONS
from backend.observability import cost, metrics
from backend.observability.decisions import record_decision
from backend.resilience.policy import ProviderPolicy
from backend.schemas.caller import Caller
from backend.services import tutor
from backend.services.conversations import message_view
from backend.services.language_model import LanguageModel, LocalAnswer, Route, StructuredTask, may_fall_back
from backend.services.speech import SpeechService
from backend.services.speech_out import SynthesisService, spoken
from backend.services.turn_types import Begun, TurnRequest, TurnResult, TurnSettings

logger = logging.getLogger(__name__)
CORRECT = StructuredTask("corrections", "v1", CORRECTIONS, tutor.CORRECTIONS_SYSTEM, tutor.CORRECTIONS_TASK)
# A turn of a conversation is usually answered in 1-5 s: the time a 409 asks the learner's app to wait.
BUSY_RETRY_AFTER = 2.0


class TurnService:
    """Answers learners' turns; streamed turns are built on the same steps (backend/services/turn_stream.py)."""

    def __init__(self, database: Database, model: LanguageModel, *, replies: Sequence[Route],
                 corrections: Sequence[Route], summaries: Sequence[Route],
                 local_corrections: tuple[ProviderPolicy, LocalAnswer] | None, speech: SpeechService,
                 settings: TurnSettings, executor: ThreadPoolExecutor, speech_out: SynthesisService | None = None):
        self.db = database
        self._model = model
        self.replies = replies
        self._corrections = corrections
        self._summaries = summaries
        self._local = local_corrections
        self._speech = speech
        self.settings = settings
        self._executor = executor
        self._speech_out = speech_out

    # -- the steps -------------------------------------------------------------------------------------------

    def begin(self, caller: Caller, conversation_id: str, request: TurnRequest) -> Begun | TurnResult:
        """The earlier answer to the same Idempotency-Key, or the conversation's lease and its history (409 when
        another turn holds it)."""
        token = uuid.uuid4().hex
        with self.db.session(write=True) as session:
            if request.key is not None:
                earlier = turns.find_key(session, caller, conversation_id, request.key)
                if earlier is not None:
                    return self._replay(session, caller, earlier, request)
            conversation = turns.take_lease(session, caller, conversation_id, token=token,
                                            seconds=self.settings.lease_seconds, retry_after=BUSY_RETRY_AFTER,
                                            max_turns=self.settings.max_turns)
            recent = repo.said(session, conversation, since_seq=conversation.summarized_count,
                               newest=tutor.MAX_WINDOW_MESSAGES)
        history = tutor.history(conversation, recent, self.settings.history_tokens)
        return Begun(caller, conversation, token, request, history,
                     deadline=time.monotonic() + self.settings.deadline_seconds)

    def prepare(self, begun: Begun) -> None:
        """The learner's words (transcribed first when spoken), and their corrections started alongside."""
        request = begun.request
        if request.audio is not None:
            with cost.charging(begun.book):
                transcript = self._speech.transcribe(request.audio, begun.conversation.language).value
            begun.text = " ".join(str(transcript.get("text", "")).split())
            if not begun.text:
                raise ValidationFailed("No speech was recognised in the audio", status=422)
        else:
            begun.text = request.text or ""
        begun.corrections = self._submit(self._correct, begun)

    def reply(self, begun: Begun) -> tuple[str, str]:
        """The tutor's whole reply and who gave it, from the first provider that can (nothing sent yet, so every
        provider may be tried)."""
        system, messages = self.prompt(begun)
        failure: ProviderError | None = None
        for route in self.replies:
            def call(timeout: float, client=route.client) -> str:
                return client.generate_text(system=system, messages=messages, timeout=timeout).text

            try:
                with cost.charging(begun.book):
                    outcome = route.policy.execute(f"turn:{begun.token}", call, deadline=begun.deadline,
                                                   cost_bound=route.client.cost_bound(input_text(system, messages)))
                return outcome.value, outcome.provider
            except ProviderError as exc:
                if not may_fall_back(exc):
                    raise
                failure = failure or exc
                record_decision(route.policy.provider, route.policy.operation, "fell_back", error=type(exc).__name__)
        raise failure or ProviderNotConfigured(self.not_configured)

    @property
    def not_configured(self) -> str:
        """What to set when no language model is configured."""
        return self._model.not_configured

    def prompt(self, begun: Begun) -> tuple[str, list[Turn]]:
        """The tutor's instruction and the turns it answers (the history, then the learner's new message)."""
        return tutor.tutor_system(begun.conversation), [*begun.history.turns, Turn("user", begun.text)]

    def finish(self, begun: Begun, reply: str, provider: str) -> TurnResult:
        """Store both messages in one transaction (ending the lease), then summarise older turns if due."""
        said = self._speak(begun, reply) if begun.request.speak else None
        corrections, correction_book = self._corrections_of(begun)
        cost_usd = round(begun.book.cost_usd + correction_book.cost_usd, 8)
        clip_id = repo.new_id() if said is not None else None
        with self.db.session(write=True) as session:
            learner, tutor_message = turns.store_turn(
                session, begun.caller, begun.conversation.id, token=begun.token, key=begun.request.key,
                request_hash=begun.request.fingerprint(),
                learner=turns.NewMessage(begun.text, corrections),
                tutor=turns.NewMessage(reply, [], cost_usd=cost_usd,
                                       audio_url=f"/api/speech/{clip_id}" if clip_id else None))
            if said is not None and clip_id is not None:
                speech_clips.add(session, begun.caller, clip_id=clip_id, conversation_id=begun.conversation.id,
                                 message_id=tutor_message.id, spoken=said)
        tokens = dict(begun.book.tokens)
        for kind, count in correction_book.tokens.items():
            tokens[kind] = tokens.get(kind, 0) + count
        # What the turn cost, in one line (no learner text): budgets and usage are built on the stored cost.
        logger.info("turn answered", extra={"conversation": begun.conversation.id, "provider": provider,
                                             "cost_usd": cost_usd, "tokens": tokens})
        if begun.history.pending >= tutor.SUMMARY_BATCH:
            self._submit(self._summarise, begun)
        return TurnResult(message_view(learner), message_view(tutor_message), provider=provider)

    def _speak(self, begun: Begun, reply: str) -> Spoken | None:
        """The reply synthesised in the conversation's voice (now, so its clip is in the cache when fetched), or
        None when that fails: the learner's turn does not fail for want of audio."""
        if self._speech_out is None:
            return None
        try:
            said = spoken(reply, begun.conversation.language, begun.conversation.voice)
            with cost.charging(begun.book):
                self._speech_out.synthesize(said)
        except AppError as exc:
            metrics.TUTOR_SPEECH.labels("failed").inc()
            logger.warning("tutor reply not spoken", extra={"error_type": type(exc).__name__})
            return None
        metrics.TUTOR_SPEECH.labels("spoken").inc()
        return said

    def abandon(self, begun: Begun) -> None:
        """Give the lease back, storing nothing (the reply failed or the learner went away)."""
        if begun.corrections is not None:
            begun.corrections.cancel()
        try:
            with self.db.session(write=True) as session:
                turns.release_lease(session, begun.caller, begun.conversation.id, begun.token)
        except Exception:  # the lease expires by itself; the turn's own error is the one to report
            logger.warning("could not release a turn's lease", exc_info=True)

    # -- a whole turn ----------------------------------------------------------------------------------------

    def take(self, caller: Caller, conversation_id: str, request: TurnRequest) -> TurnResult:
        """Answer a turn and store it; the earlier answer for a repeated Idempotency-Key."""
        begun = self.begin(caller, conversation_id, request)
        if isinstance(begun, TurnResult):
            metrics.CONVERSATION_TURNS.labels("replayed", "json").inc()
            return begun
        try:
            self.prepare(begun)
            reply, provider = self.reply(begun)
            result = self.finish(begun, reply, provider)
        except BaseException:
            metrics.CONVERSATION_TURNS.labels("failed", "json").inc()
            self.abandon(begun)
            raise
        metrics.CONVERSATION_TURNS.labels("answered", "json").inc()
        return result

    # -- helpers ---------------------------------------------------------------------------------------------

    def _replay(self, session: Any, caller: Caller, earlier: turns.TurnKey, request: TurnRequest) -> TurnResult:
        if earlier.request_hash != request.fingerprint():
            raise ValidationFailed("This Idempotency-Key was used with a different request", status=422,
                                   details=[{"field": "Idempotency-Key", "message": "reused with another body"}])
        stored = repo.messages_by_id(session, caller, [earlier.learner_message_id, earlier.tutor_message_id])
        return TurnResult(message_view(stored[earlier.learner_message_id]),
                          message_view(stored[earlier.tutor_message_id]), replayed=True)

    def _submit(self, work: Callable[[Begun], Any], begun: Begun) -> Future:
        """Run ``work`` beside the request, with its context (request id in logs)."""
        return self._executor.submit(contextvars.copy_context().run, work, begun)

    def _correct(self, begun: Begun) -> tuple[list[dict[str, str]], cost.Ledger]:
        """The corrections of the learner's words, and what they cost; [] when no provider could give them."""
        inputs = tutor.corrections_inputs(begun.conversation, begun.text)
        with cost.ledger() as book:
            try:
                outcome = self._model.ask(CORRECT, inputs, self._corrections, self._local)
            except ProviderError as exc:
                logger.warning("no corrections for a turn", extra={"error_type": type(exc).__name__})
                return [], book
        return list(outcome.value.get("corrections", [])), book

    def _corrections_of(self, begun: Begun) -> tuple[list[dict[str, str]], cost.Ledger]:
        """Wait for the corrections until the turn's deadline; none if they are not there by then."""
        assert begun.corrections is not None
        try:
            return begun.corrections.result(timeout=max(0.05, begun.deadline - time.monotonic()))
        except FutureTimeout:
            logger.warning("corrections not ready by the turn's deadline")
            return [], cost.Ledger()

    def _summarise(self, begun: Begun) -> None:
        """Fold the messages that left the window into the conversation's summary (if nobody did meanwhile)."""
        conversation, start = begun.conversation, begun.history.window_start
        try:
            with self.db.session() as session:
                older = repo.said(session, conversation, since_seq=conversation.summarized_count, before=start)
            messages = [Turn("user", tutor.summary_prompt(conversation.summary, older))]
            for route in self._summaries:
                def call(timeout: float, client=route.client) -> str:
                    return client.generate_text(system=tutor.SUMMARY_SYSTEM, messages=messages, timeout=timeout).text

                try:
                    outcome = route.policy.execute(f"summary:{begun.token}", call, cost_bound=route.client.cost_bound(
                        input_text(tutor.SUMMARY_SYSTEM, messages)))
                except ProviderError as exc:
                    if may_fall_back(exc):
                        continue
                    raise
                with self.db.session(write=True) as session:
                    turns.extend_summary(session, begun.caller, conversation.id, covered=conversation.summarized_count,
                                         summary=outcome.value.strip(), new_covered=start)
                return
        except Exception:  # the next turn tries again; the reply was already given
            logger.warning("could not extend a conversation's summary", exc_info=True)
