"""config/nginx/backend-ai.conf: agrees with the service's defaults, and nginx accepts it (when installed)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from flask import Flask

from backend import configure_flask
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "config" / "nginx" / "backend-ai.conf"
DEFAULTS = Settings.model_construct()  # the documented defaults, whatever the environment says


def nginx_binary() -> str | None:
    """nginx, also where a non-root PATH does not look (Debian installs it in /usr/sbin)."""
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def nginx_main_config(workdir: Path, site: Path) -> Path:
    """A main nginx.conf around `site` that runs in the foreground as the current user, writing only in workdir."""
    temp = "\n".join(f"    {kind}_temp_path {workdir / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                            "uwsgi", "scgi"))
    main = workdir / "nginx.conf"
    main.write_text(f"daemon off;\nmaster_process off;\npid {workdir / 'nginx.pid'};\nerror_log stderr;\n"
                    f"events {{}}\nhttp {{\n    access_log off;\n{temp}\n    include {site};\n}}\n")
    return main


def directive(name: str, text: str | None = None) -> str:
    """The value of the one `name` directive in the site file."""
    values = re.findall(rf"^\s*{name}\s+([^;]+);", text or SITE.read_text(), re.MULTILINE)
    assert len(values) == 1, f"{name}: {values}"
    return values[0].strip()


def seconds(value: str) -> float:
    assert value.endswith("s"), value
    return float(value[:-1])


def test_the_proxy_agrees_with_the_service():
    app = Flask(__name__)
    configure_flask(app, DEFAULTS)
    size = directive("client_max_body_size")
    assert size.endswith("k") and int(size[:-1]) * 1024 == app.config["MAX_CONTENT_LENGTH"]
    assert seconds(directive("client_header_timeout")) == DEFAULTS.header_timeout_seconds
    # Longer than the longest answer: the deadline, extended for the longest recording.
    assert seconds(directive("proxy_read_timeout")) > DEFAULTS.request_deadline_seconds + DEFAULTS.max_audio_seconds
    # nginx lets idle upstream connections go before gunicorn closes them.
    gunicorn_keepalive = int(re.search(r"^keepalive = (\d+)", (ROOT / "config" / "gunicorn.conf.py").read_text(),
                                       re.MULTILINE).group(1))
    assert seconds(directive("keepalive_timeout", SITE.read_text().split("server {")[0])) < gunicorn_keepalive
    assert directive("proxy_request_buffering") == "on" and directive("proxy_buffering") == "on"
    assert directive("proxy_set_header X-Forwarded-For") == "$proxy_add_x_forwarded_for"


def test_nginx_accepts_the_config(tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (scripts/system-deps.sh test installs it)")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(nginx_main_config(tmp_path, SITE))],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
