"""A fake Gemini REST server that the real google-genai client can talk to."""

import argparse

from tests.fakes.base import ThreadedFake
from tests.fakes.gemini_faults import CHOICES, DEFAULTS, SETTINGS, TYPES
from tests.fakes.gemini_server import KINDS, Handler


class FakeGemini(ThreadedFake):
    """An embeddable fake: start(), configure(), script(), calls, reset(), stop()."""

    handler = Handler
    thread_name = "fake-gemini"
    settings = SETTINGS
    kinds = KINDS

    # --- lifecycle

    @property
    def base_url(self):
        """The URL to give HttpOptions(base_url=...)."""
        return f"http://{self.host}:{self.port}"

    def stats(self):
        """Calls, calls per kind (generate, stream) and per model, the last request and pending script entries."""
        with self._lock:
            return {"calls": self._calls, "by_kind": dict(self._by_kind), "by_model": dict(self._by_model),
                    "last_request": self._last, "script_pending": len(self._script)}

    # --- one call

    def requests(self):
        """The last requests, oldest first: {"path", "model", "stream", "body"} each, body the parsed JSON (None when
        it did not parse)."""
        return super().requests()

    def _plan(self, model, request, kind="generate", path=None):
        """Count and log the call and decide, under the lock, how to answer it: (config, script entry, fault)."""
        with self._lock:
            logged = {"path": path, "model": model, "stream": kind == "stream", "body": request}
            cfg = self._count(kind, model, request, logged)
            if self._script:
                return cfg, self._script.pop(0), None
            return cfg, None, self._fault(cfg)


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
    FakeGemini(port=port, host=host, **args).serve_until_interrupted("gemini", verbose)


if __name__ == "__main__":
    main()
