"""The Prometheus alert rules: valid for promtool, and every alert unit-tested both firing and quiet."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config/prometheus/alerts.yml"
RULE_TESTS = ROOT / "tests/prometheus/alerts_test.yml"


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run promtool; missing is a failure, not a skip (`make test` installs it)."""
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: run `bash scripts/system-deps.sh test` (Debian package prometheus)"
    return subprocess.run([binary, *args], input=stdin, capture_output=True, cwd=ROOT, timeout=120)


def _output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr).decode(errors="replace")


def test_rules_pass_promtool_check():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, _output(result)


def test_rule_unit_tests_pass():
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, _output(result)


def test_every_alert_has_a_firing_and_a_quiet_case():
    import yaml

    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts, "no alert rules found"
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested quiet"
    assert (firing | quiet) - alerts == set(), "tests name alerts that do not exist"
