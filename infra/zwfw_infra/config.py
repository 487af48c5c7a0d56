"""The stack's configuration, typed: what ``Pulumi.<stack>.yaml`` may say (``zwfw:*`` keys).

``parse`` turns the plain values of the stack configuration into ``StackConfig`` and refuses
anything unknown or malformed with a one-line ``ConfigError`` naming the key, so a misspelt
key never falls back to a default. Secrets are not here: they are Pulumi secret config
(``zwfw:secrets``), read by ``secrets.py`` and never held in plain text by the program.
Every key is documented in ``infra/README.md``.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import yaml
from cryptography import x509

from zwfw.crypto.x509 import CertificateError, SM2Certificate
from zwfw_infra.paths import LOAD_PROFILES, PREREQUISITES

Environment = Literal["production", "demo"]
PlatformKind = Literal["province", "national"]
BackupMethod = Literal["barmanObjectStore", "volumeSnapshot"]

# The services each kind of platform runs (ARCHITECTURE.md: five service types, one codebase).
PLATFORM_SERVICES: dict[str, tuple[str, ...]] = {
    "province": ("identity", "hall", "elicense", "eseal"),
    "national": ("identity", "hub"),
}
# Services that keep data encrypted at rest with a key-encryption key (ZWFW_KEK_FILE).
KEK_SERVICES = frozenset({"hall", "eseal"})

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_CIDR = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$")
_REGION = re.compile(r"^\d{6}$")
_RETENTION = re.compile(r"^[1-9][0-9]*[dwm]$")
_PROFILE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_CREDENTIAL = re.compile(r"^[a-z][a-z0-9_]*$")
# A public https base URL without path, query or credentials (an issuer identifier).
_HTTPS_BASE = re.compile(r"^https://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$")
# A load test's hard bound: Locust's run time never exceeds it (six hours at most).
LOAD_MAX_RUN_SECONDS = 6 * 3600


class ConfigError(ValueError):
    """A stack configuration value is missing, unknown or malformed."""


class _Reader:
    """Reads one mapping of the configuration, remembering where it is for messages."""

    def __init__(self, values: Any, where: str) -> None:
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
        self.values = dict(values)
        self.where = where
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.values.get(key, default)

    def require(self, key: str) -> Any:
        self.used.add(key)
        if key not in self.values or self.values[key] in (None, ""):
            raise ConfigError(f"{self._key(key)} is required")
        return self.values[key]

    def string(self, key: str, default: str | None = None, pattern: re.Pattern[str] | None = None):
        value = self.get(key, default) if default is not None else self.require(key)
        if not isinstance(value, str):
            raise ConfigError(f"{self._key(key)}: expected a string")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(f"{self._key(key)}: {value!r} is not valid")
        return value

    def optional_string(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise ConfigError(f"{self._key(key)}: {value!r} is not valid")
        return value

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{self._key(key)}: expected an integer >= {minimum}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._key(key)}: expected true or false")
        return value

    def quantity(self, key: str, default: str) -> str:
        value = self.get(key, default)
        value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(value, str) or not _QUANTITY.match(value):
            raise ConfigError(f"{self._key(key)}: {value!r} is not a Kubernetes quantity")
        return value

    def labels(self, key: str, default: Mapping[str, str]) -> dict[str, str]:
        value = self.get(key, default)
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{self._key(key)}: expected a mapping of label names to values")
        return dict(value)

    def strings(self, key: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        value = self.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self._key(key)}: expected a list of strings")
        for item in value:
            if pattern is not None and not pattern.match(item):
                raise ConfigError(f"{self._key(key)}: {item!r} is not valid")
        return tuple(value)

    def section(self, key: str) -> _Reader:
        return _Reader(self.get(key), self._key(key))

    def done(self) -> None:
        unknown = sorted(set(self.values) - self.used)
        if unknown:
            raise ConfigError(f"unknown key {self._key(unknown[0])}")


@dataclass(frozen=True)
class Image:
    """The zwfw image; referenced by digest when the stack gives one."""

    repository: str
    tag: str
    digest: str | None = None

    @property
    def reference(self) -> str:
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container."""

    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "512Mi"


@dataclass(frozen=True)
class Quota:
    """A tenant's share of the cluster (ResourceQuota) and its per-container defaults."""

    cpu: str = "8"
    memory: str = "16Gi"
    cpu_limit: str = "16"
    memory_limit: str = "32Gi"
    pods: int = 50
    storage: str = "200Gi"
    persistent_volume_claims: int = 20
    container: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class Backup:
    """Database backups: object storage through barman (with WAL archiving) or CSI volume
    snapshots, on a schedule (six-field cron, seconds first, as CloudNativePG expects)."""

    method: BackupMethod
    schedule: str = "0 0 2 * * *"
    retention: str = "30d"
    destination_path: str | None = None
    endpoint_url: str | None = None
    # Where the object store is, for the database pods' egress NetworkPolicy.
    endpoint_cidrs: tuple[str, ...] = ()
    snapshot_class: str | None = None


@dataclass(frozen=True)
class DatabaseConfig:
    """A platform's PostgreSQL cluster (CloudNativePG): one database and role per service."""

    instances: int
    storage: str = "20Gi"
    storage_class: str | None = None
    backup: Backup | None = None


@dataclass(frozen=True)
class ServiceConfig:
    """One zwfw service of a platform."""

    name: str
    replicas: int
    max_replicas: int
    resources: Resources
    # Extra settings for the service's YAML settings (the service's settings class checks them).
    settings: Mapping[str, Any] = field(default_factory=dict)


# An e-seal service's seal id: its region code and ten hex digits (zwfw.services.eseal).
_ES_ID = re.compile(r"^\d{6}[0-9A-F]{10}$")
# The unified social credit code (统一社会信用代码, GB 32100-2015).
_CREDIT_CODE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")


@dataclass(frozen=True)
class IssuerConfig:
    """A province's licence issuer whose seal (电子证照专用章) its provisioning Job makes at
    its e-seal service, the e-licence library its only signer (as the host target does)."""

    credit_code: str
    name: str
    # The seal picture (PNG, base64); demo stacks may leave it to a generated one.
    picture_png: str | None = None
    # The seal's id at the e-seal service, known once the provisioning Job has made it: the
    # library's ``issuers`` setting names it (absent: the library issues under no issuer).
    es_id: str | None = None


@dataclass(frozen=True)
class ChannelConfig:
    """A province's interconnection identity, as the national side's provisioning Job registers
    it at the hub: its channel signing certificate (SM2, from the national channel CA) and the
    client certificate its hall presents at the hub's intake (mutual TLS). Public certificates
    only; their keys stay with the province."""

    signing_certificate: str
    intake_certificate: str


@dataclass(frozen=True)
class PlatformConfig:
    """A zwfw platform tenant: a province's or the national side's services and database."""

    name: str
    kind: PlatformKind
    region_code: str
    namespace: str
    ops_group: str
    services: tuple[ServiceConfig, ...]
    database: DatabaseConfig
    quota: Quota
    issuer: IssuerConfig | None = None
    channel: ChannelConfig | None = None

    def service(self, name: str) -> ServiceConfig | None:
        return next((s for s in self.services if s.name == name), None)


@dataclass(frozen=True)
class DepartmentConfig:
    """A department (公安, 人社, 市场监管, …) running its own workloads on the shared cluster."""

    name: str
    title: str
    namespace: str
    ops_group: str
    quota: Quota


@dataclass(frozen=True)
class Selector:
    """Pods of a cluster add-on: their namespace and labels."""

    namespace: str
    pod_labels: Mapping[str, str]


@dataclass(frozen=True)
class ClusterConfig:
    """What the tenants' NetworkPolicies and the monitoring objects need to know about the
    cluster and its prerequisites (defaults: the pinned charts in charts/prerequisites.yaml)."""

    api_server_cidrs: tuple[str, ...]
    api_server_ports: tuple[int, ...]
    dns: Selector
    ingress: Selector
    ingress_class: str
    prometheus: Selector
    monitoring_labels: Mapping[str, str]
    blackbox_exporter: str
    dashboard_label: str
    cnpg: Selector
    cert_manager_namespace: str


@dataclass(frozen=True)
class IngressConfig:
    """Rate limits at the ingress controller, per client address."""

    rate_per_second: int = 20
    sign_in_rate_per_second: int = 5
    body_size: str = "10m"


@dataclass(frozen=True)
class IssuerRef:
    kind: Literal["ClusterIssuer", "Issuer"]
    name: str


@dataclass(frozen=True)
class PkiConfig:
    """CA certificates (public); the internal CA's key is secret config."""

    internal_ca_certificate: str
    channel_ca_certificate: str | None = None


@dataclass(frozen=True)
class LoadTestConfig:
    """One bounded distributed Locust run in the cluster against a platform of the stack."""

    target: str
    # A workload profile of loadtests/profiles/ (the file's stem) and its text, as shipped.
    profile: str
    profile_text: str
    namespace: str
    ops_group: str
    workers: int
    processes_per_worker: int
    # Locust's --run-time: the load stops then, whatever the profile says.
    run_seconds: int
    # Journeys still running at the end get this long (the profile's stop timeout).
    stop_timeout_seconds: int
    # Locust users: the open model's pool of journeys in flight, or the closed model's users.
    users: int
    spawn_rate: float
    credentials: tuple[str, ...]
    declared: Mapping[str, tuple[str, ...]]
    # Mutual TLS to the national hub's intake (the system journey's signed case reports).
    client_certificate: bool
    # PEM the generator trusts the target's public certificates by (None: the system store).
    ca_certificate: str | None
    master_resources: Resources
    worker_resources: Resources
    quota: Quota
    # How long the finished Jobs (and the results in their logs) are kept.
    results_retention_seconds: int

    @property
    def processes(self) -> int:
        """Generator processes of the whole run (Locust workers): arrivals are dealt over them."""
        return self.workers * self.processes_per_worker


@dataclass(frozen=True)
class StackConfig:
    environment: Environment
    domain: str
    image: Image
    public_issuer: IssuerRef
    pki: PkiConfig
    cluster: ClusterConfig
    ingress: IngressConfig
    platforms: tuple[PlatformConfig, ...]
    departments: tuple[DepartmentConfig, ...]
    install_prerequisites: bool
    # Addresses of a national side outside this cluster (hub and national IdP), for egress.
    external_national: tuple[str, ...] = ()
    # Its IdP's issuer (public URL), whose tokens the provinces' IdPs trust for federation.
    external_national_idp: str | None = None
    load_test: LoadTestConfig | None = None

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def national(self) -> PlatformConfig | None:
        return next((p for p in self.platforms if p.kind == "national"), None)

    @property
    def provinces(self) -> tuple[PlatformConfig, ...]:
        return tuple(p for p in self.platforms if p.kind == "province")

    def public_host(self, platform: PlatformConfig, service: str) -> str:
        return f"{service}.{platform.region_code}.{self.domain}"

    def intake_host(self, platform: PlatformConfig) -> str:
        """The hub's province-facing intake (mutual TLS)."""
        return f"intake.hub.{platform.region_code}.{self.domain}"


def prerequisites() -> dict[str, Any]:
    """The pinned charts (charts/prerequisites.yaml)."""
    with PREREQUISITES.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["charts"]


def _resources(reader: _Reader, default: Resources) -> Resources:
    resources = Resources(
        cpu_request=reader.quantity("cpuRequest", default.cpu_request),
        memory_request=reader.quantity("memoryRequest", default.memory_request),
        cpu_limit=reader.quantity("cpuLimit", default.cpu_limit),
        memory_limit=reader.quantity("memoryLimit", default.memory_limit),
    )
    reader.done()
    return resources


def _quota(reader: _Reader) -> Quota:
    quota = Quota(
        cpu=reader.quantity("cpu", Quota.cpu),
        memory=reader.quantity("memory", Quota.memory),
        cpu_limit=reader.quantity("cpuLimit", Quota.cpu_limit),
        memory_limit=reader.quantity("memoryLimit", Quota.memory_limit),
        pods=reader.integer("pods", Quota.pods, 1),
        storage=reader.quantity("storage", Quota.storage),
        persistent_volume_claims=reader.integer(
            "persistentVolumeClaims", Quota.persistent_volume_claims, 0
        ),
        container=_resources(reader.section("container"), Resources()),
    )
    reader.done()
    return quota


def _backup(reader: _Reader) -> Backup | None:
    if not reader.values:
        return None
    method = reader.string("method")
    if method not in ("barmanObjectStore", "volumeSnapshot"):
        raise ConfigError(
            f"{reader.where}.method: {method!r} is not barmanObjectStore or volumeSnapshot"
        )
    schedule = reader.string("schedule", Backup.schedule)
    if len(schedule.split()) != 6:
        raise ConfigError(f"{reader.where}.schedule: six cron fields (seconds first) expected")
    backup = Backup(
        method=method,  # type: ignore[arg-type]
        schedule=schedule,
        retention=reader.string("retention", Backup.retention, _RETENTION),
        destination_path=reader.optional_string("destinationPath"),
        endpoint_url=reader.optional_string("endpointUrl"),
        endpoint_cidrs=reader.strings("endpointCidrs", _CIDR),
        snapshot_class=reader.optional_string("snapshotClass"),
    )
    reader.done()
    if method == "barmanObjectStore" and not (backup.destination_path and backup.endpoint_cidrs):
        raise ConfigError(
            f"{reader.where}: barmanObjectStore needs destinationPath and endpointCidrs"
        )
    return backup


def _platform(reader: _Reader, kind: PlatformKind, environment: Environment) -> PlatformConfig:
    production = environment == "production"
    name = reader.string("name", "national" if kind == "national" else None, _DNS_LABEL)
    region = reader.string("regionCode", "100000" if kind == "national" else None, _REGION)
    default_ns = "zwfw-national" if kind == "national" else f"zwfw-{region}"
    namespace = reader.string("namespace", default_ns, _DNS_LABEL)
    replicas = reader.integer("replicas", 2 if production else 1, 1)
    if production and replicas < 2:
        raise ConfigError(f"{reader.where}.replicas: production stacks run at least 2 replicas")
    container = _resources(reader.section("resources"), Resources())
    services_reader = reader.section("services")
    services = []
    for service in PLATFORM_SERVICES[kind]:
        own = services_reader.section(service)
        service_replicas = own.integer("replicas", replicas, 1)
        if production and service_replicas < 2:
            raise ConfigError(f"{own.where}.replicas: production stacks run at least 2 replicas")
        max_replicas = own.integer("maxReplicas", max(service_replicas * 3, 2), service_replicas)
        resources = _resources(own.section("resources"), container)
        settings = own.get("settings", {})
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{own.where}.settings: expected a mapping")
        own.done()
        services.append(
            ServiceConfig(service, service_replicas, max_replicas, resources, dict(settings))
        )
    services_reader.done()
    db = reader.section("database")
    instances = db.integer("instances", 3 if production else 1, 1)
    if production and instances < 3:
        raise ConfigError(f"{db.where}.instances: production stacks run 3 database instances")
    database = DatabaseConfig(
        instances=instances,
        storage=db.quantity("storage", DatabaseConfig.storage),
        storage_class=db.optional_string("storageClass"),
        backup=_backup(db.section("backup")),
    )
    db.done()
    if production and database.backup is None:
        raise ConfigError(f"{db.where}.backup: production stacks back their databases up")
    platform = PlatformConfig(
        name=name,
        kind=kind,
        region_code=region,
        namespace=namespace,
        ops_group=reader.string("opsGroup", f"{name}-ops"),
        services=tuple(services),
        database=database,
        quota=_quota(reader.section("quota")),
        issuer=_issuer(reader.section("issuer"), kind, production),
        channel=_channel(reader.section("channel"), kind),
    )
    reader.done()
    return platform


def _channel(reader: _Reader, kind: PlatformKind) -> ChannelConfig | None:
    if not reader.values:
        return None
    if kind != "province":
        raise ConfigError(f"{reader.where}: only a province registers at the hub")
    signing = _certificate(reader, "signingCertificate", True)
    intake = _certificate(reader, "intakeCertificate", True)
    assert signing is not None
    assert intake is not None
    try:
        SM2Certificate.from_pem(signing.encode())
    except (CertificateError, ValueError):
        raise ConfigError(
            f"{reader.where}.signingCertificate: not an SM2 channel signing certificate"
        ) from None
    try:
        x509.load_pem_x509_certificate(intake.encode())
    except ValueError:
        raise ConfigError(f"{reader.where}.intakeCertificate: not an X.509 certificate") from None
    reader.done()
    return ChannelConfig(signing_certificate=signing, intake_certificate=intake)


def _issuer(reader: _Reader, kind: PlatformKind, production: bool) -> IssuerConfig | None:
    if not reader.values:
        return None
    if kind != "province":
        raise ConfigError(f"{reader.where}: only a province issues licences")
    picture = reader.optional_string("picturePng")
    if picture is not None:
        try:
            png = base64.b64decode(picture, validate=True)
        except ValueError:
            png = b""
        if not png.startswith(b"\x89PNG"):
            raise ConfigError(f"{reader.where}.picturePng: not a base64 PNG")
    elif production:
        raise ConfigError(f"{reader.where}.picturePng: production stacks give the seal picture")
    issuer = IssuerConfig(
        credit_code=reader.string("creditCode", None, _CREDIT_CODE),
        name=reader.string("name"),
        picture_png=picture,
        es_id=reader.optional_string("esId", _ES_ID),
    )
    reader.done()
    return issuer


def _department(reader: _Reader) -> DepartmentConfig:
    name = reader.string("name", None, _DNS_LABEL)
    department = DepartmentConfig(
        name=name,
        title=reader.string("title", name),
        namespace=reader.string("namespace", f"dept-{name}", _DNS_LABEL),
        ops_group=reader.string("opsGroup", f"{name}-ops"),
        quota=_quota(reader.section("quota")),
    )
    reader.done()
    return department


def _selector(reader: _Reader, namespace: str, labels: Mapping[str, str]) -> Selector:
    selector = Selector(
        namespace=reader.string("namespace", namespace, _DNS_LABEL),
        pod_labels=reader.labels("podLabels", labels),
    )
    reader.done()
    return selector


def _cluster(reader: _Reader) -> ClusterConfig:
    charts = prerequisites()

    def chart(name: str) -> tuple[str, Mapping[str, str]]:
        return charts[name]["namespace"], charts[name]["pod_labels"]

    ports = reader.get("apiServerPorts", [443, 6443])
    if not isinstance(ports, list) or not all(isinstance(p, int) for p in ports):
        raise ConfigError(f"{reader.where}.apiServerPorts: expected a list of ports")
    monitoring_ns = chart("kube-prometheus-stack")[0]
    cluster = ClusterConfig(
        api_server_cidrs=reader.strings("apiServerCidrs", _CIDR),
        api_server_ports=tuple(ports),
        dns=_selector(reader.section("dns"), "kube-system", {"k8s-app": "kube-dns"}),
        ingress=_selector(reader.section("ingress"), *chart("ingress-nginx")),
        ingress_class=reader.string("ingressClass", "nginx"),
        prometheus=_selector(reader.section("prometheus"), *chart("kube-prometheus-stack")),
        monitoring_labels=reader.labels("monitoringLabels", {"release": "kube-prometheus-stack"}),
        blackbox_exporter=reader.string(
            "blackboxExporter", f"prometheus-blackbox-exporter.{monitoring_ns}.svc:9115"
        ),
        dashboard_label=reader.string("dashboardLabel", "grafana_dashboard"),
        cnpg=_selector(reader.section("cnpg"), *chart("cloudnative-pg")),
        cert_manager_namespace=reader.string(
            "certManagerNamespace", charts["cert-manager"]["namespace"], _DNS_LABEL
        ),
    )
    reader.done()
    if not cluster.api_server_cidrs:
        raise ConfigError(
            f"{reader.where}.apiServerCidrs is required: the database pods talk to the API server"
        )
    return cluster


def parse(values: Mapping[str, Any]) -> StackConfig:
    """The stack configuration from the ``zwfw:`` keys' values (namespace prefix removed)."""
    root = _Reader(values, "")
    environment = root.string("environment")
    if environment not in ("production", "demo"):
        raise ConfigError(f"environment: {environment!r} is not production or demo")
    image_reader = root.section("image")
    image = Image(
        repository=image_reader.string("repository"),
        tag=image_reader.string("tag"),
        digest=image_reader.optional_string("digest", _DIGEST),
    )
    image_reader.done()
    if image.tag == "latest":
        raise ConfigError("image.tag: name a release, not latest")
    issuer_reader = root.section("publicIssuer")
    issuer = IssuerRef(
        kind=issuer_reader.string("kind", "ClusterIssuer"),
        name=issuer_reader.string("name", None, _DNS_LABEL),
    )
    issuer_reader.done()
    if issuer.kind not in ("ClusterIssuer", "Issuer"):
        raise ConfigError(f"publicIssuer.kind: {issuer.kind!r} is not ClusterIssuer or Issuer")
    ingress_reader = root.section("ingress")
    ingress = IngressConfig(
        rate_per_second=ingress_reader.integer("ratePerSecond", IngressConfig.rate_per_second, 1),
        sign_in_rate_per_second=ingress_reader.integer(
            "signInRatePerSecond", IngressConfig.sign_in_rate_per_second, 1
        ),
        body_size=ingress_reader.string("bodySize", IngressConfig.body_size),
    )
    ingress_reader.done()
    platforms: list[PlatformConfig] = []
    national = root.get("national")
    if national is not None:
        platforms.append(_platform(_Reader(national, "national"), "national", environment))
    provinces = root.get("provinces", [])
    if not isinstance(provinces, list):
        raise ConfigError("provinces: expected a list")
    for index, province in enumerate(provinces):
        platforms.append(
            _platform(_Reader(province, f"provinces[{index}]"), "province", environment)
        )
    departments_value = root.get("departments", [])
    if not isinstance(departments_value, list):
        raise ConfigError("departments: expected a list")
    departments = tuple(
        _department(_Reader(d, f"departments[{i}]")) for i, d in enumerate(departments_value)
    )
    config = StackConfig(
        environment=environment,  # type: ignore[arg-type]
        domain=root.string("domain", None, _DOMAIN),
        image=image,
        public_issuer=issuer,
        pki=_pki(root.section("pki"), national is not None),
        cluster=_cluster(root.section("cluster")),
        ingress=ingress,
        platforms=tuple(platforms),
        departments=departments,
        install_prerequisites=root.boolean("installPrerequisites", False),
        **_external_national(root.section("externalNational")),
    )
    load_test = root.get("loadTest")
    if load_test is not None:
        config = replace(
            config, load_test=_load_test(_Reader(load_test, "loadTest"), config, ingress)
        )
    # `secrets` is Pulumi secret config, read separately (secrets.py), never parsed here.
    root.used.add("secrets")
    root.done()
    _check_unique(config)
    return config


def _certificate(reader: _Reader, key: str, required: bool) -> str | None:
    value = reader.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip().startswith("-----BEGIN CERTIFICATE-----"):
        raise ConfigError(
            f"{reader.where}.{key}: a PEM certificate is required "
            f"(pulumi config set --path 'zwfw:{reader.where}.{key}' -- \"$(cat ca.pem)\")"
        )
    return value


def _pki(reader: _Reader, national: bool) -> PkiConfig:
    internal = _certificate(reader, "internalCaCertificate", True)
    assert internal is not None
    pki = PkiConfig(
        internal_ca_certificate=internal,
        channel_ca_certificate=_certificate(reader, "channelCaCertificate", national),
    )
    reader.done()
    return pki


def _external_national(reader: _Reader) -> dict[str, Any]:
    cidrs = reader.strings("cidrs", _CIDR)
    idp = reader.optional_string("identityUrl", _HTTPS_BASE)
    reader.done()
    return {"external_national": cidrs, "external_national_idp": idp}


def _check_unique(config: StackConfig) -> None:
    namespaces = [p.namespace for p in config.platforms] + [d.namespace for d in config.departments]
    names = [p.name for p in config.platforms] + [d.name for d in config.departments]
    regions = [p.region_code for p in config.platforms]
    for label, values in (("namespace", namespaces), ("name", names), ("regionCode", regions)):
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise ConfigError(f"two tenants share the {label} {value!r}")
            seen.add(value)
    if config.provinces and config.national is None and not config.external_national:
        raise ConfigError(
            "provinces need the national side: set national, or externalNational when it runs "
            "elsewhere (their halls report to its hub)"
        )


def _load_test(reader: _Reader, config: StackConfig, ingress: IngressConfig) -> LoadTestConfig:
    from pydantic import ValidationError

    from zwfw.harness.errors import describe_validation_error
    from zwfw.harness.profile import Declared
    from zwfw.harness.workload import JOURNEY_STEPS, WorkloadError, load_workload

    target_name = reader.string("target", None, _DNS_LABEL)
    target = next((p for p in config.platforms if p.name == target_name), None)
    if target is None:
        names = ", ".join(p.name for p in config.platforms) or "none"
        raise ConfigError(
            f"{reader.where}.target: {target_name!r} is not a platform of the stack ({names})"
        )
    profile = reader.string("profile", None, _PROFILE)
    path = LOAD_PROFILES / f"{profile}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in LOAD_PROFILES.glob("*.yaml")))
        raise ConfigError(
            f"{reader.where}.profile: no workload profile {profile!r} in loadtests/profiles "
            f"({shipped})"
        )
    try:
        workload = load_workload(path)
    except WorkloadError as error:
        raise ConfigError(f"{reader.where}.profile: {error}") from None
    workers = reader.integer("workers", 1, 1)
    per_worker = reader.integer("processesPerWorker", 1, 1)
    if "runSeconds" not in reader.values:
        raise ConfigError(
            f"{reader.where}.runSeconds is required: the load test's hard bound in seconds"
        )
    run_seconds = reader.integer("runSeconds", 0, 1)
    needed = math.ceil(workload.run_seconds)
    if run_seconds < needed:
        raise ConfigError(
            f"{reader.where}.runSeconds: {run_seconds} s is shorter than profile {profile}'s "
            f"ramp and duration ({needed} s)"
        )
    if run_seconds > LOAD_MAX_RUN_SECONDS:
        raise ConfigError(f"{reader.where}.runSeconds: at most {LOAD_MAX_RUN_SECONDS} s in one run")
    credentials = reader.strings("credentials", _CREDENTIAL)
    declared_reader = reader.section("declared")
    try:
        declared = Declared.model_validate(declared_reader.values)
    except ValidationError as error:
        raise ConfigError(f"{declared_reader.where}: {describe_validation_error(error)}") from None
    declared_reader.used.update(declared_reader.values)
    client_certificate = reader.boolean("clientCertificate", False)
    if client_certificate and (target.kind != "province" or config.national is None):
        raise ConfigError(
            f"{reader.where}.clientCertificate: only a province's load test reports to the "
            "stack's own national hub (never to one outside the cluster)"
        )
    ca_certificate = _certificate(reader, "caCertificate", False)
    if ca_certificate is None and config.public_issuer.name == "zwfw-internal":
        # The public certificates come from the stack's internal CA (the demo's case).
        ca_certificate = config.pki.internal_ca_certificate
    resources = reader.section("resources")
    master = _resources(resources.section("master"), Resources(cpu_limit="1", memory_limit="512Mi"))
    worker = _resources(resources.section("worker"), Resources(cpu_limit="1", memory_limit="512Mi"))
    resources.done()
    processes = workers * per_worker
    pool = workload.model_copy(update={"processes": processes}).pool()
    load = LoadTestConfig(
        target=target.name,
        profile=profile,
        profile_text=path.read_text(encoding="utf-8"),
        namespace=reader.string("namespace", f"zwfw-load-{target.region_code}", _DNS_LABEL),
        ops_group=reader.string("opsGroup", target.ops_group),
        workers=workers,
        processes_per_worker=per_worker,
        run_seconds=run_seconds,
        stop_timeout_seconds=math.ceil(workload.stop_timeout_seconds),
        users=pool,
        spawn_rate=workload.spawn_rate(pool),
        credentials=credentials,
        declared={k: tuple(v) for k, v in declared.model_dump().items() if v},
        client_certificate=client_certificate,
        ca_certificate=ca_certificate,
        master_resources=master,
        worker_resources=worker,
        quota=_quota(reader.section("quota")),
        results_retention_seconds=reader.integer("resultsRetentionSeconds", 86400, 600),
    )
    reader.done()
    if load.workers + 1 > load.quota.pods:
        raise ConfigError(
            f"{reader.where}.workers: {load.workers} workers and the master exceed quota.pods "
            f"({load.quota.pods})"
        )
    # The ingress limits requests per client address; a worker pod is one address, so the
    # workers must share the load finely enough that the limiter never answers in its place.
    per_journey = sum(
        weight * len(JOURNEY_STEPS[journey]) for journey, weight in workload.mix.items()
    ) / sum(workload.mix.values())
    per_worker_rate = workload.arrivals_per_second * per_journey / load.workers
    if per_worker_rate > ingress.rate_per_second:
        least = math.ceil(workload.arrivals_per_second * per_journey / ingress.rate_per_second)
        raise ConfigError(
            f"{reader.where}.workers: each of {load.workers} worker pods would send about "
            f"{per_worker_rate:.0f} requests/s, above ingress.ratePerSecond "
            f"({ingress.rate_per_second}) per client address; use at least {least}"
        )
    namespaces = {p.namespace for p in config.platforms} | {d.namespace for d in config.departments}
    if load.namespace in namespaces:
        raise ConfigError(f"{reader.where}.namespace: {load.namespace!r} is a tenant's namespace")
    return load
