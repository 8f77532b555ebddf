"""Tutor-conversation answers shared by both fakes: a turn's corrections, a summary of earlier turns, and what a
tutor reply says it saw of the conversation's level and language."""

import json
import re

from tests.fakes.gemini_writing import find_errors

MAX_CORRECTIONS = 10
# The summariser is told to summarise ("Summarise the conversation so far", "You are a summarizer", "Write a short
# summary of ..."); a tutor's system instruction that merely carries an earlier summary ("Summary of earlier turns:",
# "older turns, summarised:") is still answered as a tutor.
SUMMARY_TASK = re.compile(r"\bsummari[sz](?:e|er|ing)\b|\bwrite\s+(?:a\s+|an\s+)?(?:\w+\s+)?summary\b", re.I)
LEARNER = ("learner", "user", "student", "human")
TUTOR = ("tutor", "assistant", "model", "teacher", "ai")
# 'Learner: ...', '- tutor (turn 2): ...', 'User 3: ...'
TURN = re.compile(r"^\s*[-*]?\s*(" + "|".join(LEARNER + TUTOR) + r")(?:\s*(?:\([^)\n]{0,30}\)|#?\d+))?\s*:\s*(.*)$",
                  re.I)
# 'Level: B1', 'CEFR level: B1', 'Learner level (CEFR): B1'; 'Language: fr-FR', 'Target language: fr-FR.'
LEVEL = re.compile(r"^\s*[-*]?\s*(?:learner(?:'s)?\s+)?(?:CEFR\s+)?level(?:\s*\(CEFR\))?\s*:\s*([ABC][12])\b",
                   re.I | re.M)
LANGUAGE = re.compile(r"^\s*[-*]?\s*(?:target\s+)?language\s*:\s*([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)\b", re.I | re.M)
QUOTED, QUOTE_WORDS = 6, 6
PREVIOUS = re.compile(r"^\s*previous summary\s*:\s*(.*)$", re.I | re.M)


def turn_corrections(inputs):
    """The real errors of the learner's message (key "message"): each text a substring of it, each correction
    different from its text, each explanation one line; none found -> an empty list."""
    message = str(inputs.get("message") or "")
    out = []
    for error in find_errors(message):
        text, correction = error["text"], error["correction"]
        if text and text in message and correction != text:
            out.append({"text": text, "correction": correction, "explanation": " ".join(error["explanation"].split())})
    return {"corrections": out[:MAX_CORRECTIONS]}


def is_summary_request(system):
    """Whether a plain-text call's system instruction asks for a summary, in its first line: a tutor's instruction
    may carry an earlier summary further down, quoting a learner who wrote 'summarize'."""
    return bool(SUMMARY_TASK.search((system or "").strip().split("\n", 1)[0]))


def conversation_turns(text):
    """(role, text) turns from the text to summarise: a JSON list of {role|speaker, text|content} (alone on a line
    or in an object on an INPUT line), else lines labelled 'learner: ...' / 'tutor: ...' (unlabelled lines continue
    the turn above), else every line that is not the instruction or the previous summary, as the learner's."""
    listed = _listed_turns(text)
    if listed:
        return listed
    turns = []
    for line in text.splitlines():
        match = TURN.match(line)
        if match:
            role = "learner" if match.group(1).lower() in LEARNER else "tutor"
            turns.append([role, match.group(2).strip()])
        elif turns and line.strip():
            turns[-1][1] = f"{turns[-1][1]} {line.strip()}".strip()
    if turns:
        return [(role, said) for role, said in turns if said]
    return [("learner", line.strip()) for line in text.splitlines() if line.strip() and not SUMMARY_TASK.search(line)
            and not PREVIOUS.match(line) and not line.lstrip().startswith("INPUT:")]


def _listed_turns(text):
    for match in re.finditer(r"^\s*(?:INPUT: )?(?=[\[{])", text, re.M):
        try:
            value = json.JSONDecoder().raw_decode(text, match.end())[0]
        except ValueError:
            continue
        lists = [v for v in value.values() if isinstance(v, list)] if isinstance(value, dict) else [value]
        turns = []
        for item in next((v for v in lists if v and all(isinstance(i, dict) for i in v)), []):
            role = str(item.get("role") or item.get("speaker") or "learner").lower()
            said = str(item.get("text") or item.get("content") or "").strip()
            if said:
                turns.append(("learner" if role in LEARNER else "tutor", said))
        if turns:
            return turns
    return []


def _quote(said):
    words = said.split()
    return '"' + " ".join(words[:QUOTE_WORDS]) + ("…" if len(words) > QUOTE_WORDS else "") + '"'


def _earlier(text):
    """(learner quotes, hidden ones, tutor replies) of a 'Previous summary: ...' line; a summary of another making
    counts as one quote."""
    match = PREVIOUS.search(text)
    previous = match.group(1).strip() if match else ""
    if not previous or previous.lower() in ("(none)", "none"):
        return [], 0, 0
    if not previous.startswith("Summary: the learner talked about "):
        return [_quote(previous)], 0, 0
    hidden = re.search(r"; \((\d+) more\);", previous)
    tutor = re.search(r"the tutor replied (\d+) time", previous)
    return ([f'"{q}"' for q in re.findall(r'"([^"]*)"', previous)], int(hidden.group(1)) if hidden else 0,
            int(tutor.group(1)) if tutor else 0)


def summarise(text):
    """A short, deterministic summary quoting the first words of each learner turn (the first and last three when
    there are more than six) and counting the tutor's replies; a previous summary of ours is extended."""
    turns = conversation_turns(text)
    quotes, hidden, tutor = _earlier(text)
    said = [t for role, t in turns if role == "learner"]
    tutor += len(turns) - len(said)
    quotes = quotes[:QUOTED // 2] + [None] * hidden + quotes[QUOTED // 2:] + [_quote(s) for s in said]
    if not quotes:
        return f"Summary: the learner has said nothing yet; the tutor replied {tutor} times."
    if len(quotes) > QUOTED:
        half = QUOTED // 2
        quotes = quotes[:half] + [f"({len(quotes) - QUOTED} more)"] + quotes[-half:]
    return (f"Summary: the learner talked about {'; '.join(quotes)}; the tutor replied {tutor} time"
            f"{'s' * (tutor != 1)}.")


def noticed(system):
    """What a tutor reply adds when the system instruction has 'Level: B1' / 'Language: fr-FR' lines, else ''."""
    level, language = LEVEL.search(system or ""), LANGUAGE.search(system or "")
    seen = [f"Level: {level.group(1).upper()}"] if level else []
    seen += [f"Language: {language.group(1)}"] if language else []
    return f" [{'; '.join(seen)}]" if seen else ""
