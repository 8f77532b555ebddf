"""The Kubernetes manifests (config/k8s/): valid for the API server's schemas, wired to each other, and in step with
the settings (every variable exists, the grace periods cover the drains they are computed from)."""
from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

import backend.settings as settings_module
from backend.jobs.worker import STEPS_GRACE_SECONDS
from backend.settings import load_settings
from tests.gunicorn_conf import SETTING_NAMES, graceful_timeouts

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "config/k8s"
EXAMPLE_SECRET = "secret.example.yaml"
KUSTOMIZATION = "kustomization.yaml"
# A recent release the cluster is expected to run; kubernetes-validate ships its schemas, so nothing is fetched.
KUBERNETES_VERSION = "1.30.0"
IMAGE = "backend-ai"
# Read by the processes themselves rather than through Settings.
PROCESS_VARIABLES = {"HOST", "PORT", "PROMETHEUS_MULTIPROC_DIR"}


@functools.cache
def documents(name: str) -> list[dict[str, Any]]:
    """The YAML documents of one file of config/k8s (parsed once; the tests only read them)."""
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def manifest_files() -> list[str]:
    """Every manifest file, the example Secret included (the kustomization is not a Kubernetes object)."""
    return sorted(path.name for path in K8S.glob("*.yaml") if path.name != KUSTOMIZATION)


def resources() -> list[dict[str, Any]]:
    """The objects the kustomization applies."""
    return [doc for name in documents(KUSTOMIZATION)[0]["resources"] for doc in documents(name)]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in resources() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload."""
    for doc in resources():
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            yield f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]["spec"]


def container(kind: str, name: str) -> dict[str, Any]:
    containers = one(kind, name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(entry: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in entry.get("env", [])}


def deployment_values() -> dict[str, str]:
    """The settings a pod gets: the ConfigMap with the example Secret's placeholders over it (envFrom's order)."""
    config = one("ConfigMap", "backend-ai-config")["data"]
    secret = documents(EXAMPLE_SECRET)[0]["stringData"]
    return {**config, **secret}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting, and no sign of Kubernetes, from the environment the tests run in."""
    for name in list(os.environ):
        if name.upper() in SETTING_NAMES or name.upper().startswith("KUBERNETES_"):
            monkeypatch.delenv(name)
    return monkeypatch


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


# --- hardening and resources ---------------------------------------------------------------------------------------

def test_every_pod_runs_hardened_with_resources():
    specs = dict(pod_specs())
    assert set(specs) == {"Deployment/backend-ai-web", "Deployment/backend-ai-worker", "Job/backend-ai-migrate",
                          "CronJob/backend-ai-data-purge"}
    for where, spec in specs.items():
        pod = spec["securityContext"]
        assert (pod["runAsNonRoot"], pod["runAsUser"], pod["seccompProfile"]["type"]) == (True, 10001,
                                                                                          "RuntimeDefault"), where
        assert spec["automountServiceAccountToken"] is False, where
        for entry in spec["containers"]:
            ctx = entry["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert "/tmp" in {m["mountPath"] for m in entry["volumeMounts"]}, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(entry["resources"][bound]), f"{where}: {bound}"


def test_migration_job_is_the_release_step():
    job = one("Job", "backend-ai-migrate")["spec"]
    assert job["template"]["spec"]["containers"][0]["command"] == procfile()["release"]
    assert job["backoffLimit"] >= 1 and job["ttlSecondsAfterFinished"] > 0
    assert job["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")


# --- the objects around the web pods -------------------------------------------------------------------------------

def labels_of(kind: str, name: str) -> dict[str, str]:
    return one(kind, name)["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_service_hpa_and_pdb_aim_at_the_web_pods():
    web, worker = labels_of("Deployment", "backend-ai-web"), labels_of("Deployment", "backend-ai-worker")
    deployment = one("Deployment", "backend-ai-web")
    assert "replicas" not in deployment["spec"], "the HPA owns the web replica count"
    service = one("Service", "backend-ai")["spec"]
    assert selects(service["selector"], web) and not selects(service["selector"], worker)
    named_ports = {p["name"] for p in container("Deployment", "backend-ai-web")["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= named_ports
    hpa = one("HorizontalPodAutoscaler", "backend-ai-web")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend-ai-web"}
    assert hpa["spec"]["minReplicas"] >= 2
    [cpu] = [m["resource"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert cpu["name"] == "cpu" and 50 <= cpu["target"]["averageUtilization"] <= 80
    pdb = one("PodDisruptionBudget", "backend-ai-web")["spec"]
    assert selects(pdb["selector"]["matchLabels"], web) and not selects(pdb["selector"]["matchLabels"], worker)
    assert pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable") == 1


def test_network_policies_admit_the_web_and_worker_metrics_ports_and_the_needed_egress_only():
    policies = [doc for doc in resources() if doc["kind"] == "NetworkPolicy"]
    port = container("Deployment", "backend-ai-web")["ports"][0]["containerPort"]
    everyone = [p["spec"] for p in policies if "Egress" in p["spec"]["policyTypes"]]
    assert len(everyone) == 1
    for kind, name in (("Deployment", "backend-ai-web"), ("Deployment", "backend-ai-worker"),
                       ("Job", "backend-ai-migrate")):
        assert selects(everyone[0]["podSelector"]["matchLabels"], labels_of(kind, name)), name
    egress = {(p["protocol"], p["port"]) for rule in everyone[0]["egress"] for p in rule["ports"]}
    assert {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 5432), ("TCP", 443)} <= egress
    ingress = [(p["spec"]["podSelector"]["matchLabels"], rule) for p in policies
               for rule in p["spec"].get("ingress", [])]
    assert len(ingress) == 2
    (web, web_rule), (worker, worker_rule) = ingress
    assert selects(web, labels_of("Deployment", "backend-ai-web"))
    assert not selects(web, labels_of("Deployment", "backend-ai-worker"))
    assert web_rule["ports"] == [{"protocol": "TCP", "port": port}]
    # The workers accept their metrics port only; job pods accept nothing.
    assert selects(worker, labels_of("Deployment", "backend-ai-worker"))
    assert not selects(worker, labels_of("Deployment", "backend-ai-web"))
    assert not selects(worker, labels_of("Job", "backend-ai-migrate"))
    metrics_port = container("Deployment", "backend-ai-worker")["ports"][0]["containerPort"]
    assert worker_rule["ports"] == [{"protocol": "TCP", "port": metrics_port}]


def procfile() -> dict[str, list[str]]:
    """The Procfile's commands, split as a shell would."""
    lines = (line.partition(":") for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    return {name.strip(): shlex.split(command) for name, _, command in lines}
