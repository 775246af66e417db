"""Kubernetes manifests and the compose file: schema-valid, wired, faithful to docs/tfserving-behaviour.md."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from kubernetes_validate.utils import latest_version  # type: ignore[import-untyped]

from agent.infra.config import AgentSettings, load_settings, settings_from_mapping
from tests.deploy.conftest import (
    AGENT_IMAGE,
    DOCKER,
    K8S,
    MIN_KUBERNETES,
    ROOT,
    load_yaml,
    only,
    render,
    run,
    tool,
)

#: Custom resources of the Prometheus Operator have no upstream schema; test_monitoring.py checks them.
CRDS = {"PodMonitor", "PrometheusRule"}
PUBLIC_IMAGES = ("tensorflow/serving", "fsouza/fake-gcs-server", "prom/prometheus")
#: TF Serving flags the agent depends on (docs/tfserving-behaviour.md: B1, B7, B8, B12, B21).
REQUIRED_TFS_FLAGS = {
    "--port": "8500",
    "--rest_api_port": "8501",
    "--model_config_file_poll_wait_seconds": "0",
    "--file_system_poll_wait_seconds": "1",
    "--max_num_load_retries": "1",
    "--load_retry_interval_micros": "2000000",
    "--allow_version_labels_for_unavailable_models": "true",
}


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)


def _containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def _agent_config(resources: list[dict[str, Any]]) -> AgentSettings:
    config_map = next(r for r in resources if r["kind"] == "ConfigMap" and "config.yaml" in r.get("data", {}))
    return settings_from_mapping(
        yaml.safe_load(config_map["data"]["config.yaml"]), config_map["metadata"]["name"]
    )


# -- schema --
@pytest.mark.parametrize("version", [MIN_KUBERNETES, latest_version()])
def test_kustomize_output_is_schema_valid(rendered: list[dict[str, Any]], version: str) -> None:
    """Every built-in resource kustomize renders passes strict schema validation, on the oldest supported
    Kubernetes and the newest the validator knows."""
    checked = set()
    for resource in rendered:
        if resource["kind"] in CRDS:
            continue
        kubernetes_validate.validate(resource, version, strict=True)
        checked.add(resource["kind"])
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"} <= checked


def test_schema_validation_has_teeth() -> None:
    """The strict validator rejects a misspelt field, so a pass above means something."""
    deployment = copy.deepcopy(only(render("base"), "Deployment"))
    deployment["spec"]["template"]["spec"]["initContainers"][0]["restartPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, MIN_KUBERNETES, strict=True)


# -- the pod --
def test_agent_is_a_native_sidecar_gating_tf_serving(pod: dict[str, Any]) -> None:
    """The agent is an init container, restartPolicy Always, with a /healthz startupProbe (B2 start order)."""
    (agent,) = pod["spec"]["initContainers"]
    assert agent["restartPolicy"] == "Always"
    assert agent["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert agent["args"] == ["run", "--config", "/etc/tfs-agent/config.yaml"]


def test_agent_gets_its_pod_name_from_the_downward_api(pod: dict[str, Any]) -> None:
    """The agent container has POD_NAME = metadata.name: the fleet's ledger id and its subscription's name."""
    env = {e["name"]: e for e in _containers(pod)["tfs-agent"].get("env", [])}
    assert "POD_NAME" in env, "k8s: the agent reads $POD_NAME (fleet id, notification subscription)"
    assert env["POD_NAME"] == {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def test_tf_serving_flags_follow_tfserving_md(rendered: list[dict[str, Any]], pod: dict[str, Any]) -> None:
    """TF Serving reads the agent's config file, polls the volume, retries little and exports metrics."""
    serving = _containers(pod)["tensorflow-serving"]
    flags = _flags(serving["args"])
    assert REQUIRED_TFS_FLAGS.items() <= flags.items()
    assert flags["--model_config_file"] == str(_agent_config(rendered).serving.model_config_file)
    assert flags["--monitoring_config_file"].startswith("/etc/tfserving/")


def test_tf_serving_readiness_probes_a_configured_model(
    rendered: list[dict[str, Any]], pod: dict[str, Any]
) -> None:
    """TF Serving's readiness asks its REST model status for a model the agent manages."""
    path = _containers(pod)["tensorflow-serving"]["readinessProbe"]["httpGet"]["path"]
    match = re.fullmatch(r"/v1/models/([^/]+)", path)
    assert match, path
    assert match.group(1) in _agent_config(rendered).model_names


def test_model_volume_is_shared(rendered: list[dict[str, Any]], pod: dict[str, Any]) -> None:
    """Both containers mount the same emptyDir where the agent's models, config file and state live."""
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes["models"]
    mounts = {name: {m["name"]: m for m in c["volumeMounts"]} for name, c in _containers(pod).items()}
    agent_mount = mounts["tfs-agent"]["models"]
    assert not agent_mount.get("readOnly", False)
    assert mounts["tensorflow-serving"]["models"]["mountPath"] == agent_mount["mountPath"]
    settings = _agent_config(rendered)
    root = Path(agent_mount["mountPath"])
    paths = [settings.serving.model_config_file, settings.state_dir, *(m.local_path for m in settings.models)]
    assert all(p.is_relative_to(root) for p in paths), paths


def test_agent_config_and_token_mounts_match_the_config(
    rendered: list[dict[str, Any]], pod: dict[str, Any]
) -> None:
    """The ConfigMap is mounted where the agent reads it; the admin token file is in the optional Secret."""
    mounts = {m["name"]: m["mountPath"] for m in _containers(pod)["tfs-agent"]["volumeMounts"]}
    assert mounts["agent-config"] == "/etc/tfs-agent"
    token = _agent_config(rendered).http.admin_token_file
    assert token is not None
    assert token.parent == Path(mounts["admin-token"])
    secret = {v["name"]: v for v in pod["spec"]["volumes"]}["admin-token"]["secret"]
    assert secret["optional"] is True


def test_pod_is_locked_down(pod: dict[str, Any]) -> None:
    """Non-root as the image's uid, RuntimeDefault seccomp; containers read-only, no escalation, no caps."""
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsUser"] == _dockerfile_uid()
    assert pod["spec"]["automountServiceAccountToken"] is False
    for name, container in _containers(pod).items():
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name


def test_tf_serving_memory_is_guaranteed(pod: dict[str, Any]) -> None:
    """TF Serving's memory request equals its limit, sized for a swap's 2x peak (B5), explained beside it."""
    resources = _containers(pod)["tensorflow-serving"]["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    text = (K8S / "base" / "deployment.yaml").read_text()
    assert "tfserving-behaviour.md#b5" in text
    assert "max(resident size)" in text


def test_service_and_pdb_select_the_pod(rendered: list[dict[str, Any]], pod: dict[str, Any]) -> None:
    """Service and PodDisruptionBudget select the pod; the Service carries TF Serving's named ports only."""
    labels = pod["metadata"]["labels"]
    service = only(rendered, "Service")
    pdb = only(rendered, "PodDisruptionBudget")
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    named = {p["name"]: p["containerPort"] for c in _containers(pod).values() for p in c.get("ports", [])}
    # The agent's port is per pod (its /status, admin API): never behind a Service that picks a pod.
    assert {p["targetPort"]: p["port"] for p in service["spec"]["ports"]} == {"grpc": 8500, "http": 8501}
    assert {k: named[k] for k in ("grpc", "http", "metrics")} == {"grpc": 8500, "http": 8501, "metrics": 9464}


def test_service_account_uses_workload_identity(rendered: list[dict[str, Any]], pod: dict[str, Any]) -> None:
    """The pod runs as the annotated ServiceAccount, and the read-only bucket role is documented."""
    account = only(rendered, "ServiceAccount")
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )
    assert "roles/storage.objectViewer" in (K8S / "base" / "serviceaccount.yaml").read_text()


def test_images_are_public_or_built_here(rendered: list[dict[str, Any]]) -> None:
    """Manifests use only pinned public images and the agent image built from docker/."""
    images = [
        c["image"] for c in _containers(dict(only(rendered, "Deployment")["spec"]["template"])).values()
    ]
    images += [s["image"] for s in load_yaml(DOCKER / "compose.yaml")["services"].values()]
    for image in images:
        name, _, tag = image.rpartition(":")
        assert tag not in ("", "latest"), image
        assert name.startswith(PUBLIC_IMAGES) or name.endswith(AGENT_IMAGE), image


# -- compose --
def test_compose_starts_tf_serving_after_the_agent_is_healthy() -> None:
    """TF Serving waits for the agent's healthcheck, shares its volume, and gets the same flags as in k8s."""
    services = load_yaml(DOCKER / "compose.yaml")["services"]
    serving, agent = services["tfserving"], services["agent"]
    assert serving["depends_on"]["agent"]["condition"] == "service_healthy"
    assert agent["build"]["dockerfile"] == "docker/Dockerfile"
    assert "HEALTHCHECK" in (DOCKER / "Dockerfile").read_text()
    flags = _flags(serving["command"])
    assert REQUIRED_TFS_FLAGS.items() <= flags.items()
    settings = load_settings(DOCKER / "agent-config.yaml")
    assert flags["--model_config_file"] == str(settings.serving.model_config_file)
    volume = {v.split(":")[0]: v.split(":")[1] for v in serving["volumes"]}
    assert {v.split(":")[0]: v.split(":")[1] for v in agent["volumes"]}["models"] == volume["models"]
    assert agent["environment"]["STORAGE_EMULATOR_HOST"] == "http://fake-gcs:4443"


def test_compose_mounts_exist() -> None:
    """Every file compose bind-mounts is in the repository."""
    for service in load_yaml(DOCKER / "compose.yaml")["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), source


@pytest.mark.parametrize(
    "path",
    [
        DOCKER / "agent-config.yaml",
        K8S / "base" / "agent-config.yaml",
        K8S / "overlays/example/agent-config.yaml",
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_shipped_agent_configs_parse(path: Path) -> None:
    """Every agent config we ship is valid for the agent's own loader."""
    assert load_settings(path).models


# -- linters --
def test_yamllint_passes() -> None:
    """All YAML in the repository passes yamllint with the repository's .yamllint."""
    result = run(tool("yamllint"), "--strict", "--format", "parsable", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_passes() -> None:
    """The Dockerfile passes hadolint with no warnings."""
    result = run(tool("hadolint"), "--failure-threshold", "warning", str(DOCKER / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def _dockerfile_uid() -> int:
    match = re.search(r"^USER (\d+)", (DOCKER / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile must switch to a numeric USER"
    return int(match.group(1))
