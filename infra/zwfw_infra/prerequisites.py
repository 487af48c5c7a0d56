"""The cluster prerequisites as Helm releases, when a stack installs them itself
(``zwfw:installPrerequisites``): chart versions and values from charts/ only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from zwfw_infra.config import prerequisites
from zwfw_infra.paths import CHARTS


class Prerequisites(pulumi.ComponentResource):
    """CloudNativePG, cert-manager, ingress-nginx, kube-prometheus-stack and the blackbox
    exporter, pinned in charts/prerequisites.yaml."""

    releases: dict[str, k8s.helm.v3.Release]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zwfw:prerequisites:Prerequisites", name, None, opts)
        self.releases = {}
        for chart_name, chart in prerequisites().items():
            values: Mapping[str, Any] = yaml.safe_load(
                (CHARTS / chart["values"]).read_text(encoding="utf-8")
            )
            self.releases[chart_name] = k8s.helm.v3.Release(
                f"{name}-{chart_name}",
                name=chart_name,
                chart=chart["chart"],
                version=str(chart["version"]),
                namespace=chart["namespace"],
                create_namespace=True,
                repository_opts={"repo": chart["repository"]},
                values=dict(values),
                atomic=True,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs(
            {"charts": {n: str(c["version"]) for n, c in prerequisites().items()}}
        )
