"""Helpers of the conversation tests: start a conversation, post turns, read a fake's prompts, parse SSE."""
from __future__ import annotations

import json

OTHER_KEY = "other-client-key-0123456789"


def start(client, headers, **fields):
    """A new conversation's id."""
    response = client.post("/api/conversations", json=fields, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]["id"]


def turn(client, conversation_id, headers, text="I like coffee.", **extra):
    """Post a learner's text turn; the response."""
    return client.post(f"/api/conversations/{conversation_id}/messages", json={"text": text, **extra},
                       headers=headers)


def reply_requests(fake):
    """The bodies of the fake's tutor-reply calls (plain text, with a system instruction, not a summary)."""
    bodies = []
    for entry in fake.requests():
        body = entry["body"] or {}
        config = body.get("generationConfig") or {}
        system = json.dumps(body.get("systemInstruction") or {})
        if "responseJsonSchema" in config or "responseSchema" in config or "Summarise" in system:
            continue
        bodies.append(body)
    return bodies


def correction_requests(fake):
    """The bodies of the fake's corrections calls (JSON against TurnCorrections)."""
    return [entry["body"] for entry in fake.requests()
            if "TurnCorrections" in json.dumps((entry["body"] or {}).get("generationConfig") or {})]


def contents_text(body):
    """Every text of a request's turns, joined."""
    return "\n".join(part.get("text", "") for content in body.get("contents") or []
                     for part in content.get("parts") or [])


def system_text(body):
    return "\n".join(part.get("text", "") for part in (body.get("systemInstruction") or {}).get("parts") or [])


def sse_events(raw: str):
    """[(event, data)] of a server-sent event stream."""
    events = []
    for block in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events
