"""What travels to and from an OpenAI-compatible server: JSON formats, answers and usage."""
from __future__ import annotations

import copy
import functools
import json
import re
from typing import Any

from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from backend.errors import ProviderBadResponse
from backend.llm.client import LLMAnswer
from backend.providers.openai_compat_errors import PROVIDER, logger

JSON_OBJECT = {"type": "json_object"}
# Keywords OpenAI's strict mode refuses; a schema using any of them is sent with strict off.
_NOT_STRICT = frozenset({"allOf", "not", "if", "then", "else", "patternProperties", "unevaluatedProperties",
                         "propertyNames", "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
                         "unevaluatedItems", "contains", "minContains", "maxContains", "uniqueItems", "minLength",
                         "maxLength", "default"})


@functools.cache
def json_schema_format(schema: type[BaseModel]) -> dict[str, Any]:
    """response_format for json_schema, built once per answer model (pydantic takes about a millisecond).

    Strict when the model's schema, closed with additionalProperties false, meets OpenAI's strict rules (every
    property required, no open-ended object, none of the keywords strict mode refuses): the server then
    guarantees the shape. Otherwise the same schema goes with strict off, as guidance; our parser checks the
    answer either way (backend/llm). The service's three answers are strict."""
    plain = schema.model_json_schema()
    strict = strict_schema(plain)
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": strict or plain, "strict": bool(strict)}}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema closed for OpenAI's strict mode, or None when it cannot be (optional fields, open objects)."""
    if schema.get("type") != "object":
        return None
    closed = copy.deepcopy(schema)
    return closed if _close(closed) else None


def _close(node: Any) -> bool:
    """Close every object of ``node`` in place; False when one cannot be closed or uses a refused keyword."""
    if isinstance(node, list):
        return all(_close(item) for item in node)
    if not isinstance(node, dict):
        return True
    if _NOT_STRICT & node.keys():
        return False
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties", False) is not False:
            return False  # a dict with free keys
        if set(node.get("properties", {})) - set(node.get("required", [])):
            return False  # an optional field
        node["additionalProperties"] = False
    for key in ("properties", "$defs", "definitions"):
        if not all(_close(sub) for sub in (node.get(key) or {}).values()):
            return False
    return all(_close(node[key]) for key in ("items", "anyOf", "oneOf", "prefixItems") if key in node)


@functools.cache
def schema_instruction(schema: type[BaseModel]) -> str:
    """For json_object mode, where the server enforces no schema: the schema in words (and the word JSON, which
    OpenAI-compatible servers require in the messages for json_object)."""
    return ("Answer with one JSON object, and nothing else, that matches this JSON Schema:\n"
            + json.dumps(schema.model_json_schema(), ensure_ascii=False, separators=(",", ":")))


def answer_of(response: Any, model: str, usage: dict[str, int]) -> LLMAnswer:
    """The text of the first choice with its finish reason; refusals, filtered and empty answers are unusable."""
    if not isinstance(response, ChatCompletion):  # a 200 with a non-JSON content type comes back as a str
        raise ProviderBadResponse("The fallback model's answer is not a chat completion", provider=PROVIDER)
    choice = response.choices[0] if response.choices else None
    if choice is None or choice.message is None:
        raise ProviderBadResponse("The fallback model returned no choice", provider=PROVIDER)
    finish = choice.finish_reason or "stop"
    if finish == "content_filter":
        raise ProviderBadResponse("The fallback model's content filter stopped the answer", provider=PROVIDER)
    if choice.message.refusal:
        logger.info("the fallback model refused", extra={"refusal": str(choice.message.refusal)[:300]})
        raise ProviderBadResponse("The fallback model refused to answer", provider=PROVIDER)
    text = choice.message.content
    if not isinstance(text, str) or not text.strip():
        raise ProviderBadResponse(f"The fallback model returned an empty answer ({finish})", provider=PROVIDER)
    return LLMAnswer(text=text, finish_reason=finish, model=response.model or model, usage=usage)


def usage_of(usage: Any) -> dict[str, int]:
    """Token counts in our words; completion_tokens includes reasoning tokens, which are split out as thoughts
    (billed as output). Missing counts are zero (some servers send no usage)."""
    if usage is None:
        return {}
    prompt, completion = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
    thoughts = min(_count(getattr(usage, "completion_tokens_details", None), "reasoning_tokens"), completion)
    return {"prompt": prompt, "output": completion - thoughts, "thoughts": thoughts,
            "total": _count(usage, "total_tokens") or prompt + completion}


def _count(obj: Any, name: str) -> int:
    value = getattr(obj, name, None) if obj is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
