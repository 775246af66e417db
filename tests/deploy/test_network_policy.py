"""The rendered NetworkPolicy: it selects the model-server pod and lets in exactly the documented callers.

ReloadConfig shares port 8500 with Predict and TF Serving has no authentication, so this policy is the only
guard of the model config (docs/deploying.md, docs/decisions/0007).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.deploy.conftest import K8S, ROOT, load_yaml, only, render
from tests.deploy.netpol import Client, allows, selects

GRPC, REST, AGENT = 8500, 8501, 9464
PORTS = (GRPC, REST, AGENT)
#: The example overlay's parameters (k8s/overlays/example/kustomization.yaml).
EXAMPLE_CLIENTS = ("storefront", "recommendations")
EXAMPLE_MONITORING = "monitoring"
OPERATOR = {"tfs-agent/operator": "true"}


def _policy(path: str) -> dict[str, Any]:
    return only(render(path), "NetworkPolicy")


def _reachable(policy: dict[str, Any], client: Client) -> set[int]:
    return {port for port in PORTS if allows(policy, client, port)}


@pytest.mark.parametrize("path", ["base", "overlays/example"])
def test_policy_selects_the_model_server_pod_for_ingress(path: str) -> None:
    """The policy's podSelector matches the pod template's labels and isolates ingress, not egress."""
    resources = render(path)
    policy = only(resources, "NetworkPolicy")
    labels = only(resources, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"], labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_example_overlay_lets_in_exactly_the_documented_callers() -> None:
    """Clients reach 8500/8501, Prometheus 8501/9464, operator pods 9464; nobody else anything."""
    policy = _policy("overlays/example")
    namespace = policy["metadata"]["namespace"]
    expected = [
        (Client(EXAMPLE_CLIENTS[0], {"app": "web"}), {GRPC, REST}),
        (Client(EXAMPLE_CLIENTS[1]), {GRPC, REST}),
        (Client(EXAMPLE_MONITORING, {"app.kubernetes.io/name": "prometheus"}), {REST, AGENT}),
        (Client(namespace, OPERATOR), {AGENT}),
        # The same label elsewhere is not an operator, and the serving namespace is not a client.
        (Client("storefront-dev", OPERATOR), set()),
        (Client(namespace, {"app": "toolbox"}), set()),
        (Client("default"), set()),
        (Client("kube-system"), set()),
    ]
    assert [(client, _reachable(policy, client)) for client, _ in expected] == expected


def test_base_lets_no_client_call_tf_serving() -> None:
    """Rendered alone, the base's placeholder allows no namespace on 8500, so a forgotten parameter fails
    closed."""
    policy = _policy("base")
    for namespace in [*EXAMPLE_CLIENTS, "default", "ml-serving"]:
        assert GRPC not in _reachable(policy, Client(namespace))


def test_overlay_parameters_replace_the_base_values() -> None:
    """The example overlay's patch sets the client namespaces and the monitoring namespace."""
    rules = _policy("overlays/example")["spec"]["ingress"]
    clients = rules[0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert clients == list(EXAMPLE_CLIENTS)
    monitoring = rules[1]["from"][0]["namespaceSelector"]["matchLabels"]
    assert monitoring == {"kubernetes.io/metadata.name": EXAMPLE_MONITORING}
    kustomization = (K8S / "overlays" / "example" / "kustomization.yaml").read_text()
    assert "kind: NetworkPolicy" in kustomization


def test_operator_selector_survives_kustomize_common_labels() -> None:
    """kustomize adds its common labels to matchLabels selectors; the operator rule uses matchExpressions, so
    an operator pod needs only the operator label."""
    rules = _policy("overlays/example")["spec"]["ingress"]
    operator_peer = rules[2]["from"][0]
    assert "matchLabels" not in operator_peer["podSelector"]
    assert selects(operator_peer["podSelector"], OPERATOR)


def test_evaluator_has_teeth() -> None:
    """A rule without ports or without peers opens everything: the evaluator sees it, so a pass means
    something."""
    policy = copy.deepcopy(_policy("overlays/example"))
    del policy["spec"]["ingress"][2]["ports"]
    assert _reachable(policy, Client(policy["metadata"]["namespace"], OPERATOR)) == set(PORTS)
    del policy["spec"]["ingress"][0]["from"]
    assert _reachable(policy, Client("anywhere")) == {GRPC, REST}


def test_docs_say_only_the_network_protects_reload_config() -> None:
    """docs/deploying.md says ReloadConfig shares port 8500 with Predict and only the network guards it."""
    text = " ".join((ROOT / "docs" / "deploying.md").read_text().split())
    assert "ReloadConfig shares port 8500 with Predict" in text
    assert "only the network protects it" in text
    assert load_yaml(K8S / "base" / "networkpolicy.yaml")["kind"] == "NetworkPolicy"
