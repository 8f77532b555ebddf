"""Load generators of the benchmarks: wrk for throughput, asyncio HTTP/1.1 clients for concurrency and latency."""
from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from bench.harness import USERS, need_wrk


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] if ordered else float("nan")


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    wrk_cpu_share: float  # of one core: well below 1 means wrk was not the bottleneck

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(url: str, *, seconds: float, connections: int, method: str = "GET",
        bodies: list[str] | None = None, headers: dict[str, str] | None = None) -> WrkResult:
    """Run wrk (one thread) for this long against url, cycling through the bodies, with a user per request."""
    lines = ["local reqs = {}"]
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    for i, body in enumerate(bodies or [None]):
        hdrs = {**(headers or {}), **({"X-User-ID": f"user-{i % USERS}"} if headers else {})}
        lua_headers = "{" + ",".join(f"[{json.dumps(k)}]={json.dumps(v)}" for k, v in hdrs.items()) + "}"
        lua_body = json.dumps(body) if body is not None else "nil"
        lines.append(f"reqs[{i + 1}] = wrk.format({json.dumps(method)}, {json.dumps(path)}, {lua_headers}, {lua_body})")
    lines.append("local i = 0\nrequest = function() i = i + 1 return reqs[(i % #reqs) + 1] end")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + WRK_DONE)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    try:
        out = subprocess.run([need_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                              "-s", script.name, url], capture_output=True, text=True)
    finally:
        os.unlink(script.name)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    out, wall = out.stdout, time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = json.loads(next(line for line in out.splitlines() if line.startswith("WRK_JSON"))[9:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkResult(data["requests"], data["duration_us"] / 1e6, data["errors"], data["p50_us"] / 1000,
                     data["p99_us"] / 1000, cpu / wall)


@dataclass
class LoadResult:
    # (status, seconds, done at); 599 = no answer, 299 = a 200 from the in-process stand-in (X-Provider: local), which
    # answers when the provider cannot (bulkhead full, breaker open): fast, and not the provider's answer.
    samples: list[tuple[int, float, float]] = field(default_factory=list)
    seconds: float = 0.0
    client_cpu_share: float = 0.0  # of one core: well below 1 means the client was not the bottleneck

    def latencies(self, status: int | None = 200) -> list[float]:
        return [t for s, t, _ in self.samples if status is None or s == status]

    def rate(self, start: float, end: float, status: int = 200) -> float:
        """Answers with this status completed per second between start and end (seconds since the run began)."""
        return sum(1 for s, _, done in self.samples if s == status and start <= done < end) / (end - start)

    @property
    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for status, _, _ in self.samples:
            counts[status] = counts.get(status, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def ok(self) -> int:
        return sum(1 for s, _, _ in self.samples if s == 200)

    @property
    def errors(self) -> int:
        return len(self.samples) - self.ok


STAND_IN = 299


async def _exchange(reader, writer, raw: bytes) -> tuple[int, bool]:
    """One request on a keep-alive connection: (status, whether the connection stays open)."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status, length, keep = int(head.split(b" ", 2)[1]), 0, True
    for line in head.split(b"\r\n"):
        lower = line.lower()
        if lower.startswith(b"content-length:"):
            length = int(line[15:])
        elif lower.startswith(b"connection:") and b"close" in lower:
            keep = False
        elif status == 200 and lower.startswith(b"x-provider:") and line[11:].strip() == b"local":
            status = STAND_IN
    await reader.readexactly(length)
    return status, keep


def http_request(path: str, body: dict | None, headers: dict[str, str], method: str = "POST") -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"{method} {path} HTTP/1.1\r\nHost: bench\r\n{head}Content-Length: {len(data)}\r\n\r\n").encode() + data


def closed_loop(port: int, make: Callable[[int, int], bytes], *, clients: int, seconds: float | None = None,
                per_client: int | None = None) -> LoadResult:
    """N asyncio clients on keep-alive connections, each sending make(client, n) in turn, for a time or a count."""
    result = LoadResult()

    async def client(c: int, stop_at: float) -> None:
        reader = writer = None
        n = 0
        while (per_client is None or n < per_client) and (seconds is None or time.monotonic() < stop_at):
            started = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status, keep = await _exchange(reader, writer, make(c, n))
                if not keep:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                status, writer = 599, None
            done = time.monotonic()
            result.samples.append((status, done - started, done - began))
            n += 1
        if writer is not None:
            writer.close()

    began = time.monotonic()

    async def main() -> None:
        stop_at = time.monotonic() + (seconds or 0)
        await asyncio.gather(*(client(c, stop_at) for c in range(clients)))

    cpu0, started = time.process_time(), time.monotonic()
    asyncio.run(main())
    result.seconds = time.monotonic() - started
    result.client_cpu_share = (time.process_time() - cpu0) / result.seconds
    return result


def open_loop(port: int, make: Callable[[int, int], bytes], *, rate: float, seconds: float) -> LoadResult:
    """Requests at a fixed rate, over as many keep-alive connections as needed, timed from their scheduled start."""
    # Timing from the schedule, not the actual send, avoids coordinated omission: a stall shows up as latency.
    result = LoadResult()
    idle: list = []

    async def one(i: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        reader = writer = None
        try:
            reader, writer = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
            status, keep = await _exchange(reader, writer, make(i, i))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, keep = 599, False
        done = time.monotonic()
        result.samples.append((status, done - due, done - began))
        if keep:
            idle.append((reader, writer))
        elif writer is not None:
            writer.close()

    async def main() -> None:
        start = time.monotonic() + 0.05
        await asyncio.gather(*(one(i, start + i / rate) for i in range(int(rate * seconds))))
        for _, writer in idle:
            writer.close()

    cpu0, began = time.process_time(), time.monotonic()
    asyncio.run(main())
    result.seconds = time.monotonic() - began
    result.client_cpu_share = (time.process_time() - cpu0) / result.seconds
    return result
