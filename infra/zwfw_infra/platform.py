"""A zwfw platform tenant (a province, or the national side): its tenancy, database, services,
network allows, public entry and monitoring, with typed outputs for whatever comes after the
deployment (provisioning the services, writing the certification target profile)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from zwfw_infra import labels, pki
from zwfw_infra.config import PlatformConfig, StackConfig
from zwfw_infra.database import Database, DatabaseArgs
from zwfw_infra.ingress import IngressArgs, PlatformIngress, PublicService
from zwfw_infra.monitoring import MonitoredService, PlatformMonitoring, PlatformMonitoringArgs
from zwfw_infra.network import SERVICE_PORT, Link, PlatformNetwork, PlatformNetworkArgs
from zwfw_infra.secrets import Secrets, required_keys
from zwfw_infra.service import ServiceArgs, ServiceOutputs, ZwfwService, merge_settings
from zwfw_infra.tenancy import Tenant, TenantArgs


def public_url(config: StackConfig, platform: PlatformConfig, service: str) -> str:
    return f"https://{config.public_host(platform, service)}"


def internal_url(platform: PlatformConfig, service: str) -> str:
    return f"https://{service}.{platform.namespace}.svc:{SERVICE_PORT}"


def service_settings(config: StackConfig, platform: PlatformConfig, service: str) -> dict[str, Any]:
    """The settings a service of ``platform`` gets from the stack (before its own overrides):
    whose tokens it trusts, where its peers are. Peers are called inside the cluster; issuers
    and audiences stay the public URLs that tokens carry."""
    national = config.national
    running = {s.name for s in platform.services}
    own_url = public_url(config, platform, service)
    settings: dict[str, Any] = {}
    if service == "identity":
        settings["role"] = platform.kind
    else:
        idp = platform if service != "hub" else (national or platform)
        settings["auth"] = {
            "issuer": public_url(config, idp, "identity"),
            "audience": own_url,
            "jwks_url": f"{internal_url(idp, 'identity')}/jwks",
        }
    if service == "hub":
        settings["subject_tokens"] = {
            "issuer": public_url(config, platform, "identity"),
            "audience": own_url,
            "jwks_url": f"{internal_url(platform, 'identity')}/jwks",
        }
    if service == "hall":
        discovery: dict[str, Any] = {
            "services": {
                peer: public_url(config, platform, peer)
                for peer in ("identity", "elicense", "eseal")
                if peer in running
            },
        }
        if "identity" in running:
            discovery["jwks_uris"] = {
                "identity": f"{public_url(config, platform, 'identity')}/jwks"
            }
        if national is not None:
            discovery["hub_url"] = public_url(config, national, "hub")
        settings["discovery"] = discovery
    if service == "elicense" and "eseal" in running:
        settings["eseal"] = {"base_url": internal_url(platform, "eseal")}
    return settings


@dataclass(frozen=True)
class PlatformArgs:
    platform: PlatformConfig
    stack: StackConfig
    secrets: Secrets
    links: Sequence[Link]
    tls_issuer: Mapping[str, str]
    common_labels: Mapping[str, str]


@dataclass(frozen=True)
class PlatformOutputs:
    """What provisioning and the certification profile writer read of a platform."""

    name: str
    kind: str
    region_code: str
    namespace: str
    database_cluster: str
    services: Mapping[str, ServiceOutputs]
    intake_url: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "region_code": self.region_code,
            "namespace": self.namespace,
            "database_cluster": self.database_cluster,
            "intake_url": self.intake_url,
            "services": {
                name: {
                    "public_url": s.public_url,
                    "internal_url": s.internal_url,
                    "namespace": s.namespace,
                    "settings_config_map": s.settings_config_map,
                    "secret": s.secret,
                    "tls_secret": s.tls_secret,
                    "service_account": s.service_account,
                }
                for name, s in self.services.items()
            },
        }


class Platform(pulumi.ComponentResource):
    outputs: PlatformOutputs

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zwfw:platform:Platform", name, None, opts)
        platform = args.platform
        stack = args.stack
        meta = {**args.common_labels, labels.TENANT: platform.name}
        self.tenant = Tenant(
            f"{name}-tenant",
            TenantArgs(
                name=platform.name,
                namespace=platform.namespace,
                kind=platform.kind,
                title=f"zwfw {platform.kind} platform {platform.region_code}",
                ops_group=platform.ops_group,
                quota=platform.quota,
                cluster=stack.cluster,
                common_labels=meta,
                region_code=platform.region_code,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_tenant = pulumi.ResourceOptions(parent=self, depends_on=[self.tenant])
        # What the ingress controller and Prometheus verify the services with; on the
        # national side also the channel CA the hub's intake accepts client certificates of.
        pki.ca_bundle(
            f"{name}-ca-bundle",
            name=pki.CA_BUNDLE_SECRET,
            namespace=platform.namespace,
            certificate_pem=stack.pki.internal_ca_certificate,
            labels=meta,
            opts=in_tenant,
        )
        is_hub_platform = platform.service("hub") is not None
        if is_hub_platform and stack.pki.channel_ca_certificate:
            pki.ca_bundle(
                f"{name}-channel-ca",
                name=pki.CHANNEL_CA_SECRET,
                namespace=platform.namespace,
                certificate_pem=stack.pki.channel_ca_certificate,
                labels=meta,
                opts=in_tenant,
            )
        self.database = Database(
            f"{name}-database",
            DatabaseArgs(
                platform=platform,
                secrets=args.secrets,
                production=stack.production,
                common_labels=meta,
            ),
            opts=in_tenant,
        )
        backup = platform.database.backup
        PlatformNetwork(
            f"{name}-network",
            PlatformNetworkArgs(
                platform=platform,
                cluster=stack.cluster,
                links=args.links,
                database_cluster=self.database.cluster_name,
                backup_cidrs=backup.endpoint_cidrs if backup else (),
                external_national=stack.external_national if platform.kind == "province" else (),
                common_labels=meta,
            ),
            opts=in_tenant,
        )
        services: dict[str, ServiceOutputs] = {}
        for service in platform.services:
            secret_env: dict[str, pulumi.Output[str]] = {}
            if service.name == "identity":
                secret_env["ZWFW_DATA_KEY"] = args.secrets.value(
                    platform.name, "identity", "data_key"
                )
                secret_env["ZWFW_LOOKUP_KEY"] = args.secrets.value(
                    platform.name, "identity", "lookup_key"
                )
            if "kek" in required_keys(platform).get(service.name, ()):
                secret_env["ZWFW_KEK"] = args.secrets.value(platform.name, service.name, "kek")
            component = ZwfwService(
                f"{name}-{service.name}",
                ServiceArgs(
                    service=service,
                    namespace=platform.namespace,
                    region_code=platform.region_code,
                    public_url=public_url(stack, platform, service.name),
                    image=stack.image,
                    production=stack.production,
                    database=self.database,
                    settings=merge_settings(
                        service_settings(stack, platform, service.name), service.settings
                    ),
                    secret_env=secret_env,
                    tls_issuer=args.tls_issuer,
                    common_labels=meta,
                    client_certificates=service.name == "hub",
                ),
                opts=in_tenant,
            )
            services[service.name] = component.outputs
        intake_host = stack.intake_host(platform) if is_hub_platform else None
        PlatformIngress(
            f"{name}-ingress",
            IngressArgs(
                namespace=platform.namespace,
                services=[
                    PublicService(s.name, stack.public_host(platform, s.name))
                    for s in platform.services
                ],
                ingress=stack.ingress,
                ingress_class=stack.cluster.ingress_class,
                issuer=stack.public_issuer,
                common_labels=meta,
                intake_host=intake_host,
                channel_ca_secret=f"{platform.namespace}/{pki.CHANNEL_CA_SECRET}"
                if is_hub_platform
                else None,
            ),
            opts=in_tenant,
        )
        PlatformMonitoring(
            f"{name}-monitoring",
            PlatformMonitoringArgs(
                namespace=platform.namespace,
                region_code=platform.region_code,
                services=[MonitoredService(s, o.public_url) for s, o in services.items()],
                cluster=stack.cluster,
                common_labels=meta,
            ),
            opts=in_tenant,
        )
        self.outputs = PlatformOutputs(
            name=platform.name,
            kind=platform.kind,
            region_code=platform.region_code,
            namespace=platform.namespace,
            database_cluster=self.database.cluster_name,
            services=services,
            intake_url=f"https://{intake_host}" if intake_host else None,
        )
        self.register_outputs({"platform": self.outputs.as_dict()})
