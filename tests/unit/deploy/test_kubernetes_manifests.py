"""deploy/kubernetes renders with kustomize and validates offline against the Kubernetes and
KEDA schemas; the rendered Deployments run what the services need, and nothing more.

Rendering and validation use `.infra/bin/configcheck` (kustomize's and kubeconform's
libraries), the Kubernetes schemas of the `kubernetes-validate` package and KEDA's CRDs from
its Go module, all installed by `deploy/infra.sh tools`: nothing is fetched here.
"""

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from mailsync_api.settings import Settings as ApiSettings
from mailsync_associate.settings import Settings as AssociateSettings
from mailsync_capture.settings import Settings as CaptureSettings
from mailsync_devtools.stack import SERVICES
from mailsync_ingest.settings import Settings as IngestSettings
from mailsync_send.settings import Settings as SendSettings
from mailsync_shared.topology import (
    ASSOCIATE_SHARDS,
    CAPTURE_SHARDS,
    SEND_REQUESTS,
    SHARD_COUNT,
)
from tests.support.deploy_tools import REPO, configcheck, keda_crds, kubernetes_schemas

KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir())
SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "ingest": IngestSettings,
    "capture": CaptureSettings,
    "associate": AssociateSettings,
    "send": SendSettings,
}
Manifest = dict[str, Any]


def secrets_env() -> str:
    keys = ",".join(Fernet.generate_key().decode() for _ in range(2))
    return (
        f"MAILSYNC_SECRET_KEYS={keys}\n"
        "MAILSYNC_RABBITMQ_URL=amqp://mailsync:rabbit-secret@rabbitmq:5672/\n"
        "MAILSYNC_MONGODB_URL=mongodb://mailsync:mongo-secret@mongodb:27017/?authSource=admin\n"
        "MAILSYNC_OPERATOR_TOKEN=operator-secret\n"
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/kubernetes with a secrets.env in every overlay, as an operator makes."""
    copy = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBERNETES, copy, ignore=shutil.ignore_patterns("secrets.env"))
    for overlay in OVERLAYS:
        (copy / "overlays" / overlay / "secrets.env").write_text(secrets_env())
    return copy


@pytest.fixture(scope="module")
def rendered(tree: Path) -> dict[str, Path]:
    files = {}
    for overlay in OVERLAYS:
        result = configcheck("kustomize", str(tree / "overlays" / overlay))
        assert result.returncode == 0, result.stderr
        files[overlay] = tree / f"{overlay}.yaml"
        files[overlay].write_text(result.stdout)
    return files


def load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, Path]) -> list[Manifest]:
    return load(rendered[request.param])


def validate(path: Path) -> tuple[int, str]:
    result = configcheck(
        "validate",
        "-schemas",
        str(kubernetes_schemas()),
        "-crds",
        str(keda_crds()),
        str(path),
    )
    return result.returncode, result.stdout + result.stderr


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def container(deployment: Manifest) -> Manifest:
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def service_of(deployment: Manifest) -> str:
    command: list[str] = container(deployment)["command"]
    return command[-1].removeprefix("mailsync_")


def test_there_is_a_production_and_a_tenant_pool_overlay() -> None:
    assert {"production", "tenant-pools"} <= set(OVERLAYS)


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_rendered_manifest_is_valid(rendered: dict[str, Path], name: str) -> None:
    status, output = validate(rendered[name])
    assert status == 0, output
    assert f"{len(load(rendered[name]))} resources, 0 invalid" in output, output


def test_the_validator_rejects_unknown_fields_in_core_and_keda_resources(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    manifests = load(rendered["production"])
    for kind, broken in (("Deployment", "api"), ("ScaledObject", "send")):
        tampered = [
            {**m, "spec": {**m["spec"], "replica": 3}}
            if m["kind"] == kind and m["metadata"]["name"] == broken
            else m
            for m in manifests
        ]
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump_all(tampered))
        status, output = validate(path)
        assert status != 0
        assert f"INVALID  {path} {kind}/{broken}" in output, output
        assert "'replica' not allowed" in output, output


def test_an_overlay_without_its_secrets_does_not_render(tree: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "kubernetes"
    shutil.copytree(tree, overlay)
    (overlay / "overlays" / "production" / "secrets.env").unlink()
    result = configcheck("kustomize", str(overlay / "overlays" / "production"))
    assert result.returncode != 0
    assert "secrets.env" in result.stderr


def test_each_service_is_a_deployment_running_the_local_command(overlay: list[Manifest]) -> None:
    deployments = of_kind(overlay, "Deployment")
    commands = {service_of(d): container(d)["command"] for d in deployments.values()}
    assert {service.name: service.command for service in SERVICES} == commands


def test_probes_use_the_health_endpoints_on_the_service_port(overlay: list[Manifest]) -> None:
    for deployment in of_kind(overlay, "Deployment").values():
        spec = container(deployment)
        port = next(p for p in spec["ports"] if p["name"] == "http")["containerPort"]
        service = next(s for s in SERVICES if s.name == service_of(deployment))
        assert port == service.port
        assert spec["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert spec["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}


UNITS = {"m": 0.001, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number (cores, bytes)."""
    text = str(value)
    for suffix, factor in UNITS.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def test_every_container_has_cpu_and_memory_requests_within_limits(
    overlay: list[Manifest],
) -> None:
    for name, deployment in of_kind(overlay, "Deployment").items():
        resources = container(deployment)["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"}, name
        assert set(resources["limits"]) == {"cpu", "memory"}, name
        for kind in ("cpu", "memory"):
            request = quantity(resources["requests"][kind])
            assert 0 < request <= quantity(resources["limits"][kind]), name
        # A service is one Python process: a second core would stay idle.
        assert quantity(resources["limits"]["cpu"]) <= 1, name


def test_every_deployment_has_a_disruption_budget_for_exactly_its_pods(
    overlay: list[Manifest],
) -> None:
    deployments = of_kind(overlay, "Deployment")
    budgets = of_kind(overlay, "PodDisruptionBudget")
    assert set(budgets) == set(deployments)
    for name, budget in budgets.items():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selector == deployments[name]["spec"]["selector"]["matchLabels"]
        others = [d for n, d in deployments.items() if n != name]
        for other in others:
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= labels.items(), f"{name}'s budget selects {other}"


def test_only_the_api_is_reachable_from_outside(overlay: list[Manifest]) -> None:
    assert set(of_kind(overlay, "Service")) == {"api"}
    assert not of_kind(overlay, "Ingress")
    policies = of_kind(overlay, "NetworkPolicy")
    deny = [
        p
        for p in policies.values()
        if p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
    ]
    assert deny, "a default deny of inbound traffic"
    assert "ingress" not in deny[0]["spec"]
    open_to_all = [
        p
        for p in policies.values()
        if "Ingress" in p["spec"]["policyTypes"]
        and any("from" not in rule for rule in p["spec"].get("ingress", []))
    ]
    assert [p["spec"]["podSelector"] for p in open_to_all] == [
        {"matchLabels": {"app.kubernetes.io/name": "api"}}
    ]


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    return set(selector.get("matchLabels", {}).items()) <= set(labels.items())


def test_monitoring_reaches_every_pod_and_the_outside_only_the_api(
    overlay: list[Manifest],
) -> None:
    policies = of_kind(overlay, "NetworkPolicy")
    for name, deployment in of_kind(overlay, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        ingress = [
            rule
            for p in policies.values()
            if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
            for rule in p["spec"].get("ingress", [])
        ]
        sources = [
            peer["namespaceSelector"]["matchLabels"]
            for rule in ingress
            for peer in rule.get("from", [])
        ]
        assert {"kubernetes.io/metadata.name": "monitoring"} in sources, name
        open_to_all = any("from" not in rule for rule in ingress)
        assert open_to_all == (service_of(deployment) == "api"), name


def test_keda_scales_capture_associate_and_send_on_their_queues(overlay: list[Manifest]) -> None:
    scaled = of_kind(overlay, "ScaledObject")
    queues = {
        name: sorted(t["metadata"]["queueName"] for t in s["spec"]["triggers"])
        for name, s in scaled.items()
    }
    assert queues == {
        "capture": sorted(shard.queue.name for shard in CAPTURE_SHARDS.shards),
        "associate": sorted(shard.queue.name for shard in ASSOCIATE_SHARDS.shards),
        "send": [SEND_REQUESTS.queue.name],
    }
    deployments = of_kind(overlay, "Deployment")
    authentications = of_kind(overlay, "TriggerAuthentication")
    secrets = of_kind(overlay, "Secret")
    for name, scaled_object in scaled.items():
        assert scaled_object["spec"]["scaleTargetRef"]["name"] in deployments
        assert scaled_object["spec"]["minReplicaCount"] >= 1, "periodic work needs a replica"
        for trigger in scaled_object["spec"]["triggers"]:
            assert trigger["type"] == "rabbitmq"
            assert trigger["metadata"]["mode"] == "QueueLength"
            assert int(trigger["metadata"]["value"]) > 0
            authentication = authentications[trigger["authenticationRef"]["name"]]
            for ref in authentication["spec"]["secretTargetRef"]:
                assert ref["name"] in secrets, f"{name}: {ref['name']} is not rendered"
    # A replica beyond one per shard would hold no shard.
    for name in ("capture", "associate"):
        assert scaled[name]["spec"]["maxReplicaCount"] <= SHARD_COUNT


def test_a_tenant_pool_leases_its_workspaces_and_the_shared_pool_leaves_them(
    rendered: dict[str, Path],
) -> None:
    deployments = of_kind(load(rendered["tenant-pools"]), "Deployment")
    pool, shared = deployments["ingest-example"], deployments["ingest"]
    pool_env = environment_literals(pool)
    shared_env = environment_literals(shared)
    pooled = json.loads(pool_env["MAILSYNC_WORKSPACES"])
    assert pooled
    assert json.loads(shared_env["MAILSYNC_WORKSPACES"]) == []
    assert set(pooled) <= set(json.loads(shared_env["MAILSYNC_EXCLUDE_WORKSPACES"]))
    assert pool["spec"]["selector"] != shared["spec"]["selector"]
    assert pool["metadata"]["namespace"] == shared["metadata"]["namespace"]
    assert container(pool)["image"] == container(shared)["image"]


def environment_literals(deployment: Manifest) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment)["env"] if "value" in e}


def environment(deployment: Manifest, manifests: list[Manifest]) -> dict[str, str]:
    """The container's environment as the kubelet sets it, config maps and secrets resolved."""
    config_maps = of_kind(manifests, "ConfigMap")
    secrets = of_kind(manifests, "Secret")

    def secret_value(name: str, key: str) -> str:
        secret = secrets[name]
        if key in secret.get("stringData", {}):
            return str(secret["stringData"][key])
        return base64.b64decode(secret["data"][key]).decode()

    spec = container(deployment)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            secret = secrets[source["secretRef"]["name"]]
            env.update(
                {key: secret_value(secret["metadata"]["name"], key) for key in secret["data"]}
            )
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret_value(ref["name"], ref["key"])
        else:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = config_maps[ref["name"]]["data"][ref["key"]]
    return env


def variables_read(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (its prefix, or its aliases)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for field, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(choice).upper() for choice in alias.choices if str(choice).isupper()}
        else:
            names.add(f"{prefix}{field}".upper())
    return names


def test_every_service_gets_what_its_settings_read_and_nothing_else(
    overlay: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Deployment's environment, resolved, sets only variables its service reads, and
    builds the service's settings (every variable without a default set, every value valid);
    the rest fall back to their defaults."""
    for name in list(os.environ):
        if name.startswith("MAILSYNC_") or name == "MONGODB_URL":
            monkeypatch.delenv(name)
    for deployment in of_kind(overlay, "Deployment").values():
        service = service_of(deployment)
        settings = SETTINGS[service]
        env = environment(deployment, overlay)
        unread = {name for name in env if name.startswith("MAILSYNC_")} - variables_read(settings)
        assert not unread, f"{service} does not read {sorted(unread)}"
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            loaded = settings().model_dump()
        assert loaded["http_host"] == "0.0.0.0"  # noqa: S104 - pods listen on their own IP
        assert loaded["http_port"] == next(s.port for s in SERVICES if s.name == service)
        assert "guest" not in loaded["rabbitmq_url"]


def test_only_the_services_that_handle_credentials_get_the_keys(overlay: list[Manifest]) -> None:
    for deployment in of_kind(overlay, "Deployment").values():
        service = service_of(deployment)
        names = {item["name"] for item in container(deployment)["env"]}
        assert ("MAILSYNC_SECRET_KEYS" in names) == (service in ("api", "ingest", "send"))
        assert ("MAILSYNC_OPERATOR_TOKEN" in names) == (service == "api")
