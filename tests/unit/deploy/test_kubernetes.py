"""deploy/kubernetes/: valid against the Kubernetes schemas, and saying the same as the
compose file and the image (variables, uid, ports, grace periods); the autoscaler watches
the consumer queues and never the delay queues."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.messaging.names import Names
from shared.messaging.topology import CONSUMERS
from tests.unit.deploy.conftest import DEPLOY

K8S = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
SECRET_KEYS = {"DATABASE_URL", "AMQP_URL", "JWT_SECRET"}


def documents() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out.extend((path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return out


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == kind}


def pod_spec(name: str) -> dict[str, Any]:
    workload = {**by_kind("Deployment"), **by_kind("Job")}[name]
    return workload["spec"]["template"]["spec"]


def env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


@pytest.mark.parametrize(
    ("path", "doc"),
    [(p, d) for p, d in documents() if d["apiVersion"].split("/")[0] in
     ("v1", "apps", "batch", "policy")],
    ids=lambda v: v.name if isinstance(v, Path) else v.get("kind", ""),
)
def test_every_built_in_resource_validates_strictly(path: Path, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_resource_is_refused() -> None:
    # The validation can fail: a Deployment with a misspelt field.
    doc = yaml.safe_load((K8S / "api-deployment.yaml").read_text())
    doc["spec"]["replica"] = doc["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_configmap_has_the_compose_files_settings_and_defaults(
    services: dict[str, Any],
) -> None:
    (config,) = by_kind("ConfigMap").values()
    compose_env = services["api"]["environment"]
    expected = {}
    for key, value in compose_env.items():
        if key in SECRET_KEYS:
            continue
        default = re.fullmatch(r"\$\{\w+:-([^}]*)\}", str(value))
        assert default, f"{key} has no default in compose.yaml"
        expected[key] = default.group(1)
    assert config["data"] == expected


def test_secrets_come_from_the_secret_and_nothing_secret_from_the_configmap() -> None:
    (config,) = by_kind("ConfigMap").values()
    assert not SECRET_KEYS & set(config["data"])
    for name in ("exchange-tokens-api", "exchange-tokens-worker", "exchange-tokens-migrate"):
        spec = pod_spec(name)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            assert env_names(container) == SECRET_KEYS, (name, container["name"])
            for entry in container["env"]:
                assert entry["valueFrom"]["secretKeyRef"]["name"] == "exchange-tokens"
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert SECRET_KEYS <= set(secret["stringData"])
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]


def test_every_pod_runs_as_the_images_user_with_resources_and_a_read_only_root() -> None:
    uid = re.search(r"--uid (\d+)", (DEPLOY / "Dockerfile").read_text()).group(1)
    for name in ("exchange-tokens-api", "exchange-tokens-worker", "exchange-tokens-migrate"):
        spec = pod_spec(name)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert str(spec["securityContext"]["runAsUser"]) == uid
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_api_and_workers_have_probes_and_wait_for_the_schema(
    services: dict[str, Any],
) -> None:
    api = pod_spec("exchange-tokens-api")
    (container,) = api["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"][0]["containerPort"] == 8000
    worker = pod_spec("exchange-tokens-worker")
    (container,) = worker["containers"]
    assert "/opt/venv/lib/healthcheck.py" in container["livenessProbe"]["exec"]["command"]
    for spec in (api, worker):
        (init,) = spec["initContainers"]
        assert "/opt/venv/lib/wait_for_schema.py" in init["command"]
    # The same grace as compose gives the containers to finish their work in hand.
    for name, spec in (("api", api), ("worker", worker)):
        grace = int(services[name]["stop_grace_period"].rstrip("s"))
        assert spec["terminationGracePeriodSeconds"] == grace
    assert by_kind("Job")["exchange-tokens-migrate"]["spec"]["template"]["spec"][
        "containers"][0]["args"] == ["migrate"]


def test_a_disruption_budget_covers_the_api_and_the_workers() -> None:
    budgets = [b["spec"]["selector"]["matchLabels"] for b in by_kind("PodDisruptionBudget").values()]
    for deployment in by_kind("Deployment").values():
        assert deployment["spec"]["selector"]["matchLabels"] in budgets


def test_the_autoscaler_watches_every_consumer_queue_and_no_delay_queue() -> None:
    (scaled,) = by_kind("ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "exchange-tokens-worker"
    (config,) = by_kind("ConfigMap").values()
    names = Names(config["data"]["BROKER_NAMESPACE"])
    queues = {t["metadata"]["queueName"] for t in scaled["spec"]["triggers"]}
    assert queues == {names.consumer_queue(c) for c in CONSUMERS}
    assert not [q for q in queues if ".delay" in q or q == names.dead_letter_queue]
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["mode"] == "QueueLength"  # ready messages, not rate
    assert scaled["spec"]["minReplicaCount"] >= 2


def test_the_kustomization_lists_every_manifest_but_the_example_secret_and_keda() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {
        "kustomization.yaml", "secret.example.yaml", "keda-scaledobject.yaml"}
    assert set(kustomization["resources"]) == files
