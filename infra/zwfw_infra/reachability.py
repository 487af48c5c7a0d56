"""Kubernetes NetworkPolicy semantics, evaluated over rendered objects: may this endpoint open
a connection to that one on this port?

The rules of networking.k8s.io/v1 (as the CNI enforces them): a pod selected by a policy with
``Ingress`` (``Egress``) among its types is isolated in that direction and only what some
selecting policy's rules allow gets through; a connection needs both the source's egress and
the destination's ingress. Peers are pod selectors (in the policy's namespace), namespace
selectors, both (pods in those namespaces) or IP blocks; rules without peers or ports match
all of them. Endpoints outside the cluster have an address and no labels.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels, named ports) or an address outside the cluster."""

    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    ports: Mapping[str, int] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against labels ({} selects everything; None selects nothing)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


class Cluster:
    """Namespaces (with their labels), endpoints and NetworkPolicies."""

    def __init__(
        self,
        namespaces: Mapping[str, Mapping[str, str]],
        endpoints: Iterable[Endpoint],
        policies: Iterable[Mapping[str, Any]],
    ) -> None:
        self.namespaces = {name: dict(labels) for name, labels in namespaces.items()}
        self.endpoints = list(endpoints)
        self.policies = list(policies)

    def _selecting(self, pod: Endpoint, direction: str) -> list[Mapping[str, Any]]:
        if not pod.is_pod:
            return []
        found = []
        for policy in self.policies:
            if policy["metadata"].get("namespace") != pod.namespace:
                continue
            spec = policy["spec"]
            types = spec.get("policyTypes") or (
                ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
            )
            if direction in types and selects(spec.get("podSelector", {}), pod.labels):
                found.append(policy)
        return found

    def _peer_matches(
        self, peer: Mapping[str, Any], policy_namespace: str, other: Endpoint
    ) -> bool:
        if "ipBlock" in peer:
            if other.ip is None:
                return False
            address = ipaddress.ip_address(other.ip)
            block = peer["ipBlock"]
            if address not in ipaddress.ip_network(block["cidr"]):
                return False
            return not any(address in ipaddress.ip_network(c) for c in block.get("except") or [])
        if not other.is_pod:
            return False
        if "namespaceSelector" in peer:
            labels = self.namespaces.get(other.namespace or "", {})
            if not selects(peer["namespaceSelector"], labels):
                return False
        elif other.namespace != policy_namespace:
            return False
        return "podSelector" not in peer or selects(peer["podSelector"], other.labels)

    @staticmethod
    def _port_matches(
        ports: Sequence[Mapping[str, Any]] | None, port: int, protocol: str, target: Endpoint
    ) -> bool:
        if not ports:
            return True
        for rule in ports:
            if rule.get("protocol", "TCP") != protocol:
                continue
            wanted = rule.get("port")
            if wanted is None:
                return True
            if isinstance(wanted, str):
                wanted = target.ports.get(wanted)
                if wanted is None:
                    continue
            end = rule.get("endPort", wanted)
            if wanted <= port <= end:
                return True
        return False

    def _allowed(
        self,
        subject: Endpoint,
        other: Endpoint,
        direction: str,
        port: int,
        protocol: str,
        target: Endpoint,
    ) -> bool:
        policies = self._selecting(subject, direction)
        if not policies:
            return True  # not isolated in this direction
        rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            namespace = policy["metadata"]["namespace"]
            for rule in policy["spec"].get(rules_key) or []:
                peers = rule.get(peers_key)
                peer_ok = not peers or any(self._peer_matches(p, namespace, other) for p in peers)
                if peer_ok and self._port_matches(rule.get("ports"), port, protocol, target):
                    return True
        return False

    def can_connect(
        self, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP"
    ) -> bool:
        egress = self._allowed(source, target, "Egress", port, protocol, target)
        ingress = self._allowed(target, source, "Ingress", port, protocol, target)
        return egress and ingress


def from_objects(
    objects: Iterable[Mapping[str, Any]],
    extra: Iterable[Endpoint] = (),
    extra_namespaces: Mapping[str, Mapping[str, str]] | None = None,
) -> Cluster:
    """A cluster of the rendered objects: namespaces, the pods of Deployments and Jobs (one per
    template), NetworkPolicies; ``extra`` adds pods the program does not render itself (the
    database instances, add-ons, other tenants' workloads) and outside addresses."""
    namespaces: dict[str, dict[str, str]] = {
        name: {"kubernetes.io/metadata.name": name, **labels}
        for name, labels in (extra_namespaces or {}).items()
    }
    endpoints: list[Endpoint] = []
    policies = []
    for obj in objects:
        kind = obj["kind"]
        meta = obj["metadata"]
        if kind == "Namespace":
            namespaces[meta["name"]] = {
                "kubernetes.io/metadata.name": meta["name"],
                **meta.get("labels", {}),
            }
        elif kind == "NetworkPolicy":
            policies.append(obj)
        elif kind in ("Deployment", "Job"):
            template = obj["spec"]["template"]
            ports = {
                p["name"]: p["containerPort"]
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
                if "name" in p
            }
            endpoints.append(
                Endpoint(
                    name=f"{meta['namespace']}/{kind.lower()}/{meta['name']}",
                    namespace=meta["namespace"],
                    labels=template["metadata"].get("labels", {}),
                    ports=ports,
                )
            )
    endpoints.extend(extra)
    return Cluster(namespaces, endpoints, policies)
