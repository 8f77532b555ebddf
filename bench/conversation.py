"""Tutor conversation turns on SQLite and PostgreSQL: the service's overhead per turn at a history of 50 turns,
turns per second with 32 conversations at once, and how soon a streamed reply's first piece reaches the learner."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import requests

from backend.settings import Settings
from bench.databases import HISTORY, migrated, seed
from bench.harness import (
    FakeProcess,
    auth_headers,
    cpu_seconds,
    layout_parser,
    learner_text,
    ratio_line,
    service,
    service_env,
    worker_pids,
)
from bench.load import closed_loop, http_request, percentile
from tests.conversation_helpers import correction_requests, reply_requests

MODEL = f"/v1beta/models/{Settings.model_fields['gemini_model'].default}"
WARMUP = 10
MS = 1000.0


class Relay:
    """A TCP relay in front of the fake that notes when the first event of a streamed answer passes it on the way to
    the service: the moment the fake's first chunk is out, on this process's clock, as the client's first delta."""

    def __init__(self, port: int):
        self.target = port
        self.first_chunk: float | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            streaming = threading.Event()  # per connection: the request in flight asked for a stream
            threading.Thread(target=self._pipe, args=(client, upstream, streaming, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, streaming, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, streaming: threading.Event, asking: bool) -> None:
        try:
            while data := source.recv(65536):
                if asking and b"streamGenerateContent" in data:
                    streaming.set()
                elif not asking and streaming.is_set() and b"data:" in data:
                    self.first_chunk = time.perf_counter()  # before forwarding: the relay's own hop counts as ours
                    streaming.clear()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.listener.close()


class Log:
    """The fake's request log for this turn (reset before it), in the shape tests.conversation_helpers reads."""

    def __init__(self, fake: FakeProcess):
        self.entries = requests.get(f"{fake.base}/_fake/requests", timeout=10).json()["requests"]

    def requests(self) -> list[dict]:
        return self.entries


def clear_log(fake: FakeProcess) -> int:
    """Empty the fake's request log; how many calls it had taken since the last time (late summaries included)."""
    calls = fake.calls()
    requests.post(f"{fake.base}/_fake/reset", json={"config": False}, timeout=5).raise_for_status()
    return calls


def timed(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return time.perf_counter() - started, response.status


def json_turns(server, fake: FakeProcess, conversation: str, samples: int) -> dict:
    """Sequential turns, each followed by its reply call sent straight to the fake (same body, same latency)."""
    svc = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    direct = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=30)
    path, headers = f"/api/conversations/{conversation}/messages", auth_headers(0)
    through, baseline, statuses, calls, cpu0 = [], [], {}, 0, 0.0
    for i in range(WARMUP + samples + 1):
        if i == WARMUP:
            cpu0 = cpu_seconds(worker_pids(server))
        # A summary starts after its turn's answer: counted at the next clear, hence one extra round at the end.
        taken = clear_log(fake)
        calls += taken if i > WARMUP else 0
        if i == WARMUP + samples:
            break
        seconds, status = timed(svc, path, json.dumps({"text": learner_text(10_000 + i)}).encode(), headers)
        statuses[status] = statuses.get(status, 0) + 1
        log = Log(fake)
        replies, corrections = reply_requests(log), correction_requests(log)
        if i < WARMUP or status != 201 or len(replies) != 1 or len(corrections) != 1:
            continue
        calls -= 1  # the direct call below reaches the same fake and is counted with this turn's
        seconds_direct, status_direct = timed(direct, f"{MODEL}:generateContent", json.dumps(replies[0]).encode(),
                                              {"Content-Type": "application/json"})
        if status_direct == 200:
            through.append(seconds)
            baseline.append(seconds_direct)
    cpu_ms = (cpu_seconds(worker_pids(server)) - cpu0) / samples * MS
    return {"through": through, "direct": baseline, "statuses": statuses, "summaries": calls - 2 * samples,
            "cpu_ms": cpu_ms}


def concurrent_turns(server, fake: FakeProcess, conversations: dict[int, str], seconds: float) -> dict:
    """Each client its own conversation, posting its next turn as soon as the last is answered."""
    users = sorted(conversations)

    def make(client: int, n: int) -> bytes:
        user = users[client]
        return http_request(f"/api/conversations/{conversations[user]}/messages",
                            {"text": learner_text(100_000 * client + n)}, auth_headers(user))

    pids = worker_pids(server)
    cpu0, fake0 = cpu_seconds(pids), cpu_seconds([fake.process.pid])
    load = closed_loop(server.port, make, clients=len(users), seconds=seconds + 1)
    turns = max(1, len(load.samples))
    cpu_ms = (cpu_seconds(pids) - cpu0) / turns * MS
    fake_ms = (cpu_seconds([fake.process.pid]) - fake0) / turns * MS
    answered = load.latencies(201)
    return {"tps": load.rate(1.0, seconds + 1, status=201), "statuses": load.statuses, "cpu_ms": cpu_ms,
            "fake_ms": fake_ms, "p50": percentile(answered, 0.5), "p99": percentile(answered, 0.99),
            "client_cpu": load.client_cpu_share}


def first_event(response: http.client.HTTPResponse, marker: bytes) -> tuple[float | None, bytes]:
    """When the first line starting with ``marker`` arrived, and everything until the end of the body."""
    first, seen = None, b""
    while line := response.readline():
        if first is None and line.startswith(marker):
            first = time.perf_counter()
        seen += line
    return first, seen


def streamed_turns(server, fake: FakeProcess, relay: Relay, conversation: str, samples: int) -> dict:
    """Streamed turns, each followed by the same streamed reply call straight to the fake (through the relay too)."""
    svc = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    direct = http.client.HTTPConnection("127.0.0.1", int(relay.base.rsplit(":", 1)[1]), timeout=30)
    path = f"/api/conversations/{conversation}/messages"
    headers = {**auth_headers(1), "Accept": "text/event-stream"}
    to_delta, to_chunk, relayed, failed = [], [], [], 0
    for i in range(WARMUP // 2 + samples):
        clear_log(fake)
        relay.first_chunk = None
        started = time.perf_counter()
        svc.request("POST", path, body=json.dumps({"text": learner_text(20_000 + i)}).encode(), headers=headers)
        delta, events = first_event(svc.getresponse(), b"event: delta")
        chunk_out = relay.first_chunk
        replies = [e["body"] for e in Log(fake).requests() if e["stream"]]
        if delta is None or chunk_out is None or b"event: done" not in events or len(replies) != 1:
            failed += 1
            continue
        relay.first_chunk = None
        direct_started = time.perf_counter()
        direct.request("POST", f"{MODEL}:streamGenerateContent?alt=sse", body=json.dumps(replies[0]).encode(),
                       headers={"Content-Type": "application/json"})
        chunk, _ = first_event(direct.getresponse(), b"data:")
        if i >= WARMUP // 2 and chunk is not None:
            to_delta.append(delta - started)
            to_chunk.append(chunk - direct_started)
            relayed.append(delta - chunk_out)
    return {"to_delta": to_delta, "to_chunk": to_chunk, "relayed": relayed, "failed": failed}


def one_database(kind: str, args) -> dict:
    """Every figure on one database: a fresh one, migrated and seeded, under a fresh gunicorn."""
    users = list(range(100, 100 + args.conversations))
    with migrated(kind) as url:
        ids = seed(url, [0, 1, *users])
        gemini = FakeProcess("tests.fakes.gemini", latency_ms=args.latency_ms, chunk_size=args.chunk_size,
                             chunk_latency_ms=args.chunk_latency_ms)
        # The limit of turns is raised only so the throughput run never reaches it (50 + every turn it posts).
        env = dict(DATABASE_URL=url, MAX_TURNS_PER_CONVERSATION=10_000)
        try:
            with service(service_env(gemini, **env), args.workers, args.threads) as server:
                sequential = json_turns(server, gemini, ids[0], args.samples)
                parallel = concurrent_turns(server, gemini, {u: ids[u] for u in users}, args.seconds)
            relay = Relay(gemini.port)
            try:
                with service(service_env(gemini, **env, GEMINI_BASE_URL=relay.base), args.workers,
                             args.threads) as server:
                    streams = streamed_turns(server, gemini, relay, ids[1], args.streams)
            finally:
                relay.stop()
        finally:
            gemini.stop()
    return {"sequential": sequential, "parallel": parallel, "streams": streams}


def report(kind: str, r: dict, args) -> dict:
    """Print one database's figures; the ones the summary quotes."""
    ms = lambda values, share: percentile(values, share) * MS  # noqa: E731
    s, p, st = r["sequential"], r["parallel"], r["streams"]
    through, direct = s["through"], s["direct"]
    o50, o99 = ms(through, 0.5) - ms(direct, 0.5), ms(through, 0.99) - ms(direct, 0.99)
    paired = [(t - d) * MS for t, d in zip(through, direct, strict=True)]
    print(f"\n{kind}: {len(through)} sequential JSON turns at a history of {HISTORY}+ turns (statuses {s['statuses']}; "
          f"{s['summaries']} summaries beside the {args.samples} timed turns' replies and corrections)")
    print(f"  reply call direct to the fake p50 {ms(direct, 0.5):7.2f} ms  p99 {ms(direct, 0.99):7.2f} ms")
    print(f"  turn through the service      p50 {ms(through, 0.5):7.2f} ms  p99 {ms(through, 0.99):7.2f} ms")
    print(f"  turn overhead                 p50 {o50:7.2f} ms  p99 {o99:7.2f} ms   (target p50 < 15 ms, p99 < 50 ms)")
    print(f"  paired differences            p50 {percentile(paired, 0.5):7.2f} ms  p99 "
          f"{percentile(paired, 0.99):7.2f} ms")
    print(f"  service CPU per turn          {s['cpu_ms']:7.2f} ms (all workers, user + system, background summaries "
          f"included)")
    print(f"{kind}: {args.conversations} conversations at once, {args.seconds:.0f} s after 1 s of warm-up: "
          f"{p['tps']:.1f} turns/s, latency p50 {p['p50'] * MS:.0f} ms p99 {p['p99'] * MS:.0f} ms, statuses "
          f"{p['statuses']}; CPU per turn: service {p['cpu_ms']:.1f} ms, fake {p['fake_ms']:.1f} ms; client "
          f"{p['client_cpu']:.2f} core")
    d50, d99 = ms(st["relayed"], 0.5), ms(st["relayed"], 0.99)
    w50 = ms(st["to_delta"], 0.5) - ms(st["to_chunk"], 0.5)
    w99 = ms(st["to_delta"], 0.99) - ms(st["to_chunk"], 0.99)
    print(f"{kind}: {len(st['relayed'])} streamed turns ({st['failed']} failed)")
    print(f"  fake's first chunk -> client's first delta  p50 {d50:7.2f} ms  p99 {d99:7.2f} ms   (target p50 <= 5 ms)")
    print(f"  sent -> first delta, minus sent -> first chunk direct  p50 {w50:7.2f} ms  p99 {w99:7.2f} ms   (what the "
          f"learner waits beyond the provider: the turn's start included)")
    met = o50 < 15 and o99 < 50 and d50 <= 5 and len(through) == args.samples and not st["failed"]
    errors = sum(n for status, n in p["statuses"].items() if status != 201)
    return {"overhead_p50_ms": o50, "overhead_p99_ms": o99, "turns_per_s": p["tps"], "errors": errors,
            "delta_p50_ms": d50, "delta_p99_ms": d99, "wait_p50_ms": w50, "met": met}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--conversations", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--chunk-size", type=int, default=48)
    parser.add_argument("--chunk-latency-ms", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"gunicorn {args.workers}x{args.threads}; fake Gemini with {args.latency_ms} ms before every answer's "
          f"first byte, streams in {args.chunk_size}-character chunks {args.chunk_latency_ms} ms apart. Turn "
          f"overhead = turn time - the same reply call made straight to the fake (p50 - p50, p99 - p99); the "
          f"corrections call runs beside the reply and is not subtracted. First delta: the relay in front of the "
          f"fake notes when the first chunk passes, the client when the first delta arrives (one clock).")
    figures, skipped = {}, []
    for kind in args.databases.split(","):
        try:
            figures[kind] = report(kind, one_database(kind, args), args)
        except RuntimeError as exc:  # no PostgreSQL server: the SQLite figures still stand, the target is not met
            print(f"\n{kind}: skipped ({exc})")
            skipped.append(kind)
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    parts = [f"{names.get(k, k)} +{f['overhead_p50_ms']:.1f}/{f['overhead_p99_ms']:.1f} ms, "
             f"{f['turns_per_s']:.0f} turns/s ({f['errors']} err), delta {f['delta_p50_ms']:.1f} ms"
             for k, f in figures.items()]
    met = bool(figures) and not skipped and all(f["met"] for f in figures.values())
    worst = max((f["overhead_p50_ms"] for f in figures.values()), default=float("nan"))
    print("turn overhead p50/p99, 32-conversation throughput, first delta p50: " + "; ".join(parts))
    print(ratio_line("turn overhead p50 (worst database), ms", worst,
                     "p50 < 15 ms, p99 < 50 ms, first delta p50 <= 5 ms", met))
    return {"ok": met, "ratio": worst, **{f"{k}_{name}": v for k, f in figures.items() for name, v in f.items()}}


if __name__ == "__main__":
    main()
