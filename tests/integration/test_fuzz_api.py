"""Fuzzing the whole API: schemathesis against /openapi.json, and hostile bodies to every route."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from backend.db.migrate import upgrade
from tests.audio_samples import speech_wav
from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import Gunicorn

pytestmark = pytest.mark.gunicorn


@pytest.fixture(scope="module")
def server(fake_gemini, fake_azure, tmp_path_factory):
    env = {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "ADMIN_API_KEY": ADMIN_KEY,
           "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
           "AZURE_SPEECH_KEY": FAKE_PROVIDER_KEY, "AZURE_SPEECH_HOST": fake_azure.host_url,
           "CACHE_MODE": "disk", "CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
           # Fuzzing is about every answer being documented: limits and auth throttling would hide the logic.
           "RATE_LIMIT_AI": "100000/minute", "RATE_LIMIT_AI_PER_KEY": "100000/minute",
           "RATE_LIMIT_DEFAULT": "100000/minute",
           "AUTH_FAILURE_LIMIT_PER_MINUTE": "100000", "MAX_AUDIO_BYTES": "2000000"}
    # The conversation endpoints are fuzzed too: on a migrated database of their own.
    database = tmp_path_factory.mktemp("db") / "fuzz.db"
    upgrade(f"sqlite:///{database}")
    env["DATABASE_URL"] = f"sqlite:///{database}"
    with Gunicorn(env, workers=2, threads=8) as instance:
        yield instance


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(server, tmp_path):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    config = Path(__file__).resolve().parents[1] / "fuzz" / "schemathesis.toml"
    command = [str(schemathesis if schemathesis.exists() else shutil.which("schemathesis")),
               "--config-file", str(config), "run",
               f"{server.url}/openapi.json", "--max-examples", "12", "--seed", "20261122",
               "-H", f"X-API-Key: {CLIENT_KEY}", "-H", f"X-Admin-Key: {ADMIN_KEY}", "--request-timeout", "20",
               "--report", "junit", "--report-dir", str(tmp_path)]
    # cwd: schemathesis keeps a cache of examples in the working directory; not in the checkout.
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"})
    (tmp_path / "schemathesis.txt").write_text(result.stdout)
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    # Schemathesis leaves out the document's own path.
    operations = sum(len(methods) for path, methods in document["paths"].items() if path != "/openapi.json")
    assert f"Tested: {operations}" in summary, summary


ROUTES = [("POST", "/api/analyze"), ("POST", "/api/create_subtopics"), ("POST", "/api/explanation"),
          ("POST", "/api/transcribe"), ("POST", "/api/pronunciation"), ("POST", "/api/cache/clear"),
          ("POST", "/api/circuit-breaker/reset"), ("POST", "/api/circuit-breaker/open"),
          ("GET", "/api/health"), ("GET", "/api/metrics"), ("GET", "/health/ready")]


def hostile_bodies() -> list[tuple[str, bytes, str]]:
    """Random bytes, truncated WAVs, huge and deeply nested JSON, broken multipart."""
    rng = random.Random(7)
    wav = speech_wav(segments=1)
    return [
        ("random", bytes(rng.getrandbits(8) for _ in range(4096)), "application/json"),
        ("random-octets", bytes(rng.getrandbits(8) for _ in range(4096)), "application/octet-stream"),
        ("truncated-wav-json", wav[:100], "application/json"),
        ("huge-json", b'{"text": "' + b"a" * 3_000_000 + b'"}', "application/json"),
        ("deep-json", b"[" * 50_000 + b"]" * 50_000, "application/json"),
        ("nul-bytes", b'{"text": "\x00\x00"}', "application/json"),
        ("bad-utf8", b'{"text": "\xff\xfe\xfd"}', "application/json"),
        ("broken-multipart", b"--x\r\nContent-Disposition: form-data; name=audio; filename=a.wav\r\n\r\n" + wav[:80],
         "multipart/form-data; boundary=x"),
        ("multipart-no-boundary", wav, "multipart/form-data"),
    ]


@pytest.mark.parametrize("name, body, content_type", hostile_bodies(), ids=[b[0] for b in hostile_bodies()])
def test_hostile_bodies_get_only_4xx_envelopes(server, name, body, content_type):
    for method, path in ROUTES:
        response = requests.request(method, f"{server.url}{path}", data=body, timeout=30, headers={
            "Content-Type": content_type, "X-API-Key": CLIENT_KEY, "X-Admin-Key": ADMIN_KEY})
        assert response.status_code < 500, (path, response.status_code, response.text[:300])
        if path.startswith("/api/") and response.status_code >= 400:
            assert response.json()["success"] is False, (path, response.text[:300])


def test_a_wav_cut_inside_its_header_is_refused(server):
    # (A WAV whose data chunk is merely shorter than its header says decodes what is there, as players do.)
    wav = speech_wav(segments=1)
    for cut in (10, 30, 44, 47):
        response = requests.post(f"{server.url}/api/transcribe", files={"audio": ("a.wav", wav[:cut])},
                                 headers={"X-API-Key": CLIENT_KEY}, timeout=30)
        assert response.status_code in (415, 422), (cut, response.text[:200])


@pytest.mark.parametrize("size", [2_100_000, 30_000_000])
def test_oversized_upload_is_a_413_envelope_not_a_reset(server, size):
    response = requests.post(f"{server.url}/api/transcribe", files={"audio": ("big.wav", b"\0" * size)},
                             headers={"X-API-Key": CLIENT_KEY}, timeout=60)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE" and "MAX_AUDIO_BYTES" in error["message"]


@pytest.mark.parametrize("path", ["/api/analyze", "/api/transcribe", "/api/cache/clear", "/api/circuit-breaker/open"])
def test_a_chunked_json_body_is_capped_by_what_is_read(server, path):
    """The attack: a chunked body declares no Content-Length, so a 1.5 MB JSON body slipped past the 256 KiB cap
    and was parsed whole (a valid object: it used to get 422 for its contents, not 413)."""
    def chunks():
        yield b'{"text": "'
        for _ in range(100):
            yield b"a" * 15_000
        yield b'"}'

    response = requests.post(f"{server.url}{path}", data=chunks(), timeout=30, headers={
        "Content-Type": "application/json", "X-API-Key": CLIENT_KEY, "X-Admin-Key": ADMIN_KEY})
    assert response.status_code == 413, (path, response.status_code, response.text[:300])
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "JSON bodies" in response.json()["error"]["message"]


def test_a_small_chunked_json_body_is_still_read(server):
    response = requests.post(f"{server.url}/api/analyze", data=iter([b'{"text": "', b'I has a cat.', b'"}']),
                             timeout=30, headers={"Content-Type": "application/json", "X-API-Key": CLIENT_KEY})
    assert response.status_code == 200, response.text[:300]
