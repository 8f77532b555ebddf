"""Ask a language model for an operation's JSON, and ask once more, stating the problem, when the answer is unusable."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from pydantic import BaseModel

from backend.errors import ProviderBadResponse
from backend.llm.parse import (
    DEFAULT_MAX_REPAIR_CHARS,
    Operation,
    ParseResult,
    UnusableAnswer,
    parse_model_output,
)

if TYPE_CHECKING:
    from backend.llm.client import LLMClient

logger = logging.getLogger("backend.llm")
M = TypeVar("M", bound=BaseModel)
# Below this, a second call would only time out: better to report the unusable answer at once.
MIN_REASK_SECONDS = 1.0


def ask_json(client: LLMClient, operation: Operation[M], *, system: str, prompt: str, timeout: float,
             context: Mapping[str, Any] | None = None, reask: Callable[[str], str] | None = None,
             max_repair_chars: int = DEFAULT_MAX_REPAIR_CHARS) -> ParseResult[M]:
    """Return the parsed answer; with ``reask`` (reason -> prompt), ask once more after an unusable one."""
    # Only unusable answers are asked again (no JSON, a refusal, a block, an empty candidate); a partial
    # one is returned as it is. Transient failures go to the retry policy unchanged.
    deadline = time.monotonic() + timeout

    def attempt(text_prompt: str, seconds: float) -> ParseResult[M]:
        answer = client.generate_json(system=system, prompt=text_prompt, schema=operation.model, timeout=seconds)
        return parse_model_output(answer.text, operation, context=context, truncated=answer.truncated,
                                  max_repair_chars=max_repair_chars)

    try:
        return attempt(prompt, timeout)
    except ProviderBadResponse as first:
        reason = first.reason if isinstance(first, UnusableAnswer) else first.message
        remaining = deadline - time.monotonic()
        if reask is None or remaining < MIN_REASK_SECONDS:
            raise
        logger.info("asking the model again", extra={"source": operation.source, "reason": reason[:200]})
    try:
        return attempt(reask(reason), remaining)
    except ProviderBadResponse as second:
        again = second.reason if isinstance(second, UnusableAnswer) else second.message
        provider = second.provider or client.provider
        raise UnusableAnswer(f"{again} (also after asking again)", provider=provider) from None
