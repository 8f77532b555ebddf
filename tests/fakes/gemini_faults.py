"""Settings of the fake Gemini server, the faults they inject and the error bodies it answers with."""

from tests.fakes.fake_settings import SettingsTable

HTTP_ERRORS = {
    "400": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "429": (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details."),
    "500": (500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                             "https://developers.generativeai.google/guide/troubleshooting"),
    "503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}
MALFORMED = ("markdown", "truncated", "prose", "empty", "blocked", "safety")
# Transport faults. Before any byte: hang (no answer), reset (TCP RST). In the body (a plain answer: after half its
# bytes; a stream: after half its chunks): cut (a piece promised but cut short, then FIN: the client reports a
# protocol error), stall (silence), stream_reset (RST). Streams only (a plain call answers normally): stream_error
# (an error event), stream_eof (a body without chunking that ends cleanly, with no finishReason).
MID_BODY = ("cut", "stall", "stream_reset")
STREAM_ONLY = ("stream_error", "stream_eof")
FAULTS = tuple(HTTP_ERRORS) + ("hang", "reset") + MID_BODY + STREAM_ONLY + MALFORMED
# Which calls fail: with fail_next > 0 that many calls fail with `error` (503 when unset), then both
# clear (the upstream heals); else with error_rate > 0 that share of calls fails, drawn from a Random
# seeded by `seed`; else a set `error` fails every call. `error` also takes the malformed modes, so they
# can be injected at a rate; `malformed` alone bends every successful answer. Streams send their text in pieces
# of `chunk_size` characters, `chunk_latency_ms` apart (`latency_ms` comes before the first byte). A fault in the
# middle of a stream strikes after `fault_after_chunks` text chunks (0: after half of them; never after the last),
# `chunk_latency_ms` after the last chunk sent: error=stream_reset, fault_after_chunks=1 is a connection reset
# right after the first piece.
DEFAULTS = {"latency_ms": 0, "chunk_latency_ms": 0, "chunk_size": 32, "fault_after_chunks": 0, "error": None,
            "error_rate": 0.0, "seed": None, "fail_next": 0, "retry_after": 1, "malformed": None, "key": None}
TYPES = {"latency_ms": int, "chunk_latency_ms": int, "chunk_size": int, "fault_after_chunks": int, "error": str,
         "error_rate": float, "seed": int, "fail_next": int, "retry_after": int, "malformed": str, "key": str}
CHOICES = {"error": FAULTS, "malformed": MALFORMED}


def error_body(code, status, message, details=None):
    """An error in Google's shape."""
    error = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def auth_error(key):
    """What Google answers for a wrong key (400) or no key at all (403)."""
    if not key:
        return 403, error_body(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers "
                               "without established identity). Please use API Key or other form of API "
                               "consumer identity to call this API.")
    message = "API key not valid. Please pass a valid API key."
    return 400, error_body(400, "INVALID_ARGUMENT", message, [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}])


SETTINGS = SettingsTable(DEFAULTS, TYPES, CHOICES)
