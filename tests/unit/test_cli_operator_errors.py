"""Operator commands as operators run them (`flask --app wsgi ...`, `python -m backend.jobs.worker`, real processes):
an invalid setting is one line naming the variable and status 2, never a traceback; what a command prints is for
people (its own lines, short text log lines), while the server's logs stay JSON."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The console script the Procfile and the Makefile run; `python -m flask` goes through the same entry point.
FLASK_SCRIPT = Path(sys.executable).with_name("flask")
FLASK = [str(FLASK_SCRIPT)] if FLASK_SCRIPT.exists() else [sys.executable, "-m", "flask"]

COMMANDS = [["check"], ["db", "upgrade"], ["data", "purge"], ["data", "export", "--user", "tester"],
            ["cache", "clear"], ["breaker", "reset"], ["routes"], ["--help"]]
WORKER = [sys.executable, "-m", "backend.jobs.worker"]
# Each case: the command, the invalid setting, and the variable its line must name.
INVALID: dict[str, tuple[list[str], dict[str, str], str]] = {
    **{" ".join(command): ([*FLASK, "--app", "wsgi", *command], {"WEB_THREADS": "abc"}, "WEB_THREADS")
       for command in COMMANDS},
    "check DATABASE_URL": ([*FLASK, "--app", "wsgi", "check"], {"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
    # A rule across variables names the missing one.
    "check CACHE_MODE": ([*FLASK, "--app", "wsgi", "check"], {"CACHE_MODE": "redis"}, "REDIS_URL"),
    "check APP_ENV": ([*FLASK, "--app", "wsgi", "check"], {"APP_ENV": "production"}, "API_KEYS"),
    # Wrong before the logs could even be set up.
    "check LOG_LEVEL": ([*FLASK, "--app", "wsgi", "check"], {"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    "worker": ([*WORKER], {"WEB_THREADS": "abc"}, "WEB_THREADS"),
}


def fresh_env(directory: Path) -> dict[str, str]:
    """Only what a fresh host would have, plus a throw-away database and cache (no Redis: the disk tier)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory), "CACHE_MODE": "disk",
            "CACHE_DIR": str(directory / "cache"), "DATABASE_URL": f"sqlite:///{directory / 'var' / 'backend-ai.db'}"}


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return fresh_env(tmp_path)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run([*FLASK, "--app", "wsgi", *args], env)


def assert_one_line_naming(result: subprocess.CompletedProcess[str], variable: str, status: int = 2) -> None:
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr


def is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


@pytest.fixture(scope="module")
def invalid_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case at once (a few at a time): each is a process start, most of it imports."""
    env = fresh_env(tmp_path_factory.mktemp("invalid"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(run, args, {**env, **setting}) for case, (args, setting, _) in INVALID.items()}
    return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("case", INVALID)
def test_an_invalid_setting_is_one_line_naming_the_variable_and_status_2(invalid_runs, case):
    assert_one_line_naming(invalid_runs[case], INVALID[case][2])


def test_check_prints_lines_for_people_and_no_log_lines(env):
    result = flask(env, "check")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "configuration: ok (APP_ENV=development)"
    assert any(line.startswith("database: sqlite, reachable") for line in lines)
    assert not any(is_json(line) for line in lines)
    # The start-up notes (API_KEYS empty, providers not configured) are `check`'s own lines, not log lines.
    assert "client auth: OFF" in lines and result.stderr == ""


def test_db_upgrade_says_what_changed_without_alembics_info_lines(env):
    first = flask(env, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("database at revision ") and first.stdout.rstrip().endswith("(was empty)")
    assert first.stderr == ""
    again = flask(env, "db", "upgrade")
    assert again.returncode == 0 and again.stdout.rstrip().endswith("(unchanged)"), again.stderr


def test_a_warning_during_a_command_is_a_short_text_line_with_its_fields(env):
    result = flask(env, "breaker", "reset", "gemini")
    assert result.returncode == 0 and result.stdout == "gemini: closed\n", result.stderr
    assert result.stderr.splitlines() == ["WARNING backend.resilience.breaker: breaker reset (breaker=gemini)"]


def test_log_format_and_level_set_explicitly_win_for_a_command(env):
    """A migration Job feeding the server's log pipeline asks for JSON; its own output stays for people."""
    result = flask({**env, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    logged = result.stderr.splitlines()
    assert logged and all(is_json(line) for line in logged)
    assert any(json.loads(line)["name"] == "alembic.runtime.migration" for line in logged)
    assert result.stdout.startswith("database at revision ") and not is_json(result.stdout)


def test_the_server_logs_stay_json(env):
    """What gunicorn's workers do: import wsgi outside any command."""
    result = run([sys.executable, "-c", "import wsgi"], env)
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(line["level"] == "WARNING" and "API_KEYS is empty" in line["message"] for line in logged)


def test_db_upgrade_against_an_unreachable_database_is_one_line(env):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = flask({**env, "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"}, "db", "upgrade")
    assert_one_line_naming(result, "DATABASE_URL", status=1)
    assert "refused" in result.stderr.lower()


def test_db_upgrade_to_an_unknown_revision_is_a_usage_error(env):
    result = flask(env, "db", "upgrade", "--revision", "bogus")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last == "Error: Invalid value for '--revision': Can't locate revision identified by 'bogus'"
