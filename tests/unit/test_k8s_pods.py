"""The Kubernetes manifests (config/k8s/): every pod hardened with resources, the release step, and the objects
around the web pods (service, autoscaler, disruption budget, network policies) aimed at the right pods."""
from __future__ import annotations

from tests.unit.k8s_helpers import (
    container,
    one,
    pod_specs,
    procfile,
    resources,
)

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
