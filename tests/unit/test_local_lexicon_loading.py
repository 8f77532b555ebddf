"""The local analysis's resources: nothing loaded at import, each lexicon built once per process (even under
concurrent first use), warm-up, and a lexicon's size."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend.providers import local_analysis, local_lexicon

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_module_loads_nothing():
    # A fresh interpreter: this test process has loaded lexicons already.
    code = ("import json, sys\n"
            "from backend.providers import local_analysis, local_lexicon\n"
            "print(json.dumps({'modules': [m for m in ('wordfreq', 'spellchecker', 'numpy') if m in sys.modules],"
            " 'loaded': local_lexicon.RESOURCES.loaded(), 'builds': local_lexicon.RESOURCES.builds}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"modules": [], "loaded": [], "builds": 0}


def test_each_lexicon_is_built_once_per_process_even_under_concurrent_first_use(monkeypatch):
    built = []

    def slow_build(language):
        built.append(language)
        time.sleep(0.05)  # long enough for every thread to arrive while the first one builds
        return object()

    monkeypatch.setattr(local_lexicon, "_build", slow_build)
    resources = local_lexicon._Resources()
    barrier = threading.Barrier(8)
    got = []

    def first_use():
        barrier.wait()
        got.append(resources.lexicon("en"))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == ["en"] and resources.builds == 1
    assert len({id(x) for x in got}) == 1
    assert resources.lexicon("en") is got[0] and built == ["en"]


def test_warm_up_then_analyses_reuse_the_same_lexicon():
    code = ("import json\n"
            "from backend.providers import local_analysis, local_lexicon\n"
            "seconds = local_analysis.warm_up(['en'])\n"
            "first = local_lexicon.lexicon('en')\n"
            "for _ in range(3):\n"
            "    local_analysis.analyze('I did not recieve your letter becuase I was away.')\n"
            "print(json.dumps({'builds': local_lexicon.RESOURCES.builds, 'loaded': local_lexicon.RESOURCES.loaded(),"
            " 'same': local_lexicon.lexicon('en') is first, 'seconds': seconds}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["builds"] == 1 and result["loaded"] == ["en"] and result["same"] is True
    assert result["seconds"] > 0


def test_warm_up_refuses_an_unsupported_language():
    with pytest.raises(ValueError):
        local_analysis.warm_up(["eu"])


def test_a_lexicon_stays_small():
    # ~10 bytes a word: the hash and a code, not Python strings (bench/local_analysis.py measures the RSS).
    for language in ("en", "de"):
        lexicon = local_lexicon.lexicon(language)
        assert lexicon.nbytes <= 12 * len(lexicon) and lexicon.nbytes < 8 * 2**20
