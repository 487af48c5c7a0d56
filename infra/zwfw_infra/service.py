"""One zwfw service of a platform: settings ConfigMap, Secret, migration Job, Deployment,
Service, PodDisruptionBudget and HorizontalPodAutoscaler.

The container runs ``zwfw serve SERVICE --config /etc/zwfw/settings.yaml`` (the kit's
``serve``): YAML settings from the ConfigMap, secrets as ``ZWFW_*`` variables from the
Secret (environment wins over the file), TLS with the service's cert-manager certificate.
``zwfw migrate SERVICE`` runs first, as a Job named after the image, so a new image migrates
once before any new replica serves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from zwfw_infra import labels, pki
from zwfw_infra.config import Image, Resources, ServiceConfig
from zwfw_infra.database import CA_MOUNT, Database
from zwfw_infra.network import SERVICE_PORT

SETTINGS_MOUNT = "/etc/zwfw"
SETTINGS_FILE = f"{SETTINGS_MOUNT}/settings.yaml"
TLS_MOUNT = "/etc/zwfw/tls"
# The service's own OAuth client key (private JWK), a file of its Secret.
CLIENT_MOUNT = "/etc/zwfw/client"
CLIENT_KEY_FILE = "client.jwk"
RUN_AS = 10001


def container_security() -> dict[str, Any]:
    """The restricted Pod Security profile's container side, for every zwfw container."""
    return {
        "run_as_non_root": True,
        "run_as_user": RUN_AS,
        "run_as_group": RUN_AS,
        "allow_privilege_escalation": False,
        "privileged": False,
        "read_only_root_filesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def pod_security() -> dict[str, Any]:
    """The restricted Pod Security profile's pod side, for every zwfw pod."""
    return {
        "run_as_non_root": True,
        "run_as_user": RUN_AS,
        "run_as_group": RUN_AS,
        "fs_group": RUN_AS,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def resource_requirements(resources: Resources) -> dict[str, Any]:
    """A container's requests and limits."""
    return {
        "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
        "limits": {"cpu": resources.cpu_limit, "memory": resources.memory_limit},
    }


# The kit's serve lets requests in flight finish for 30 s on SIGTERM; the pod gets more.
GRACEFUL_SECONDS = 30


def settings_yaml(settings: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(settings), sort_keys=False, allow_unicode=True)


def merge_settings(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, mapping by mapping."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class ServiceArgs:
    service: ServiceConfig
    namespace: str
    region_code: str
    public_url: str
    image: Image
    production: bool
    database: Database
    # The service's settings beyond the kit's common ones (auth, discovery, peers, …).
    settings: Mapping[str, Any]
    # Secret values passed as ZWFW_* variables (data keys, KEK), besides the database URL.
    secret_env: Mapping[str, pulumi.Output[str]]
    tls_issuer: Mapping[str, str]
    common_labels: Mapping[str, str]
    # The hub checks client certificates (mutual TLS) against the internal CA.
    client_certificates: bool = False
    # Secret values the service reads as files (its client key), mounted at CLIENT_MOUNT.
    secret_files: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceOutputs:
    """What a provisioning Job or a certification profile writer needs of one service."""

    service: str
    namespace: str
    public_url: str
    internal_url: str
    settings_config_map: str
    secret: str
    tls_secret: str
    service_account: str


class ZwfwService(pulumi.ComponentResource):
    outputs: ServiceOutputs
    settings: dict[str, Any]
    # What waits for the service to be up (the provisioning Job).
    deployment: k8s.apps.v1.Deployment

    def __init__(self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zwfw:service:ZwfwService", name, None, opts)
        service = args.service.name
        ns = args.namespace
        child = pulumi.ResourceOptions(parent=self)
        internal_host = f"{service}.{ns}.svc"
        selector = labels.service_selector(service)
        meta_labels = {**args.common_labels, labels.NAME: service, labels.REGION: args.region_code}
        tls_secret = f"{service}-tls"
        self.settings = merge_settings(
            {
                "service": service,
                "region_code": args.region_code,
                "public_base_url": args.public_url,
                # Every address of the pod's own network namespace.
                "host": "0.0.0.0",
                "port": SERVICE_PORT,
                "log_level": "INFO",
                "tls": {
                    "certfile": f"{TLS_MOUNT}/tls.crt",
                    "keyfile": f"{TLS_MOUNT}/tls.key",
                    **(
                        {"client_ca": f"{TLS_MOUNT}/ca.crt", "client_cert": "optional"}
                        if args.client_certificates
                        else {}
                    ),
                },
            },
            args.settings,
        )
        self.outputs = ServiceOutputs(
            service=service,
            namespace=ns,
            public_url=args.public_url,
            internal_url=f"https://{internal_host}:{SERVICE_PORT}",
            settings_config_map=f"{service}-settings",
            secret=f"{service}-secrets",
            tls_secret=tls_secret,
            service_account=service,
        )
        text = settings_yaml(self.settings)
        checksum = hashlib.sha256(text.encode()).hexdigest()
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-settings",
            metadata={
                "name": self.outputs.settings_config_map,
                "namespace": ns,
                "labels": meta_labels,
            },
            data={"settings.yaml": text},
            opts=child,
        )
        secret_values = {"ZWFW_DATABASE_URL": args.database.url(service), **args.secret_env}
        secret = k8s.core.v1.Secret(
            f"{name}-secrets",
            metadata={"name": self.outputs.secret, "namespace": ns, "labels": meta_labels},
            type="Opaque",
            string_data=pulumi.Output.secret(
                pulumi.Output.all(**secret_values, **args.secret_files)
            ),
            opts=child,
        )
        certificate = pki.certificate(
            f"{name}-certificate",
            name=tls_secret,
            namespace=ns,
            spec=pki.serving_certificate_spec(
                tls_secret,
                [
                    service,
                    f"{service}.{ns}",
                    internal_host,
                    f"{internal_host}.cluster.local",
                ],
                args.tls_issuer,
                client=True,
            ),
            labels=meta_labels,
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={"name": service, "namespace": ns, "labels": meta_labels},
            # The services never call the Kubernetes API.
            automount_service_account_token=False,
            opts=child,
        )
        env = [
            {"name": "SSL_CERT_FILE", "value": f"{TLS_MOUNT}/ca.crt"},
            {"name": "HOME", "value": "/tmp"},
            *[
                {
                    "name": key,
                    "value_from": {"secret_key_ref": {"name": self.outputs.secret, "key": key}},
                }
                for key in sorted(secret_values)
            ],
        ]
        volumes = [
            {
                "name": "settings",
                "config_map": {"name": self.outputs.settings_config_map, "default_mode": 0o444},
            },
            {"name": "tls", "secret": {"secret_name": tls_secret, "default_mode": 0o440}},
            {
                "name": "database-ca",
                "secret": {
                    "secret_name": args.database.ca_secret,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    "default_mode": 0o444,
                },
            },
            # The root filesystem is read-only; Python and uvicorn may want a scratch dir.
            {"name": "tmp", "empty_dir": {"medium": "Memory", "size_limit": "64Mi"}},
        ]
        mounts = [
            {
                "name": "settings",
                "mount_path": SETTINGS_FILE,
                "sub_path": "settings.yaml",
                "read_only": True,
            },
            {"name": "tls", "mount_path": TLS_MOUNT, "read_only": True},
            {"name": "database-ca", "mount_path": CA_MOUNT, "read_only": True},
            {"name": "tmp", "mount_path": "/tmp"},
        ]
        if args.secret_files:
            volumes.append(
                {
                    "name": "client",
                    "secret": {
                        "secret_name": self.outputs.secret,
                        "items": [{"key": f, "path": f} for f in sorted(args.secret_files)],
                        "default_mode": 0o440,
                    },
                }
            )
            mounts.append({"name": "client", "mount_path": CLIENT_MOUNT, "read_only": True})
        resources = args.service.resources
        container_base = {
            "image": args.image.reference,
            "image_pull_policy": "Always",
            "env": env,
            "volume_mounts": mounts,
            "resources": resource_requirements(resources),
            "security_context": container_security(),
        }
        pod_context = pod_security()
        annotations = {"checksum/settings": checksum}
        image_hash = hashlib.sha256(args.image.reference.encode()).hexdigest()[:10]
        migration_labels = {**meta_labels, labels.COMPONENT: labels.MIGRATION_COMPONENT}
        migration = k8s.batch.v1.Job(
            f"{name}-migrate",
            metadata={
                "name": f"{service}-migrate-{image_hash}",
                "namespace": ns,
                "labels": migration_labels,
            },
            spec={
                "backoff_limit": 3,
                "active_deadline_seconds": 1800,
                "template": {
                    "metadata": {"labels": migration_labels, "annotations": annotations},
                    "spec": {
                        "restart_policy": "Never",
                        "service_account_name": service,
                        "automount_service_account_token": False,
                        "security_context": pod_context,
                        "volumes": volumes,
                        "containers": [
                            {
                                **container_base,
                                "name": "migrate",
                                "args": ["migrate", service, "--config", SETTINGS_FILE],
                            }
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[config_map, secret, account, *args.database.dependencies],
            ),
        )
        replicas = args.service.replicas
        pod_labels = {**meta_labels, labels.COMPONENT: labels.SERVICE_COMPONENT}
        spread = "DoNotSchedule" if args.production else "ScheduleAnyway"
        probe_get = {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
        self.deployment = deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": service, "namespace": ns, "labels": pod_labels},
            spec={
                "replicas": replicas,
                "revision_history_limit": 5,
                "selector": {"match_labels": selector},
                "strategy": {
                    "type": "RollingUpdate",
                    "rolling_update": {"max_unavailable": 0, "max_surge": 1},
                },
                "template": {
                    "metadata": {"labels": pod_labels, "annotations": annotations},
                    "spec": {
                        "service_account_name": service,
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "termination_grace_period_seconds": GRACEFUL_SECONDS + 10,
                        "security_context": pod_context,
                        "topology_spread_constraints": [
                            {
                                "max_skew": 1,
                                "topology_key": "kubernetes.io/hostname",
                                "when_unsatisfiable": spread,
                                "label_selector": {"match_labels": selector},
                            },
                            {
                                "max_skew": 1,
                                "topology_key": "topology.kubernetes.io/zone",
                                "when_unsatisfiable": "ScheduleAnyway",
                                "label_selector": {"match_labels": selector},
                            },
                        ],
                        "volumes": volumes,
                        "containers": [
                            {
                                **container_base,
                                "name": service,
                                "args": [
                                    "serve",
                                    service,
                                    "--config",
                                    SETTINGS_FILE,
                                    "--no-migrate",
                                    "--graceful-timeout",
                                    str(GRACEFUL_SECONDS),
                                ],
                                "ports": [
                                    {
                                        "name": "https",
                                        "container_port": SERVICE_PORT,
                                        "protocol": "TCP",
                                    }
                                ],
                                "startup_probe": {
                                    "http_get": probe_get,
                                    "period_seconds": 2,
                                    "failure_threshold": 60,
                                },
                                "liveness_probe": {
                                    "http_get": probe_get,
                                    "period_seconds": 10,
                                    "timeout_seconds": 3,
                                    "failure_threshold": 3,
                                },
                                "readiness_probe": {
                                    "http_get": {**probe_get, "path": "/readyz"},
                                    "period_seconds": 5,
                                    "timeout_seconds": 3,
                                    "failure_threshold": 2,
                                },
                            }
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[migration, certificate],
                # The HorizontalPodAutoscaler owns the replica count once running.
                ignore_changes=["spec.replicas"],
            ),
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata={
                "name": service,
                "namespace": ns,
                "labels": {**meta_labels, labels.JOB: f"zwfw-{service}"},
            },
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {
                        "name": "https",
                        "port": SERVICE_PORT,
                        "target_port": "https",
                        "protocol": "TCP",
                    }
                ],
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": service, "namespace": ns, "labels": meta_labels},
            spec={"max_unavailable": 1, "selector": {"match_labels": selector}},
            opts=child,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata={"name": service, "namespace": ns, "labels": meta_labels},
            spec={
                "scale_target_ref": {
                    "api_version": "apps/v1",
                    "kind": "Deployment",
                    "name": service,
                },
                "min_replicas": replicas,
                "max_replicas": args.service.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "average_utilization": 70},
                        },
                    }
                ],
                "behavior": {"scale_down": {"stabilization_window_seconds": 300}},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )
        self.register_outputs(
            {
                "public_url": self.outputs.public_url,
                "internal_url": self.outputs.internal_url,
                "secret": self.outputs.secret,
                "settings_config_map": self.outputs.settings_config_map,
            }
        )
