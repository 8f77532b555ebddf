"""Two gunicorn instances of the service on one database and one Redis prefix, and the requests the conversation
tests make of them (tests/integration/test_conversations_gunicorn.py)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.conftest import CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.conversation_helpers import OTHER_KEY
from tests.integration.servers import Gunicorn
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

ALICE = {"X-API-Key": CLIENT_KEY, "X-User-ID": "alice"}


# -- the instances (the test module's fixtures start them once per database) ------------------------------------

def start_pair(database_url: str, fake, cache_dir: Path):
    """Two gunicorn instances on one migrated database and one Redis prefix, pointed at the fake Gemini."""
    prefix = unique_prefix("conversations")
    env = {"APP_ENV": "testing", "API_KEYS": f"tester:{CLIENT_KEY},other:{OTHER_KEY}",
           "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake.base_url, "GEMINI_TIMEOUT_SECONDS": "8",
           "REQUEST_DEADLINE_SECONDS": "10", "DATABASE_URL": database_url, "CACHE_MODE": "redis",
           "REDIS_URL": MAIN_REDIS_URL, "REDIS_KEY_PREFIX": prefix, "RATE_LIMIT_DEFAULT": "100000/minute",
           "RATE_LIMIT_AI": "100000/minute", "RATE_LIMIT_AI_PER_KEY": "100000/minute"}
    servers = [Gunicorn({**env, "CACHE_DIR": str(cache_dir / name)}, workers=2, threads=8) for name in "ab"]
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(server.start) for server in servers]
    try:
        for future in started:
            future.result()
    except BaseException:
        stop_pair(servers, prefix)
        raise
    return servers, prefix


def stop_pair(servers: list[Gunicorn], prefix: str) -> None:
    for server in servers:
        server.stop()
    purge(prefix)


# -- requests --------------------------------------------------------------------------------------------------

def create(server: Gunicorn, headers: dict) -> str:
    response = requests.post(f"{server.url}/api/conversations", json={"scenario": "at the cafe"}, headers=headers,
                             timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


def post_turn(server: Gunicorn, conversation: str, headers: dict, text: str = "I like coffee.") -> requests.Response:
    return requests.post(f"{server.url}/api/conversations/{conversation}/messages", json={"text": text},
                         headers=headers, timeout=30)


def messages(server: Gunicorn, conversation: str, headers: dict = ALICE) -> list[dict]:
    response = requests.get(f"{server.url}/api/conversations/{conversation}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["data"]["messages"]


def listed(server: Gunicorn, headers: dict) -> list[str]:
    response = requests.get(f"{server.url}/api/conversations", params={"limit": 100}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["data"]["conversations"]]


def assert_busy(response: requests.Response) -> None:
    """A 409 CONFLICT that says when to retry."""
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "CONFLICT"
    assert float(response.headers["Retry-After"]) >= 1
