"""A fake OpenAI-compatible chat-completions server that the real openai SDK can talk to (loopback only)."""

import argparse

from tests.fakes.base import ThreadedFake, loopback
from tests.fakes.openai_compat_faults import CHOICES, DEFAULTS, SETTINGS, TYPES, boolean
from tests.fakes.openai_compat_server import Handler

KINDS = ("plain", "json", "stream", "invalid")


class FakeOpenAI(ThreadedFake):
    """An embeddable fake: start(), configure(), script(), calls, stats(), reset(), stop()."""

    handler = Handler
    thread_name = "fake-openai"
    settings = SETTINGS
    kinds = KINDS

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

    def reset(self, config=True):
        """Forget calls, script, the last headers and the connections counted too."""
        super().reset(config)
        with self._lock:
            self._last_headers, self._connections = None, 0

    def stats(self):
        """Calls in total, per kind (a stream counts as stream whatever its format; invalid: unreadable bodies)
        and per model, the last request and its headers (no Authorization), script entries, connections opened."""
        with self._lock:
            return {"calls": self._calls, "by_kind": dict(self._by_kind), "by_model": dict(self._by_model),
                    "last_request": self._last, "last_headers": self._last_headers,
                    "script_pending": len(self._script), "connections": self._connections}

    def requests(self):
        """The last requests' bodies, oldest first, as sent (None for a body that did not parse)."""
        return super().requests()

    # --- one call

    def _plan(self, kind, model, request, headers):
        """Count the call and decide, under the lock, how to answer it: (config, script entry, fault)."""
        with self._lock:
            cfg = self._count(kind, model, request)
            self._last_headers = {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}
            if self._script and kind != "invalid":  # an unreadable request does not use up a script entry
                return cfg, self._script.pop(0), None
            return cfg, None, self._fault(cfg)


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
    FakeOpenAI(port=port, host=host, **args).serve_until_interrupted("openai", verbose)


if __name__ == "__main__":
    main()
