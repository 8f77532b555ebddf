"""Answers of the fake Gemini server, derived from the request it receives, and the bodies that carry them."""

import json
import math
import re
import uuid
import zlib

from tests.fakes.gemini_schema import complete, from_schema
from tests.fakes.gemini_writing import analyze_writing, find_errors
from tests.fakes.tutor_answers import is_summary_request, noticed, summarise, turn_corrections


def build_answer(request):
    """Return the model's answer to a generateContent request: a JSON-able value or plain text."""
    gen = request.get("generationConfig") or {}
    schema = gen.get("responseJsonSchema") or gen.get("responseSchema")
    wants_json = gen.get("responseMimeType") == "application/json" or schema is not None
    inputs = find_input(request)
    title = (schema or {}).get("title") or guess_title(inputs)
    maker = {"WritingAnalysis": analyze_writing, "SubtopicList": subtopics,
             "TopicExplanation": explanation, "TurnCorrections": turn_corrections, "LessonPlan": lesson_plan,
             "SectionContent": section_content, "ExerciseSet": exercise_set}.get(title)
    if maker and isinstance(inputs, dict):
        value = maker(inputs)
        return complete(schema, value, schema) if schema else value
    if schema:
        return from_schema(schema, schema)
    if wants_json:
        return {}
    if is_summary_request(system_text(request)):
        return summarise(prompt_text(request))
    return tutor_reply(request)


def _text_of(content):
    parts = content.get("parts") if isinstance(content, dict) else None
    return "\n".join(p.get("text", "") for p in parts or [] if isinstance(p, dict))


def prompt_text(request):
    """All text of the last user content (the turn being answered), joined."""
    contents = [c for c in request.get("contents") or [] if isinstance(c, dict)]
    users = [c for c in contents if c.get("role", "user") == "user"]
    return _text_of((users or contents or [{}])[-1])


def system_text(request):
    """The text of the system instruction ('' without one)."""
    system = request.get("systemInstruction")
    return _text_of(system) if isinstance(system, dict) else ""


def all_text(request):
    """The system instruction and every turn: what the prompt tokens are counted on."""
    contents = [request.get("systemInstruction")] + list(request.get("contents") or [])
    return "\n".join(_text_of(c) for c in contents if isinstance(c, dict))


FOLLOW_UPS = ("Can you tell me more about that?", "Why do you think so?", "What happened next?",
              "How would you say that to a friend?", "Could you give me an example?")


def tutor_reply(request):
    """A short, deterministic tutor's answer to the last user turn: an echo, a correction or praise, a question."""
    said = " ".join(prompt_text(request).split())
    turns = sum(1 for c in request.get("contents") or [] if isinstance(c, dict) and c.get("role", "user") == "user")
    opener = "Hello! Let's practise together." if turns <= 1 else f"Good, let's keep going (turn {turns})."
    quote = said if len(said) <= 80 else said[:79] + "…"
    fixes = find_errors(said)[:2]
    if fixes:
        check = "A small correction: " + "; ".join(f"say '{e['correction']}' instead of '{e['text']}'"
                                                   for e in fixes) + "."
    else:
        check = "That is well said."
    question = FOLLOW_UPS[zlib.crc32(said.encode()) % len(FOLLOW_UPS)]
    return f'{opener} You wrote: "{quote}". {check} {question}{noticed(system_text(request))}'


def find_input(request):
    """The JSON object that follows 'INPUT: ' in the prompt, or None."""
    text = prompt_text(request)
    match = re.search(r"^\s*INPUT: ", text, re.M)
    if not match:
        return None
    try:
        # raw_decode also copes with a pretty-printed object spanning lines.
        return json.JSONDecoder().raw_decode(text, match.end())[0]
    except ValueError:
        return None


def guess_title(inputs):
    """Name the operation from its inputs when the schema has no title."""
    if not isinstance(inputs, dict):
        return None
    if "text" in inputs:
        return "WritingAnalysis"
    if "message" in inputs:
        return "TurnCorrections"
    if "subtopic" in inputs:
        return "TopicExplanation"
    if "exercises" in inputs:
        return "ExerciseSet"
    if "section" in inputs:
        return "SectionContent"
    if "sections" in inputs:
        return "LessonPlan"
    return "SubtopicList" if "topic" in inputs else None


def tokens(text):
    """Estimate tokens the way Gemini roughly does: about four characters each."""
    return math.ceil(len(text) / 4) if text else 0


# --- response bodies -------------------------------------------------------------

def envelope(model, request, text, finish="STOP"):
    """A successful generateContent body around the given text (None = no text part)."""
    content = {"role": "model", "parts": [{"text": text}]} if text is not None else {"role": "model"}
    prompt = tokens(all_text(request))
    out = tokens(text or "")
    return {"candidates": [{"content": content, "finishReason": finish, "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": out,
                              "totalTokenCount": prompt + out},
            "modelVersion": model, "responseId": uuid.uuid4().hex[:22]}


def shaped(model, request, answer, mode):
    """The success body, bent into a malformed mode when one is set."""
    text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    if mode == "markdown":
        return envelope(model, request, f"```json\n{text}\n```")
    if mode == "truncated":
        return envelope(model, request, text[: len(text) // 2], "MAX_TOKENS")
    if mode == "prose":
        return envelope(model, request, f"Sure! Here is the result you asked for:\n{text}\nHope this helps.")
    if mode == "empty":
        return envelope(model, request, None)
    if mode == "blocked":
        prompt = tokens(all_text(request))
        return {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": model,
                "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}}
    if mode == "safety":
        body = envelope(model, request, None, "SAFETY")
        del body["candidates"][0]["content"]
        body["candidates"][0]["safetyRatings"] = [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]
        return body
    return envelope(model, request, text)


# --- subtopics and explanations ----------------------------------------------------

SUBTOPIC_TEMPLATES = (
    ("Key vocabulary for {t}", "Essential words and phrases used when talking about {t}."),
    ("Everyday conversations about {t}", "Short dialogues you might have about {t} in daily life."),
    ("Grammar in context: {t}", "Grammar structures that come up naturally when discussing {t}."),
    ("Reading practice: {t}", "Short texts about {t} with comprehension questions."),
    ("Listening to people talk about {t}", "Audio-style scenarios and what to listen for about {t}."),
    ("Writing about {t}", "How to write a paragraph or an email about {t}."),
    ("Common mistakes when talking about {t}", "Errors learners often make on {t} and how to avoid them."),
    ("Idioms and expressions related to {t}", "Colourful phrases native speakers use about {t}."),
    ("Giving opinions on {t}", "Agreeing, disagreeing and explaining your view on {t}."),
    ("Asking questions about {t}", "Question forms to find out more about {t}."),
    ("Cultural differences in {t}", "How {t} varies across countries and cultures."),
    ("Role-play: {t}", "A guided role-play putting {t} vocabulary to use."),
    ("Pronunciation of {t} words", "Stress and sounds of tricky words about {t}."),
    ("Describing experiences with {t}", "Past tenses for telling stories about {t}."),
)


def subtopics(inputs):
    """Exactly `count` distinct subtopics built from the topic."""
    topic = str(inputs.get("topic", "")).strip() or "English"
    try:
        count = max(0, min(50, int(inputs.get("count", 5))))
    except (TypeError, ValueError):
        count = 5
    items = [{"title": t.format(t=topic), "description": d.format(t=topic)} for t, d in SUBTOPIC_TEMPLATES]
    items += [{"title": f"{topic}: further practice {i}", "description": f"Extra practice set {i} on {topic}."}
              for i in range(1, count - len(items) + 1)]
    return {"topic": topic, "subtopics": items[:count]}


def explanation(inputs):
    """Explain a subtopic, in short simple sentences at A1/A2."""
    topic = str(inputs.get("topic", "")).strip() or "English"
    sub = str(inputs.get("subtopic", "")).strip() or topic
    level = str(inputs.get("level") or "B1").upper()
    if level in ("A1", "A2"):
        text = (f"This lesson is about {sub}. It is part of {topic}. "
                f"We learn simple words for {sub}. We use them in short sentences.")
        points = [f"Learn five words for {sub}.", f"Say one sentence about {sub}.", "Practise every day."]
        examples = [f"I want to learn about {sub}.", f"This is about {sub}.", f"Do you know about {sub}?"]
    else:
        text = (f"{sub} is an important part of {topic}. Understanding it helps you communicate more precisely, "
                f"because you can choose the right vocabulary and structures for the situation. This explanation "
                f"covers the core ideas, typical uses and the details learners at {level} level should notice.")
        points = [f"The core idea behind {sub} and why it matters for {topic}.",
                  f"Typical situations where {sub} comes up.",
                  f"Useful structures and collocations for {sub}.",
                  f"Common pitfalls learners meet with {sub}."]
        examples = [f"When it comes to {sub}, the key is to be clear and specific.",
                    f"I've been reading a lot about {sub} as part of my interest in {topic}.",
                    f"Could you explain how {sub} relates to {topic}?"]
    return {"title": f"{sub} ({topic})" if sub != topic else sub, "explanation": text,
            "key_points": points, "examples": examples}


# --- lessons: a plan, a section's content, its exercises ----------------------------

def _bounded(value, default, low, high):
    try:
        return max(low, min(high, int(value)))
    except (TypeError, ValueError):
        return default


def lesson_plan(inputs):
    """A title and exactly `sections` distinct section titles built from the topic."""
    topic = str(inputs.get("topic", "")).strip() or "English"
    count = _bounded(inputs.get("sections", 4), 4, 1, 50)
    titles = [title.format(t=topic) for title, _ in SUBTOPIC_TEMPLATES]
    titles += [f"{topic}: further practice {i}" for i in range(1, count - len(titles) + 1)]
    level = str(inputs.get("level") or "B1").upper()
    return {"title": f"{topic}: a lesson at {level} level", "sections": titles[:count]}


def section_content(inputs):
    """The section explained as a subtopic of the topic, its title echoed."""
    section = str(inputs.get("section", "")).strip()
    value = explanation({"topic": inputs.get("topic"), "subtopic": section, "level": inputs.get("level")})
    return {**value, "title": section or value["title"]}


def exercise_set(inputs):
    """`exercises` distinct multiple-choice questions on the section, the answer always one of the options (its
    place among them varies)."""
    section = str(inputs.get("section", "")).strip() or str(inputs.get("topic", "")).strip() or "English"
    out = []
    for number in range(1, _bounded(inputs.get("exercises", 4), 4, 0, 10) + 1):
        right = f"A sentence that uses {section} correctly ({number})"
        wrong = [f"A sentence that misuses {section} ({number}{letter})" for letter in "abc"]
        place = zlib.crc32(f"{section}|{number}".encode()) % 4
        out.append({"question": f"Question {number} on {section}: which option is correct?",
                    "options": wrong[:place] + [right] + wrong[place:], "answer": right})
    return {"exercises": out}
