"""Kubernetes NetworkPolicy ingress semantics for rendered manifests: may a given client reach a port?

No CNI runs here, so the deployment checks evaluate the rendered policies the way the API documents them
(networking.k8s.io/v1): a pod selected by any Ingress policy accepts only what some rule allows; a rule
allows a connection when one of its ``from`` peers matches the client and one of its ``ports`` matches the
port (a missing list matches everything); a peer's podSelector alone means the policy's own namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Kubernetes sets this label on every namespace (>= 1.22).
NAMESPACE_NAME = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Client:
    """A pod opening a connection: its namespace and labels, and the namespace's labels."""

    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def all_namespace_labels(self) -> dict[str, str]:
        return {NAMESPACE_NAME: self.namespace, **self.namespace_labels}


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label set; {} selects everything."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(_expression(e, labels) for e in selector.get("matchExpressions", []))


def _expression(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown selector operator {operator!r}")


def _peer_matches(peer: dict[str, Any], client: Client, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False  # clients here are pods, named by labels; ipBlock rules are checked separately
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], client.all_namespace_labels())
    else:
        in_namespace = client.namespace == policy_namespace
    return in_namespace and selects(peer.get("podSelector"), client.labels)


def _port_matches(rule_ports: list[dict[str, Any]] | None, port: int) -> bool:
    if rule_ports is None:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        first = entry.get("port")
        if (
            first is None
            or first == port
            or (isinstance(first, int) and first <= port <= entry.get("endPort", first))
        ):
            return True
    return False


def allows(policy: dict[str, Any], client: Client, port: int) -> bool:
    """Whether this one Ingress policy lets ``client`` open a TCP connection to ``port``."""
    namespace = policy["metadata"].get("namespace", "default")
    for rule in policy["spec"].get("ingress", []):
        peers = rule.get("from")
        peer_ok = peers is None or any(_peer_matches(p, client, namespace) for p in peers)
        if peer_ok and _port_matches(rule.get("ports"), port):
            return True
    return False
