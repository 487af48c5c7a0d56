"""Who can reach whom through the rendered NetworkPolicies: a department cannot reach another
department or a zwfw database; only the halls reach the hub; every connection the
architecture does not need is denied."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import pytest
import yaml
from zwfw_infra.config import prerequisites
from zwfw_infra.reachability import Cluster, Endpoint, from_objects, selects
from zwfw_infra.render import Rendered

NATIONAL = "zwfw-national"
PROVINCES = ("zwfw-340000", "zwfw-330000")
DEPARTMENTS = ("dept-gongan", "dept-renshe", "dept-shichang")
LOAD = "zwfw-load-340000"  # the demo's load test of province A
API_SERVER = "172.18.0.2"  # the demo stack's apiServerCidrs
OUTSIDE = "192.0.2.7"

# The architecture's service links (ARCHITECTURE.md), written out independently of the program.
PROVINCE_LINKS = {
    ("hall", "identity"),
    ("elicense", "identity"),
    ("eseal", "identity"),
    ("hall", "elicense"),
    ("hall", "eseal"),
    ("elicense", "eseal"),
}


def _addon(chart: str) -> Endpoint:
    spec = prerequisites()[chart]
    return Endpoint(name=chart, namespace=spec["namespace"], labels=spec["pod_labels"])


INGRESS = _addon("ingress-nginx")
PROMETHEUS = _addon("kube-prometheus-stack")
OPERATOR = _addon("cloudnative-pg")
DNS = Endpoint(name="kube-dns", namespace="kube-system", labels={"k8s-app": "kube-dns"})


def _database(namespace: str) -> Endpoint:
    return Endpoint(
        name=f"{namespace}/database",
        namespace=namespace,
        labels={"cnpg.io/cluster": "zwfw-db", "cnpg.io/instanceRole": "primary"},
    )


def _department(namespace: str) -> Endpoint:
    return Endpoint(name=f"{namespace}/workload", namespace=namespace, labels={"app": "business"})


def _cluster(objects: list[dict]) -> Cluster:
    extra = [
        INGRESS,
        PROMETHEUS,
        OPERATOR,
        DNS,
        *(_database(ns) for ns in (NATIONAL, *PROVINCES)),
        *(_department(ns) for ns in DEPARTMENTS),
        Endpoint(name="api-server", ip=API_SERVER),
        Endpoint(name="outside", ip=OUTSIDE),
    ]
    add_on_namespaces = {
        e.namespace: {} for e in (INGRESS, PROMETHEUS, OPERATOR, DNS) if e.namespace
    }
    return from_objects(objects, extra, add_on_namespaces)


@pytest.fixture(scope="module")
def cluster(demo: Rendered) -> Cluster:
    return _cluster(demo.objects)


def _pod(cluster: Cluster, namespace: str, service: str, kind: str = "deployment") -> Endpoint:
    return next(e for e in cluster.endpoints if e.name == f"{namespace}/{kind}/{service}")


def _role(endpoint: Endpoint) -> tuple[str, str]:
    """(namespace, what) of an endpoint: a service name, migration, database, workload."""
    if not endpoint.is_pod:
        return ("", endpoint.name)
    labels = endpoint.labels
    if labels.get("app.kubernetes.io/component") == "service":
        return (endpoint.namespace or "", labels["app.kubernetes.io/name"])
    if labels.get("app.kubernetes.io/component") == "migration":
        return (endpoint.namespace or "", "migration")
    if labels.get("app.kubernetes.io/component") == "provisioning":
        return (endpoint.namespace or "", "provisioning")
    if endpoint.namespace == LOAD:
        return (LOAD, labels["app.kubernetes.io/component"])
    if "cnpg.io/cluster" in labels:
        return (endpoint.namespace or "", "database")
    if endpoint.namespace in DEPARTMENTS:
        return (endpoint.namespace or "", "workload")
    return (endpoint.namespace or "", endpoint.name)


def _service_link(source: tuple[str, str], target: tuple[str, str]) -> bool:
    (src_ns, src), (dst_ns, dst) = source, target
    if src_ns == dst_ns and src_ns in PROVINCES:
        return (src, dst) in PROVINCE_LINKS
    if src_ns == dst_ns == NATIONAL:
        return (src, dst) == ("hub", "identity")
    if src_ns in PROVINCES and dst_ns == NATIONAL:
        # Halls report to the hub and get their hub tokens at the national IdP; the
        # province's IdP trusts national tokens (federation).
        return (src, dst) in {("hall", "hub"), ("hall", "identity"), ("identity", "identity")}
    if src_ns == NATIONAL and dst_ns in PROVINCES:
        # The hub routes licence exchanges: token exchange at the IdP, the licence library.
        return (src, dst) in {("hub", "identity"), ("hub", "elicense")}
    return False


def expected(source: Endpoint, target: Endpoint, port: int) -> bool:
    """What the architecture needs, and nothing else."""
    src, dst = _role(source), _role(target)
    tenant_source = source.namespace in (NATIONAL, *PROVINCES, *DEPARTMENTS, LOAD)
    if target == DNS:
        return port == 53 and (tenant_source or not source.is_pod)
    if dst == (LOAD, "load-master"):
        # The load test's workers report to their master; nothing else reaches a generator.
        return port == 5557 and src == (LOAD, "load-worker")
    if dst[0] == LOAD:
        return False
    if src[0] == LOAD:
        # The generators reach the target as citizens do: its public entry, nothing else.
        return target == INGRESS and port == 443 and src[1] == "load-worker"
    if src[1] == "provisioning":
        # The provisioning Job calls its own platform's IdP (admin API, tokens), on the
        # demo's provinces (each with an issuer) its e-seal service (the issuer seal), and on
        # the national side the hub (its registry of the provinces).
        return dst in _provisioned(src[0]) and port == 8443
    if dst[1] == "database":
        if port == 5432:
            return (
                src[0] == dst[0] and src[1] in (*_SERVICES, "migration", "database")
            ) or source == OPERATOR
        if port == 8000:
            return (src[0] == dst[0] and src[1] == "database") or source == OPERATOR
        if port == 9187:
            return source == PROMETHEUS
        return False
    if dst[1] in ("migration", "provisioning"):
        return False  # jobs only call out
    if dst[1] in _SERVICES:
        return port == 8443 and (source in (INGRESS, PROMETHEUS) or _service_link(src, dst))
    if dst[1] == "workload":
        return src[0] == dst[0] or source in (INGRESS, PROMETHEUS)
    if target == INGRESS:
        return port == 443 and (src[1] == "workload" or not tenant_source)
    if target.name == "api-server":
        return port in (443, 6443) and (src[1] == "database" or not tenant_source)
    if target.name == "outside" or target in (PROMETHEUS, OPERATOR):
        return not tenant_source
    raise AssertionError(f"no expectation for {target.name}")


_SERVICES = ("identity", "hall", "elicense", "eseal", "hub")
PORTS = (53, 443, 5432, 5557, 6443, 8000, 8080, 8443, 9187)


def _violations(cluster: Cluster, expect: Callable[[Endpoint, Endpoint, int], bool]) -> list[str]:
    found = []
    for source, target in itertools.permutations(cluster.endpoints, 2):
        involved = {source.namespace, target.namespace} & {
            NATIONAL,
            *PROVINCES,
            *DEPARTMENTS,
            LOAD,
        }
        if not involved:
            continue  # add-ons and the outside among themselves are not the tenants' policies
        for port in PORTS:
            protocol = "UDP" if port == 53 else "TCP"
            actual = cluster.can_connect(source, target, port, protocol)
            if actual != expect(source, target, port):
                verdict = "allowed" if actual else "denied"
                found.append(f"{source.name} -> {target.name}:{port} {verdict}")
    return found


def test_every_connection_is_what_the_architecture_needs_and_nothing_else(cluster: Cluster) -> None:
    assert len([e for e in cluster.endpoints if _role(e)[1] == "migration"]) == 10
    assert len([e for e in cluster.endpoints if _role(e)[1] == "provisioning"]) == 3
    assert _violations(cluster, expected) == []


def test_departments_cannot_reach_each_other_or_any_zwfw_database(cluster: Cluster) -> None:
    gongan, renshe = _department("dept-gongan"), _department("dept-renshe")
    assert cluster.can_connect(gongan, _department("dept-gongan"), 8080)
    assert not cluster.can_connect(gongan, renshe, 8080)
    for namespace in (NATIONAL, *PROVINCES):
        assert not cluster.can_connect(gongan, _database(namespace), 5432)
        # Not even a zwfw service's own port: departments use the public entry.
        assert not cluster.can_connect(gongan, _pod(cluster, namespace, "identity"), 8443)
    assert cluster.can_connect(gongan, INGRESS, 443)


def test_only_the_halls_and_the_national_provisioning_job_reach_the_hub(
    cluster: Cluster,
) -> None:
    hub = _pod(cluster, NATIONAL, "hub")
    reaching = {
        (e.namespace, _role(e)[1])
        for e in cluster.endpoints
        if e.is_pod
        and e.namespace not in ("ingress-nginx", "monitoring")
        and cluster.can_connect(e, hub, 8443)
    }
    # The national Job registers the provinces in the hub's registry; no province's Job.
    assert reaching == {(ns, "hall") for ns in PROVINCES} | {(NATIONAL, "provisioning")}


def test_the_hub_reaches_exactly_the_idps_its_province_token_urls_name(
    demo: Rendered, cluster: Cluster
) -> None:
    """The hub calls the stack's provinces' IdPs at their service URLs (province_token_urls):
    its egress allows those IdPs and no other identity service but its own national one."""
    text = demo.find("ConfigMap", "hub-settings", NATIONAL)["data"]["settings.yaml"]
    urls = yaml.safe_load(text)["province_token_urls"]
    assert urls == {
        ns.removeprefix("zwfw-"): f"https://identity.{ns}.svc:8443/token" for ns in PROVINCES
    }
    hub = _pod(cluster, NATIONAL, "hub")
    reached = {
        f"https://identity.{e.namespace}.svc:8443/token"
        for e in cluster.endpoints
        if e.is_pod
        and e.namespace != NATIONAL
        and _role(e)[1] == "identity"
        and cluster.can_connect(hub, e, 8443)
    }
    assert reached == set(urls.values())
    assert not cluster.can_connect(hub, Endpoint(name="outside", ip=OUTSIDE), 443)


def test_the_hub_reaches_exactly_the_libraries_its_province_elicense_urls_name(
    demo: Rendered, cluster: Cluster
) -> None:
    """Routed annotated copies go to the stack's provinces' libraries at their service URLs
    (province_elicense_urls), which the hub's egress allows, and to no other library."""
    text = demo.find("ConfigMap", "hub-settings", NATIONAL)["data"]["settings.yaml"]
    urls = yaml.safe_load(text)["province_elicense_urls"]
    assert urls == {ns.removeprefix("zwfw-"): f"https://elicense.{ns}.svc:8443" for ns in PROVINCES}
    hub = _pod(cluster, NATIONAL, "hub")
    reached = {
        f"https://elicense.{e.namespace}.svc:8443"
        for e in cluster.endpoints
        if e.is_pod and _role(e)[1] == "elicense" and cluster.can_connect(hub, e, 8443)
    }
    assert reached == set(urls.values())


def test_a_province_cannot_reach_another_provinces_services_or_database(cluster: Cluster) -> None:
    hall_a = _pod(cluster, "zwfw-340000", "hall")
    for service in ("identity", "hall", "elicense", "eseal"):
        assert not cluster.can_connect(hall_a, _pod(cluster, "zwfw-330000", service), 8443)
    assert not cluster.can_connect(hall_a, _database("zwfw-330000"), 5432)
    assert cluster.can_connect(hall_a, _database("zwfw-340000"), 5432)


def test_the_check_catches_a_policy_that_opens_too_much(demo: Rendered) -> None:
    objects = copy.deepcopy(demo.objects)
    objects.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-all-to-hub", "namespace": NATIONAL},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "hub"}},
                "policyTypes": ["Ingress"],
                "ingress": [{}],
            },
        }
    )
    opened = _cluster(objects)
    hub = _pod(opened, NATIONAL, "hub")
    # Egress from the department is still denied by its own namespace's policies...
    assert not opened.can_connect(_department("dept-gongan"), hub, 8443)
    # ...but whatever its own namespace leaves unrestricted now gets in: the operator's pods,
    # addresses outside the cluster.
    violations = _violations(opened, expected)
    assert "cloudnative-pg -> zwfw-national/deployment/hub:8443 allowed" in violations
    assert "outside -> zwfw-national/deployment/hub:8443 allowed" in violations


def test_the_check_catches_a_missing_link(demo: Rendered) -> None:
    objects = [
        o
        for o in demo.objects
        if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "hub-from-clients")
    ]
    broken = _cluster(objects)
    assert "zwfw-340000/deployment/hall -> zwfw-national/deployment/hub:8443 denied" in _violations(
        broken, expected
    )


# --- the evaluator's semantics on small cases ---


def _policy(namespace: str, spec: dict) -> dict:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": spec,
    }


A = Endpoint("a", "ns-a", {"app": "a"}, ports={"web": 8080})
B = Endpoint("b", "ns-b", {"app": "b"}, ports={"web": 8080})
NAMESPACES = {
    "ns-a": {"kubernetes.io/metadata.name": "ns-a", "team": "x"},
    "ns-b": {"kubernetes.io/metadata.name": "ns-b", "team": "y"},
}


def test_no_policy_allows_and_a_selecting_policy_isolates() -> None:
    assert Cluster(NAMESPACES, [A, B], []).can_connect(A, B, 8080)
    deny = _policy("ns-b", {"podSelector": {}, "policyTypes": ["Ingress"]})
    assert not Cluster(NAMESPACES, [A, B], [deny]).can_connect(A, B, 8080)
    # Egress of a is not isolated by b's namespace policy.
    assert Cluster(NAMESPACES, [A, B], [deny]).can_connect(B, A, 8080)


def test_both_ends_must_allow() -> None:
    ingress = _policy(
        "ns-b",
        {
            "podSelector": {"matchLabels": {"app": "b"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}],
                    "ports": [{"port": "web"}],
                }
            ],
        },
    )
    egress_deny = _policy("ns-a", {"podSelector": {}, "policyTypes": ["Egress"]})
    assert Cluster(NAMESPACES, [A, B], [ingress]).can_connect(A, B, 8080)
    assert not Cluster(NAMESPACES, [A, B], [ingress]).can_connect(A, B, 9090)
    assert not Cluster(NAMESPACES, [A, B], [ingress, egress_deny]).can_connect(A, B, 8080)


def test_pod_and_namespace_selectors_in_one_peer_both_apply() -> None:
    def spec(peers: list) -> dict:
        return {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": peers}]}

    both = _policy(
        "ns-b",
        spec(
            [
                {
                    "namespaceSelector": {"matchLabels": {"team": "x"}},
                    "podSelector": {"matchLabels": {"app": "z"}},
                }
            ]
        ),
    )
    either = _policy(
        "ns-b",
        spec(
            [
                {"namespaceSelector": {"matchLabels": {"team": "x"}}},
                {"podSelector": {"matchLabels": {"app": "z"}}},
            ]
        ),
    )
    pod_only = _policy("ns-b", spec([{"podSelector": {"matchLabels": {"app": "a"}}}]))
    assert not Cluster(NAMESPACES, [A, B], [both]).can_connect(A, B, 80)
    assert Cluster(NAMESPACES, [A, B], [either]).can_connect(A, B, 80)
    # A pod selector alone means pods of the policy's own namespace.
    assert not Cluster(NAMESPACES, [A, B], [pod_only]).can_connect(A, B, 80)


def test_ip_blocks_ports_and_expressions() -> None:
    outside = Endpoint("db", ip="10.1.2.3")
    egress = _policy(
        "ns-a",
        {
            "podSelector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]
            },
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.9.0/24"]}}],
                    "ports": [{"port": 5432, "endPort": 5433}],
                }
            ],
        },
    )
    cluster = Cluster(NAMESPACES, [A, outside], [egress])
    assert cluster.can_connect(A, outside, 5433)
    assert not cluster.can_connect(A, outside, 5434)
    assert not cluster.can_connect(A, Endpoint("other", ip="10.1.9.9"), 5432)
    assert not cluster.can_connect(A, outside, 5432, "UDP")
    assert selects(
        {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"app": "a"}
    )
    assert not selects(
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, {"app": "a"}
    )


def test_the_load_generators_reach_only_the_public_entry_and_their_master(
    cluster: Cluster,
) -> None:
    master = _pod(cluster, LOAD, "load-master", "job")
    worker = _pod(cluster, LOAD, "load-workers", "job")
    assert cluster.can_connect(worker, master, 5557)
    assert cluster.can_connect(worker, INGRESS, 443)
    assert not cluster.can_connect(master, INGRESS, 443)
    assert not cluster.can_connect(worker, _pod(cluster, "zwfw-340000", "hall"), 8443)
    assert not cluster.can_connect(worker, _database("zwfw-340000"), 5432)
    assert not cluster.can_connect(worker, Endpoint(name="outside", ip=OUTSIDE), 443)
    assert not cluster.can_connect(_pod(cluster, "zwfw-340000", "hall"), master, 5557)
    assert not cluster.can_connect(_department("dept-gongan"), master, 5557)


def _provisioned(namespace: str) -> set[tuple[str, str]]:
    """The services a platform's provisioning Job calls on the demo stack."""
    if namespace in PROVINCES:
        return {(namespace, "identity"), (namespace, "eseal")}
    return {(namespace, "identity"), (namespace, "hub")}


def test_the_provisioning_job_reaches_exactly_the_services_it_provisions(cluster: Cluster) -> None:
    for namespace in (NATIONAL, *PROVINCES):
        job = next(
            e
            for e in cluster.endpoints
            if e.namespace == namespace and _role(e)[1] == "provisioning"
        )
        for _, service in _provisioned(namespace):
            assert cluster.can_connect(job, _pod(cluster, namespace, service), 8443)
        assert cluster.can_connect(job, DNS, 53, "UDP")
        others = [
            e
            for e in cluster.endpoints
            if e != job and _role(e) not in _provisioned(namespace) and e != DNS
        ]
        assert others
        for other in others:
            for port in PORTS:
                assert not cluster.can_connect(job, other, port), f"{job.name} -> {other.name}"
        # Its own database neither: provisioning goes through the APIs only.
        assert not cluster.can_connect(job, _database(namespace), 5432)
