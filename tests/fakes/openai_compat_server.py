"""The HTTP side of the fake OpenAI-compatible server: chat completions (JSON and SSE), /_fake control, faults."""

import json
import re
import uuid

from tests.fakes.gemini_server import Handler as BaseHandler
from tests.fakes.openai_compat_answers import build_text, chunks, completion, kind_of, shape
from tests.fakes.openai_compat_checks import check
from tests.fakes.openai_compat_faults import HTTP_ERRORS, auth_error, error_body, http_error, status_error

CHAT = re.compile(r"^(?:/openai)?(?:/v1)?/chat/completions/?$")
MODELS = re.compile(r"^(?:/openai)?(?:/v1)?/models/?$")
BAD_JSON = ("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
            "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
OK_HEADERS = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
              "x-ratelimit-reset-requests": "1s", "x-ratelimit-limit-tokens": "150000",
              "x-ratelimit-remaining-tokens": "149000", "x-ratelimit-reset-tokens": "400ms"}
MID_STREAM = ("cut", "stream_reset", "stall", "stream_error", "stream_eof", "bad_json")


class Handler(BaseHandler):
    """Keep-alive HTTP/1.1 handler; connection tracking, hang() and drop() come from the Gemini fake's handler."""

    server_version = "FakeOpenAI/1.0"

    def setup(self):
        super().setup()
        with self.fake._lock:
            self.fake._connections += 1

    def send_json(self, status, body, headers=None):
        self.send_raw(status, json.dumps(body, ensure_ascii=False).encode(), headers)

    def send_raw(self, status, data, headers=None, length=None):
        """Status, headers (a request id on every answer, as OpenAI sends) and the body, or its first bytes."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        self.send_header("openai-processing-ms", "1")
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)

    def bearer(self):
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def authorized(self, cfg):
        """True when no key is set or the Bearer key matches; otherwise answers 401 and returns False."""
        if cfg["key"] is None or self.bearer() == cfg["key"]:
            return True
        self.send_json(*auth_error(self.bearer()))
        return False

    def not_found(self, path):
        self.send_json(404, error_body(f"Invalid URL ({self.command} {path})"))

    def do_GET(self):
        path = self.path.split("?")[0]
        answer = self.fake.read_control(path)
        if answer is not None:
            return self.send_json(200, answer)
        if MODELS.match(path):
            cfg = self.fake.configure()
            if self.authorized(cfg):
                names = (cfg["models"] or "fake-model").split(",")
                self.send_json(200, {"object": "list", "data": [
                    {"id": n, "object": "model", "created": 1700000000, "owned_by": "fake"} for n in names]})
            return None
        self.not_found(path)

    def do_POST(self):
        path = self.path.split("?")[0]
        try:
            body = self.read_json()
        except ValueError:
            if CHAT.match(path):
                self.fake._plan("invalid", None, None, self.headers)  # a broken request is still an upstream call
            return self.send_json(400, error_body(BAD_JSON))
        if CHAT.match(path):
            return self.chat(body)
        try:
            answer = self.fake.control(path, body)
        except (TypeError, ValueError) as exc:
            return self.send_json(400, error_body(str(exc)))
        if answer is None:
            return self.not_found(path)
        return self.send_json(200, answer)

    # --- one chat completion

    def chat(self, request):
        fake = self.fake
        valid = isinstance(request, dict)
        model = request.get("model") if valid else None
        cfg, entry, fault = fake._plan(kind_of(request) if valid else "invalid", model, request, self.headers)
        latency = (entry or {}).get("latency_ms", cfg["latency_ms"])
        if latency and fake.wait(latency / 1000):
            return self.drop()
        if not self.authorized(cfg):
            return None
        if entry is not None and valid:
            return self.scripted(request, entry, cfg)
        problem = check(request, cfg)
        if problem:
            return self.send_json(*problem)
        if fault in HTTP_ERRORS:
            return self.send_json(*http_error(fault, model, cfg["retry_after"]))
        if fault == "hang":
            return self.hang()
        if fault == "reset":
            return self.drop()
        content, finish, refusal = shape(request, build_text(request), cfg["malformed"])
        self.deliver(request, content, finish, refusal, fault, cfg)

    def scripted(self, request, entry, cfg):
        if entry.get("error"):
            fault = str(entry["error"])
            if fault in HTTP_ERRORS:
                return self.send_json(*http_error(fault, request.get("model"), cfg["retry_after"]))
            if fault in ("hang", "reset"):
                return self.hang() if fault == "hang" else self.drop()
            content, finish, refusal = shape(request, build_text(request))
            return self.deliver(request, content, finish, refusal, fault, cfg)
        status = int(entry.get("status", 200))
        if "body" in entry:
            return self.send_json(status, entry["body"], entry.get("headers"))
        if status != 200:
            code, body, headers = status_error(status, entry.get("text"))
            return self.send_json(code, body, {**headers, **(entry.get("headers") or {})})
        parts = entry.get("chunks")
        text = "".join(parts) if parts is not None else entry.get("text")
        text = build_text(request) if text is None else text
        self.deliver(request, text, entry.get("finish_reason") or "stop", None, None, cfg, parts, entry.get("headers"))

    def deliver(self, request, content, finish, refusal, fault, cfg, parts=None, headers=None):
        """Send a successful answer, plain or streamed, bent by a body fault when one is given."""
        if request.get("stream"):
            return self.stream(request, content, finish, refusal, fault, cfg, parts, headers)
        data = json.dumps(completion(request["model"], request, content, finish, refusal),
                          ensure_ascii=False).encode()
        headers = {**OK_HEADERS, **(headers or {})}
        if fault == "bad_json":
            return self.send_raw(200, data[: len(data) // 2], headers)
        if fault in ("cut", "stream_reset", "stall"):
            self.send_raw(200, data[: len(data) // 2], headers, length=len(data))
            return self.hang() if fault == "stall" else self.drop()
        self.send_raw(200, data, headers)

    def stream(self, request, content, finish, refusal, fault, cfg, parts, headers):
        """Server-sent events over chunked encoding, one chat.completion.chunk per event, then [DONE]."""
        events = chunks(request["model"], request, content, finish, refusal, parts, cfg["chunk_size"])
        deltas = sum(1 for e in events if e["choices"] and "content" in e["choices"][0]["delta"]) - 1
        wanted = min(cfg["fault_after_chunks"] or deltas // 2, deltas - 1)  # never the last delta
        stop_at = 1 + max(1, wanted) if fault in MID_STREAM else len(events)
        pause = cfg["chunk_latency_ms"] / 1000
        self.send_response(200)
        for name, value in {"Content-Type": "text/event-stream; charset=utf-8", "Transfer-Encoding": "chunked",
                            "Cache-Control": "no-cache", "x-request-id": "req_" + uuid.uuid4().hex,
                            **OK_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for i, event in enumerate(events[:stop_at]):
                if i and pause and self.fake.wait(pause):
                    return self.drop()
                self.event(json.dumps(event, ensure_ascii=False))
            if fault in MID_STREAM and pause and self.fake.wait(pause):
                return self.drop()
            if fault in ("cut", "stream_reset"):
                return self.drop()
            if fault == "stall":
                return self.hang()
            if fault == "bad_json":
                self.event('{"id": "chatcmpl-broken", "choices": [{"delta": {"content": "')
            elif fault == "stream_error":
                self.event(json.dumps(error_body("The server had an error while processing your request. Sorry "
                                                 "about that!", "server_error")))
            elif fault != "stream_eof":
                self.event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client went away mid-stream

    def event(self, data):
        """One SSE event as one HTTP chunk."""
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
