"""docker-compose.yml (one VM), deploy.env.example and config/prometheus/prometheus.yml, checked without Docker.

No Docker daemon runs here, and the registry images (redis, postgres, prometheus, grafana) cannot be pulled, so
the stack is never brought up: the file is parsed and cross-checked against what the processes, the settings and
the images actually read (services, commands = the Procfile's, variable names, healthchecks, start order, mounts,
stop grace periods against gunicorn's graceful timeout, placeholder-only secrets), the Prometheus config goes
through promtool, and, where a compose CLI is installed, `compose config` validates the file against its schema."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from backend.jobs.worker import STEPS_GRACE_SECONDS
from backend.settings import ConfigError, Settings, load_settings
from tests.gunicorn_conf import graceful_timeouts
from tests.unit.test_alert_rules import promtool

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
EXAMPLE = ROOT / "deploy.env.example"
PROMETHEUS = ROOT / "config" / "prometheus" / "prometheus.yml"
SERVICES = {"web", "worker", "migrate", "redis", "postgres", "prometheus", "grafana"}
APP_SERVICES = ("web", "worker", "migrate")
SETTINGS = {name.upper() for name in Settings.model_fields}
# Variables the processes read themselves (not settings), with the file that reads each: checked to still be so.
PROCESS_VARIABLES = {"HOST": "config/gunicorn.conf.py", "PROMETHEUS_MULTIPROC_DIR": "backend/observability/metrics.py"}
# What the other images read: the official postgres image's POSTGRES_*, Grafana's GF_<section>_<key>.
IMAGE_PREFIXES = {"postgres": "POSTGRES_", "grafana": "GF_"}
# Services without a healthcheck, and why; each must disable the image's HEALTHCHECK (on /health, which neither
# serves) rather than inherit it.
NO_HEALTHCHECK = {
    "migrate": "a one-off command: web and worker wait for its exit status, not its health",
    "worker": "serves no HTTP and is its container's main process, so a process check holds whenever the "
              "container is up; restart: unless-stopped covers its exit",
}
SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN")
PLACEHOLDER = "CHANGE_ME"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the file's anchors and `<<` merges, as compose does


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(entry.split("=", 1) for entry in env)
    return {key: str(value) for key, value in env.items()}


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them (comments and blank lines skipped, values literal)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def seconds(duration: str) -> float:
    """A compose duration ("90s", "2m20s", "1h") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)


def deployed_settings(**overrides: str) -> Settings:
    """The web container's settings: deploy.env.example under the compose file's environment (which wins)."""
    return load_settings({**env_file(EXAMPLE), **overrides, **environment("web")})


FILLED_SECRETS = {"API_KEYS": "mobile:" + "a" * 64, "ADMIN_API_KEY": "b" * 64, "POSTGRES_PASSWORD": "c" * 48}


def test_every_service_is_there():
    assert set(compose()["services"]) == SERVICES


def test_web_worker_and_migrate_run_one_image_built_from_the_repository():
    for name in APP_SERVICES:
        build = service(name)["build"]
        context = build if isinstance(build, str) else build["context"]
        assert (COMPOSE.parent / context).resolve() == ROOT, name
        assert service(name)["image"] == "backend-ai:latest", name
    assert service("redis")["image"] == "redis:7-alpine" and service("postgres")["image"] == "postgres:16-alpine"


def test_commands_are_the_procfiles():
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    for name, process in (("web", "web"), ("worker", "worker"), ("migrate", "release")):
        assert service(name)["command"] == shlex.split(procfile[process]), name


def test_every_variable_is_read_by_someone():
    for name, path in PROCESS_VARIABLES.items():
        assert name in (ROOT / path).read_text(), f"{path} no longer reads {name}"
    known = SETTINGS | set(PROCESS_VARIABLES)
    for name in APP_SERVICES:
        assert set(environment(name)) - known == set(), f"{name}: unknown variables"
    for name, prefix in IMAGE_PREFIXES.items():
        assert all(key.startswith(prefix) for key in environment(name)), name
    images = tuple(IMAGE_PREFIXES.values())
    unknown = {key for key in env_file(EXAMPLE) if key not in known and not key.startswith(images)}
    assert unknown == set(), "deploy.env.example: variables nobody reads"


def test_deploy_env_sets_nothing_the_compose_file_overrides():
    # environment: wins over env_file, so such a line in deploy.env would be silently ignored.
    overridden = {key for name in APP_SERVICES for key in environment(name)}
    assert overridden & set(env_file(EXAMPLE)) == set()


def test_the_compose_values_are_valid_settings_and_production_needs_the_secrets():
    settings = deployed_settings(**FILLED_SECRETS)
    assert settings.app_env == "production" and settings.effective_cache_mode == "redis"
    assert make_url(settings.redis_url.get_secret_value()).host == "redis"
    assert make_url(settings.database_url).host == "postgres"
    # As shipped (placeholders), the service refuses to start instead of running without client keys.
    with pytest.raises(ConfigError, match="API_KEYS"):
        deployed_settings()


def test_app_services_have_a_read_only_root_and_write_only_where_mounted():
    dockerfile = ROOT / "Dockerfile"
    for name in APP_SERVICES:
        spec, env = service(name), environment(name)
        assert spec["read_only"] is True, name
        assert [mount.split(":")[0] for mount in spec["tmpfs"]] == ["/tmp"], name
        volumes = {mount.split(":")[1]: mount.split(":")[0] for mount in spec["volumes"]}
        # The cache's disk tier and state store: one volume, the VM's disk, shared by every container.
        cache_volume = next(target for target in volumes if Path(env["CACHE_DIR"]).is_relative_to(target))
        assert volumes[cache_volume] in compose()["volumes"], name
        # Metric files stay per container: a shared directory would be emptied by each web start and summed twice.
        if "PROMETHEUS_MULTIPROC_DIR" in env:
            assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).is_relative_to("/tmp"), name
    assert "PROMETHEUS_MULTIPROC_DIR" in environment("web")
    # A new volume takes the owner of the image's directory: the image must create it for its non-root user.
    if dockerfile.exists():
        assert re.search(rf"chown\s+\S+\s+{re.escape(cache_volume)}\b", dockerfile.read_text()), cache_volume


def test_every_long_running_service_has_a_healthcheck():
    for name in SERVICES - set(NO_HEALTHCHECK):
        check = service(name).get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), name
    for name in NO_HEALTHCHECK:
        assert service(name)["healthcheck"] == {"disable": True}, name


def test_the_web_healthcheck_asks_health_on_the_port_without_curl():
    test = service("web")["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and "curl" not in " ".join(test)
    port, path = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", test[3]).groups()
    assert path == "/health" and port == environment("web")["PORT"]
    assert any(mapping.endswith(f":{port}") for mapping in service("web")["ports"])


def test_start_order_migrate_first_on_healthy_stores():
    assert service("migrate")["restart"] == "no"
    assert service("migrate")["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "worker"):
        assert service(name)["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                               "postgres": {"condition": "service_healthy"},
                                               "redis": {"condition": "service_healthy"}}, name


def test_stop_grace_periods_let_requests_and_job_steps_finish(tmp_path: Path):
    values = {**env_file(EXAMPLE), **FILLED_SECRETS, **environment("web")}
    settings = load_settings(values)
    # As config/gunicorn.conf.py computes it for these settings (the drain window, then requests in flight).
    (graceful_timeout,) = graceful_timeouts(values, cwd=tmp_path)
    assert graceful_timeout >= settings.longest_request_seconds + settings.shutdown_drain_seconds
    # gunicorn's master needs a moment after its workers' graceful timeout to reap them and exit.
    assert seconds(service("web")["stop_grace_period"]) >= graceful_timeout + 5
    # A step in flight (bounded by the request deadline), then the steps' grace (backend/jobs/worker.py).
    assert seconds(service("worker")["stop_grace_period"]) >= settings.request_deadline_seconds + STEPS_GRACE_SECONDS
    assert {service(name).get("stop_signal", "SIGTERM") for name in ("web", "worker")} == {"SIGTERM"}


def test_mounted_files_exist_and_named_volumes_are_declared():
    declared = set(compose()["volumes"])
    for name, spec in compose()["services"].items():
        for mount in spec.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} is not in the repository"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
        if "env_file" in spec:
            assert spec["env_file"] == "deploy.env", name
    assert EXAMPLE.exists() and "deploy.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_deploy_env_example_holds_placeholders_only():
    example = env_file(EXAMPLE)
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value in ("", PLACEHOLDER) or PLACEHOLDER in value, f"{key} holds what looks like a secret"
    url = make_url(example["DATABASE_URL"])
    assert url.password in ("", None) or PLACEHOLDER in url.password, "DATABASE_URL holds a password"
    assert url.drivername == "postgresql+psycopg" and (url.host, url.port) == ("postgres", 5432)
    assert (url.username, url.database) == (example["POSTGRES_USER"], example["POSTGRES_DB"])
    assert "PASSWORD" in service("grafana")["entrypoint"][-1] and PLACEHOLDER in service("grafana")["entrypoint"][-1]


def test_prometheus_scrapes_every_web_and_worker_container_and_loads_the_alert_rules():
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert [(PROMETHEUS.parent / path).resolve() for path in config["rule_files"]] == \
        [ROOT / "config" / "prometheus" / "alerts.yml"]
    # In the container the rules sit beside the config, as in the repository, so the relative path holds there.
    mounts = dict(reversed(mount.split(":")[:2]) for mount in service("prometheus")["volumes"])
    config_target = Path(next(t for t, s in mounts.items() if s == "./config/prometheus/prometheus.yml"))
    assert Path(next(t for t, s in mounts.items() if s == "./config/prometheus/alerts.yml")) == \
        config_target.parent / config["rule_files"][0]
    assert f"--config.file={config_target}" in service("prometheus")["command"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "backend-ai" and job.get("metrics_path", "/metrics") == "/metrics"
    web, worker = job["dns_sd_configs"]
    assert web["names"] == ["web"] and web["type"] == "A" and str(web["port"]) == environment("web")["PORT"]
    # The job worker's own /metrics, in the same job so that `by (job)` sums web and workers alike.
    assert worker["names"] == ["worker"] and worker["type"] == "A"
    assert str(worker["port"]) == environment("worker")["JOB_WORKER_METRICS_PORT"]


def test_promtool_accepts_the_prometheus_config():
    result = promtool("check", "config", str(PROMETHEUS))
    assert result.returncode == 0, (result.stdout + result.stderr).decode(errors="replace")


def test_grafana_provisioning_points_at_the_mounts():
    mounts = dict(mount.split(":")[:2] for mount in service("grafana")["volumes"])
    assert mounts["./config/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards = mounts["./config/grafana"]
    provisioning = ROOT / "config" / "grafana" / "provisioning"
    providers = [provider for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
                 for provider in yaml.safe_load(path.read_text()).get("providers", [])]
    assert providers and all(p["options"]["path"].startswith(dashboards) for p in providers)
    sources = [source for path in sorted((provisioning / "datasources").glob("*.y*ml"))
               for source in yaml.safe_load(path.read_text()).get("datasources", [])]
    prometheus = [make_url(s["url"].replace("http://", "http+x://")) for s in sources if s["type"] == "prometheus"]
    assert [(url.host, url.port) for url in prometheus] == [("prometheus", 9090)]
    assert (ROOT / "config" / "grafana" / "backend-ai.json").exists()


def compose_cli() -> list[str] | None:
    """`docker compose` (v2) or Debian's docker-compose (v1.29, which validates against the compose spec schema)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_accepts_the_file(tmp_path):
    cli = compose_cli()
    if cli is None:
        pytest.skip("no compose CLI installed (Debian: docker-compose); the checks above cover the file without it")
    shutil.copy(COMPOSE, tmp_path / COMPOSE.name)
    shutil.copy(EXAMPLE, tmp_path / "deploy.env")  # env_file must exist; no daemon is asked
    result = subprocess.run([*cli, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
