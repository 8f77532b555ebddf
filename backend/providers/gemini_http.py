"""generateContent over a kept-alive urllib3 pool, sent as google-genai's own API client sends it.

Why: of an uncached analysis (about 4.6 ms of CPU in-process), the SDK's API client took some 44 %: httpx builds,
validates and parses every request and answer in Python (URL objects, header normalisation, h11 events) around a
round trip whose shape is the same every time. Measured in-process against the fake, one call after another: the
SDK's request 1,200 us of CPU, the same POST through urllib3 450-580 us, through bare http.client 250-350 us. With
the lighter reading of the answer (gemini_request._read_answer), a whole uncached analysis takes 680-760 us less
(`python -m bench.app_cpu --compare`, 31 rounds in lockstep with the tree before: 4.63 -> 3.82 ms, 4.06 -> 3.43 ms),
of which the answer's reading is some 130 us. urllib3 rather than a pool of our own over http.client: it is the
pinned, well-kept client this service already uses (backend/media/fetch.py), and it brings what a pool of our own
would have to get right (checking a kept-alive socket before reuse, TLS with hostname checks, content decoding, the
body's length enforced); the ~200 us it costs over bare http.client buys not owning that code.

What is the same as the SDK's request, deliberately (tests/unit/test_gemini_wire.py compares both on the wire):
- URL and headers are the SDK's own: the URL from its request builder, the API-key, user-agent and x-goog-api-client
  headers from its client options, X-Server-Timeout from its helper; Accept, Accept-Encoding and Connection as httpx
  sends them. The body is the same json.dumps of the same dict.
- Timeouts: httpx's single timeout applies to connecting, each read, each write and waiting for a pooled connection;
  here to connecting, each read (and the send) and the pool.
- No retries at all (retries=False: urllib3 raises the first error as it is; redirects are returned, not followed),
  as the SDK makes exactly one attempt without retry_options: retrying is the resilience policy's decision. A POST
  is never sent twice by this client: a kept-alive connection the server closed is found closed before the request
  is written (urllib3 checks the socket when it takes it from the pool) and a new one is opened instead; a request
  that fails once written is not retried here, since the server may have processed (and billed) it.
- Like httpx (keepalive_expiry), a connection idle for KEEPALIVE_SECONDS or more is not reused, so a server that
  drops idle connections after a few seconds does not race our next request on them.
- Failures are raised as the SDK's: an answer other than 200 through google.genai.errors.APIError.raise_for_response
  (ClientError, ServerError, Retry-After kept in its headers), transport failures as the httpx2 exceptions httpx
  would raise (timeouts, connection refused or reset, a body cut short), so gemini_errors.map_failure is unchanged.
Where the client is configured beyond that (Vertex AI, retry options, an extra body, an own httpx client or client
arguments, a proxy in the environment, a collection-scoped base URL, an ephemeral token), for_client answers None
and the SDK's own path is used.
"""
from __future__ import annotations

import codecs
import http.client
import json
import ssl
import threading
import time
import urllib.request
from typing import Any

import httpx2
import urllib3
from google.genai import _api_client
from google.genai import errors as genai_errors
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection

# httpx's keepalive_expiry (the SDK's client keeps its default): an idle connection this old is closed, not reused.
KEEPALIVE_SECONDS = 5.0
# httpx's max_connections: past this many calls at once in one worker, a call waits for a connection (pool timeout).
MAX_CONNECTIONS = 100
# What httpx adds to every request besides the SDK's headers (its default user-agent is replaced by the SDK's).
_HTTPX_HEADERS = {"Accept": "*/*", "Accept-Encoding": ", ".join(urllib3.util.request.ACCEPT_ENCODING.split(",")),
                  "Connection": "keep-alive"}


class _KeptAlive:
    """A pooled connection reused only while it is open and was idle for less than KEEPALIVE_SECONDS."""

    idle_since = 0.0

    @property
    def is_connected(self) -> bool:  # urllib3 asks this before it reuses a pooled connection
        return super().is_connected and time.monotonic() - self.idle_since < KEEPALIVE_SECONDS  # type: ignore[misc]

    def getresponse(self) -> Any:
        response = super().getresponse()  # type: ignore[misc]  # the whole body is read here (preload_content)
        self.idle_since = time.monotonic()
        return response


class _Kept(_KeptAlive, HTTPConnection):
    pass


class _KeptTLS(_KeptAlive, HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Kept


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _KeptTLS


class GeminiHttp:
    """The generateContent POSTs of one SDK client (its base URL, key and headers), over one connection pool."""

    def __init__(self, api_client: Any, origin: httpx2.URL, ssl_context: ssl.SSLContext) -> None:
        self._api_client = api_client
        options = api_client._http_options
        sdk_headers = dict(options.headers)
        names = {name.lower() for name in sdk_headers}
        self._headers = {**{k: v for k, v in _HTTPX_HEADERS.items() if k.lower() not in names}, **sdk_headers}
        self._timeout_ms = options.timeout
        self._origin = origin
        self._targets: dict[str, str] = {}
        self._lock = threading.Lock()
        common: dict[str, Any] = {"maxsize": MAX_CONNECTIONS, "block": True, "retries": False}
        port = origin.port or (443 if origin.scheme == "https" else 80)
        self._pool: urllib3.HTTPConnectionPool = (
            _TLSPool(origin.host, port, ssl_context=ssl_context, **common) if origin.scheme == "https"
            else _Pool(origin.host, port, **common))

    @classmethod
    def for_client(cls, api_client: Any) -> GeminiHttp | None:
        """A thin client for an SDK client of the plain Gemini API with an API key, or None (see the module)."""
        options = api_client._http_options
        key = api_client.api_key or ""
        if (api_client.vertexai or not key or key.startswith("auth_tokens/") or options.retry_options is not None
                or options.httpx_client is not None or options.base_url_resource_scope is not None
                or options.extra_body
                or set(options.client_args or {}) - {"event_hooks"} or not options.base_url or not options.headers):
            return None
        # The only event hook (gemini_stream.on_response) serves streams: plain calls pass through it untouched.
        origin = httpx2.URL(options.base_url)
        if origin.scheme not in ("http", "https") or _proxied(origin):
            return None
        # The TLS context the SDK built its own client with (truststore, or SSL_CERT_FILE / SSL_CERT_DIR).
        verify = _api_client.BaseApiClient._ensure_httpx_ssl_ctx(options)[0].get("verify")
        if not isinstance(verify, ssl.SSLContext):
            return None
        return cls(api_client, origin, verify)

    def post(self, path: str, request: dict[str, Any], timeout_ms: int | None) -> tuple[dict[str, str], str]:
        """POST ``request`` to ``path`` (as the SDK's API client names it); (response headers, body text) of a 200.
        ``timeout_ms``: the call's own timeout, None for the client's."""
        seconds = _api_client.get_timeout_in_seconds(timeout_ms if timeout_ms is not None else self._timeout_ms)
        headers = dict(self._headers)
        _api_client.populate_server_timeout_header(headers, seconds)
        try:
            response = self._pool.urlopen(
                "POST", self._target(path), body=json.dumps(request).encode(), headers=headers,
                timeout=urllib3.Timeout(connect=seconds, read=seconds), retries=False, redirect=False,
                pool_timeout=seconds,  # type: ignore[arg-type]  # typed int, used as queue.get's float timeout
                preload_content=True, decode_content=True)
        except u3.HTTPError as exc:
            raise _as_httpx(exc) from exc
        if response.status != 200:
            _raise_api_error(response)
        answer_headers = {name.lower(): value for name, value in response.headers.itermerged()}
        return answer_headers, response.data.decode(_charset(answer_headers.get("content-type")), "replace")

    def close(self) -> None:
        self._pool.close()

    def _target(self, path: str) -> str:
        """The request target of a path, as the SDK's request builder and httpx make it (built once per path)."""
        target = self._targets.get(path)
        if target is None:
            url = httpx2.URL(self._api_client._build_request("post", path, {}, None).url)
            if (url.scheme, url.host, url.port) != (self._origin.scheme, self._origin.host, self._origin.port):
                raise ValueError(f"{path!r} is not under the client's base URL")
            target = url.raw_path.decode("ascii")
            with self._lock:
                self._targets[path] = target
        return target


def _proxied(origin: httpx2.URL) -> bool:
    """Whether the environment routes this origin through a proxy (httpx would: trust_env)."""
    proxies = urllib.request.getproxies()
    return bool(proxies.get(origin.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(origin.host)


def _charset(content_type: str | None) -> str:
    """The text encoding httpx would decode the body with: the charset the server named if known, else UTF-8."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _raise_api_error(response: Any) -> None:
    """Raise an answer other than 200 exactly as the SDK's API client does (errors.APIError.raise_for_response), from
    an httpx2.Response of it: the body is already decoded, so its Content-Encoding and length do not go with it."""
    headers = [(name, value) for name, value in response.headers.items()
               if name.lower() not in ("content-encoding", "content-length")]
    reason = (response.reason or "").encode("latin-1", "ignore")
    genai_errors.APIError.raise_for_response(
        httpx2.Response(response.status, headers=headers, content=response.data,
                        extensions={"reason_phrase": reason}))


def _as_httpx(exc: u3.HTTPError) -> Exception:
    """The httpx2 exception httpx raises for the same failure (the class is what gemini_errors.map_failure reads)."""
    message = str(exc)
    if isinstance(exc, u3.NewConnectionError):  # refused, unreachable, no such host (before ConnectTimeoutError: a
        return httpx2.ConnectError(message)       # subclass of it)
    if isinstance(exc, u3.ConnectTimeoutError):
        return httpx2.ConnectTimeout(message)
    if isinstance(exc, u3.ReadTimeoutError):  # no answer, or a body stalled, within the timeout
        return httpx2.ReadTimeout(message)
    if isinstance(exc, u3.EmptyPoolError):
        return httpx2.PoolTimeout(message)
    if isinstance(exc, u3.SSLError):
        return httpx2.ConnectError(message)
    if isinstance(exc, u3.DecodeError):
        return httpx2.DecodingError(message)
    if isinstance(exc, u3.ProtocolError):
        cause = exc.args[1] if len(exc.args) > 1 else exc.__cause__
        if isinstance(cause, http.client.HTTPException):  # closed before an answer, or a body cut short
            return httpx2.RemoteProtocolError(message)
        if isinstance(cause, TimeoutError):  # the request could not be written within the timeout
            return httpx2.WriteTimeout(message)
        return httpx2.ReadError(message)  # reset
    if isinstance(exc, u3.ProxyError):
        return httpx2.ProxyError(message)
    return httpx2.TransportError(message)
