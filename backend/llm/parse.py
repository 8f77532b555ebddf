"""One entry point per AI operation: the model's text in, a validated object and an honest ``partial`` out."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from backend.errors import ProviderBadResponse
from backend.llm import telemetry
from backend.llm.analysis import recover_analysis
from backend.llm.content import recover_explanation, recover_subtopics
from backend.llm.extract import Unusable, extract_json
from backend.llm.recover import Notes
from backend.schemas.answers import SubtopicList, TopicExplanation, WritingAnalysis

M = TypeVar("M", bound=BaseModel)
# Measured worst case of json-repair at this size is about 1.5 s of CPU; real answers are far smaller.
DEFAULT_MAX_REPAIR_CHARS = 20_000


@dataclass(frozen=True)
class Operation(Generic[M]):
    """An AI operation's answer: the schema the model is asked for, the recovery rules that build what is kept
    of its answer (``M``, which may be looser: an analysis without a trustworthy level keeps a null one), and
    its name in metrics and logs."""

    source: str
    model: type[BaseModel]
    recover: Callable[[Any, Mapping[str, Any], Notes], M]


ANALYSIS = Operation("analyze", WritingAnalysis, recover_analysis)
SUBTOPICS = Operation("create_subtopics", SubtopicList, recover_subtopics)
EXPLANATION = Operation("explanation", TopicExplanation, recover_explanation)


@dataclass(frozen=True)
class ParseResult(Generic[M]):
    """A validated object; ``partial`` when anything had to be repaired, completed, dropped or clamped."""

    value: M
    partial: bool
    kinds: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()


class UnusableAnswer(ProviderBadResponse):
    """The model answered, but nothing trustworthy could be recovered; ``reason`` is fit for a re-ask."""

    def __init__(self, reason: str, *, provider: str = "gemini"):
        super().__init__(f"The model's answer could not be used: {reason}", provider=provider)
        self.reason = reason


def parse_model_output(text: str, operation: Operation[M], *, context: Mapping[str, Any] | None = None,
                       truncated: bool = False, max_repair_chars: int = DEFAULT_MAX_REPAIR_CHARS) -> ParseResult[M]:
    """Parse ``text`` for ``operation``; raise UnusableAnswer when nothing trustworthy can be recovered."""
    # ``context`` is the request (the learner's text, the requested count) that some checks need;
    # ``truncated`` says the model stopped at its token limit, which makes any answer partial.
    started = time.perf_counter()
    try:
        extracted = extract_json(text, max_repair_chars=max_repair_chars)
        notes = Notes(kinds=list(extracted.kinds), fields=["$"] if extracted.kinds else [])
        value = operation.recover(extracted.value, context or {}, notes)
    except Unusable as exc:
        telemetry.record(operation.source, time.perf_counter() - started, failure=exc.reason, chars=len(text))
        raise UnusableAnswer(exc.reason) from None
    except ValidationError as exc:  # recovery let something through that the schema refuses: still not a 500
        reason = f"the answer did not match the expected shape ({exc.error_count()} errors)"
        telemetry.record(operation.source, time.perf_counter() - started, failure=reason, chars=len(text))
        raise UnusableAnswer(reason) from None
    except (ArithmeticError, RecursionError, TypeError, ValueError) as exc:
        # Whatever a model can write must not become a 500: an answer that breaks the reader is unusable.
        reason = f"the answer could not be read ({type(exc).__name__})"
        telemetry.record(operation.source, time.perf_counter() - started, failure=reason, chars=len(text))
        raise UnusableAnswer(reason) from None
    if truncated:
        notes.note("max_tokens", "$")
    telemetry.record(operation.source, time.perf_counter() - started, kinds=notes.kinds, fields=notes.fields,
                     chars=len(text))
    return ParseResult(value, bool(notes.kinds), tuple(notes.kinds), tuple(notes.fields))
