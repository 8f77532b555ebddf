"""The real gunicorn, with config/gunicorn.conf.py and 2 workers, serving every endpoint against the fakes."""
from __future__ import annotations

import pytest
import requests

from tests.audio_samples import speech_wav
from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import Gunicorn

pytestmark = pytest.mark.gunicorn
AUTH = {"X-API-Key": CLIENT_KEY}


@pytest.fixture(scope="module")
def server(fake_gemini, fake_azure, tmp_path_factory):
    env = {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "ADMIN_API_KEY": ADMIN_KEY,
           "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
           "AZURE_SPEECH_KEY": FAKE_PROVIDER_KEY, "AZURE_SPEECH_HOST": fake_azure.host_url,
           "CACHE_MODE": "memory", "CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    log = tmp_path_factory.mktemp("logs") / "gunicorn.log"
    with Gunicorn(env, workers=2, threads=4, log_path=log) as instance:
        yield instance


def _ok(response: requests.Response) -> dict:
    body = response.json()
    assert response.status_code == 200, body
    assert body["success"] is True and body["meta"]["request_id"] == response.headers["X-Request-ID"]
    return body["data"]


def test_every_endpoint_answers_under_gunicorn(server):
    url = server.url
    assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
    assert _ok(requests.get(f"{url}/health/ready", timeout=5))["ready"] is True
    assert _ok(requests.get(f"{url}/api/health", timeout=5))["status"] == "healthy"
    analysis = _ok(requests.post(f"{url}/api/analyze", json={"text": "I recieve many letter."}, headers=AUTH,
                                 timeout=30))
    assert analysis["errors"] and analysis["cefr_assessment"]["level"]
    subtopics = _ok(requests.post(f"{url}/api/create_subtopics", json={"topic": "Cooking", "count": 3},
                                  headers=AUTH, timeout=30))
    assert len(subtopics["subtopics"]) == 3
    explanation = _ok(requests.post(f"{url}/api/explanation", json={"topic": "Cooking", "subtopic": "Verbs"},
                                    headers=AUTH, timeout=30))
    assert explanation["key_points"]
    wav = speech_wav(segments=2)
    transcript = _ok(requests.post(f"{url}/api/transcribe", files={"audio": ("a.wav", wav, "audio/wav")},
                                   data={"language": "en-US"}, headers=AUTH, timeout=30))
    assert transcript["text"] and len(transcript["words"]) > 2
    scores = _ok(requests.post(f"{url}/api/pronunciation", files={"audio": ("a.wav", wav, "audio/wav")},
                               data={"reference_text": "The quick brown fox jumps."}, headers=AUTH, timeout=30))
    assert 0 <= scores["pronunciation_score"] <= 100 and scores["words"]


def test_errors_are_envelopes_under_gunicorn(server):
    response = requests.get(f"{server.url}/api/does-not-exist", timeout=5)
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    response = requests.post(f"{server.url}/api/analyze", json={"text": "hi"}, timeout=5)
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
