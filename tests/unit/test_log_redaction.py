"""No key, key= parameter or Redis password in any log line; CR/LF in logged text cannot forge lines."""
from __future__ import annotations

import logging

from backend.observability.redaction import redact
from tests.conftest import ADMIN_KEY, CLIENT_KEY


def test_redaction_of_known_secret_shapes():
    line = redact("GET https://x/y?key=AIzaSECRET&alt=json redis://:p4ss@h:6379/0 X-API-Key: k1 Bearer tok3n")
    for secret in ("AIzaSECRET", "p4ss", "k1", "tok3n"):
        assert secret not in line
    assert "alt=json" in line and "redis://:***@h:6379/0" in line


def test_crlf_cannot_forge_a_log_line():
    assert "\n" not in redact("user says hi\n{\"level\": \"ERROR\", \"message\": \"forged\"}")
    assert "\r" not in redact("a\rb")


def test_logs_of_real_requests_hold_no_secret(make_app, capfd):
    app = make_app(CACHE_MODE="redis", REDIS_URL="redis://:sup3r-s3cret@127.0.0.1:1/0")
    client = app.test_client()
    client.post("/api/create_subtopics?key=query-s3cret", json={"topic": "Logs"},
                headers={"X-API-Key": CLIENT_KEY})
    client.post("/api/analyze", json={"text": "x"}, headers={"Authorization": "Bearer wrong-bearer-s3cret"})
    client.get("/api/cache/stats", headers={"X-Admin-Key": ADMIN_KEY})
    logging.getLogger("backend.test").warning("connecting to redis://:sup3r-s3cret@10.0.0.1:6379 with key=abc")
    output = capfd.readouterr().err
    assert "redis unreachable" in output  # the outage was logged ...
    for secret in ("sup3r-s3cret", "query-s3cret", "wrong-bearer-s3cret", CLIENT_KEY, ADMIN_KEY):
        assert secret not in output  # ... and nothing secret was


def test_extra_fields_and_tracebacks_are_redacted_too(make_app, capfd):
    make_app()
    log = logging.getLogger("backend.test")
    log.warning("upstream said no", extra={"detail": "bad request for key=AIzaEXTRA-s3cret"})
    try:
        raise RuntimeError("connecting to redis://:tb-s3cret@10.0.0.1:6379")
    except RuntimeError:
        log.exception("failed")
    output = capfd.readouterr().err
    assert "EXTRA-s3cret" not in output and "tb-s3cret" not in output and "Traceback" in output
