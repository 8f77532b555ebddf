"""JSON (or text) logs on stderr, each line carrying the request id and the process id; shorter lines for an
operator's command."""
from __future__ import annotations

import logging
import sys

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

from backend.observability.redaction import redact

_HANDLER_MARK = "_backend_ai_handler"
_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(request_id)s %(message)s"
_TEXT = "%(asctime)s %(levelname)s [%(process)d] %(name)s [%(request_id)s] %(message)s"


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class RequestContextFilter(logging.Filter):
    """Attach the current request id to every record, and scrub secrets from the message and the extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        if record.args:
            record.msg, record.args = record.getMessage(), None
        record.msg = redact(str(record.msg))
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, redact(value))
        return True


class _RedactedTracebacks:
    """Formatter mixin: tracebacks quote source lines and exception messages, which may hold secrets too."""

    def formatException(self, ei) -> str:  # noqa: N802  (logging's name)
        return redact(super().formatException(ei), flatten=False)  # type: ignore[misc]


class JsonLineFormatter(_RedactedTracebacks, JsonFormatter):
    """JSON lines."""


class TextLineFormatter(_RedactedTracebacks, logging.Formatter):
    """Lines for people."""


class CommandLineFormatter(_RedactedTracebacks, logging.Formatter):
    """Lines for an operator's command (`flask --app wsgi ...`, backend/cli.py): level, logger and message, then
    the record's extra fields, which JSON lines carry as keys and a plain format would drop (three "breaker reset"
    lines would not say which breaker). No time, process or request id: one process, no request, and a release or
    Job log stamps its lines itself."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  (logging's name)
        extra = [f"{name}={value}" for name, value in vars(record).items() if name not in _STANDARD]
        return super().formatMessage(record) + (f" ({', '.join(extra)})" if extra else "")


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Install one stderr handler on the root logger, replacing the one installed before. ``fmt``: LOG_FORMAT's
    "json" or "text", or "command" (not a LOG_FORMAT value: what an operator's command uses unless it is set)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    if fmt == "json":
        handler.setFormatter(JsonLineFormatter(_FIELDS, rename_fields={"levelname": "level", "asctime": "time"}))
    elif fmt == "command":
        handler.setFormatter(CommandLineFormatter())
    else:
        handler.setFormatter(TextLineFormatter(_TEXT))
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party clients log every HTTP exchange at INFO; keep ours readable.
    for noisy in ("httpx", "httpx2", "httpcore", "google_genai", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
