"""gunicorn's settings as config/gunicorn.conf.py itself computes them, for the deployment artefacts' tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTING_NAMES = {name.upper() for name in Settings.model_fields}

# Runs config/gunicorn.conf.py once per set of settings (argv[1]: a JSON list of them), each over an environment
# without settings, and prints the graceful_timeout it computed.
GUNICORN_CONF_RUNNER = """
import json, os, runpy, sys
names = set(json.loads(sys.argv[2]))
out = []
for values in json.loads(sys.argv[1]):
    for name in [n for n in os.environ if n.upper() in names or n == "PROMETHEUS_MULTIPROC_DIR"]:
        del os.environ[name]
    os.environ.update(values)
    conf = runpy.run_path(os.path.join(sys.argv[3], "config", "gunicorn.conf.py"))
    out.append(conf["graceful_timeout"])
print(json.dumps(out))
"""


def graceful_timeouts(*settings: dict[str, str], cwd: Path) -> list[int]:
    """gunicorn's graceful_timeout as config/gunicorn.conf.py computes it for each set of settings (in a child
    process: the file reads the environment and sets PROMETHEUS_MULTIPROC_DIR; the child runs outside the
    repository, so no .env file is read)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", GUNICORN_CONF_RUNNER, json.dumps(settings),
                             json.dumps(sorted(SETTING_NAMES)), str(ROOT)], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
