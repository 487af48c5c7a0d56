"""The Pulumi program: the stack's configuration in, the intensive government cloud's zwfw
tenants out. ``infra/__main__.py`` calls ``main``."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pulumi

from zwfw_infra import labels
from zwfw_infra.config import StackConfig, parse
from zwfw_infra.loadtest import LoadTest, LoadTestArgs
from zwfw_infra.monitoring import Monitoring, MonitoringArgs
from zwfw_infra.network import links
from zwfw_infra.pki import Pki, PkiArgs
from zwfw_infra.platform import Platform, PlatformArgs
from zwfw_infra.prerequisites import Prerequisites
from zwfw_infra.secrets import Secrets
from zwfw_infra.tenancy import Tenant, TenantArgs

NAMESPACE = "zwfw"


def stack_values() -> dict[str, Any]:
    """Every ``zwfw:*`` key of the stack configuration, objects decoded (as Pulumi passes
    them to the program: JSON text for structured values)."""
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    for key, value in raw.items():
        if not key.startswith(prefix):
            continue
        if isinstance(value, str):
            # Plain strings stay as they are; objects, lists and booleans come as JSON.
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        values[key[len(prefix) :]] = value
    return values


def build(config: StackConfig, secrets: Secrets) -> dict[str, Any]:
    """Every resource of the stack; returns the stack outputs."""
    common = {
        labels.PART_OF: "zwfw",
        labels.MANAGED_BY: "pulumi",
        labels.ENVIRONMENT: config.environment,
    }
    after: list[pulumi.Resource] = []
    if config.install_prerequisites:
        after = list(Prerequisites("prerequisites").releases.values())
    base = pulumi.ResourceOptions(depends_on=after)
    departments = [
        Tenant(
            f"department-{department.name}",
            TenantArgs(
                name=department.name,
                namespace=department.namespace,
                kind="department",
                title=department.title,
                ops_group=department.ops_group,
                quota=department.quota,
                cluster=config.cluster,
                common_labels={**common, labels.TENANT: department.name},
            ),
            opts=base,
        )
        for department in config.departments
    ]
    pki = Pki(
        "pki",
        PkiArgs(
            cert_manager_namespace=config.cluster.cert_manager_namespace,
            internal_ca_certificate=config.pki.internal_ca_certificate,
            internal_ca_key=secrets.value("pki", "internal_ca", "key"),
            common_labels=common,
        ),
        opts=base,
    )
    stack_links = links(config)
    platforms = []
    for platform in config.platforms:
        component = Platform(
            platform.name,
            PlatformArgs(
                platform=platform,
                stack=config,
                secrets=secrets,
                links=stack_links,
                tls_issuer=pki.internal_issuer,
                common_labels=common,
            ),
            opts=pulumi.ResourceOptions(depends_on=[*after, pki.issuer]),
        )
        platforms.append(component)
    Monitoring(
        "monitoring", MonitoringArgs(cluster=config.cluster, common_labels=common), opts=base
    )
    load_test = None
    if config.load_test is not None:
        # The target's services first: the run starts as soon as its Jobs exist.
        load_test = LoadTest(
            "load-test",
            LoadTestArgs(
                load=config.load_test, stack=config, secrets=secrets, common_labels=common
            ),
            opts=pulumi.ResourceOptions(depends_on=[*after, *platforms]),
        )
    return {
        "environment": config.environment,
        "platforms": {p.outputs.name: p.outputs.as_dict() for p in platforms},
        "department_namespaces": {t.name: t.namespace_name for t in departments},
        "links": [
            {
                "client": f"{link.client.namespace}/{link.client.service}",
                "server": f"{link.server.namespace}/{link.server.service}",
                "why": link.why,
            }
            for link in stack_links
        ],
        "load_test": load_test.outputs.as_dict() if load_test is not None else None,
    }


def main() -> dict[str, Any]:
    config = parse(stack_values())
    outputs = build(config, Secrets.from_config(pulumi.Config(NAMESPACE)))
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
