"""The HTTP side of the fake Gemini server: generateContent (plain and streamed), /_fake control routes, faults."""

import json
import re
import select
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.gemini_answers import build_answer, shaped
from tests.fakes.gemini_faults import HTTP_ERRORS, MID_BODY, STREAM_ONLY, auth_error, error_body
from tests.fakes.gemini_stream import send_stream

ROUTE = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent)$")
KINDS = ("generate", "stream")
HANG_LIMIT_S = 600


class Server(ThreadingHTTPServer):
    """Threading server with a deep listen backlog, quiet about clients that went away."""

    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle keep-alive connections
    request_queue_size = 2048
    allow_reuse_address = True
    verbose = False

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler for the API route and the /_fake control routes."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no delayed-ACK stalls
    server_version = "FakeGemini/1.0"
    streaming = False  # whether the request being answered is a streamGenerateContent one

    def setup(self):
        super().setup()
        with self.fake._lock:
            self.fake._sockets.add(self.connection)

    def finish(self):
        with self.fake._lock:
            self.fake._sockets.discard(self.connection)
        super().finish()

    @property
    def fake(self):
        return self.server.fake

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)

    def send_json(self, status, body, headers=None, cut=None):
        """Send a JSON answer; with cut, only the first half of its body and then that fault (see MID_BODY)."""
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        if cut is None:
            return self.wfile.write(data)
        self.wfile.write(data[: len(data) // 2])
        if cut == "stall":
            return self.hang()
        if cut == "stream_reset":
            return self.drop()
        self.close_connection = True  # cut: the server closes after a body shorter than its Content-Length

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else None

    def do_GET(self):
        path = self.path.split("?")[0]
        answer = self.fake.read_control(path)
        if answer is None:
            return self.not_found(path)
        return self.send_json(200, answer)

    def do_POST(self):
        path, route = self.path.split("?")[0], ROUTE.match(self.path.split("?")[0])
        try:
            body = self.read_json()
        except ValueError as exc:
            if route:
                self.fake._plan(route.group(2), None, self.kind(route), path)  # a broken request is still a call
            return self.send_json(400, error_body(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}"))
        if route:
            return self.generate(route.group(2), body if isinstance(body, dict) else {}, self.kind(route), path)
        try:
            answer = self.fake.control(path, body)
        except (TypeError, ValueError) as exc:
            return self.send_json(400, error_body(400, "INVALID_ARGUMENT", str(exc)))
        if answer is None:
            return self.not_found(path)
        return self.send_json(200, answer)

    def not_found(self, path):
        self.send_json(404, error_body(404, "NOT_FOUND", f"The requested URL {path} was not found on this server."))

    @staticmethod
    def kind(route):
        return "stream" if route.group(3) == "streamGenerateContent" else "generate"

    def generate(self, model, request, kind="generate", path=None):
        fake = self.fake
        self.streaming = kind == "stream"
        cfg, entry, fault = fake._plan(model, request, kind, path)
        if cfg["latency_ms"] and fake.wait(cfg["latency_ms"] / 1000):
            return self.drop()
        if cfg["key"] is not None and self.api_key() != cfg["key"]:
            return self.send_json(*auth_error(self.api_key()))
        if entry is not None:
            return self.scripted(model, request, entry, cfg)
        self.inject(model, request, fault, cfg)

    def api_key(self):
        """The key from the header, or from ?key= as the real API also accepts."""
        query = dict(p.partition("=")[::2] for p in self.path.partition("?")[2].split("&") if p)
        return self.headers.get("x-goog-api-key") or query.get("key")

    def scripted(self, model, request, entry, cfg):
        if entry.get("error"):
            return self.inject(model, request, str(entry["error"]), cfg)
        status = int(entry.get("status", 200))
        if "body" in entry:
            body = entry["body"]
        elif status != 200:
            _, state, message = HTTP_ERRORS.get(str(status), (status, "UNKNOWN", "Scripted error."))
            body = error_body(status, state, entry.get("text") or message)
        else:
            chunks = entry.get("chunks")
            text = "".join(chunks) if chunks is not None else entry.get("text")
            body = shaped(model, request, text if text is not None else build_answer(request), None)
            if entry.get("finish_reason"):
                body["candidates"][0]["finishReason"] = entry["finish_reason"]
            if self.streaming:
                return send_stream(self, body, None, cfg, chunks)
        if self.streaming and status == 200:
            return send_stream(self, body, None, cfg, whole=True)  # a scripted body goes out as one event
        self.send_json(status, body, entry.get("headers"))

    def inject(self, model, request, fault, cfg):
        """Answer with an injected fault, a malformed mode (a set fault's, else the configured one), or normally."""
        if fault in HTTP_ERRORS:
            return self.http_error(fault, cfg)
        if fault == "hang":
            return self.hang()
        if fault == "reset":
            return self.drop()
        transport = fault if fault in MID_BODY + STREAM_ONLY else None
        mode = cfg["malformed"] if transport else fault or cfg["malformed"]
        body = shaped(model, request, build_answer(request), mode)
        if self.streaming:
            return send_stream(self, body, transport, cfg)
        self.send_json(200, body, cut=transport if transport in MID_BODY else None)  # stream faults: a plain answer

    def http_error(self, fault, cfg):
        code, status, message = HTTP_ERRORS[fault]
        headers, details = {}, None
        if code == 429:
            headers["Retry-After"] = cfg["retry_after"]
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{cfg['retry_after']}s"}]
        self.send_json(code, error_body(code, status, message, details), headers)

    def hang(self):
        """Answer nothing until the client hangs up (or the server stops)."""
        deadline, sock = time.monotonic() + HANG_LIMIT_S, self.connection
        while time.monotonic() < deadline and not self.fake.wait(0):
            readable, _, _ = select.select([sock], [], [], 0.2)
            try:
                if readable and not sock.recv(1, socket.MSG_PEEK):
                    break  # the client closed its end
            except OSError:
                break
            if readable:
                self.fake.wait(0.2)  # bytes but no hang-up: do not spin
        self.close_connection = True

    def drop(self):
        """Close the connection with a TCP reset and no response at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
