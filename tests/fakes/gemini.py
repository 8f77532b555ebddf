"""A fake Gemini REST server that the real google-genai client can talk to."""

import argparse
import random
import threading

from tests.fakes.gemini_faults import CHOICES, DEFAULTS, TYPES, normalize
from tests.fakes.gemini_server import KINDS, Handler
from tests.fakes.lifecycle import ThreadedFake


class FakeGemini(ThreadedFake):
    """An embeddable fake: start(), configure(), script(), calls, reset(), stop()."""

    handler = Handler
    thread_name = "fake-gemini"

    def __init__(self, port=0, host="127.0.0.1", **config):
        self.host, self._port = host, port
        self._lock = threading.Lock()
        self._initial = {k: normalize(k, v) for k, v in {**DEFAULTS, **config}.items()}
        self._server = self._thread = None
        self._stopping = threading.Event()
        self._sockets = set()
        self.reset()

    # --- lifecycle

    @property
    def base_url(self):
        """The URL to give HttpOptions(base_url=...)."""
        return f"http://{self.host}:{self.port}"

    # --- control

    def configure(self, **changes):
        """Change settings (names as in DEFAULTS); returns the current config."""
        with self._lock:
            for name, value in changes.items():
                self.config[name] = normalize(name, value)
            if "seed" in changes:
                self._rng = random.Random(self.config["seed"])
            return dict(self.config)

    def script(self, entries):
        """Queue canned responses, each {status?, text?, chunks?, finish_reason?, body?, headers?, error?}
        (chunks: a stream's text pieces; error: any fault of FAULTS, for this call only)."""
        entries = [entries] if isinstance(entries, dict) else list(entries)
        with self._lock:
            self._script.extend(entries)
            return len(self._script)

    def reset(self, config=True):
        """Forget calls and script; with config=True also restore the starting settings."""
        with self._lock:
            if config:
                self.config = dict(self._initial)
                self._rng = random.Random(self.config["seed"])
            self._script, self._calls, self._by_model, self._last = [], 0, {}, None
            self._by_kind = dict.fromkeys(KINDS, 0)

    @property
    def calls(self):
        """How many generateContent and streamGenerateContent requests arrived, failed and injected ones included."""
        return self._calls

    def stats(self):
        """Calls, calls per kind (generate, stream) and per model, the last request and pending script entries."""
        with self._lock:
            return {"calls": self._calls, "by_kind": dict(self._by_kind), "by_model": dict(self._by_model),
                    "last_request": self._last, "script_pending": len(self._script)}

    # --- one call

    def _plan(self, model, request, kind="generate"):
        """Count the call and decide, under the lock, how to answer it."""
        with self._lock:
            self._calls += 1
            self._by_kind[kind] += 1
            self._by_model[model] = self._by_model.get(model, 0) + 1
            self._last = request
            cfg = dict(self.config)
            if self._script:
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
    parser = argparse.ArgumentParser(description="Fake Gemini API server (simulated answers).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    for name, default in DEFAULTS.items():
        parser.add_argument("--" + name.replace("_", "-"), default=default, type=TYPES[name],
                            choices=CHOICES.get(name))
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    verbose = args.pop("verbose")
    fake = FakeGemini(port=port, host=host, **args).start()
    fake._server.verbose = verbose
    print(f"fake gemini listening on {fake.base_url}", flush=True)
    try:
        fake._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
