"""audio_url fetch, concurrency: downloads beyond the bulkhead are refused at once and never reach the host."""
# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
from __future__ import annotations

import threading
import time

import pytest

from backend.errors import ProviderUnavailable, ValidationFailed
from backend.resilience.bulkhead import Bulkhead
from tests.unit.fetch_servers import BODY, _fetch, _url, server  # noqa: F401


def test_fetches_beyond_the_bulkhead_are_refused_at_once(server):
    bulkhead = Bulkhead("audio_url", 2)
    requests_before = server.requests
    slow = [threading.Thread(target=_swallow, args=(lambda: _fetch(_url(server, "/drip"), bulkhead=bulkhead,
                                                                   total_timeout=3.0),))
            for _ in range(2)]
    for thread in slow:
        thread.start()
    for _ in range(100):  # both slow downloads hold their slot
        if server.requests - requests_before == 2:
            break
        time.sleep(0.02)
    refused = 0
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable) as info:
            _fetch(_url(server, "/ok"), bulkhead=bulkhead)
        assert time.monotonic() - started < 0.5 and info.value.status == 503 and info.value.retry_after >= 1
        refused += 1
    assert refused == 3 and server.requests - requests_before == 2  # the refused ones never reached the host
    for thread in slow:
        thread.join(5)
    assert _fetch(_url(server, "/ok"), bulkhead=bulkhead) == BODY  # the slots came back


def _swallow(call) -> None:
    try:
        call()
    except ValidationFailed:
        pass
