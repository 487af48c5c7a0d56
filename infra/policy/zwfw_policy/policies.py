"""The policies of the zwfw policy pack. Each names, in its description, the 等保2.0
(GB/T 22239-2019, level 3) or 密评 (GB/T 39786-2021, level 3) requirement it enforces.

They read resource inputs as the Pulumi engine passes them (Kubernetes field names), so the
same functions check a real ``pulumi preview`` and the objects the tests render under mocks.
Production-only rules key on the ``zwfw.gov.cn/environment`` label the program sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

NGINX = "nginx.ingress.kubernetes.io"
ENVIRONMENT_LABEL = "zwfw.gov.cn/environment"
WORKLOADS = {
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:batch/v1:CronJob",
    "kubernetes:core/v1:Pod",
}
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SIGN_IN_PATHS = ("/token", "/login", "/authorize")
INTAKE_PATHS = ("/reports", "/exchange")
# Settings that hold secrets; they belong in Secrets, never in a ConfigMap or a literal env.
SECRET_SETTINGS = frozenset(
    {"data_key", "lookup_key", "kek", "password", "secret", "client_secret", "private_key", "token"}
)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
PRIVATE_KEY = "PRIVATE KEY-----"


def _production(props: Mapping[str, Any]) -> bool:
    labels = (props.get("metadata") or {}).get("labels") or {}
    return labels.get(ENVIRONMENT_LABEL) == "production"


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    spec = props.get("spec") or {}
    if resource_type == "kubernetes:core/v1:Pod":
        return spec
    if resource_type == "kubernetes:batch/v1:CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get(
            "spec"
        )
    return (spec.get("template") or {}).get("spec")


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers"):
        for container in pod.get(key) or []:
            yield container.get("name", "?"), container


# --- 等保2.0 8.1.4.2 access control (least privilege) and 8.1.4.4 intrusion prevention ---


def _hardening(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in WORKLOADS:
        return
    pod = pod_spec(args.resource_type, args.props)
    if pod is None:
        report("the workload has no pod template")
        return
    pod_context = pod.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            report(f"{host} shares the node's namespaces with the pod")
    if pod.get("automountServiceAccountToken") is not False:
        report("automountServiceAccountToken must be false: the pod does not call the API")
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            report(f"volume {volume.get('name')} mounts a node path")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    for name, container in _containers(pod):
        context = container.get("securityContext") or {}
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            report(f"container {name}: runAsNonRoot must be true")
        if context.get("allowPrivilegeEscalation") is not False:
            report(f"container {name}: allowPrivilegeEscalation must be false")
        if context.get("privileged"):
            report(f"container {name}: privileged")
        if context.get("readOnlyRootFilesystem") is not True:
            report(f"container {name}: the root filesystem must be read-only")
        drop = ((context.get("capabilities") or {}).get("drop")) or []
        if "ALL" not in drop:
            report(f"container {name}: capabilities must drop ALL")
        if (context.get("capabilities") or {}).get("add"):
            report(f"container {name}: adds capabilities")
        seccomp = (context.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            report(f"container {name}: seccomp profile RuntimeDefault (or Localhost) is required")


workload_hardening = ResourceValidationPolicy(
    name="zwfw-workload-hardening",
    description=(
        "Pods run non-root, without privilege escalation, capabilities, host namespaces or "
        "host paths, with a read-only root filesystem, seccomp RuntimeDefault and no "
        "service-account token. GB/T 22239-2019 level 3, 8.1.4.2 access control (least "
        "privilege) and 8.1.4.4 intrusion prevention (minimal installation and services)."
    ),
    validate=_hardening,
)


# --- cloud extension: one tenant cannot starve the others ---


def _resources(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in WORKLOADS:
        return
    pod = pod_spec(args.resource_type, args.props) or {}
    for name, container in _containers(pod):
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            values = resources.get(bound) or {}
            missing = [r for r in ("cpu", "memory") if r not in values]
            if missing:
                report(f"container {name}: no {bound} for {', '.join(missing)}")


workload_resources = ResourceValidationPolicy(
    name="zwfw-workload-resources",
    description=(
        "Every container states CPU and memory requests and limits, so a tenant stays within "
        "its share of the shared cluster. GB/T 22239-2019 level 3, cloud computing extension "
        "(isolation of cloud service customers' resources)."
    ),
    validate=_resources,
)


# --- 等保2.0 8.1.4.9 c) hot redundancy for high availability ---


def _health(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "kubernetes:apps/v1:Deployment":
        return
    pod = pod_spec(args.resource_type, args.props) or {}
    for name, container in _containers(pod):
        for probe in ("livenessProbe", "readinessProbe"):
            if not container.get(probe):
                report(f"container {name}: no {probe}")
    if not _production(args.props):
        return
    spec = args.props.get("spec") or {}
    if (spec.get("replicas") or 1) < 2:
        report("production workloads run at least 2 replicas")
    rolling = ((spec.get("strategy") or {}).get("rollingUpdate")) or {}
    if (spec.get("strategy") or {}).get("type") == "Recreate" or rolling.get(
        "maxUnavailable"
    ) not in (0, "0", "0%"):
        report(
            "production rollouts keep every replica serving: RollingUpdate with maxUnavailable 0"
        )
    if not (
        pod.get("topologySpreadConstraints") or (pod.get("affinity") or {}).get("podAntiAffinity")
    ):
        report("production replicas are spread over nodes (topology spread or anti-affinity)")


workload_availability = ResourceValidationPolicy(
    name="zwfw-workload-availability",
    description=(
        "Deployments have liveness and readiness probes; on production stacks at least two "
        "replicas spread over nodes, rolled out with maxUnavailable 0. GB/T 22239-2019 level 3, "
        "8.1.4.9 c) hot redundancy of important data processing systems (high availability)."
    ),
    validate=_health,
)


# --- 等保2.0 8.1.4.6 trusted verification of what runs ---


def _images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in WORKLOADS:
        return
    pod = pod_spec(args.resource_type, args.props) or {}
    for name, container in _containers(pod):
        image = str(container.get("image") or "")
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        if not repository or "/" in tag or tag in ("", "latest"):
            report(f"container {name}: image {image!r} names no release (tag or digest)")
        elif _production(args.props):
            report(f"container {name}: production stacks run images by digest, not {image!r}")


image_pinned = ResourceValidationPolicy(
    name="zwfw-image-pinned",
    description=(
        "Images name a release, never latest; production stacks reference them by digest, so "
        "what runs is exactly what was verified. GB/T 22239-2019 level 3, 8.1.4.6 trusted "
        "verification (of the application's executables)."
    ),
    validate=_images,
)


# --- tenancy: namespaces under Pod Security restricted ---


def _namespace(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "kubernetes:core/v1:Namespace":
        return
    labels = (args.props.get("metadata") or {}).get("labels") or {}
    if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
        report("the namespace must enforce Pod Security 'restricted'")


namespace_restricted = ResourceValidationPolicy(
    name="zwfw-namespace-restricted",
    description=(
        "Tenant namespaces enforce the Pod Security 'restricted' profile. GB/T 22239-2019 "
        "level 3, 8.1.4.2 access control (least privilege) and cloud computing extension "
        "(isolation between cloud service customers)."
    ),
    validate=_namespace,
)


# --- 等保2.0 8.1.3.2 boundary access control: deny by default ---


def _default_deny(args: StackValidationArgs, report: ReportViolation) -> None:
    namespaces = {
        r.props["metadata"]["name"]: r
        for r in args.resources
        if r.resource_type == "kubernetes:core/v1:Namespace"
    }
    guarded: dict[str, set[str]] = {name: set() for name in namespaces}
    for resource in args.resources:
        namespace = (resource.props.get("metadata") or {}).get("namespace")
        if namespace not in guarded:
            continue
        if resource.resource_type == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            spec = resource.props.get("spec") or {}
            selector = spec.get("podSelector") or {}
            everything = not selector.get("matchLabels") and not selector.get("matchExpressions")
            types = set(spec.get("policyTypes") or [])
            if (
                everything
                and types == {"Ingress", "Egress"}
                and not spec.get("ingress")
                and not spec.get("egress")
            ):
                guarded[namespace].add("deny")
        elif resource.resource_type == "kubernetes:core/v1:ResourceQuota":
            guarded[namespace].add("quota")
        elif resource.resource_type == "kubernetes:core/v1:LimitRange":
            guarded[namespace].add("limits")
    for name, found in sorted(guarded.items()):
        for needed, what in (
            ("deny", "a default-deny NetworkPolicy (ingress and egress)"),
            ("quota", "a ResourceQuota"),
            ("limits", "a LimitRange"),
        ):
            if needed not in found:
                report(f"namespace {name} lacks {what}", namespaces[name].urn)


tenant_isolation = StackValidationPolicy(
    name="zwfw-tenant-isolation",
    description=(
        "Every tenant namespace denies all traffic by default (ingress and egress) and has a "
        "ResourceQuota and a LimitRange. GB/T 22239-2019 level 3, 8.1.3.2 boundary access "
        "control a) (deny by default, allow only what is needed) and cloud computing "
        "extension (network isolation between cloud service customers)."
    ),
    validate=_default_deny,
)


# --- 等保2.0 8.1.4.8 / 密评 8.4: keys and passwords only in Secrets ---


def _settings_keys(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _settings_keys(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _is_secret_setting(key: str) -> bool:
    """A settings path (a.b.c) or a ZWFW_A__B variable whose last name is a secret's."""
    last = re.split(r"\.|__", key.lower().removeprefix("zwfw_"))[-1]
    return last in SECRET_SETTINGS or last.endswith(("_password", "_secret"))


def _secret_text(where: str, key: str, value: Any, report: ReportViolation) -> None:
    if value in (None, "", False):
        return
    text = str(value)
    if _is_secret_setting(key):
        report(f"{where}: {key} holds a secret in plain configuration")
    if CREDENTIALS_IN_URL.search(text):
        report(f"{where}: {key} carries credentials in a URL")
    if PRIVATE_KEY in text:
        report(f"{where}: {key} holds a private key")


def _secrets_in_config(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "kubernetes:core/v1:ConfigMap":
        for name, text in (args.props.get("data") or {}).items():
            if not str(name).endswith((".yaml", ".yml")):
                _secret_text(f"ConfigMap key {name}", str(name), text, report)
                continue
            try:
                document = yaml.safe_load(text)
            except yaml.YAMLError:
                report(f"ConfigMap key {name} is not valid YAML")
                continue
            for key, value in _settings_keys(document):
                _secret_text(f"ConfigMap key {name}", key, value, report)
        return
    if args.resource_type not in WORKLOADS:
        return
    pod = pod_spec(args.resource_type, args.props) or {}
    for container_name, container in _containers(pod):
        for variable in container.get("env") or []:
            if "value" in variable:
                _secret_text(
                    f"container {container_name} env",
                    variable.get("name", ""),
                    variable["value"],
                    report,
                )


secrets_not_in_config = ResourceValidationPolicy(
    name="zwfw-secrets-not-in-config",
    description=(
        "Keys, passwords and credentials-bearing URLs are never in ConfigMaps or literal "
        "environment values, only in Secrets (from Pulumi secret config, encrypted in the "
        "state). GB/T 22239-2019 level 3, 8.1.4.8 data confidentiality (authentication data "
        "and important data in storage); GB/T 39786-2021 level 3, 8.4 application and data "
        "security (confidentiality of important data at rest)."
    ),
    validate=_secrets_in_config,
)


# --- 密评 8.2 / 等保2.0 8.1.2.2: encrypted, authenticated communication ---


def _annotations(props: Mapping[str, Any]) -> Mapping[str, str]:
    return (props.get("metadata") or {}).get("annotations") or {}


def _paths(props: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    for rule in (props.get("spec") or {}).get("rules") or []:
        for path in ((rule.get("http") or {}).get("paths")) or []:
            backend = ((path.get("backend") or {}).get("service") or {}).get("name", "")
            yield rule.get("host", ""), path.get("path", "/"), backend


def _ingress_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != INGRESS:
        return
    spec = args.props.get("spec") or {}
    covered = {
        host
        for tls in spec.get("tls") or []
        if tls.get("secretName")
        for host in tls.get("hosts") or []
    }
    for host, _, _ in _paths(args.props):
        if host not in covered:
            report(f"host {host or '(any)'} is served without TLS")
    annotations = _annotations(args.props)
    if annotations.get(f"{NGINX}/force-ssl-redirect") != "true":
        report("plain HTTP must be redirected to HTTPS (force-ssl-redirect)")
    if (
        annotations.get(f"{NGINX}/backend-protocol") != "HTTPS"
        or annotations.get(f"{NGINX}/proxy-ssl-verify") != "on"
    ):
        report(
            "traffic to the service must be re-encrypted and the service verified "
            "(backend-protocol HTTPS, proxy-ssl-verify on)"
        )
    for key in annotations:
        if key.endswith("-snippet"):
            report(
                f"annotation {key}: configuration snippets are not allowed on a shared controller"
            )


ingress_tls = ResourceValidationPolicy(
    name="zwfw-ingress-tls",
    description=(
        "Ingresses serve every host over TLS, redirect plain HTTP, re-encrypt to the service "
        "and verify it, and use no configuration snippets. GB/T 39786-2021 level 3, 8.2 network "
        "and communication security (confidentiality and integrity of data in transit); "
        "GB/T 22239-2019 level 3, 8.1.2.2 communication transmission."
    ),
    validate=_ingress_tls,
)


def _closed(annotations: Mapping[str, str]) -> bool:
    """Every source address is denied (the path is not published at all)."""
    denied = {r.strip() for r in annotations.get(f"{NGINX}/denylist-source-range", "").split(",")}
    return {"0.0.0.0/0", "::/0"} <= denied


def _prefix_match(path: str, path_type: str, request: str) -> bool:
    if path_type == "Exact":
        return path == request
    if path == "/":
        return True
    return request == path or request.startswith(path.rstrip("/") + "/")


def _intake_mtls(args: StackValidationArgs, report: ReportViolation) -> None:
    routes: dict[str, list[tuple[str, str, str, Mapping[str, str]]]] = {}
    for resource in args.resources:
        if resource.resource_type != INGRESS:
            continue
        annotations = _annotations(resource.props)
        for rule in (resource.props.get("spec") or {}).get("rules") or []:
            for path in ((rule.get("http") or {}).get("paths")) or []:
                backend = ((path.get("backend") or {}).get("service") or {}).get("name", "")
                entry = (
                    path.get("path", "/"),
                    path.get("pathType", "Prefix"),
                    backend,
                    annotations,
                )
                routes.setdefault(rule.get("host", ""), []).append(entry)
    for host, paths in sorted(routes.items()):
        for intake in INTAKE_PATHS:
            # The most specific path wins, as in the ingress controller.
            request = f"{intake}/message"
            matching = [p for p in paths if _prefix_match(p[0], p[1], request)]
            if not matching:
                continue
            path, _, backend, annotations = max(matching, key=lambda p: len(p[0]))
            if backend != "hub" or _closed(annotations):
                continue
            mutual = annotations.get(f"{NGINX}/auth-tls-verify-client") == "on"
            if not (mutual and annotations.get(f"{NGINX}/auth-tls-secret")):
                report(f"{host}{intake} reaches the hub without a channel client certificate")


hub_intake_mtls = StackValidationPolicy(
    name="zwfw-hub-intake-mtls",
    description=(
        "Whatever host routes the hub's province-facing intake (/reports, /exchange) requires "
        "a client certificate of the interconnection channel CA (mutual TLS), or does not "
        "publish it at all. GB/T 39786-2021 level 3, 8.2 a) identity authentication of "
        "communicating entities with cryptographic techniques."
    ),
    validate=_intake_mtls,
)


def _sign_in_limit(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != INGRESS:
        return
    paths = [p for _, p, _ in _paths(args.props) if p.startswith(SIGN_IN_PATHS)]
    if not paths:
        return
    limit = _annotations(args.props).get(f"{NGINX}/limit-rps")
    if not limit or not str(limit).isdigit() or int(limit) < 1:
        report(f"sign-in and token endpoints ({', '.join(paths)}) need a per-client rate limit")


sign_in_rate_limit = ResourceValidationPolicy(
    name="zwfw-sign-in-rate-limit",
    description=(
        "Sign-in and token endpoints are rate-limited per client at the ingress. GB/T "
        "22239-2019 level 3, 8.1.4.1 b) identification and authentication (login-failure "
        "handling: limit the attempts)."
    ),
    validate=_sign_in_limit,
)


# --- 等保2.0 8.1.4.9 data backup and recovery ---


def _database(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "kubernetes:postgresql.cnpg.io/v1:Cluster":
        return
    spec = args.props.get("spec") or {}
    if not _production(args.props):
        return
    if (spec.get("instances") or 1) < 3:
        report("production databases run 3 instances (a primary and two standbys)")
    if not (spec.get("backup") or {}):
        report("production databases are backed up (spec.backup)")
    if not (spec.get("affinity") or {}).get("enablePodAntiAffinity"):
        report("production database instances are spread over nodes")


database_resilience = ResourceValidationPolicy(
    name="zwfw-database-resilience",
    description=(
        "Production PostgreSQL clusters run three instances spread over nodes, with backups. "
        "GB/T 22239-2019 level 3, 8.1.4.9 a) backup and recovery of important data and c) hot "
        "redundancy."
    ),
    validate=_database,
)


# --- 等保2.0 8.1.4.2 d): least privilege for administrators ---

_FORBIDDEN_WRITES = {
    ("networking.k8s.io", "networkpolicies"),
    ("", "resourcequotas"),
    ("", "limitranges"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("", "namespaces"),
}
_WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*", "escalate", "bind"}


def _rbac(args: ResourceValidationArgs, report: ReportViolation) -> None:
    kind = args.resource_type
    if kind == "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding":
        for subject in args.props.get("subjects") or []:
            if subject.get("kind") in ("Group", "User"):
                report(
                    f"{subject.get('kind')} {subject.get('name')} is granted rights "
                    "on the whole cluster"
                )
        return
    if kind not in (
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
    ):
        return
    for rule in args.props.get("rules") or []:
        groups = rule.get("apiGroups") or [""]
        resources = rule.get("resources") or []
        verbs = set(rule.get("verbs") or [])
        if "*" in groups or "*" in resources or "*" in verbs:
            report("wildcards grant more than the tenant's work needs")
        if "pods/exec" in resources or "pods/attach" in resources:
            report("shells into pods bypass the services' own audit")
        if verbs & _WRITE_VERBS:
            for group in groups:
                for resource in resources:
                    if (group, resource) in _FORBIDDEN_WRITES:
                        report(
                            f"may change {resource}: the tenant's isolation and share "
                            "are not its own to change"
                        )


rbac_least_privilege = ResourceValidationPolicy(
    name="zwfw-rbac-least-privilege",
    description=(
        "Tenant operations groups get namespaced rights only: no cluster-wide bindings, no "
        "wildcards, no shells into pods, and never the right to change their own "
        "NetworkPolicies, quotas or RBAC. GB/T 22239-2019 level 3, 8.1.4.2 d) least privilege "
        "for administrative users and separation of their rights."
    ),
    validate=_rbac,
)

POLICIES = [
    workload_hardening,
    workload_resources,
    workload_availability,
    image_pinned,
    namespace_restricted,
    tenant_isolation,
    secrets_not_in_config,
    ingress_tls,
    hub_intake_mtls,
    sign_in_rate_limit,
    database_resilience,
    rbac_least_privilege,
]
for _policy in POLICIES:
    _policy.enforcement_level = EnforcementLevel.MANDATORY
