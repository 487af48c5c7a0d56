"""A zwfw platform tenant (a province, or the national side): its tenancy, database, services,
network allows, public entry and monitoring, with typed outputs for whatever comes after the
deployment (provisioning the services, writing the certification target profile)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey

from zwfw.formats.channel import tls_fingerprint
from zwfw.provisioning.plan import (
    ClientPlan,
    EsealPlan,
    HubPlan,
    Operator,
    ProvinceRegistrationPlan,
    ProvisioningPlan,
    SealPlan,
    SignerPlan,
)
from zwfw.reference.keys import seal_picture
from zwfw.services.kit.tokens import TOKEN_EXCHANGE
from zwfw_infra import channel, labels, pki
from zwfw_infra.config import PlatformConfig, StackConfig
from zwfw_infra.database import Database, DatabaseArgs
from zwfw_infra.ingress import IngressArgs, PlatformIngress, PublicService
from zwfw_infra.monitoring import MonitoredService, PlatformMonitoring, PlatformMonitoringArgs
from zwfw_infra.network import SERVICE_PORT, Link, PlatformNetwork, PlatformNetworkArgs
from zwfw_infra.provisioning import (
    ADMIN_KEY,
    KEYS_MOUNT,
    ProvisioningJob,
    ProvisioningJobArgs,
    ProvisioningOutputs,
    admin_key,
    platform_plan,
    private_jwk,
    provisioning_clients,
    public_jwks,
)
from zwfw_infra.secrets import CLIENT_KEY_SERVICES, Secrets, required_keys
from zwfw_infra.service import (
    CLIENT_KEY_FILE,
    CLIENT_MOUNT,
    TLS_MOUNT,
    ServiceArgs,
    ServiceOutputs,
    ZwfwService,
    merge_settings,
)
from zwfw_infra.tenancy import Tenant, TenantArgs

# Where each service finds its own client key (its Secret's client.jwk).
CLIENT_KEY_PATH = f"{CLIENT_MOUNT}/{CLIENT_KEY_FILE}"


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
    if service == "hall" and {"identity", "elicense", "eseal"} <= running:
        # Its client hall-<region> at the province's IdP (idp_clients), its key from its Secret.
        settings["elicense"] = {
            "base_url": internal_url(platform, "elicense"),
            **_token_client(config, platform, f"hall-{platform.region_code}"),
            "trust_url": f"{internal_url(platform, 'eseal')}/trust",
        }
    if service == "hall" and hub_reporting(config, platform):
        # Its client province-<region> at the national IdP, its channel identity and intake
        # client certificate from its own Secret; the hub called at its service URL, whose
        # serving certificate the internal CA issued.
        assert national is not None
        settings["hub"] = {
            "base_url": internal_url(national, "hub"),
            **_token_client(config, national, f"province-{platform.region_code}"),
            "signing_key_file": f"{CLIENT_MOUNT}/{channel.CHANNEL_KEY_FILE}",
            "signing_cert_file": f"{CLIENT_MOUNT}/{channel.CHANNEL_CERT_FILE}",
            "tls_cert_file": f"{CLIENT_MOUNT}/{channel.INTAKE_CERT_FILE}",
            "tls_key_file": f"{CLIENT_MOUNT}/{channel.INTAKE_KEY_FILE}",
            "ca_bundle": f"{TLS_MOUNT}/ca.crt",
        }
    if service == "hub" and config.pki.channel_ca_certificate:
        # In the cluster the hub's own TLS checks intake client certificates against the
        # channel CA, as the ingress does at the intake host; the internal CA stays beside it
        # for the in-cluster peers' certificates.
        settings["tls"] = {"client_ca": f"{CLIENT_MOUNT}/{channel.HUB_CLIENT_CA_FILE}"}
    if service == "elicense" and "eseal" in running:
        settings["eseal"] = {"base_url": internal_url(platform, "eseal")}
        if "identity" in running:
            settings["eseal"] |= _token_client(config, platform, f"elicense-{platform.region_code}")
    issuer = platform.issuer
    if service == "elicense" and issuer is not None and issuer.es_id is not None:
        # The seal the Job made (issuer.esId, from its log): licences are sealed with it.
        settings["issuers"] = {issuer.credit_code: {"name": issuer.name, "es_id": issuer.es_id}}
    if service == "hub" and any(p.service("elicense") for p in config.provinces):
        # Its client at each province's IdP (idp_clients there), the same id everywhere.
        settings["province_client_id"] = HUB_CLIENT
        settings["province_client_key_file"] = CLIENT_KEY_PATH
        # The stack's provinces' IdPs, reachable only inside the cluster (its NetworkPolicy):
        # called at their service URLs, the registered public IdP named in the assertions.
        settings["province_token_urls"] = {
            p.region_code: f"{internal_url(p, 'identity')}/token"
            for p in config.provinces
            if p.service("identity") is not None
        }
        # Their libraries likewise, for routed annotated copies (the consent token still names
        # the registered public library).
        settings["province_elicense_urls"] = {
            p.region_code: internal_url(p, "elicense")
            for p in config.provinces
            if p.service("elicense") is not None
        }
    if service == "eseal" and platform.kind == "province" and "elicense" in running:
        # The one signer a licence seal may have: the library's client (idp_clients).
        settings["licence_client"] = f"elicense-{platform.region_code}"
    return settings


def hub_reporting(config: StackConfig, platform: PlatformConfig) -> bool:
    """Whether the hall of ``platform`` reports to the stack's own national hub: the province
    gives its channel identity and the national side runs its IdP and hub."""
    national = config.national
    return (
        platform.kind == "province"
        and platform.channel is not None
        and platform.service("hall") is not None
        and national is not None
        and {"identity", "hub"} <= {s.name for s in national.services}
    )


def _token_client(config: StackConfig, idp: PlatformConfig, client_id: str) -> dict[str, Any]:
    """A service's token client settings at ``idp``: called inside the cluster, its assertions
    naming the public token endpoint (the only audience the IdP accepts), with the service's
    own key from its Secret."""
    return {
        "token_url": f"{internal_url(idp, 'identity')}/token",
        "assertion_audience": f"{public_url(config, idp, 'identity')}/token",
        "client_id": client_id,
        "client_key_file": CLIENT_KEY_PATH,
    }


def hall_channel_files(secrets: Secrets, platform: PlatformConfig) -> dict[str, pulumi.Output[str]]:
    """The hall's channel identity files: the keys from secret config, each checked against
    its public certificate in config (a one-line error when they are not a pair)."""
    identity = platform.channel
    assert identity is not None
    where = f"zwfw:secrets.{platform.name}.hall"
    signing, intake = identity.signing_certificate, identity.intake_certificate
    return {
        channel.CHANNEL_KEY_FILE: secrets.value(platform.name, "hall", "channel_key").apply(
            lambda value: channel.channel_key(value, signing, f"{where}.channel_key")
        ),
        channel.CHANNEL_CERT_FILE: pulumi.Output.from_input(signing),
        channel.INTAKE_KEY_FILE: secrets.value(platform.name, "hall", "intake_client_key").apply(
            lambda value: channel.intake_client_key(value, intake, f"{where}.intake_client_key")
        ),
        channel.INTAKE_CERT_FILE: pulumi.Output.from_input(intake),
    }


# The hub's client at the provinces' IdPs (the host target's zwfw.reference.national).
HUB_CLIENT = "national-hub"
# The provisioning Job's client at its e-seal service (its own key, scopes eseal:*).
SEALS_CLIENT = "provisioning-seals"
# The national provisioning Job's client at the hub's registry (its own key), as the host
# target's national-ops registers provinces.
HUB_OPS_CLIENT = "provisioning-hub"
HUB_OPS_SCOPES = ("hub:provinces:write", "hub:provinces:read")


@dataclass(frozen=True)
class ServiceClient:
    """A service's own OAuth client (private_key_jwt) at a province's IdP, registered by the
    province's provisioning Job with the public half of ``secrets.<owner>.<service>.
    client_key``, as the host target registers it (``zwfw.reference.platform``)."""

    client_id: str
    name: str
    owner: PlatformConfig
    service: str
    grants: tuple[str, ...]
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]


def idp_clients(config: StackConfig, platform: PlatformConfig) -> tuple[ServiceClient, ...]:
    """The services' clients ``platform``'s IdP registers: on a province its hall's
    (``elicense:share`` at its library) and its library's (``eseal:sign``), and the stack's
    national hub's (its share token and the exchange of citizens' national tokens for their
    consent). A national side outside the stack registers its hub itself. On the national side,
    each of the stack's halls as its province's client for the hub (``province-<region>``:
    reports and licence exchange)."""
    if platform.service("identity") is None:
        return ()
    if platform.kind == "national":
        if platform.service("hub") is None:
            return ()
        hub = public_url(config, platform, "hub")
        return tuple(
            ServiceClient(
                f"province-{p.region_code}",
                f"{p.name} hall",
                p,
                "hall",
                ("client_credentials",),
                ("hub:report", "hub:exchange"),
                (hub,),
            )  # fmt: skip
            for p in config.provinces
            if p.service("hall") is not None
        )
    running = {s.name for s in platform.services}
    region = platform.region_code
    clients: list[ServiceClient] = []
    if {"hall", "elicense"} <= running:
        clients.append(
            ServiceClient(
                f"hall-{region}",
                f"{platform.name} hall",
                platform,
                "hall",
                ("client_credentials",),
                ("elicense:share",),
                (public_url(config, platform, "elicense"),),
            )  # fmt: skip
        )
    if {"elicense", "eseal"} <= running:
        clients.append(
            ServiceClient(
                f"elicense-{region}",
                f"{platform.name} elicense",
                platform,
                "elicense",
                ("client_credentials",),
                ("eseal:sign",),
                (public_url(config, platform, "eseal"),),
            )  # fmt: skip
        )
    national = config.national
    if national is not None and national.service("hub") is not None and "elicense" in running:
        clients.append(
            ServiceClient(
                HUB_CLIENT,
                "国家政务服务平台 hub",
                national,
                "hub",
                ("client_credentials", TOKEN_EXCHANGE),
                ("elicense:share", "elicense:consent"),
                (public_url(config, platform, "elicense"),),
            )  # fmt: skip
        )
    return tuple(clients)


def provisioning_plan(
    config: StackConfig,
    platform: PlatformConfig,
    client_jwks: Mapping[str, Mapping[str, Any]],
    admin_jwks: Mapping[str, Any],
) -> ProvisioningPlan:
    """The plan of ``platform``'s provisioning Job: at its IdP the services' clients
    (``idp_clients``, by the public ``client_jwks`` of each client id) and on a province the
    trust of national tokens for federation (as the host deployment's ``zwfw deploy trust``),
    from the stack's national side (keys fetched inside the cluster) or
    ``externalNational.identityUrl``."""
    national = config.national
    trusted: list[tuple[str, str]] = []
    if platform.kind == "province" and national is not None and national.service("identity"):
        trusted.append(
            (public_url(config, national, "identity"), f"{internal_url(national, 'identity')}/jwks")
        )
    elif platform.kind == "province" and config.external_national_idp is not None:
        # Outside the cluster: its keys at its public URL, through externalNational.cidrs.
        idp = config.external_national_idp
        trusted.append((idp, f"{idp}/jwks"))
    clients = [
        ClientPlan(
            client_id=c.client_id,
            name=c.name,
            jwks=dict(client_jwks[c.client_id]),
            grant_types=list(c.grants),
            scopes=list(c.scopes),
            audiences=list(c.audiences),
        )
        for c in idp_clients(config, platform)
    ]
    eseal = _issuer_seal(config, platform, admin_jwks, clients)
    hub = _hub_registrations(config, platform, admin_jwks, clients)
    plan = platform_plan(
        realm=platform.name,
        idp_public_url=public_url(config, platform, "identity"),
        idp_internal_url=internal_url(platform, "identity"),
        trusted_issuers=trusted,
        clients=clients,
    )
    return ProvisioningPlan(realms=plan.realms, eseal=eseal, hub=hub)


def _issuer_seal(
    config: StackConfig,
    platform: PlatformConfig,
    admin_jwks: Mapping[str, Any],
    clients: list[ClientPlan],
) -> list[EsealPlan]:
    """The issuer's licence seal at the province's e-seal service (``issuer``), signed by the
    library only; the Job acts there as ``SEALS_CLIENT`` with its own key, registered (and
    listed in ``clients``) at its IdP first. None without an issuer or a library."""
    issuer = platform.issuer
    running = {s.name for s in platform.services}
    if issuer is None or not {"identity", "elicense", "eseal"} <= running:
        return []
    eseal = public_url(config, platform, "eseal")
    clients.append(
        ClientPlan(
            client_id=SEALS_CLIENT,
            name=f"{platform.name} provisioning (seals)",
            jwks=dict(admin_jwks),
            scopes=["eseal:admin", "eseal:read"],
            audiences=[eseal],
        )  # fmt: skip
    )
    idp_public = public_url(config, platform, "identity")
    operator = Operator(
        token_url=f"{internal_url(platform, 'identity')}/token",
        assertion_audience=f"{idp_public}/token",
        client_id=SEALS_CLIENT,
        key_file=Path(KEYS_MOUNT) / ADMIN_KEY,
    )
    picture = issuer.picture_png or base64.b64encode(seal_picture()).decode()
    seal = SealPlan(
        credit_code=issuer.credit_code,
        organisation=issuer.name,
        category="licence",
        name=f"{issuer.name}电子证照专用章",
        signers=[SignerPlan(subject=f"elicense-{platform.region_code}", name="电子证照库")],
        picture_png=picture,
    )
    return [EsealPlan(url=internal_url(platform, "eseal"), operator=operator, seals=[seal])]


def province_registration(
    config: StackConfig, province: PlatformConfig
) -> ProvinceRegistrationPlan:
    """What the hub's registry records of ``province`` (as the host target's national stage):
    its public endpoints, its hall's client at the national IdP, the intake client certificate's
    fingerprint and subject, its channel signing certificate."""
    channel = province.channel
    assert channel is not None
    intake = x509.load_pem_x509_certificate(channel.intake_certificate.encode())
    running = [s for s in ("identity", "hall", "elicense", "eseal") if province.service(s)]
    return ProvinceRegistrationPlan(
        region_code=province.region_code,
        name=province.name,
        endpoints={
            "discovery": f"{public_url(config, province, 'hall')}/.well-known/zwfw",
            **{s: public_url(config, province, s) for s in running},
        },
        oauth_client_id=f"province-{province.region_code}",
        tls_fingerprint=tls_fingerprint(intake.public_bytes(serialization.Encoding.DER)),
        tls_subject=intake.subject.rfc4514_string(),
        signing_certificate=channel.signing_certificate,
    )


def _hub_registrations(
    config: StackConfig,
    platform: PlatformConfig,
    admin_jwks: Mapping[str, Any],
    clients: list[ClientPlan],
) -> HubPlan | None:
    """On the national side, the stack's provinces with a ``channel`` registered at the hub;
    the Job acts there as ``HUB_OPS_CLIENT`` with its own key, registered (and listed in
    ``clients``) at the national IdP first. None without such provinces."""
    running = {s.name for s in platform.services}
    provinces = [
        p for p in config.provinces if p.channel is not None and p.service("hall") is not None
    ]
    if platform.kind != "national" or not {"identity", "hub"} <= running or not provinces:
        return None
    clients.append(
        ClientPlan(
            client_id=HUB_OPS_CLIENT,
            name=f"{platform.name} provisioning (hub registry)",
            jwks=dict(admin_jwks),
            scopes=list(HUB_OPS_SCOPES),
            audiences=[public_url(config, platform, "hub")],
        )  # fmt: skip
    )
    operator = Operator(
        token_url=f"{internal_url(platform, 'identity')}/token",
        assertion_audience=f"{public_url(config, platform, 'identity')}/token",
        client_id=HUB_OPS_CLIENT,
        key_file=Path(KEYS_MOUNT) / ADMIN_KEY,
    )
    return HubPlan(
        url=internal_url(platform, "hub"),
        operator=operator,
        provinces=[province_registration(config, p) for p in provinces],
    )


def provisioned_services(plan: ProvisioningPlan) -> tuple[str, ...]:
    """The services a plan calls: what the provisioning Job's NetworkPolicy lets it reach."""
    called = {"identity"} if plan.realms else set()
    sections = {"hub": plan.hub, "eseal": plan.eseal, "elicense": plan.elicense, "hall": plan.hall}
    called |= {service for service, section in sections.items() if section}
    return tuple(sorted(called))


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
    provisioning: ProvisioningOutputs | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "region_code": self.region_code,
            "namespace": self.namespace,
            "database_cluster": self.database_cluster,
            "intake_url": self.intake_url,
            "provisioning": self.provisioning.as_dict() if self.provisioning else None,
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
        # Provisioning acts through the platform's IdP: without one there is nothing to do.
        identity = platform.service("identity")
        clients = idp_clients(stack, platform)

        def client_key(owner: PlatformConfig, service: str) -> pulumi.Output[ECKey]:
            path = f"zwfw:secrets.{owner.name}.{service}.client_key"
            return args.secrets.value(owner.name, service, "client_key").apply(
                lambda value: admin_key(value, path)
            )

        # Which services the plan calls does not depend on the clients' keys.
        calls = (
            provisioned_services(
                provisioning_plan(
                    stack, platform, {c.client_id: {"keys": []} for c in clients}, {"keys": []}
                )
            )
            if identity is not None
            else ()
        )
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
                provisioned=calls,
            ),
            opts=in_tenant,
        )
        services: dict[str, ServiceOutputs] = {}
        deployments: list[pulumi.Resource] = []
        key_path = f"zwfw:secrets.{platform.name}.identity.provisioning_key"
        provisioning_key = (
            args.secrets.value(platform.name, "identity", "provisioning_key").apply(
                lambda value: admin_key(value, key_path)
            )
            if identity is not None
            else None
        )
        for service in platform.services:
            secret_env: dict[str, pulumi.Output[str]] = {}
            if service.name == "identity":
                secret_env["ZWFW_DATA_KEY"] = args.secrets.value(
                    platform.name, "identity", "data_key"
                )
                secret_env["ZWFW_LOOKUP_KEY"] = args.secrets.value(
                    platform.name, "identity", "lookup_key"
                )
                # Its provisioning client: the public half of the Job's key.
                if provisioning_key is not None:
                    secret_env["ZWFW_PROVISIONING_CLIENTS"] = provisioning_key.apply(
                        provisioning_clients
                    )
            if "kek" in required_keys(platform).get(service.name, ()):
                secret_env["ZWFW_KEK"] = args.secrets.value(platform.name, service.name, "kek")
            secret_files: dict[str, pulumi.Output[str]] = {}
            if service.name in CLIENT_KEY_SERVICES:
                # Its own client's key, in its own Secret; the IdPs know the public half.
                secret_files[CLIENT_KEY_FILE] = client_key(platform, service.name).apply(
                    private_jwk
                )
            if service.name == "hall" and hub_reporting(stack, platform):
                secret_files.update(hall_channel_files(args.secrets, platform))
            if service.name == "hub" and stack.pki.channel_ca_certificate:
                secret_files[channel.HUB_CLIENT_CA_FILE] = pulumi.Output.from_input(
                    stack.pki.channel_ca_certificate.strip()
                    + "\n"
                    + stack.pki.internal_ca_certificate.strip()
                    + "\n"
                )
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
                    secret_files=secret_files,
                    tls_issuer=args.tls_issuer,
                    common_labels=meta,
                    client_certificates=service.name == "hub",
                ),
                opts=in_tenant,
            )
            services[service.name] = component.outputs
            deployments.append(component.deployment)
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
        provisioning = None
        if identity is not None and provisioning_key is not None:
            # The plan holds the public halves only: not secret, though read from secrets.
            plan = pulumi.Output.unsecret(
                pulumi.Output.all(
                    provisioning_key.apply(public_jwks),
                    *[client_key(c.owner, c.service).apply(public_jwks) for c in clients],
                ).apply(
                    lambda jwks: provisioning_plan(
                        stack,
                        platform,
                        {c.client_id: j for c, j in zip(clients, jwks[1:], strict=True)},
                        jwks[0],
                    )
                )
            )
            provisioning = ProvisioningJob(
                f"{name}-provisioning",
                ProvisioningJobArgs(
                    namespace=platform.namespace,
                    region_code=platform.region_code,
                    plan=plan,
                    admin_key=provisioning_key,
                    image=stack.image,
                    resources=identity.resources,
                    services=deployments,
                    common_labels=meta,
                ),
                opts=in_tenant,
            ).outputs
        self.outputs = PlatformOutputs(
            name=platform.name,
            kind=platform.kind,
            region_code=platform.region_code,
            namespace=platform.namespace,
            database_cluster=self.database.cluster_name,
            services=services,
            intake_url=f"https://{intake_host}" if intake_host else None,
            provisioning=provisioning,
        )
        self.register_outputs({"platform": self.outputs.as_dict()})
