"""A real Prometheus (Debian's package) for tests: a free port, a temporary storage directory, one target scraped
every second and the alert rules evaluated every second; its HTTP API, and waits on what it has scraped."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.integration.servers import ROOT, free_port

RULES = ROOT / "config/prometheus/alerts.yml"
JOB = "backend-ai"  # the scrape job's name: the alert rules and the dashboard aggregate by it


class Prometheus:
    """A prometheus server on a free port, scraping one target every second with the alert rules loaded."""

    def __init__(self, directory: Path, target: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = directory / "prometheus.log"
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}]}))
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: run `bash scripts/system-deps.sh test` (Debian package prometheus)"
        self.command = [binary, f"--config.file={self.config}", f"--storage.tsdb.path={directory / 'data'}",
                        f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "Prometheus":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=log, start_new_session=True)
        self._until(lambda: requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200, timeout, "ready")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # its storage is a temporary directory: nothing to flush
            self.process.wait(10)

    def _until(self, done, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if done():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not {what} in {timeout}s; log: {self.log.read_text()[-2000:]}")

    def api(self, path: str, **params: Any) -> Any:
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> tuple[str, Any]:
        """(status, result or error) of an instant query now."""
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        return body["status"], body["data"]["result"] if body["status"] == "success" else body.get("error")

    def rule_groups(self) -> list[dict[str, Any]]:
        return self.api("rules")["groups"]

    def settle(self, timeout: float = 20.0) -> None:
        """Wait for two scrapes that started after now, then for a rule evaluation of every group after those."""
        since = time.time()

        def scraped_twice() -> bool:  # at one scrape a second, a last scrape past since + 1 s is the second
            targets = self.api("targets")["activeTargets"]
            return bool(targets) and all(target["health"] == "up" and _seconds(target["lastScrape"]) > since + 1.0
                                         for target in targets)

        self._until(scraped_twice, timeout, "scraping")
        # Under load a scrape can fail (a one-second timeout): wait until rates have their two samples, the
        # scrapes' own route included (it is counted only once a scrape has been answered), rather than trusting
        # a number of scrapes.
        self._until(lambda: bool(self.query('rate(http_requests_total{route="/metrics"}[1m])')[1])
                    and bool(self.query("rate(jobs_total[1m])")[1]), 3 * timeout, "rates over the scrapes")
        scraped = time.time()
        self._until(lambda: all(_seconds(group["lastEvaluation"]) > scraped for group in self.rule_groups()),
                    timeout, "evaluating rules")


def _seconds(rfc3339: str) -> float:
    """A Prometheus timestamp (nanoseconds cut to what datetime holds) in seconds since the epoch."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", rfc3339)).timestamp()
