"""`make demo`: the simulated providers plus the real service under gunicorn, with curl examples."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from backend.db.migrate import upgrade
from backend.settings import load_settings
from tests.audio_samples import speech_wav
from tests.fakes.azure_speech import FakeAzureSpeech
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai_compat import FakeOpenAI

DEMO_KEY = "demo-key"
DEMO_ADMIN_KEY = "demo-admin-key"
ROOT = Path(__file__).resolve().parents[2]


def banner(port: int, wav: Path, gemini: FakeGemini, azure: FakeAzureSpeech, fallback: FakeOpenAI) -> str:
    """What the user sees first: simulated providers, keys, and one curl line per endpoint."""
    base, auth = f"http://127.0.0.1:{port}", f"-H 'X-API-Key: {DEMO_KEY}'"
    json_header = "-H 'Content-Type: application/json'"
    return "\n".join([
        "=" * 78,
        " Backend-AI DEMO: the AI providers are SIMULATED (local fakes, no cloud calls, no cost).",
        f"   fake Gemini        {gemini.base_url}   (calls: {gemini.base_url}/_fake/calls)",
        f"   fake fallback LLM  {fallback.base_url}   (OpenAI-compatible; calls: {fallback.root_url}/_fake/calls)",
        f"   fake Azure Speech  {azure.host_url}   (calls: http://127.0.0.1:{azure.port}/_fake/calls)",
        f"   service            {base}   client key: {DEMO_KEY}   admin key: {DEMO_ADMIN_KEY}",
        "=" * 78,
        f"curl -s {base}/api/health",
        f"curl -s {auth} {json_header} -d '{{\"text\": \"Yesterday i recieve a letter.\"}}' {base}/api/analyze",
        f"curl -s {auth} {json_header} -d '{{\"topic\": \"Travel\", \"count\": 4}}' {base}/api/create_subtopics",
        f"curl -s {auth} {json_header} -d '{{\"topic\": \"Travel\", \"subtopic\": \"At the airport\"}}' "
        f"{base}/api/explanation",
        f"curl -s {auth} -F audio=@{wav} {base}/api/transcribe",
        f"curl -s {auth} -F audio=@{wav} -F 'reference_text=The quick brown fox jumps.' {base}/api/pronunciation",
        "Gemini down, the fallback answers (X-Provider: fallback):",
        f"  curl -s -d '{{\"error\": \"503\"}}' {gemini.base_url}/_fake/config && curl -si {auth} {json_header} "
        f"-d '{{\"text\": \"She go to school.\"}}' {base}/api/analyze",
        f"Both down, a local answer (X-Provider: local): curl -s -d '{{\"error\": \"503\"}}' "
        f"{fallback.root_url}/_fake/config",
        "Speech (simulated voice): the text spoken as an mp3, then the voices of a language:",
        f"  curl -s {auth} {json_header} -d '{{\"text\": \"Good morning! How are you today?\"}}' "
        f"-o /tmp/backend-ai-demo.mp3 -D - {base}/api/speech && file /tmp/backend-ai-demo.mp3",
        f"  curl -s {auth} '{base}/api/voices?language=fr-FR'",
        "A lesson as a background job (202 at once, then poll until succeeded):",
        f"  JOB=$(curl -s {auth} {json_header} -d '{{\"topic\": \"Travel\", \"level\": \"A2\", \"sections\": 2}}' "
        f"{base}/api/lessons | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][\"job_id\"])')",
        f"  sleep 3; curl -s {auth} {base}/api/jobs/$JOB",
        "A tutor conversation (start one, take a turn, stream the next, read it back):",
        f"  ID=$(curl -s {auth} {json_header} -d '{{\"scenario\": \"ordering coffee\", \"level\": \"A2\"}}' "
        f"{base}/api/conversations | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][\"id\"])')",
        f"  curl -s {auth} {json_header} -H 'Idempotency-Key: turn-1' "
        f"-d '{{\"text\": \"Hello! I would like a coffee becuase I am tired.\"}}' "
        f"{base}/api/conversations/$ID/messages",
        f"  curl -s {auth} {json_header} -d '{{\"text\": \"Say it aloud, please.\", \"speak\": true}}' "
        f"{base}/api/conversations/$ID/messages   # then GET its tutor.audio_url with the key",
        f"  curl -sN {auth} {json_header} -H 'Accept: text/event-stream' "
        f"-d '{{\"text\": \"With milk, please.\"}}' {base}/api/conversations/$ID/messages",
        f"  curl -s {auth} {base}/api/conversations/$ID",
        "Press Ctrl-C to stop.",
    ])


def main() -> int:
    """Start the fakes, then gunicorn pointed at them, until interrupted."""
    port = int(os.environ.get("PORT", "8000"))
    gemini = FakeGemini(port=int(os.environ.get("DEMO_GEMINI_PORT", "0")), latency_ms=300).start()
    azure = FakeAzureSpeech(port=int(os.environ.get("DEMO_AZURE_PORT", "0")), latency_ms=200).start()
    fallback = FakeOpenAI(port=int(os.environ.get("DEMO_FALLBACK_PORT", "0")), latency_ms=300, key="simulated").start()
    wav = Path(tempfile.gettempdir()) / "backend-ai-demo.wav"
    wav.write_bytes(speech_wav(segments=3))
    env = {**os.environ, "PORT": str(port), "APP_ENV": "development", "API_KEYS": f"demo:{DEMO_KEY}",
           "ADMIN_API_KEY": DEMO_ADMIN_KEY, "GEMINI_API_KEY": "simulated", "GEMINI_BASE_URL": gemini.base_url,
           "AZURE_SPEECH_KEY": "simulated", "AZURE_SPEECH_HOST": azure.host_url, "LOG_FORMAT": "text",
           "FALLBACK_LLM_BASE_URL": fallback.base_url, "FALLBACK_LLM_API_KEY": "simulated",
           "FALLBACK_LLM_MODEL": "simulated-fallback"}
    # The schema first, as `make run` and a release step do (SQLite under ./var unless DATABASE_URL says otherwise).
    upgrade(load_settings().database_url)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
                              cwd=ROOT, env=env)
    # The job worker, as the Procfile's worker line runs it: lessons are generated there.
    worker = subprocess.Popen([sys.executable, "-m", "backend.jobs.worker"], cwd=ROOT, env=env)
    print(banner(port, wav, gemini, azure, fallback), flush=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGTERM)
        return server.wait(30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(40)
        gemini.stop()
        azure.stop()
        fallback.stop()


if __name__ == "__main__":
    sys.exit(main())
