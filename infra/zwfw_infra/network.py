"""Who may talk to whom: the architecture's service links, and the NetworkPolicies that allow
exactly them on top of each tenant's default deny.

Every zwfw service serves HTTPS on ``SERVICE_PORT``. A link is allowed on both ends: an egress
rule on the client's pods and an ingress rule on the server's, so the traffic passes whichever
namespace's policies the cluster's CNI evaluates first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from zwfw_infra import labels
from zwfw_infra.config import ClusterConfig, PlatformConfig, StackConfig

SERVICE_PORT = 8443
POSTGRES_PORT = 5432
CNPG_STATUS_PORT = 8000
CNPG_METRICS_PORT = 9187
HTTPS_PORT = 443


@dataclass(frozen=True)
class Endpoint:
    namespace: str
    service: str


@dataclass(frozen=True)
class Link:
    """``client`` calls ``server`` on its service port, for ``why``."""

    client: Endpoint
    server: Endpoint
    why: str


# Links inside one platform: (client, server, why).
_PLATFORM_LINKS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "province": (
        ("hall", "identity", "bearer-token JWKS and the hall's client tokens"),
        ("elicense", "identity", "bearer-token JWKS and the library's client tokens"),
        ("eseal", "identity", "bearer-token JWKS"),
        ("hall", "elicense", "licence-library materials (免证办)"),
        ("hall", "eseal", "seal authority roots (GET /trust)"),
        ("elicense", "eseal", "sealing licences and annotated copies"),
    ),
    "national": (("hub", "identity", "bearer-token and citizens' national-token JWKS"),),
}


def links(config: StackConfig) -> tuple[Link, ...]:
    """Every service link of the stack (ARCHITECTURE.md, interconnection flows)."""
    found: list[Link] = []
    for platform in config.platforms:
        running = {s.name for s in platform.services}
        for client, server, why in _PLATFORM_LINKS[platform.kind]:
            if client in running and server in running:
                found.append(
                    Link(
                        Endpoint(platform.namespace, client),
                        Endpoint(platform.namespace, server),
                        why,
                    )
                )
    national = config.national
    if national is not None:
        hub = Endpoint(national.namespace, "hub")
        national_idp = Endpoint(national.namespace, "identity")
        for province in config.provinces:
            hall = Endpoint(province.namespace, "hall")
            idp = Endpoint(province.namespace, "identity")
            library = Endpoint(province.namespace, "elicense")
            found += [
                Link(hall, hub, "case and evaluation reports, licence exchange (mutual TLS)"),
                Link(hall, national_idp, "the hall's client tokens for the hub"),
                Link(idp, national_idp, "federation: national tokens' JWKS (token exchange)"),
                Link(hub, idp, "token exchange of the citizen's consent at the issuing province"),
                Link(hub, library, "routed licence exchange (跨省通办)"),
            ]
    return tuple(found)


def _peer(endpoint: Endpoint, here: str) -> dict[str, Any]:
    peer: dict[str, Any] = {
        "pod_selector": {"match_labels": labels.service_selector(endpoint.service)}
    }
    if endpoint.namespace != here:
        peer["namespace_selector"] = {"match_labels": {labels.NAMESPACE_NAME: endpoint.namespace}}
    return peer


def _pods_of(selector: Mapping[str, str], namespace: str) -> dict[str, Any]:
    return {
        "namespace_selector": {"match_labels": {labels.NAMESPACE_NAME: namespace}},
        "pod_selector": {"match_labels": dict(selector)},
    }


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


@dataclass(frozen=True)
class PlatformNetworkArgs:
    platform: PlatformConfig
    cluster: ClusterConfig
    links: Sequence[Link]
    database_cluster: str
    # Object-store addresses of the database backups (egress of the database pods).
    backup_cidrs: Sequence[str]
    # A national side outside the cluster: the hall and the province IdP reach it there.
    external_national: Sequence[str]
    common_labels: Mapping[str, str]
    # The services the provisioning Job calls (their APIs, on the service port).
    provisioned: Sequence[str] = ()


class PlatformNetwork(pulumi.ComponentResource):
    """The allows a zwfw platform's namespace needs beyond the tenant baseline: its service
    links, its database, and the database's operator, replication and backups."""

    def __init__(
        self, name: str, args: PlatformNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("zwfw:network:PlatformNetwork", name, None, opts)
        self._args = args
        ns = args.platform.namespace
        self.policy_names: list[str] = []
        db_pods = {"match_labels": {labels.CNPG_CLUSTER: args.database_cluster}}
        db_peer = {"pod_selector": db_pods}
        provisioning = {labels.PART_OF: "zwfw", labels.COMPONENT: labels.PROVISIONING_COMPONENT}
        for service in args.platform.services:
            ingress = [
                _peer(link.client, ns)
                for link in args.links
                if link.server == Endpoint(ns, service.name)
            ]
            if service.name in args.provisioned:
                ingress.append({"pod_selector": {"match_labels": provisioning}})
            egress_peers = [
                _peer(link.server, ns)
                for link in args.links
                if link.client == Endpoint(ns, service.name)
            ]
            egress: list[dict[str, Any]] = [{"to": [db_peer], "ports": _tcp(POSTGRES_PORT)}]
            if egress_peers:
                egress.append({"to": egress_peers, "ports": _tcp(SERVICE_PORT)})
            if args.external_national and service.name in ("hall", "identity"):
                egress.append(
                    {
                        "to": [{"ip_block": {"cidr": c}} for c in args.external_national],
                        "ports": _tcp(HTTPS_PORT),
                    }
                )
            selector = labels.service_selector(service.name)
            if ingress:
                self._policy(
                    f"{service.name}-from-clients",
                    selector,
                    ingress=[{"from": ingress, "ports": _tcp(SERVICE_PORT)}],
                )
            self._policy(f"{service.name}-to-dependencies", selector, egress=egress)
        if args.provisioned:
            self._policy(
                "provisioning-to-services",
                provisioning,
                egress=[
                    {
                        "to": [
                            _peer(Endpoint(ns, service), ns) for service in sorted(args.provisioned)
                        ],
                        "ports": _tcp(SERVICE_PORT),
                    }
                ],
            )
        self._policy(
            "migrations-to-database",
            {labels.PART_OF: "zwfw", labels.COMPONENT: labels.MIGRATION_COMPONENT},
            egress=[{"to": [db_peer], "ports": _tcp(POSTGRES_PORT)}],
        )
        clients = [
            {"pod_selector": {"match_labels": {labels.PART_OF: "zwfw", labels.COMPONENT: c}}}
            for c in (labels.SERVICE_COMPONENT, labels.MIGRATION_COMPONENT)
        ]
        operator = _pods_of(args.cluster.cnpg.pod_labels, args.cluster.cnpg.namespace)
        prometheus = _pods_of(args.cluster.prometheus.pod_labels, args.cluster.prometheus.namespace)
        database_egress: list[dict[str, Any]] = [
            {"to": [db_peer], "ports": _tcp(POSTGRES_PORT, CNPG_STATUS_PORT)},
            # The instance manager watches its Cluster through the API server.
            {
                "to": [{"ip_block": {"cidr": c}} for c in args.cluster.api_server_cidrs],
                "ports": _tcp(*args.cluster.api_server_ports),
            },
        ]
        if args.backup_cidrs:
            database_egress.append(
                {
                    "to": [{"ip_block": {"cidr": c}} for c in args.backup_cidrs],
                    "ports": _tcp(HTTPS_PORT),
                }
            )
        self._policy(
            "database",
            db_pods["match_labels"],
            ingress=[
                {"from": clients, "ports": _tcp(POSTGRES_PORT)},
                {"from": [db_peer], "ports": _tcp(POSTGRES_PORT, CNPG_STATUS_PORT)},
                {"from": [operator], "ports": _tcp(CNPG_STATUS_PORT, POSTGRES_PORT)},
                {"from": [prometheus], "ports": _tcp(CNPG_METRICS_PORT)},
            ],
            egress=database_egress,
        )
        self.register_outputs({"policies": self.policy_names})

    def _policy(
        self,
        name: str,
        pod_labels: Mapping[str, str],
        ingress: Iterable[dict[str, Any]] | None = None,
        egress: Iterable[dict[str, Any]] | None = None,
    ) -> None:
        types = (["Ingress"] if ingress is not None else []) + (
            ["Egress"] if egress is not None else []
        )
        spec: dict[str, Any] = {
            "pod_selector": {"match_labels": dict(pod_labels)},
            "policy_types": types,
        }
        if ingress is not None:
            spec["ingress"] = list(ingress)
        if egress is not None:
            spec["egress"] = list(egress)
        k8s.networking.v1.NetworkPolicy(
            f"{self._args.platform.name}-{name}",
            metadata={
                "name": name,
                "namespace": self._args.platform.namespace,
                "labels": dict(self._args.common_labels),
            },
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.policy_names.append(name)
