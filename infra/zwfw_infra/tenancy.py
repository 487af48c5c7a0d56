"""A tenant of the shared government cloud: its namespace, share of the cluster, baseline
network isolation and the RBAC of its operations group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from zwfw_infra import labels
from zwfw_infra.config import ClusterConfig, Quota
from zwfw_infra.network import SERVICE_PORT

TenantKind = Literal["department", "province", "national", "loadtest"]

# What a tenant's operations group may do in its own namespace: run and inspect its
# workloads. Not on the list, so never theirs: NetworkPolicies (their isolation), quotas and
# limit ranges (their share), Roles and RoleBindings (no self-granted rights), pods/exec.
OPS_RULES: tuple[dict[str, Any], ...] = (
    {
        "api_groups": [""],
        "resources": ["pods", "pods/log", "events", "endpoints", "resourcequotas", "limitranges"],
        "verbs": ["get", "list", "watch"],
    },
    {"api_groups": [""], "resources": ["pods"], "verbs": ["delete"]},
    {
        "api_groups": [""],
        "resources": [
            "configmaps",
            "secrets",
            "services",
            "persistentvolumeclaims",
            "serviceaccounts",
        ],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "api_groups": ["apps"],
        "resources": ["deployments", "statefulsets", "replicasets", "deployments/scale"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "api_groups": ["batch"],
        "resources": ["jobs", "cronjobs"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "api_groups": ["autoscaling"],
        "resources": ["horizontalpodautoscalers"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "api_groups": ["policy"],
        "resources": ["poddisruptionbudgets"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "api_groups": ["networking.k8s.io"],
        "resources": ["ingresses"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
        "api_groups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["get", "list", "watch"],
    },
)


@dataclass(frozen=True)
class TenantArgs:
    name: str
    namespace: str
    kind: TenantKind
    title: str
    ops_group: str
    quota: Quota
    cluster: ClusterConfig
    common_labels: Mapping[str, str]
    region_code: str | None = None


class Tenant(pulumi.ComponentResource):
    """Namespace (Pod Security ``restricted``), ResourceQuota, LimitRange, default-deny
    NetworkPolicy with the baseline allows (DNS, the ingress controller, Prometheus), and a
    Role for the tenant's operations group on this namespace only."""

    name: str
    namespace_name: str

    def __init__(self, name: str, args: TenantArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zwfw:tenancy:Tenant", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        ns_labels = {
            **args.common_labels,
            **labels.PSA,
            labels.TENANT_KIND: args.kind,
            labels.NAMESPACE_NAME: args.namespace,
        }
        if args.region_code:
            ns_labels[labels.REGION] = args.region_code
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                "labels": ns_labels,
                "annotations": {"zwfw.gov.cn/title": args.title},
            },
            opts=child,
        )
        self.name = args.name
        self.namespace_name = args.namespace
        # Everything else waits for the namespace.
        self._in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        quota = args.quota
        k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=self._metadata("tenant-quota"),
            spec={
                "hard": {
                    "requests.cpu": quota.cpu,
                    "requests.memory": quota.memory,
                    "limits.cpu": quota.cpu_limit,
                    "limits.memory": quota.memory_limit,
                    "pods": str(quota.pods),
                    "requests.storage": quota.storage,
                    "persistentvolumeclaims": str(quota.persistent_volume_claims),
                    # Tenants publish through the shared ingress controller only.
                    "services.loadbalancers": "0",
                    "services.nodeports": "0",
                }
            },
            opts=self._in_ns,
        )
        container = quota.container
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=self._metadata("tenant-limits"),
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": container.cpu_limit, "memory": container.memory_limit},
                        "default_request": {
                            "cpu": container.cpu_request,
                            "memory": container.memory_request,
                        },
                    },
                    {"type": "PersistentVolumeClaim", "max": {"storage": quota.storage}},
                ]
            },
            opts=self._in_ns,
        )
        self._baseline_network()
        role = k8s.rbac.v1.Role(
            f"{name}-ops-role",
            metadata=self._metadata("tenant-ops"),
            rules=[dict(rule) for rule in OPS_RULES],
            opts=self._in_ns,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-ops-binding",
            metadata=self._metadata("tenant-ops"),
            role_ref={
                "api_group": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "tenant-ops",
            },
            subjects=[
                {"api_group": "rbac.authorization.k8s.io", "kind": "Group", "name": args.ops_group}
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, role]),
        )
        self.register_outputs({"namespace": args.namespace, "ops_group": args.ops_group})

    def _metadata(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self._args.namespace,
            "labels": dict(self._args.common_labels),
        }

    def _policy(self, name: str, spec: dict[str, Any]) -> None:
        k8s.networking.v1.NetworkPolicy(
            f"{self._args.name}-{name}", metadata=self._metadata(name), spec=spec, opts=self._in_ns
        )

    def _baseline_network(self) -> None:
        args = self._args
        cluster = args.cluster

        def pods_of(selector: Any) -> dict[str, Any]:
            return {
                "namespace_selector": {"match_labels": {labels.NAMESPACE_NAME: selector.namespace}},
                "pod_selector": {"match_labels": dict(selector.pod_labels)},
            }

        everything: dict[str, Any] = {}
        self._policy(
            "default-deny", {"pod_selector": everything, "policy_types": ["Ingress", "Egress"]}
        )
        self._policy(
            "allow-dns",
            {
                "pod_selector": everything,
                "policy_types": ["Egress"],
                "egress": [
                    {
                        "to": [pods_of(cluster.dns)],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        )
        if args.kind == "loadtest":
            # A load generator publishes nothing and is not scraped: DNS only, its own
            # component adds the rest (loadtest.py).
            return
        if args.kind == "department":
            # A department's own workloads (and its own databases) share its namespace; it
            # publishes through the ingress controller and uses the platform through it too.
            same_namespace = [{"pod_selector": everything}]
            self._policy(
                "allow-same-namespace",
                {
                    "pod_selector": everything,
                    "policy_types": ["Ingress", "Egress"],
                    "ingress": [{"from": same_namespace}],
                    "egress": [{"to": same_namespace}],
                },
            )
            self._policy(
                "allow-ingress-controller",
                {
                    "pod_selector": everything,
                    "policy_types": ["Ingress"],
                    "ingress": [{"from": [pods_of(cluster.ingress)]}],
                },
            )
            self._policy(
                "allow-public-gateway",
                {
                    "pod_selector": everything,
                    "policy_types": ["Egress"],
                    "egress": [
                        {
                            "to": [pods_of(cluster.ingress)],
                            "ports": [
                                {"protocol": "TCP", "port": 443},
                                {"protocol": "TCP", "port": 80},
                            ],
                        }
                    ],
                },
            )
            self._policy(
                "allow-prometheus",
                {
                    "pod_selector": everything,
                    "policy_types": ["Ingress"],
                    "ingress": [{"from": [pods_of(cluster.prometheus)]}],
                },
            )
            return
        services = {
            "match_labels": {labels.PART_OF: "zwfw", labels.COMPONENT: labels.SERVICE_COMPONENT}
        }
        https = [{"protocol": "TCP", "port": SERVICE_PORT}]
        self._policy(
            "allow-ingress-controller",
            {
                "pod_selector": services,
                "policy_types": ["Ingress"],
                "ingress": [{"from": [pods_of(cluster.ingress)], "ports": https}],
            },
        )
        self._policy(
            "allow-prometheus",
            {
                "pod_selector": services,
                "policy_types": ["Ingress"],
                "ingress": [{"from": [pods_of(cluster.prometheus)], "ports": https}],
            },
        )
