"""What the Pulumi program builds, as a province's ops team and the services would notice it:
hardened, redundant workloads; settings the services accept; secrets only from secret config;
one tenant per namespace with its share and isolation; the host target's alert rules."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url
from zwfw_infra import labels
from zwfw_infra.config import ConfigError, parse
from zwfw_infra.monitoring import rule_files
from zwfw_infra.render import Rendered, deploy_time_values, render, stack_file, stack_values

from zwfw.services.kit.registry import resolve_service
from zwfw.services.kit.settings import SettingsError, load_settings

ZWFW_SERVICES = {"identity", "hall", "elicense", "eseal", "hub"}


def _zwfw_deployments(rendered: Rendered) -> list[dict[str, Any]]:
    return [
        d
        for d in rendered.of_kind("Deployment")
        if d["metadata"]["labels"].get(labels.PART_OF) == "zwfw"
    ]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][0]


def test_both_stacks_run_every_platform_service(demo: Rendered, province: Rendered) -> None:
    demo_services = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in _zwfw_deployments(demo)
    }
    assert demo_services == {
        ("zwfw-national", "identity"),
        ("zwfw-national", "hub"),
        *{
            (ns, s)
            for ns in ("zwfw-340000", "zwfw-330000")
            for s in ("identity", "hall", "elicense", "eseal")
        },
    }
    assert {d["metadata"]["name"] for d in _zwfw_deployments(province)} == {
        "identity",
        "hall",
        "elicense",
        "eseal",
    }


def test_production_workloads_are_redundant_and_roll_without_downtime(province: Rendered) -> None:
    for deployment in _zwfw_deployments(province):
        spec = deployment["spec"]
        assert spec["replicas"] >= 2
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
        spread = spec["template"]["spec"]["topologySpreadConstraints"]
        by_key = {c["topologyKey"]: c for c in spread}
        assert by_key["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
        assert (
            by_key["kubernetes.io/hostname"]["labelSelector"]["matchLabels"]
            == spec["selector"]["matchLabels"]
        )
        name, ns = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
        hpa = province.find("HorizontalPodAutoscaler", name, ns)
        assert hpa["spec"]["minReplicas"] == spec["replicas"]
        assert hpa["spec"]["maxReplicas"] > spec["replicas"]
        pdb = province.find("PodDisruptionBudget", name, ns)
        assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
        assert pdb["spec"]["maxUnavailable"] == 1
    hall = province.find("HorizontalPodAutoscaler", "hall", "zwfw-340000")
    assert hall["spec"]["maxReplicas"] == 12  # the stack file's override


def test_demo_runs_one_replica_and_does_not_insist_on_spreading(demo: Rendered) -> None:
    for deployment in _zwfw_deployments(demo):
        assert deployment["spec"]["replicas"] == 1
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["whenUnsatisfiable"] for c in spread} == {"ScheduleAnyway"}


def test_containers_are_hardened_probed_and_bounded(stack: Rendered) -> None:
    workloads = _zwfw_deployments(stack) + stack.of_kind("Job")
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        container = _container(workload)
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] >= 10000
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert set(container["resources"]) == {"requests", "limits"}
        for bound in container["resources"].values():
            assert set(bound) == {"cpu", "memory"}
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
        assert "emptyDir" in volume
        account = stack.find(
            "ServiceAccount", pod["serviceAccountName"], workload["metadata"]["namespace"]
        )
        assert account["automountServiceAccountToken"] is False
    for deployment in _zwfw_deployments(stack):
        container = _container(deployment)
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_services_serve_with_their_settings_after_a_migration_job(stack: Rendered) -> None:
    for deployment in _zwfw_deployments(stack):
        name, ns = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
        container = _container(deployment)
        assert container["args"][:4] == ["serve", name, "--config", "/etc/zwfw/settings.yaml"]
        assert "--no-migrate" in container["args"]
        jobs = [
            j
            for j in stack.of_kind("Job")
            if j["metadata"]["namespace"] == ns
            and j["metadata"]["name"].startswith(f"{name}-migrate-")
        ]
        assert len(jobs) == 1
        job = _container(jobs[0])
        assert job["args"] == ["migrate", name, "--config", "/etc/zwfw/settings.yaml"]
        # The job migrates with what the service will serve with.
        assert job["image"] == container["image"]
        assert job["env"] == container["env"]
        assert job["volumeMounts"] == container["volumeMounts"]
        service = stack.find("Service", name, ns)
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert service["metadata"]["labels"][labels.JOB] == f"zwfw-{name}"


def test_images_by_digest_where_the_stack_gives_one(demo: Rendered, province: Rendered) -> None:
    digest = stack_values("province-example")["image"]["digest"]
    for deployment in _zwfw_deployments(province):
        assert _container(deployment)["image"].endswith(f"@{digest}")
    for deployment in _zwfw_deployments(demo):
        assert _container(deployment)["image"].endswith(":0.1.0")


def _secret_env(rendered: Rendered, namespace: str, secret: str) -> dict[str, str]:
    return dict(rendered.find("Secret", secret, namespace)["stringData"])


def test_every_service_accepts_its_settings_and_secrets(
    stack: Rendered, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ConfigMap's YAML and the Secret's ZWFW_* variables, loaded by the service's own
    settings class (unknown keys are errors there): what the pod would start with."""
    checked = 0
    for deployment in _zwfw_deployments(stack):
        name, ns = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
        settings_file = tmp_path / f"{ns}-{name}.yaml"
        settings_file.write_text(
            stack.find("ConfigMap", f"{name}-settings", ns)["data"]["settings.yaml"],
            encoding="utf-8",
        )
        env = _secret_env(stack, ns, f"{name}-secrets")
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            settings = load_settings(resolve_service(name).settings_class, settings_file)
        assert settings.service == name
        assert settings.port == 8443
        assert settings.tls.enabled
        url = make_url(settings.database_url)
        role = stack.find("Secret", f"{name}-db-credentials", ns)["stringData"]
        assert (url.drivername, url.username, url.database) == ("postgresql+psycopg", name, name)
        assert url.password == role["password"]
        assert role["username"] == name
        assert url.host == f"zwfw-db-rw.{ns}.svc"
        assert url.query["sslmode"] == "verify-full"
        if name != "identity":
            assert settings.auth.configured
            assert settings.auth.audience == settings.public_base_url
        checked += 1
    assert checked == len(_zwfw_deployments(stack))


def test_a_misspelt_service_setting_in_the_stack_is_caught(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    values = copy.deepcopy(stack_values("province-example"))
    values["provinces"][0]["services"]["hall"]["settings"] = {"rectification_dayz": 15}
    rendered = render("province-example", values=values)
    settings_file = tmp_path / "hall.yaml"
    settings_file.write_text(
        rendered.find("ConfigMap", "hall-settings", "zwfw-340000")["data"]["settings.yaml"]
    )
    for key, value in _secret_env(rendered, "zwfw-340000", "hall-secrets").items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match="rectification_dayz"):
        load_settings(resolve_service("hall").settings_class, settings_file)


def test_secret_values_come_only_from_secret_config(stack: Rendered) -> None:
    for obj in stack.of_kind("Secret"):
        meta = obj["metadata"]
        if meta["name"] in ("zwfw-internal-ca-bundle", "hub-channel-ca"):
            continue  # CA certificates: public
        for key in obj["stringData"]:
            assert ("Secret", meta.get("namespace", ""), meta["name"], key) in stack.secret_paths, (
                f"{meta['namespace']}/{meta['name']}: {key} is not from secret config"
            )
    for config_map in stack.of_kind("ConfigMap"):
        text = yaml.safe_dump(config_map["data"])
        for obj in stack.of_kind("Secret"):
            for key, value in obj["stringData"].items():
                if key != "username" and len(value) >= 16 and "BEGIN CERTIFICATE" not in value:
                    assert value not in text


def test_stack_files_hold_no_secret() -> None:
    for stack in ("demo", "province-example"):
        document = yaml.safe_load(stack_file(stack).read_text(encoding="utf-8"))
        keys = set(document["config"])
        assert "zwfw:secrets" not in keys
        text = stack_file(stack).read_text(encoding="utf-8")
        assert "secure:" not in text
        assert "PRIVATE KEY" not in text


def test_a_missing_secret_is_named_in_one_line() -> None:
    values = stack_values("demo")
    # The config the secrets were made for (the channel keys pair with its certificates).
    additions, secrets = deploy_time_values(values)
    values.update(additions)
    render("demo", values=values, secret_values=secrets)
    del secrets["province-a"]["hall"]["kek"]
    with pytest.raises(
        ConfigError, match=r"^secret zwfw:secrets\.province-a\.hall\.kek is not set"
    ):
        render("demo", values=values, secret_values=secrets)


def test_tenants_get_a_namespace_share_isolation_and_their_own_ops_role(stack: Rendered) -> None:
    namespaces = stack.of_kind("Namespace")
    assert len(namespaces) >= 4
    for namespace in namespaces:
        meta = namespace["metadata"]
        ns = meta["name"]
        assert meta["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        quota = stack.find("ResourceQuota", "tenant-quota", ns)["spec"]["hard"]
        assert {"requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "pods"} <= set(
            quota
        )
        assert quota["services.loadbalancers"] == "0"
        assert quota["services.nodeports"] == "0"
        limits = stack.find("LimitRange", "tenant-limits", ns)["spec"]["limits"]
        assert {"default", "defaultRequest"} <= set(limits[0])
        deny = stack.find("NetworkPolicy", "default-deny", ns)["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        binding = stack.find("RoleBinding", "tenant-ops", ns)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "tenant-ops",
        }
        [subject] = binding["subjects"]
        assert subject["kind"] == "Group"
        assert subject["name"].endswith("-ops")
        role = stack.find("Role", "tenant-ops", ns)
        for rule in role["rules"]:
            if "networkpolicies" in rule["resources"]:
                assert set(rule["verbs"]) == {"get", "list", "watch"}
            assert "roles" not in rule["resources"]
            assert "pods/exec" not in rule["resources"]
    assert not stack.of_kind("ClusterRoleBinding")


def test_databases_one_per_platform_with_a_role_per_service(
    demo: Rendered, province: Rendered
) -> None:
    [cluster] = province.of_kind("Cluster")
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["affinity"]["podAntiAffinityType"] == "required"
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://zwfw-backups/340000"
    assert cluster["spec"]["backup"]["retentionPolicy"] == "180d"
    [schedule] = province.of_kind("ScheduledBackup")
    assert schedule["spec"]["cluster"] == {"name": "zwfw-db"}
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    assert set(roles) == {"identity", "hall", "elicense", "eseal"}
    assert not any(r.get("superuser") for r in roles.values())
    databases = {d["spec"]["name"]: d["spec"]["owner"] for d in province.of_kind("Database")}
    assert databases == {s: s for s in roles}
    demo_clusters = demo.of_kind("Cluster")
    assert len(demo_clusters) == 3
    assert {c["spec"]["instances"] for c in demo_clusters} == {1}
    assert not demo.of_kind("ScheduledBackup")


def test_alert_rules_are_the_host_targets_rule_files(stack: Rendered) -> None:
    rules = {r["metadata"]["name"]: r for r in stack.of_kind("PrometheusRule")}
    files = rule_files()
    assert len(files) == 3
    assert set(rules) == {p.name.removesuffix(".rules.yml") for p in files}
    for path in files:
        expected = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        assert rules[path.name.removesuffix(".rules.yml")]["spec"]["groups"] == expected


def test_scrape_jobs_and_labels_are_the_ones_the_rules_select(stack: Rendered) -> None:
    for monitor in stack.of_kind("ServiceMonitor"):
        name, ns = monitor["metadata"]["name"], monitor["metadata"]["namespace"]
        service = stack.find("Service", name, ns)
        # The job label comes from this Service label: zwfw-<service>, as on the host target.
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == f"zwfw-{name}"
        relabels = {
            r["targetLabel"]: r["replacement"]
            for r in monitor["spec"]["endpoints"][0]["relabelings"]
        }
        assert relabels["region_code"] == service["metadata"]["labels"][labels.REGION]
    for probe in stack.of_kind("Probe"):
        assert probe["spec"]["jobName"] == "zwfw-probe"
        [target] = probe["spec"]["targets"]["staticConfig"]["static"]
        assert target.startswith("https://")
        assert target.endswith("/readyz")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.__setitem__("colour", "red"), "unknown key colour"),
        (lambda v: v["provinces"][0].__setitem__("replicas", 1), "at least 2 replicas"),
        (
            lambda v: v["provinces"][0]["database"].__setitem__("instances", 2),
            "3 database instances",
        ),
        (lambda v: v["provinces"][0]["database"].pop("backup"), "back their databases up"),
        (lambda v: v["provinces"][0].__setitem__("regionCode", "34"), "regionCode"),
        (lambda v: v["image"].__setitem__("tag", "latest"), "not latest"),
        (lambda v: v["image"].__setitem__("digest", "sha256:abc"), "image.digest"),
        (lambda v: v["cluster"].__setitem__("apiServerCidrs", []), "apiServerCidrs is required"),
        (lambda v: v["provinces"].append(dict(v["provinces"][0])), "share the namespace"),
        (lambda v: v.pop("externalNational"), "externalNational"),
        (
            lambda v: v["externalNational"].__setitem__("identityUrl", "http://idp.example"),
            "externalNational.identityUrl",
        ),
        # A production seal's picture is the organisation's own, never a generated one.
        (
            lambda v: v["provinces"][0].__setitem__(
                "issuer", {"creditCode": "11340100MB0000001X", "name": "安徽省市场监督管理局"}
            ),
            r"provinces\[0\]\.issuer\.picturePng: production stacks give the seal picture",
        ),
        (
            lambda v: v["provinces"][0].__setitem__(
                "issuer", {"creditCode": "1134", "name": "x", "picturePng": "iVBORw0KGgo="}
            ),
            r"provinces\[0\]\.issuer\.creditCode",
        ),
        (
            lambda v: v["provinces"][0].__setitem__(
                "issuer",
                {"creditCode": "11340100MB0000001X", "name": "x", "picturePng": "bm90IGEgcG5n"},
            ),
            "picturePng: not a base64 PNG",
        ),
    ],
)
def test_bad_stack_configuration_is_refused_in_one_line(change, message: str) -> None:
    values = copy.deepcopy(stack_values("province-example"))
    values["pki"] = {
        "internalCaCertificate": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    }
    parse(values)
    change(values)
    with pytest.raises(ConfigError, match=message) as caught:
        parse(values)
    assert "\n" not in str(caught.value)


def test_stack_outputs_name_what_provisioning_and_certification_need(demo: Rendered) -> None:
    platforms = demo.outputs["platforms"]
    assert set(platforms) == {"national", "province-a", "province-b"}
    hall = platforms["province-a"]["services"]["hall"]
    assert hall["public_url"] == "https://hall.340000.demo.zwfw.example"
    assert hall["internal_url"] == "https://hall.zwfw-340000.svc:8443"
    assert demo.find("ConfigMap", hall["settings_config_map"], "zwfw-340000")
    assert demo.find("Secret", hall["secret"], "zwfw-340000")
    assert platforms["national"]["intake_url"] == "https://intake.hub.100000.demo.zwfw.example"
    assert {"client": "zwfw-340000/hall", "server": "zwfw-national/hub"} in [
        {k: v for k, v in link.items() if k != "why"} for link in demo.outputs["links"]
    ]


def test_every_object_belongs_to_a_component_of_its_concept(stack: Rendered) -> None:
    """Typed components with parent=self: each object's URN names the component it is in."""
    expected_parent = {
        "Deployment": {"zwfw:service:ZwfwService"},
        # Migrations of a service; the load test's master and workers; provisioning.
        "Job": {
            "zwfw:service:ZwfwService",
            "zwfw:loadtest:LoadTest",
            "zwfw:provisioning:ProvisioningJob",
        },
        "HorizontalPodAutoscaler": {"zwfw:service:ZwfwService"},
        "Cluster": {"zwfw:database:Database"},
        "Namespace": {"zwfw:tenancy:Tenant"},
        "ResourceQuota": {"zwfw:tenancy:Tenant"},
        "Ingress": {"zwfw:ingress:PlatformIngress"},
        "ServiceMonitor": {"zwfw:monitoring:PlatformMonitoring"},
        "PrometheusRule": {"zwfw:monitoring:Monitoring"},
        "ClusterIssuer": {"zwfw:pki:Pki"},
    }
    assert len(stack.urns) == len(stack.objects)
    for obj, urn in zip(stack.objects, stack.urns, strict=True):
        chain = urn.split("::")[2].split("$")
        assert chain[0].startswith("zwfw:"), urn
        if obj["kind"] in expected_parent:
            assert chain[-2] in expected_parent[obj["kind"]], urn
        if obj["kind"] == "Job" and chain[-2] == "zwfw:loadtest:LoadTest":
            assert obj["metadata"]["namespace"].startswith("zwfw-load-"), urn
    assert {"zwfw:platform:Platform", "zwfw:network:PlatformNetwork"} <= set(stack.components)


def test_rendering_needs_no_event_loop_left_by_others() -> None:
    """Other code (asyncio.run, test clients) may leave the thread without an event loop."""
    asyncio.set_event_loop(None)
    rendered = render("province-example")
    assert rendered.of_kind("Deployment")
