"""Every rendered object passes the API's schemas: kubernetes-validate --strict for
Kubernetes 1.31-1.34, custom resources against the pinned operators' CRDs."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate.utils
import pytest
import yaml
from zwfw_infra import validation
from zwfw_infra.render import REDACTED, Rendered, write

CUSTOM_KINDS = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Database"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "ClusterIssuer"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "Probe"),
}


def test_the_pinned_kubernetes_validate_knows_every_supported_version() -> None:
    known = {v.rsplit(".", 1)[0] for v in kubernetes_validate.utils.all_versions()}
    assert {v.rsplit(".", 1)[0] for v in validation.KUBERNETES_VERSIONS} <= known
    assert validation.KUBERNETES_VERSIONS[0].startswith("1.31")
    assert validation.KUBERNETES_VERSIONS[-1].startswith("1.34")


def test_every_rendered_object_validates(stack: Rendered) -> None:
    problems = [p for obj in stack.objects for p in validation.errors(obj)]
    assert problems == []


def test_custom_resources_have_vendored_crds(stack: Rendered) -> None:
    kinds = {(o["apiVersion"], o["kind"]) for o in stack.objects}
    custom = {k for k in kinds if "." in k[0].split("/")[0]} - {
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("networking.k8s.io/v1", "Ingress"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    }
    assert custom <= CUSTOM_KINDS
    assert custom <= set(validation.crd_schemas())


def test_both_stacks_render_every_custom_kind(rendered_stacks: dict[str, Rendered]) -> None:
    kinds = {(o["apiVersion"], o["kind"]) for r in rendered_stacks.values() for o in r.objects}
    assert kinds >= CUSTOM_KINDS


def _one(rendered: Rendered, kind: str) -> dict:
    return copy.deepcopy(rendered.of_kind(kind)[0])


@pytest.mark.parametrize(
    ("kind", "breaks"),
    [
        # A Python-style field name that the SDK would translate only for typed resources.
        ("Certificate", lambda o: o["spec"].__setitem__("issuer_ref", o["spec"].pop("issuerRef"))),
        ("Cluster", lambda o: o["spec"].__setitem__("instances", "three")),
        ("Cluster", lambda o: o["spec"]["storage"].__setitem__("sizeGi", 20)),
        ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].__setitem__("tls", {})),
        ("Probe", lambda o: o["spec"].__setitem__("module", 7)),
        ("PrometheusRule", lambda o: o["spec"]["groups"][0].__setitem__("rule", [])),
        ("Database", lambda o: o["spec"].pop("owner")),
        (
            "Deployment",
            lambda o: o["spec"]["template"]["spec"]["containers"][0]["securityContext"].__setitem__(
                "readOnlyRootFS", True
            ),
        ),
        ("NetworkPolicy", lambda o: o["spec"].__setitem__("policyTypes", "Ingress")),
        ("Ingress", lambda o: o["spec"]["rules"][0]["http"]["paths"][0].pop("pathType")),
        ("HorizontalPodAutoscaler", lambda o: o["spec"].__setitem__("targetCPU", 70)),
    ],
)
def test_a_broken_object_is_refused(
    rendered_stacks: dict[str, Rendered], kind: str, breaks
) -> None:
    source = next(r for r in rendered_stacks.values() if r.of_kind(kind))
    obj = _one(source, kind)
    assert validation.errors(obj) == []
    breaks(obj)
    assert validation.errors(obj)


def test_an_unknown_kind_is_an_error() -> None:
    obj = {"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    assert "no schema" in validation.errors(obj)[0]


def test_written_manifests_validate_and_hold_no_secret(
    demo: Rendered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write(demo, tmp_path)
    assert len(written) == len(demo.objects)
    assert validation.main([str(tmp_path / "demo")]) == 0
    assert f"{len(demo.objects)} objects checked, 0 problems" in capsys.readouterr().out
    secret_values = set()
    for obj in demo.of_kind("Secret"):
        meta = obj["metadata"]
        for key, value in obj.get("stringData", {}).items():
            # Role names (the basic-auth usernames) travel in the same secret map.
            secret = ("Secret", meta.get("namespace", ""), meta["name"], key) in demo.secret_paths
            if secret and key != "username":
                secret_values.add(value)
    assert len(secret_values) > 20
    text = "\n".join(p.read_text(encoding="utf-8") for p in written)
    assert not [v for v in secret_values if v in text]
    hall = yaml.safe_load(
        (tmp_path / "demo" / "zwfw-340000" / "secret-hall-secrets.yaml").read_text()
    )
    assert hall["stringData"] == {
        "ZWFW_DATABASE_URL": REDACTED,
        "ZWFW_KEK": REDACTED,
        "client.jwk": REDACTED,
        # Its channel identity at the hub: keys from secret config, in one Secret with their
        # certificates.
        "channel.key": REDACTED,
        "channel.crt": REDACTED,
        "intake.key": REDACTED,
        "intake.crt": REDACTED,
    }
