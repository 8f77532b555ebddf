"""Streamed answers of the fake Gemini server: server-sent events, one GenerateContentResponse per event,
and the faults that strike in the middle of a stream."""

import json

from tests.fakes.gemini_faults import HTTP_ERRORS, error_body

MID_STREAM = ("cut", "stall", "stream_reset", "stream_error", "stream_eof")


def stream_events(body, size, parts=None, whole=False):
    """The chunk bodies of a streamed answer: its text in pieces (``parts``, else ``size`` characters each), the
    finishReason and usageMetadata on the last. Bodies without text (blocked, empty, filtered) go as one event."""
    candidates = body.get("candidates") or []
    first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    text = "".join(p.get("text") or "" for p in (first.get("content") or {}).get("parts") or []
                   if isinstance(p, dict))
    if whole or not text:
        return [body]
    pieces = [p for p in parts if p] if parts else [text[i:i + size] for i in range(0, len(text), size)]
    base = {key: value for key, value in body.items() if key not in ("candidates", "usageMetadata")}
    events = [{"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}], **base}
              for piece in pieces]
    last = events[-1]["candidates"][0]
    last.update({key: value for key, value in first.items() if key not in ("content", "index")})
    if "usageMetadata" in body:
        events[-1]["usageMetadata"] = body["usageMetadata"]
    return events


def send_stream(handler, body, fault, cfg, parts=None, whole=False):
    """Answer a streamGenerateContent?alt=sse request with ``body`` as events, bent by a mid-stream ``fault``.

    Without a fault: chunked encoding, one event per HTTP chunk, `chunk_latency_ms` apart, then the last chunk.
    With one, `fault_after_chunks` events (0: half; at least one, never the last) go out first, then, a
    `chunk_latency_ms` pause later: cut (a chunk cut short, then FIN), stall (silence until the client hangs up),
    stream_reset (RST), stream_error (an error event, then a clean end), stream_eof (the body was sent without
    chunking: the connection simply closes, no finishReason).
    """
    events = stream_events(body, cfg["chunk_size"], parts, whole)
    chunked = fault != "stream_eof"
    sent = cfg["fault_after_chunks"] or len(events) // 2
    stop_at = min(len(events) - 1, max(1, sent)) if fault in MID_STREAM else len(events)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    pause = cfg["chunk_latency_ms"] / 1000
    try:
        for i, event in enumerate(events[:stop_at]):
            if i and pause and handler.fake.wait(pause):
                return handler.drop()
            _write(handler, _event(event), chunked)
        if fault is None:
            return handler.wfile.write(b"0\r\n\r\n")
        if pause and handler.fake.wait(pause):
            return handler.drop()
        if fault == "stall":
            return handler.hang()
        if fault == "stream_reset":
            return handler.drop()
        if fault == "cut":
            payload = _event(events[stop_at])
            handler.wfile.write(b"%x\r\n" % len(payload) + payload[: len(payload) // 2])
            handler.close_connection = True  # FIN in the middle of a chunk
            return None
        if fault == "stream_error":
            code, status, message = HTTP_ERRORS["500"]
            _write(handler, _event(error_body(code, status, message)), chunked)
            return handler.wfile.write(b"0\r\n\r\n")
        return None  # stream_eof: the connection closes after what was sent
    except OSError:
        handler.close_connection = True  # the client went away mid-stream


def _event(body):
    return f"data: {json.dumps(body, ensure_ascii=False)}\r\n\r\n".encode()


def _write(handler, payload, chunked):
    """One event, as one HTTP chunk when the body is chunked."""
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload) if chunked else payload)
