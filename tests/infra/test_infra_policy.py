"""The policy pack, without the Pulumi CLI: each policy's validation callback is called with
the arguments the engine would pass, for every mocked resource of both stacks (all must
pass) and for a deliberately broken resource that it must reject."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from zwfw_infra.render import Rendered
from zwfw_policy.policies import POLICIES

CLAUSE = ("GB/T 22239-2019", "GB/T 39786-2021")


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _urn(resource_type: str, obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"urn:pulumi:test::zwfw::{resource_type}::{meta.get('namespace', '')}-{meta['name']}"


def run_policy(policy: Any, resources: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Every violation the policy reports over ``resources`` ((type token, props) pairs)."""
    violations: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        violations.append(message)

    if isinstance(policy, ResourceValidationPolicy):
        for resource_type, props in resources:
            args = ResourceValidationArgs(
                resource_type,
                props,
                _urn(resource_type, props),
                props["metadata"]["name"],
                _options(),
                None,
            )
            for validate in (
                policy.validate if isinstance(policy.validate, list) else [policy.validate]
            ):
                validate(args, report)
    else:
        assert isinstance(policy, StackValidationPolicy)
        stack = [
            PolicyResource(t, p, _urn(t, p), p["metadata"]["name"], _options(), None, None, [], {})
            for t, p in resources
        ]
        policy.validate(StackValidationArgs(stack), report)
    return violations


def _resources(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    return list(zip(rendered.types, rendered.objects, strict=True))


def _policy(name: str) -> Any:
    return next(p for p in POLICIES if p.name == name)


def test_every_policy_cites_its_clause() -> None:
    assert len(POLICIES) == len({p.name for p in POLICIES}) >= 10
    for policy in POLICIES:
        assert any(standard in policy.description for standard in CLAUSE), policy.name
        assert policy.enforcement_level.value == "mandatory"


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_both_stacks_pass_every_policy(policy: Any, rendered_stacks: dict[str, Rendered]) -> None:
    for rendered in rendered_stacks.values():
        assert run_policy(policy, _resources(rendered)) == [], rendered.stack


def _first(
    rendered: Rendered, resource_type: str, name: str | None = None
) -> tuple[str, dict[str, Any]]:
    for t, obj in _resources(rendered):
        if t == resource_type and (name is None or obj["metadata"]["name"] == name):
            return t, copy.deepcopy(obj)
    raise LookupError(resource_type)


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
Break = Callable[[dict[str, Any]], Any]

# (policy, stack, resource type, resource name, how it is broken, what the report says)
BROKEN: list[tuple[str, str, str, str | None, Break, str]] = [
    (
        "zwfw-workload-hardening",
        "demo",
        DEPLOYMENT,
        "hall",
        lambda o: (
            _container(o)["securityContext"].pop("runAsNonRoot")
            and o["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")
        ),
        "runAsNonRoot",
    ),
    (
        "zwfw-workload-hardening",
        "demo",
        DEPLOYMENT,
        "hall",
        lambda o: _container(o)["securityContext"].__setitem__("allowPrivilegeEscalation", True),
        "allowPrivilegeEscalation",
    ),
    (
        "zwfw-workload-hardening",
        "demo",
        JOB,
        None,
        lambda o: _container(o)["securityContext"].__setitem__("readOnlyRootFilesystem", False),
        "read-only",
    ),
    (
        "zwfw-workload-hardening",
        "demo",
        DEPLOYMENT,
        "hub",
        lambda o: _container(o)["securityContext"]["capabilities"].__setitem__("drop", ["NET_RAW"]),
        "drop ALL",
    ),
    (
        "zwfw-workload-hardening",
        "demo",
        DEPLOYMENT,
        "hub",
        lambda o: o["spec"]["template"]["spec"].pop("automountServiceAccountToken"),
        "automountServiceAccountToken",
    ),
    (
        "zwfw-workload-hardening",
        "demo",
        DEPLOYMENT,
        "hub",
        lambda o: (
            _container(o)["securityContext"].pop("seccompProfile"),
            o["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"),
        ),
        "seccomp",
    ),
    (
        "zwfw-workload-hardening",
        "demo",
        DEPLOYMENT,
        "hub",
        lambda o: o["spec"]["template"]["spec"].__setitem__("hostNetwork", True),
        "hostNetwork",
    ),
    (
        "zwfw-workload-resources",
        "demo",
        DEPLOYMENT,
        "eseal",
        lambda o: _container(o)["resources"].pop("limits"),
        "no limits",
    ),
    (
        "zwfw-workload-resources",
        "demo",
        JOB,
        None,
        lambda o: _container(o)["resources"]["requests"].pop("memory"),
        "no requests for memory",
    ),
    (
        "zwfw-workload-availability",
        "province-example",
        DEPLOYMENT,
        "hall",
        lambda o: o["spec"].__setitem__("replicas", 1),
        "at least 2 replicas",
    ),
    (
        "zwfw-workload-availability",
        "province-example",
        DEPLOYMENT,
        "hall",
        lambda o: o["spec"]["strategy"]["rollingUpdate"].__setitem__("maxUnavailable", 1),
        "maxUnavailable 0",
    ),
    (
        "zwfw-workload-availability",
        "province-example",
        DEPLOYMENT,
        "hall",
        lambda o: o["spec"]["template"]["spec"].pop("topologySpreadConstraints"),
        "spread",
    ),
    (
        "zwfw-workload-availability",
        "demo",
        DEPLOYMENT,
        "identity",
        lambda o: _container(o).pop("readinessProbe"),
        "readinessProbe",
    ),
    (
        "zwfw-image-pinned",
        "province-example",
        DEPLOYMENT,
        "identity",
        lambda o: _container(o).__setitem__("image", "registry.ah.example.gov.cn/zwfw/zwfw:0.1.0"),
        "by digest",
    ),
    (
        "zwfw-image-pinned",
        "demo",
        DEPLOYMENT,
        "identity",
        lambda o: _container(o).__setitem__("image", "registry.demo.zwfw.example/zwfw/zwfw:latest"),
        "names no release",
    ),
    (
        "zwfw-image-pinned",
        "demo",
        JOB,
        None,
        lambda o: _container(o).__setitem__("image", "registry.demo.zwfw.example:5000/zwfw/zwfw"),
        "names no release",
    ),
    (
        "zwfw-namespace-restricted",
        "demo",
        "kubernetes:core/v1:Namespace",
        "dept-gongan",
        lambda o: o["metadata"]["labels"].__setitem__(
            "pod-security.kubernetes.io/enforce", "baseline"
        ),
        "restricted",
    ),
    (
        "zwfw-secrets-not-in-config",
        "demo",
        "kubernetes:core/v1:ConfigMap",
        "identity-settings",
        lambda o: o["data"].__setitem__(
            "settings.yaml",
            o["data"]["settings.yaml"] + "data_key: 00112233445566778899aabbccddeeff\n",
        ),
        "data_key",
    ),
    (
        "zwfw-secrets-not-in-config",
        "demo",
        "kubernetes:core/v1:ConfigMap",
        "hall-settings",
        lambda o: o["data"].__setitem__(
            "settings.yaml",
            o["data"]["settings.yaml"] + "database_url: postgresql+psycopg://hall:pw@db/hall\n",
        ),
        "credentials in a URL",
    ),
    (
        "zwfw-secrets-not-in-config",
        "demo",
        DEPLOYMENT,
        "hall",
        lambda o: _container(o)["env"].append(
            {"name": "ZWFW_KEK", "value": "00112233445566778899aabbccddeeff"}
        ),
        "ZWFW_KEK",
    ),
    ("zwfw-ingress-tls", "demo", INGRESS, "hall", lambda o: o["spec"].pop("tls"), "without TLS"),
    (
        "zwfw-ingress-tls",
        "demo",
        INGRESS,
        "hall",
        lambda o: o["metadata"]["annotations"].__setitem__(
            "nginx.ingress.kubernetes.io/proxy-ssl-verify", "off"
        ),
        "re-encrypted",
    ),
    (
        "zwfw-ingress-tls",
        "demo",
        INGRESS,
        "hall",
        lambda o: o["metadata"]["annotations"].__setitem__(
            "nginx.ingress.kubernetes.io/configuration-snippet", "more_set_headers x: y;"
        ),
        "snippets",
    ),
    (
        "zwfw-sign-in-rate-limit",
        "demo",
        INGRESS,
        "identity-sign-in",
        lambda o: o["metadata"]["annotations"].pop("nginx.ingress.kubernetes.io/limit-rps"),
        "rate limit",
    ),
    (
        "zwfw-database-resilience",
        "province-example",
        "kubernetes:postgresql.cnpg.io/v1:Cluster",
        None,
        lambda o: o["spec"].__setitem__("instances", 1),
        "3 instances",
    ),
    (
        "zwfw-database-resilience",
        "province-example",
        "kubernetes:postgresql.cnpg.io/v1:Cluster",
        None,
        lambda o: o["spec"].pop("backup"),
        "backed up",
    ),
    (
        "zwfw-rbac-least-privilege",
        "demo",
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        None,
        lambda o: o["rules"].append(
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["networkpolicies"],
                "verbs": ["delete"],
            }
        ),
        "networkpolicies",
    ),
    (
        "zwfw-rbac-least-privilege",
        "demo",
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        None,
        lambda o: o["rules"].append(
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}
        ),
        "shells",
    ),
    (
        "zwfw-rbac-least-privilege",
        "demo",
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        None,
        lambda o: o["rules"].append({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}),
        "wildcards",
    ),
]


@pytest.mark.parametrize(
    ("name", "stack", "resource_type", "resource", "breaks", "message"),
    BROKEN,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_broken_resource_is_rejected(
    rendered_stacks: dict[str, Rendered],
    name: str,
    stack: str,
    resource_type: str,
    resource: str | None,
    breaks: Break,
    message: str,
) -> None:
    policy = _policy(name)
    resource_type, obj = _first(rendered_stacks[stack], resource_type, resource)
    assert run_policy(policy, [(resource_type, obj)]) == []
    breaks(obj)
    violations = run_policy(policy, [(resource_type, obj)])
    assert any(message in v for v in violations), violations


def test_every_resource_policy_has_a_broken_case() -> None:
    stack_policies = {"zwfw-tenant-isolation", "zwfw-hub-intake-mtls"}
    assert {p.name for p in POLICIES} - {b[0] for b in BROKEN} == stack_policies


def test_a_cluster_wide_binding_for_a_group_is_rejected() -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "ops-everywhere"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "admin",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "gongan-ops"}
        ],
    }
    violations = run_policy(
        _policy("zwfw-rbac-least-privilege"),
        [("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", binding)],
    )
    assert violations == ["Group gongan-ops is granted rights on the whole cluster"]


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("NetworkPolicy", "default-deny", "a default-deny NetworkPolicy (ingress and egress)"),
        ("ResourceQuota", "tenant-quota", "a ResourceQuota"),
        ("LimitRange", "tenant-limits", "a LimitRange"),
    ],
)
def test_a_tenant_namespace_without_its_isolation_is_rejected(
    demo: Rendered, kind: str, name: str, message: str
) -> None:
    policy = _policy("zwfw-tenant-isolation")
    resources = [
        (t, o)
        for t, o in _resources(demo)
        if not (
            o["kind"] == kind
            and o["metadata"]["name"] == name
            and o["metadata"].get("namespace") == "dept-renshe"
        )
    ]
    assert run_policy(policy, resources) == [f"namespace dept-renshe lacks {message}"]


def test_a_default_deny_that_allows_something_does_not_count(demo: Rendered) -> None:
    resources = copy.deepcopy(_resources(demo))
    for _, obj in resources:
        if (
            obj["kind"] == "NetworkPolicy"
            and obj["metadata"]["name"] == "default-deny"
            and obj["metadata"]["namespace"] == "zwfw-340000"
        ):
            obj["spec"]["ingress"] = [{}]
    assert run_policy(_policy("zwfw-tenant-isolation"), resources) == [
        "namespace zwfw-340000 lacks a default-deny NetworkPolicy (ingress and egress)"
    ]


INTAKE_HOST = "intake.hub.100000.demo.zwfw.example"
HUB_HOST = "hub.100000.demo.zwfw.example"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # The intake host without its client-certificate requirement.
        (
            lambda name, o: (
                name == "hub-intake"
                and o["metadata"]["annotations"].pop(
                    "nginx.ingress.kubernetes.io/auth-tls-verify-client"
                )
            ),
            [
                f"{INTAKE_HOST}/reports reaches the hub without a channel client certificate",
                f"{INTAKE_HOST}/exchange reaches the hub without a channel client certificate",
            ],
        ),
        # The hub's public host without the closed intake paths: "/" would route around the
        # mutual TLS.
        (
            lambda name, o: (
                name == "hub-closed"
                and o["spec"]["rules"][0]["http"].__setitem__(
                    "paths", o["spec"]["rules"][0]["http"]["paths"][:1]
                )
            ),
            [
                f"{HUB_HOST}/reports reaches the hub without a channel client certificate",
                f"{HUB_HOST}/exchange reaches the hub without a channel client certificate",
            ],
        ),
    ],
)
def test_the_hub_intake_cannot_be_reached_without_mutual_tls(
    demo: Rendered, change: Callable[[str, dict[str, Any]], Any], expected: list[str]
) -> None:
    resources = copy.deepcopy(_resources(demo))
    for resource_type, obj in resources:
        if resource_type == INGRESS and obj["metadata"]["namespace"] == "zwfw-national":
            change(obj["metadata"]["name"], obj)
    assert run_policy(_policy("zwfw-hub-intake-mtls"), resources) == expected
