"""A fake OpenAI-compatible chat-completions server that the real openai SDK can talk to (loopback only)."""

import argparse
import ipaddress
import random
import threading

from tests.fakes.lifecycle import ThreadedFake
from tests.fakes.openai_compat_faults import CHOICES, DEFAULTS, TYPES, boolean, normalize
from tests.fakes.openai_compat_server import Handler

KINDS = ("plain", "json", "stream", "invalid")


def loopback(host):
    """Refuse to listen anywhere but on this machine."""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"the fake listens on loopback addresses only, not {host!r}")
    return host


class FakeOpenAI(ThreadedFake):
    """An embeddable fake: start(), configure(), script(), calls, stats(), reset(), stop()."""

    handler = Handler
    thread_name = "fake-openai"

    def __init__(self, port=0, host="127.0.0.1", **config):
        self.host, self._port = loopback(host), port
        self._lock = threading.Lock()
        self._initial = {k: normalize(k, v) for k, v in {**DEFAULTS, **config}.items()}
        self._server = self._thread = None
        self._stopping = threading.Event()
        self._sockets = set()
        self.reset()

    # --- lifecycle

    @property
    def base_url(self):
        """What to give OpenAI(base_url=...): the root plus /v1, as in https://api.openai.com/v1."""
        return f"{self.root_url}/v1"

    @property
    def root_url(self):
        """The server root; /chat/completions is answered here too (for servers configured without /v1)."""
        return f"http://{self.host}:{self.port}"

    # --- control

    def configure(self, **changes):
        """Change settings (names as in DEFAULTS); returns the current config."""
        with self._lock:
            checked = {name: normalize(name, value) for name, value in changes.items()}
            self.config.update(checked)
            if "seed" in checked:
                self._rng = random.Random(self.config["seed"])
            return dict(self.config)

    def script(self, entries):
        """Queue canned answers: {text?, chunks?, finish_reason?, status?, body?, headers?, error?, latency_ms?}."""
        entries = [entries] if isinstance(entries, dict) else list(entries)
        if not all(isinstance(e, dict) for e in entries):
            raise ValueError("script entries must be objects")
        with self._lock:
            self._script.extend(entries)
            return len(self._script)

    def reset(self, config=True):
        """Forget calls and script; with config=True also restore the starting settings."""
        with self._lock:
            if config:
                self.config = dict(self._initial)
                self._rng = random.Random(self.config["seed"])
            self._script, self._calls, self._last, self._last_headers = [], 0, None, None
            self._connections = 0
            self._by_kind, self._by_model = dict.fromkeys(KINDS, 0), {}

    @property
    def calls(self):
        """How many chat-completion requests arrived, failed, invalid and injected ones included."""
        return self._calls

    def stats(self):
        """Calls in total, per kind (a stream counts as stream whatever its format; invalid: unreadable bodies)
        and per model, the last request and its headers (no Authorization), script entries, connections opened."""
        with self._lock:
            return {"calls": self._calls, "by_kind": dict(self._by_kind), "by_model": dict(self._by_model),
                    "last_request": self._last, "last_headers": self._last_headers,
                    "script_pending": len(self._script), "connections": self._connections}

    # --- one call

    def _plan(self, kind, model, request, headers):
        """Count the call and decide, under the lock, how to answer it: (config, script entry, fault)."""
        with self._lock:
            self._calls += 1
            self._by_kind[kind] += 1
            if model:
                self._by_model[model] = self._by_model.get(model, 0) + 1
            self._last = request
            self._last_headers = {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}
            cfg = dict(self.config)
            if self._script and kind != "invalid":  # an unreadable request does not use up a script entry
                return cfg, self._script.pop(0), None
            fault = None
            if cfg["fail_next"] > 0:
                fault = cfg["error"] or "503"
                self.config["fail_next"] -= 1
                if self.config["fail_next"] == 0:
                    self.config["error"] = None  # heal: back to normal answers
            elif cfg["error_rate"] > 0:
                fault = (cfg["error"] or "503") if self._rng.random() < cfg["error_rate"] else None
            elif cfg["error"]:
                fault = cfg["error"]
            return cfg, None, fault

    def wait(self, seconds):
        """Sleep unless the server is stopping; True when it is."""
        return self._stopping.wait(seconds)


def main(argv=None):
    """Command line: serve until interrupted."""
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat-completions server (simulated).")
    parser.add_argument("--host", default="127.0.0.1", type=loopback)
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    for name, default in DEFAULTS.items():
        flag = "--" + name.replace("_", "-")
        if TYPES[name] is boolean:
            parser.add_argument(flag, default=default, type=boolean, nargs="?", const=True)
        else:
            parser.add_argument(flag, default=default, type=TYPES[name], choices=CHOICES.get(name))
    args = vars(parser.parse_args(argv))
    host, port, verbose = args.pop("host"), args.pop("port"), args.pop("verbose")
    fake = FakeOpenAI(port=port, host=host, **args).start()
    fake._server.verbose = verbose
    print(f"fake openai listening on {fake.base_url}", flush=True)
    try:
        fake._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
