"""The Kubernetes manifests (config/k8s/) as the tests read them, and the Procfile they must agree with."""
from __future__ import annotations

import functools
import os
import shlex
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.gunicorn_conf import SETTING_NAMES

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


@pytest.fixture(name="clean_environment")
def clean_environment_fixture(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting, and no sign of Kubernetes, from the environment the tests run in."""
    for name in list(os.environ):
        if name.upper() in SETTING_NAMES or name.upper().startswith("KUBERNETES_"):
            monkeypatch.delenv(name)
    return monkeypatch


def procfile() -> dict[str, list[str]]:
    """The Procfile's commands, split as a shell would."""
    lines = (line.partition(":") for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    return {name.strip(): shlex.split(command) for name, _, command in lines}
