"""The pinned prerequisites (charts/prerequisites.yaml): exact versions, the values the
Kubernetes target relies on, CRD schemas vendored from the same releases, and a stack that
installs them installs exactly those."""

from __future__ import annotations

import re

import yaml
from zwfw_infra.config import prerequisites
from zwfw_infra.paths import CHARTS, CRDS
from zwfw_infra.render import Rendered

EXACT = re.compile(r"^v?\d+\.\d+\.\d+$")


def test_every_chart_is_pinned_to_one_release_with_its_values() -> None:
    charts = prerequisites()
    assert set(charts) == {
        "cloudnative-pg",
        "cert-manager",
        "ingress-nginx",
        "kube-prometheus-stack",
        "prometheus-blackbox-exporter",
    }
    for chart in charts.values():
        assert EXACT.match(str(chart["version"])), chart
        assert EXACT.match(str(chart["app_version"])), chart
        assert chart["repository"].startswith("https://")
        assert isinstance(yaml.safe_load((CHARTS / chart["values"]).read_text()), dict)
        assert chart["pod_labels"]


def test_vendored_crds_come_from_the_pinned_releases() -> None:
    charts = prerequisites()
    sources = yaml.safe_load((CRDS / "SOURCES.yaml").read_text())
    assert sources["cloudnative-pg"]["tag"] == f"v{charts['cloudnative-pg']['app_version']}"
    assert sources["cert-manager"]["tag"] == charts["cert-manager"]["version"]
    stack = charts["kube-prometheus-stack"]
    assert sources["prometheus-operator"]["tag"] == f"kube-prometheus-stack-{stack['version']}"
    for name, source in sources.items():
        assert (CRDS / name / "LICENSE").read_text().lstrip().startswith("Apache License")
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
        on_disk = sorted(p.name for p in (CRDS / name).glob("*.yaml"))
        assert on_disk == sorted(source["files"])
    probe = (CRDS / "prometheus-operator" / "crd-probes.yaml").read_text()
    assert f"prometheus-operator/{stack['app_version']}/" in probe


def test_the_ingress_controller_adds_hsts_and_security_headers_and_allows_no_snippets() -> None:
    values = yaml.safe_load((CHARTS / "values" / "ingress-nginx.yaml").read_text())["controller"]
    assert values["config"]["hsts"] == "true"
    assert int(values["config"]["hsts-max-age"]) >= 31536000
    assert values["config"]["hsts-include-subdomains"] == "true"
    assert values["addHeaders"] == {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }
    assert values["allowSnippetAnnotations"] is False


def test_the_blackbox_module_is_the_host_targets(demo: Rendered) -> None:
    values = yaml.safe_load((CHARTS / "values" / "prometheus-blackbox-exporter.yaml").read_text())
    module = values["config"]["modules"]["zwfw_https_ready"]
    assert module["http"]["fail_if_not_ssl"] is True
    assert module["http"]["valid_status_codes"] == [200]
    assert {p["spec"]["module"] for p in demo.of_kind("Probe")} == {"zwfw_https_ready"}


def test_a_stack_that_installs_them_installs_exactly_those(
    demo: Rendered, province: Rendered
) -> None:
    charts = prerequisites()
    releases = {r["name"]: r for r in demo.helm_releases}
    assert set(releases) == set(charts)
    for name, chart in charts.items():
        release = releases[name]
        assert release["version"] == str(chart["version"])
        assert release["repositoryOpts"] == {"repo": chart["repository"]}
        assert release["namespace"] == chart["namespace"]
        assert release["values"] == yaml.safe_load((CHARTS / chart["values"]).read_text())
    assert province.helm_releases == []
