"""Answers of the fake OpenAI-compatible server, derived from the request, and the bodies and chunks that carry them."""

import json
import math
import re
import time
import uuid

from tests.fakes.gemini_answers import build_answer
from tests.fakes.gemini_writing import find_errors
from tests.fakes.openai_compat_checks import text_of
from tests.fakes.tutor_answers import is_summary_request, noticed, summarise

# json_schema names (lower-case, letters only) of the service's answers -> the titles the Gemini builders know.
KNOWN = {"writinganalysis": "WritingAnalysis", "analysis": "WritingAnalysis", "subtopiclist": "SubtopicList",
         "subtopics": "SubtopicList", "topicexplanation": "TopicExplanation", "explanation": "TopicExplanation",
         "turncorrections": "TurnCorrections", "corrections": "TurnCorrections", "lessonplan": "LessonPlan",
         "sectioncontent": "SectionContent", "exerciseset": "ExerciseSet"}
FINGERPRINT = "fp_fake0001"


def kind_of(request):
    """Which counter a call goes to: stream, json or plain."""
    if request.get("stream"):
        return "stream"
    fmt = (request.get("response_format") or {}).get("type")
    return "json" if fmt in ("json_object", "json_schema") else "plain"


def last_user_text(request):
    users = [m for m in request.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return text_of(users[-1].get("content")) if users else ""


def system_text(request):
    """The system (and developer) messages' text, joined."""
    return "\n".join(text_of(m.get("content")) for m in request.get("messages") or []
                     if isinstance(m, dict) and m.get("role") in ("system", "developer"))


def tutor_reply(text):
    """A short, deterministic tutor-like reply to the learner's last message."""
    said = " ".join(text.split())
    if not said:
        return "Hello! What would you like to practise today?"
    quote = said if len(said) <= 120 else said[:117] + "..."
    fixes = [e for e in find_errors(said) if e["type"] != "punctuation"][:2]
    if fixes:
        note = "A small correction: " + "; ".join(f"'{e['text']}' should be '{e['correction']}'" for e in fixes) + "."
    else:
        note = "That is clear and well written."
    return f'You said: "{quote}" {note} Can you tell me a little more about it?'


def build_text(request):
    """The model's answer text: a JSON document for json modes, a tutor reply otherwise."""
    fmt = request.get("response_format") or {}
    user = last_user_text(request)
    if fmt.get("type") not in ("json_object", "json_schema"):
        system = system_text(request)
        return summarise(user) if is_summary_request(system) else tutor_reply(user) + noticed(system)
    config = {"responseMimeType": "application/json"}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = dict(spec.get("schema") or {"type": "object"})
        title = KNOWN.get(re.sub(r"[^a-z]", "", str(spec.get("name", "")).lower()))
        if title and schema.get("title") not in KNOWN.values():
            schema["title"] = title  # the name says which answer it is; the builders look at the title
        config["responseJsonSchema"] = schema
    value = build_answer({"contents": [{"parts": [{"text": user}]}], "generationConfig": config})
    if value == {} and fmt.get("type") == "json_object":
        value = {"reply": tutor_reply(user)}
    return json.dumps(value, ensure_ascii=False)


def tokens(text):
    """About four characters a token."""
    return math.ceil(len(text) / 4) if text else 0


def usage(request, content):
    prompt = sum(tokens(text_of(m.get("content"))) + 3 for m in request.get("messages") or []
                 if isinstance(m, dict)) + 3
    out = tokens(content or "")
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def shape(request, text, malformed=None, finish=None):
    """(content, finish_reason, refusal): the limit on output tokens, then a malformed mode, applied to the text."""
    finish = finish or "stop"
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if limit and tokens(text) > limit:
        text, finish = text[: limit * 4], "length"
    if malformed == "markdown":
        return f"```json\n{text}\n```", finish, None
    if malformed == "prose":
        return f"Sure! Here is the result you asked for:\n{text}\nHope this helps.", finish, None
    if malformed == "truncated":
        return text[: len(text) // 2], "length", None
    if malformed == "empty":
        return "", finish, None
    if malformed == "refusal":
        return None, "stop", "I'm sorry, but I can't help with that request."
    if malformed == "content_filter":
        return None, "content_filter", None
    return text, finish, None


def completion(model, request, content, finish, refusal=None, used=None):
    """A chat.completion body."""
    message = {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}
    return {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": used or usage(request, content), "service_tier": "default", "system_fingerprint": FINGERPRINT}


def pieces(text, size):
    return [text[i:i + size] for i in range(0, len(text), size)] if text else []


def chunks(model, request, content, finish, refusal=None, parts=None, size=8):
    """The chat.completion.chunk bodies of a stream: role, deltas, the finish, then usage when asked for."""
    base = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "service_tier": "default", "system_fingerprint": FINGERPRINT}
    with_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    extra = {"usage": None} if with_usage else {}

    def chunk(delta, finish_reason=None):
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish_reason}], **extra}
    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out += [chunk({"content": p}) for p in (parts if parts is not None else pieces(content, size))]
    if refusal:
        out.append(chunk({"refusal": refusal}))
    out.append(chunk({}, finish))
    if with_usage:
        out.append({**base, "choices": [], "usage": usage(request, content)})
    return out
