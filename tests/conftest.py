"""Shared fixtures: the fake providers (real wire protocols), and apps configured against them."""
from __future__ import annotations

import pytest

from backend import create_app
from tests.fakes.azure_speech import FakeAzureSpeech
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai_compat import FakeOpenAI

# The data fixtures (database_url over SQLite and PostgreSQL, ...).
pytest_plugins = ["tests.databases"]

CLIENT_KEY = "test-client-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"
FAKE_PROVIDER_KEY = "fake-provider-key"


@pytest.fixture(scope="session")
def fake_gemini():
    """A fake Gemini REST server for the whole session (reset before each test)."""
    fake = FakeGemini(key=FAKE_PROVIDER_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_azure():
    """A fake Azure Speech websocket server for the whole session (reset before each test)."""
    fake = FakeAzureSpeech(key=FAKE_PROVIDER_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_openai():
    """A fake OpenAI-compatible chat-completions server for the whole session (reset before each test)."""
    fake = FakeOpenAI(key=FAKE_PROVIDER_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(request):
    """Give every test fresh fakes: counters at zero, no injected faults."""
    for name in ("fake_gemini", "fake_azure", "fake_openai"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture
def provider_config(fake_gemini, fake_azure, tmp_path):
    """Settings that point the real SDKs at the fakes, with auth on."""
    return {
        "APP_ENV": "testing",
        "API_KEYS": f"tester:{CLIENT_KEY}",
        "ADMIN_API_KEY": ADMIN_KEY,
        "GEMINI_API_KEY": FAKE_PROVIDER_KEY,
        "GEMINI_BASE_URL": fake_gemini.base_url,
        "GEMINI_TIMEOUT_SECONDS": 5,
        "AZURE_SPEECH_KEY": FAKE_PROVIDER_KEY,
        "AZURE_SPEECH_HOST": fake_azure.host_url,
        "AZURE_SPEECH_TIMEOUT_SECONDS": 10,
        "CACHE_MODE": "memory",
        "CACHE_DIR": str(tmp_path / "cache"),
        "REQUEST_DEADLINE_SECONDS": 15,
        # Tests that do not store learner data never touch it (the engine is created on first use).
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
    }


@pytest.fixture
def data_app(make_app, database_url):
    """An app on an empty database (runs once on SQLite, once on PostgreSQL)."""
    return make_app(DATABASE_URL=database_url)


@pytest.fixture
def data_client(data_app):
    return data_app.test_client()


@pytest.fixture
def make_app(provider_config):
    """Build apps from the provider config plus per-test overrides; closes them afterwards."""
    apps = []

    def build(**overrides):
        app = create_app({**provider_config, **overrides})
        apps.append(app)
        return app

    yield build
    for app in apps:
        # Work a test's turns left beside them (summaries, corrections) ends here, not in a later test's fakes.
        app.extensions["backend"].executor.shutdown(wait=True)
        app.extensions["backend"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth():
    """Headers of an authenticated client."""
    return {"X-API-Key": CLIENT_KEY}


@pytest.fixture
def admin():
    """Headers of an authenticated operator."""
    return {"X-Admin-Key": ADMIN_KEY}
