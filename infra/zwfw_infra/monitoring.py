"""Monitoring on kube-prometheus-stack, with the host target's rules and names.

- ``PrometheusRule`` objects are generated from ``charts/monitoring/rules/*.rules.yml`` when
  the program runs: the files the host target's Prometheus loads are the one source.
- Scrape jobs keep the host target's names (``zwfw-<service>``, blackbox ``zwfw-probe``) and
  ``region_code`` label, which the rules select on.
- Grafana dashboards are the JSON files of ``charts/monitoring/dashboards/``, shipped as
  ConfigMaps that the Grafana sidecar picks up by label.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from zwfw_infra import labels, pki
from zwfw_infra.config import ClusterConfig
from zwfw_infra.paths import DASHBOARDS, RULES

MONITORING = "monitoring.coreos.com/v1"
PROBE_JOB = "zwfw-probe"
PROBE_MODULE = "zwfw_https_ready"


def rule_files(directory: Path = RULES) -> list[Path]:
    return sorted(directory.glob("*.rules.yml"))


def dashboard_files(directory: Path = DASHBOARDS) -> list[Path]:
    return sorted(directory.glob("*.json"))


@dataclass(frozen=True)
class MonitoringArgs:
    cluster: ClusterConfig
    common_labels: Mapping[str, str]


class Monitoring(pulumi.ComponentResource):
    """The stack-wide monitoring objects, in the monitoring namespace: alerting rules and
    dashboards."""

    rules: list[str]
    dashboards: list[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zwfw:monitoring:Monitoring", name, None, opts)
        namespace = args.cluster.prometheus.namespace
        meta_labels = {**args.common_labels, **args.cluster.monitoring_labels}
        self.rules = []
        for path in rule_files():
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            rule_name = path.name.removesuffix(".rules.yml")
            k8s.apiextensions.CustomResource(
                f"{name}-{rule_name}",
                api_version=MONITORING,
                kind="PrometheusRule",
                metadata={
                    "name": rule_name,
                    "namespace": namespace,
                    "labels": meta_labels,
                    "annotations": {"zwfw.gov.cn/source": f"charts/monitoring/rules/{path.name}"},
                },
                spec={"groups": document["groups"]},
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.rules.append(rule_name)
        self.dashboards = []
        for path in dashboard_files():
            dashboard = json.loads(path.read_text(encoding="utf-8"))
            dashboard_name = f"zwfw-dashboard-{path.stem}"
            k8s.core.v1.ConfigMap(
                f"{name}-{path.stem}-dashboard",
                metadata={
                    "name": dashboard_name,
                    "namespace": namespace,
                    "labels": {**args.common_labels, args.cluster.dashboard_label: "1"},
                },
                data={path.name: json.dumps(dashboard, ensure_ascii=False, indent=1)},
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.dashboards.append(dashboard_name)
        self.register_outputs({"rules": self.rules, "dashboards": self.dashboards})


@dataclass(frozen=True)
class MonitoredService:
    service: str
    public_url: str


@dataclass(frozen=True)
class PlatformMonitoringArgs:
    namespace: str
    region_code: str
    services: Sequence[MonitoredService]
    cluster: ClusterConfig
    common_labels: Mapping[str, str]


class PlatformMonitoring(pulumi.ComponentResource):
    """A ServiceMonitor (every replica, over TLS verified against the internal CA) and a
    blackbox Probe of the public ``/readyz`` for each service of a platform."""

    def __init__(
        self, name: str, args: PlatformMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("zwfw:monitoring:PlatformMonitoring", name, None, opts)
        meta_labels = {**args.common_labels, **args.cluster.monitoring_labels}
        child = pulumi.ResourceOptions(parent=self)
        for monitored in args.services:
            service = monitored.service
            region_label: list[dict[str, Any]] = [
                {
                    "targetLabel": "region_code",
                    "replacement": args.region_code,
                    "action": "replace",
                },
                {"targetLabel": "service", "replacement": service, "action": "replace"},
            ]
            k8s.apiextensions.CustomResource(
                f"{name}-{service}-servicemonitor",
                api_version=MONITORING,
                kind="ServiceMonitor",
                metadata={"name": service, "namespace": args.namespace, "labels": meta_labels},
                spec={
                    "jobLabel": labels.JOB,
                    "selector": {"matchLabels": labels.service_selector(service)},
                    "namespaceSelector": {"matchNames": [args.namespace]},
                    "endpoints": [
                        {
                            "port": "https",
                            "scheme": "https",
                            "path": "/metrics",
                            "interval": "30s",
                            "tlsConfig": {
                                "ca": {"secret": {"name": pki.CA_BUNDLE_SECRET, "key": "ca.crt"}},
                                "serverName": f"{service}.{args.namespace}.svc",
                            },
                            "relabelings": region_label,
                        }
                    ],
                },
                opts=child,
            )
            k8s.apiextensions.CustomResource(
                f"{name}-{service}-probe",
                api_version=MONITORING,
                kind="Probe",
                metadata={
                    "name": f"{service}-public",
                    "namespace": args.namespace,
                    "labels": meta_labels,
                },
                spec={
                    "jobName": PROBE_JOB,
                    "module": PROBE_MODULE,
                    "interval": "30s",
                    "prober": {"url": args.cluster.blackbox_exporter, "scheme": "http"},
                    "targets": {
                        "staticConfig": {
                            "static": [f"{monitored.public_url}/readyz"],
                            "labels": {"region_code": args.region_code, "service": service},
                        }
                    },
                },
                opts=child,
            )
        self.register_outputs({"services": [s.service for s in args.services]})
