"""A raw HTTP/1.1 server for wire tests of the Gemini adapter: it records each request as it arrived (request line,
headers in order, body, which connection) and answers from a script, including answers no real server library would
give on purpose (closing an idle kept-alive connection, hanging up on a request it has read).

tests/fakes/gemini.py is the behavioural fake; this one is for what the fake cannot show: the headers on the wire and
which TCP connection carried each request.
"""
from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field

ANSWER = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello there."}]}, "finishReason": "STOP",
                          "index": 0}],
          "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
          "modelVersion": "gemini-2.5-flash"}


@dataclass
class Seen:
    connection: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header_set(self) -> set[tuple[str, str]]:
        """The headers as (lower-case name, value), without Host (its port differs between servers)."""
        return {(name.lower(), value) for name, value in self.headers if name.lower() != "host"}


@dataclass
class Reply:
    """One scripted answer: a status, headers and JSON body; then ``close`` closes the connection (no notice) after
    it. ``hang_up`` instead reads the request and closes without answering (``reset``: with a TCP reset)."""

    status: int = 200
    body: object = field(default_factory=lambda: ANSWER)
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False
    hang_up: bool = False
    reset: bool = False


class WireServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.seen: list[Seen] = []
        self.connections = 0
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def close_idle(self) -> None:
        """Close every connection the server holds open (as a server's idle timeout does), with a FIN."""
        with self._lock:
            held, self._open = self._open, []
        for sock in held:
            _close(sock)

    def stop(self) -> None:
        self.close_idle()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(sock, number), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self._tls:
                sock = self._tls.wrap_socket(sock, server_side=True)
            with self._lock:
                self._open.append(sock)
            reader = sock.makefile("rb")
            while True:
                seen = _read_request(reader, number)
                if seen is None:
                    return _close(sock)
                with self._lock:
                    self.seen.append(seen)
                    reply = self._script.pop(0) if self._script else Reply()
                if reply.hang_up:
                    reader.close()
                    if reply.reset:  # closed with SO_LINGER 0: a reset, no FIN
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return sock.close()
                    return _close(sock)
                sock.sendall(_response(reply))
                if reply.close:
                    return _close(sock)
        except (OSError, ValueError):
            _close(sock)


def _read_request(reader, number: int) -> Seen | None:
    line = reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while (row := reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = row.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    length = int(next((v for n, v in headers if n.lower() == "content-length"), "0"))
    return Seen(number, method, target, headers, reader.read(length) if length else b"")


def _response(reply: Reply) -> bytes:
    body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
    head = [f"HTTP/1.1 {reply.status} X", "Content-Type: application/json; charset=UTF-8",
            f"Content-Length: {len(body)}", *(f"{name}: {value}" for name, value in reply.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _close(sock: socket.socket) -> None:
    """Close now (a FIN, or the reset SO_LINGER asked for), whatever else still holds the socket (its reader)."""
    for step in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
        try:
            step()
        except OSError:
            pass
