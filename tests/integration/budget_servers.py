"""Two gunicorn instances x 3 workers sharing one Redis and one PostgreSQL database, for the budget tests, and the
cost c of one analysis of a ``text()``: the fake Gemini counts ceil(characters / 4) tokens of the prompt and of its
answer, so every ``text()`` (same length, same errors) costs the same; an in-process app asks once and c is computed
from the fake's own answer."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend import create_app
from backend.db.migrate import upgrade
from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.fakes.gemini import FakeGemini
from tests.fakes.gemini_answers import build_answer, shaped
from tests.integration.servers import Gunicorn
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

KEY_NAME = "tester"
INPUT_PER_MTOK, OUTPUT_PER_MTOK = 1000.0, 4000.0  # USD per million tokens: one fake answer costs about 0.9 USD
BUDGET_CALLS = 5.5  # the default budget, in calls: not a whole number, so one call is allowed to cross it
NUMBERS = itertools.count(1)  # callers and texts no request of the module used before


def text(n: int | None = None) -> str:
    """A text no request of this module sent before (a cache miss): same length and errors, so the same cost."""
    return f"Text {next(NUMBERS) if n is None else n:04d}: I goes to school every day and she like apples."


# -- one call's cost ---------------------------------------------------------------------------------------------

def usage_of(logged: dict[str, Any]) -> tuple[int, int]:
    """(prompt, output) tokens of the fake's answer to a logged request, as its response carried them."""
    body = logged["body"]
    meta = shaped(logged["model"], body, build_answer(body), None)["usageMetadata"]
    return meta["promptTokenCount"], meta["candidatesTokenCount"]


def call_cost(tokens: tuple[int, int]) -> float:
    return (tokens[0] * INPUT_PER_MTOK + tokens[1] * OUTPUT_PER_MTOK) / 1_000_000


def calibrate(fake: FakeGemini, settings: dict[str, str], tmp: Path) -> tuple[int, int]:
    """The tokens of one analysis of a ``text()``, asked once of an in-process app with the servers' settings."""
    app = create_app({**settings, "CACHE_MODE": "memory", "CACHE_DIR": str(tmp / "cache"),
                      "DATABASE_URL": f"sqlite:///{tmp / 'unused.db'}"})
    try:
        response = app.test_client().post("/api/analyze", json={"text": text(0)}, headers={"X-API-Key": CLIENT_KEY})
        assert response.status_code == 200, response.get_data(as_text=True)
    finally:
        app.extensions["backend"].executor.shutdown(wait=True)
        app.extensions["backend"].close()
    tokens = usage_of(fake.requests()[-1])
    fake.reset()
    return tokens


# -- the instances -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    a: Gunicorn
    b: Gunicorn
    both: tuple[Gunicorn, Gunicorn]
    cost: float  # c: what one analysis costs
    budget: float  # BUDGET_DAILY_USD_PER_CALLER


@contextmanager
def running_pair(fake_gemini: FakeGemini, directory: Path) -> Iterator[Pair]:
    """Instances A and B (3 workers each) on one migrated PostgreSQL database and one Redis prefix of their own."""
    from tests.pg_helpers import create_database, drop_database, postgres_admin_url

    settings = {"APP_ENV": "testing", "API_KEYS": f"{KEY_NAME}:{CLIENT_KEY}", "ADMIN_API_KEY": ADMIN_KEY,
                "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
                "GEMINI_TIMEOUT_SECONDS": "8", "REQUEST_DEADLINE_SECONDS": "10", "GEMINI_THINKING_BUDGET": "0",
                "PRICE_GEMINI_INPUT_PER_MTOK": repr(INPUT_PER_MTOK), "PRICE_GEMINI_OUTPUT_PER_MTOK":
                repr(OUTPUT_PER_MTOK), "GEMINI_MAX_CONCURRENCY": "64", "RATE_LIMIT_DEFAULT": "100000/minute",
                "RATE_LIMIT_AI": "100000/minute", "RATE_LIMIT_AI_PER_KEY": "100000/minute"}
    tokens = calibrate(fake_gemini, settings, directory)
    cost = call_cost(tokens)
    budget = BUDGET_CALLS * cost
    prefix = unique_prefix("budgets")
    url = create_database(postgres_admin_url())
    servers: list[Gunicorn] = []
    try:
        upgrade(url)
        # The output limit is the smallest allowed that the fake's answer fits in (the fake does not cut an answer
        # at it as Gemini would), and no thinking budget (it adds to the limit): a call's hold is then a true upper
        # bound of its cost, a few times c rather than hundreds.
        env = {**settings, "GEMINI_MAX_OUTPUT_TOKENS": str(max(64, tokens[1])), "DATABASE_URL": url,
               "BUDGET_DAILY_USD_PER_CALLER": repr(budget), "CACHE_MODE": "redis", "REDIS_URL": MAIN_REDIS_URL,
               "REDIS_KEY_PREFIX": prefix}
        servers = [Gunicorn({**env, "CACHE_DIR": str(directory / name)}, workers=3, threads=8) for name in "ab"]
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(server.start) for server in servers]:
                started.result()
        yield Pair(servers[0], servers[1], (servers[0], servers[1]), cost, budget)
    finally:
        for server in servers:
            server.stop()
        purge(prefix)
        drop_database(url)
