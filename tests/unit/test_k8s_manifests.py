"""The Kubernetes manifests (config/k8s/): valid for the API server's schemas, wired to each other, and in step with
the settings (every variable exists, the grace periods cover the drains they are computed from)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import backend.settings as settings_module
from backend.jobs.worker import STEPS_GRACE_SECONDS
from backend.settings import load_settings
from tests.gunicorn_conf import SETTING_NAMES, graceful_timeouts
from tests.unit.k8s_helpers import (
    EXAMPLE_SECRET,
    IMAGE,
    K8S,
    KUBERNETES_VERSION,
    KUSTOMIZATION,
    PROCESS_VARIABLES,
    clean_environment_fixture,  # noqa: F401  (the clean_environment fixture)
    container,
    deployment_values,
    documents,
    env_of,
    manifest_files,
    one,
    pod_specs,
    procfile,
    resources,
)

# --- valid objects, and the kustomization -------------------------------------------------------------------------

@pytest.mark.parametrize("name", manifest_files())
def test_manifest_passes_kubernetes_validate_strict(name: str):
    from kubernetes_validate import validate

    docs = documents(name)
    assert docs, f"{name} holds no object"
    for doc in docs:
        assert "namespace" not in doc["metadata"], f"{name}: the manifests are namespace-agnostic"
        # Raises naming the path of the first invalid or unknown field (strict: unknown fields are errors too).
        assert validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret():
    kustomization = documents(KUSTOMIZATION)[0]
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(set(manifest_files()) - {EXAMPLE_SECRET})
    assert "namespace" not in kustomization
    assert kustomization["images"] == [{"name": IMAGE, "newName": IMAGE, "newTag": "latest"}]
    assert not [doc for doc in resources() if doc["kind"] == "Secret"], "no Secret with keys in the kustomization"


def test_every_container_names_the_image_kustomize_sets():
    for where, spec in pod_specs():
        for entry in spec["containers"] + spec.get("initContainers", []):
            assert entry["image"] == IMAGE, where


def test_kustomize_builds_what_the_files_say():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomization is checked by parsing it (above)")
    from kubernetes_validate import validate

    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == \
        sorted((d["kind"], d["metadata"]["name"]) for d in resources())
    for doc in built:
        validate(doc, KUBERNETES_VERSION, strict=True)
    assert set(re.findall(r"^\s*image: (\S+)$", result.stdout, re.MULTILINE)) == {f"{IMAGE}:latest"}


# --- settings ------------------------------------------------------------------------------------------------------

def test_every_variable_is_a_setting_or_read_by_the_process():
    names = set(deployment_values())
    for where, spec in pod_specs():
        for entry in spec["containers"]:
            names |= set(env_of(entry))
            refs = {source.get("configMapRef", source.get("secretRef", {})).get("name")
                    for source in entry.get("envFrom", [])}
            assert refs == {"backend-ai-config", "backend-ai-secrets"}, where
    unknown = names - SETTING_NAMES - PROCESS_VARIABLES
    assert unknown == set(), f"not settings (backend/settings): {sorted(unknown)}"
    assert documents(EXAMPLE_SECRET)[0]["metadata"]["name"] == "backend-ai-secrets"


def test_the_example_secret_holds_placeholders_only():
    for key, value in documents(EXAMPLE_SECRET)[0]["stringData"].items():
        assert value == "" or "REPLACE" in value, f"{key} must be a placeholder"


def test_configmap_and_secret_make_a_valid_production_configuration(clean_environment: pytest.MonkeyPatch):
    settings = load_settings(deployment_values())
    assert settings.app_env == "production"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.log_format == "json"


def test_cache_mode_auto_is_redis_only_in_kubernetes(clean_environment: pytest.MonkeyPatch, tmp_path: Path):
    values = deployment_values()
    assert values["CACHE_MODE"] == "auto" and values["REDIS_URL"]
    # Outside a cluster (no variable, no service-account directory), the same settings keep a disk tier.
    clean_environment.setattr(settings_module, "KUBERNETES_SECRETS", tmp_path / "absent")
    assert load_settings(values).effective_cache_mode == "redis"
    # Kubernetes sets KUBERNETES_SERVICE_HOST in every container, with no token mounted and service links off.
    clean_environment.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert load_settings(values).effective_cache_mode == "redis_only"


# --- the web pods: probes, port, drain -----------------------------------------------------------------------------

def test_web_probes_ask_the_health_endpoints_on_the_served_port():
    web = container("Deployment", "backend-ai-web")
    assert web["command"] == procfile()["web"]
    port = {p["name"]: p["containerPort"] for p in web["ports"]}["http"]
    assert int(env_of(web)["PORT"]) == port
    paths = {probe: web[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths == {"startupProbe": "/health", "readinessProbe": "/health/ready", "livenessProbe": "/health"}
    assert {web[probe]["httpGet"]["port"] for probe in paths} == {"http"}
    annotations = one("Deployment", "backend-ai-web")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port and annotations["prometheus.io/path"] == "/metrics"
    mounts = {m["mountPath"] for m in web["volumeMounts"]}
    assert env_of(web)["PROMETHEUS_MULTIPROC_DIR"] in mounts, "the metrics directory must be a writable volume"


# Seconds a deleted pod must go on accepting connections, for the endpoint change to reach kube-proxy and the
# ingress controller: the preStop pause, then the workers' drain window.
ENDPOINTS_PROPAGATION_SECONDS = 10


def test_web_grace_period_covers_the_drain_and_gunicorns_graceful_timeout(tmp_path: Path,
                                                                          clean_environment: pytest.MonkeyPatch):
    configured, defaults = graceful_timeouts(deployment_values(), {}, cwd=tmp_path)
    # The defaults' figure that the comments quote; the ConfigMap's figure is the one that must be covered (the
    # same unless REQUEST_DEADLINE_SECONDS, MAX_AUDIO_SECONDS or SHUTDOWN_DRAIN_SECONDS was changed there).
    assert defaults == 130
    web = container("Deployment", "backend-ai-web")
    pre_stop = web["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and int(pre_stop[1]) >= 5, "the preStop hook waits for endpoints to update"
    drain = load_settings(deployment_values()).shutdown_drain_seconds
    assert int(pre_stop[1]) + drain >= ENDPOINTS_PROPAGATION_SECONDS, "accepting stops before endpoints update"
    grace = one("Deployment", "backend-ai-web")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # + 5 s for gunicorn's master to reap its workers and exit.
    assert grace >= int(pre_stop[1]) + max(configured, defaults) + 5


def test_worker_grace_period_covers_a_job_step(clean_environment: pytest.MonkeyPatch):
    settings = load_settings(deployment_values())
    worker = one("Deployment", "backend-ai-worker")["spec"]["template"]["spec"]
    # A step is one model call within the deadline; then steps in flight get STEPS_GRACE_SECONDS to finish.
    assert worker["terminationGracePeriodSeconds"] >= settings.longest_request_seconds + STEPS_GRACE_SECONDS
    entry = container("Deployment", "backend-ai-worker")
    assert entry["command"][:len(procfile()["worker"])] == procfile()["worker"]
    assert "readinessProbe" not in entry, "the worker serves no API"
    # Only its metrics, on JOB_WORKER_METRICS_PORT, scraped through the pod's annotations.
    (metrics_port,) = entry["ports"]
    env = {item["name"]: item["value"] for item in entry.get("env", [])}
    assert str(metrics_port["containerPort"]) == env["JOB_WORKER_METRICS_PORT"] == \
        one("Deployment", "backend-ai-worker")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
