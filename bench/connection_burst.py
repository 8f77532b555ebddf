"""How long a burst of new connections waits for its first answer: the service's worker (each accepts only within its
share of the connections, backend/serving/spread.py) against gunicorn's own accept, one gunicorn each, their rounds
alternating. Per round, N clients connect at once, then each sends GET /health on its new connection; the figure is
the time from the sends to each first answer (p50 and the slowest of the burst), as ratios to gunicorn's accept in
the same run. A burst is what a reload or a restarted client pool sends; clients connecting one by one never wait.
"""
from __future__ import annotations

import socket
import statistics
import threading
import time

from bench.connection_spread import BASELINE, VARIANTS
from bench.harness import FakeProcess, layout_parser, ratio_line, service, service_env

REQUEST = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
TARGET = 1.5  # the burst's slowest first answer at most this many times gunicorn's own accept's


def burst(port: int, clients: int) -> list[float]:
    """Seconds from the sends to each client's first answer, fastest first."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(clients)]
    answered: list[float] = []
    started = time.perf_counter()

    def one(sock: socket.socket) -> None:
        sock.sendall(REQUEST)
        if sock.recv(65536):
            answered.append(time.perf_counter() - started)

    threads = [threading.Thread(target=one, args=(sock,)) for sock in sockets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for sock in sockets:
        sock.close()
    if len(answered) != clients:
        raise RuntimeError(f"{clients - len(answered)} of {clients} connections got no answer")
    return sorted(answered)


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.set_defaults(workers=4, threads=64)  # the layout the slow-upstream run uses, where bursts matter most
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    names = [BASELINE, "spread"]
    out: dict[str, list[list[float]]] = {name: [] for name in names}
    gemini = FakeProcess("tests.fakes.gemini")
    try:
        with service(service_env(gemini, GUNICORN_CMD_ARGS=VARIANTS[BASELINE]), args.workers, args.threads) as base, \
                service(service_env(gemini), args.workers, args.threads) as spread:
            servers = {BASELINE: base, "spread": spread}
            for server in servers.values():
                burst(server.port, args.workers * 4)  # every worker up and answering before the clock starts
            for r in range(args.rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    time.sleep(0.5)  # the last burst's connections closed on both
                    out[name].append(burst(servers[name].port, args.clients))
    finally:
        gemini.stop()
    ms = 1000.0
    print(f"gunicorn {args.workers}x{args.threads} per variant, {args.rounds} alternating rounds of {args.clients} "
          "connections at once, each sending GET /health on its new connection")
    figures: dict[str, dict[str, float]] = {}
    for name in names:
        p50 = statistics.median(statistics.median(r) for r in out[name]) * ms
        slowest = statistics.median(r[-1] for r in out[name]) * ms
        figures[name] = {"p50_ms": p50, "slowest_ms": slowest}
        print(f"  {name:8s} first answer p50 {p50:7.1f} ms, slowest of the burst {slowest:7.1f} ms (medians of "
              f"the rounds)")
    ratio = figures["spread"]["slowest_ms"] / figures[BASELINE]["slowest_ms"]
    p50_ratio = figures["spread"]["p50_ms"] / figures[BASELINE]["p50_ms"]
    print(f"  spread / gunicorn's accept: p50 {p50_ratio:.2f}x, slowest {ratio:.2f}x")
    met = ratio <= TARGET
    print(ratio_line("burst's slowest first answer, spread / gunicorn's accept", ratio, f"<= {TARGET:g}", met))
    return {**{f"{name}_{k}": v for name, f in figures.items() for k, v in f.items()}, "ratio": ratio,
            "p50_ratio": p50_ratio, "ok": met}


if __name__ == "__main__":
    main()
