"""A platform's PostgreSQL, run by the CloudNativePG operator: one ``Cluster`` per platform
tenant, one database and one login role per service (least privilege, as the host target's
one database and user per service), TLS verified by the services, backups on a schedule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from zwfw_infra.config import DatabaseConfig, PlatformConfig
from zwfw_infra.network import POSTGRES_PORT
from zwfw_infra.secrets import Secrets

CNPG = "postgresql.cnpg.io/v1"
CLUSTER_NAME = "zwfw-db"
# Where a service finds the operator-made CA of its database (``<cluster>-ca``, key ca.crt).
CA_MOUNT = "/etc/zwfw/database"
BACKUP_SECRET = "zwfw-db-backup"


def role_secret_name(service: str) -> str:
    return f"{service}-db-credentials"


@dataclass(frozen=True)
class DatabaseArgs:
    platform: PlatformConfig
    secrets: Secrets
    production: bool
    common_labels: Mapping[str, str]


class Database(pulumi.ComponentResource):
    """CloudNativePG ``Cluster`` (3 instances on production stacks, spread over nodes),
    ``Database`` and managed role per service, ``ScheduledBackup`` when backups are set."""

    cluster_name: str
    ca_secret: str
    host: str

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zwfw:database:Database", name, None, opts)
        platform = args.platform
        db: DatabaseConfig = platform.database
        ns = platform.namespace
        meta_labels = dict(args.common_labels)
        child = pulumi.ResourceOptions(parent=self)
        self.cluster_name = CLUSTER_NAME
        self.ca_secret = f"{CLUSTER_NAME}-ca"
        self.host = f"{CLUSTER_NAME}-rw.{ns}.svc"
        self._passwords: dict[str, pulumi.Output[str]] = {}
        role_secrets = []
        for service in platform.services:
            password = args.secrets.value(platform.name, service.name, "db_password")
            self._passwords[service.name] = password
            role_secrets.append(
                k8s.core.v1.Secret(
                    f"{name}-{service.name}-role",
                    metadata={
                        "name": role_secret_name(service.name),
                        "namespace": ns,
                        # CloudNativePG only reconciles role secrets that carry this label.
                        "labels": {**meta_labels, "cnpg.io/reload": "true"},
                    },
                    type="kubernetes.io/basic-auth",
                    string_data=pulumi.Output.secret(
                        password.apply(lambda p, s=service.name: {"username": s, "password": p})
                    ),
                    opts=child,
                )
            )
        first = platform.services[0].name
        spec: dict[str, Any] = {
            "instances": db.instances,
            "primaryUpdateStrategy": "unsupervised",
            "storage": {
                "size": db.storage,
                **({"storageClass": db.storage_class} if db.storage_class else {}),
            },
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            },
            "affinity": {
                "enablePodAntiAffinity": True,
                "topologyKey": "kubernetes.io/hostname",
                "podAntiAffinityType": "required" if args.production else "preferred",
            },
            # No unused default database or owner: initdb makes the first service's.
            "bootstrap": {
                "initdb": {
                    "database": first,
                    "owner": first,
                    "secret": {"name": role_secret_name(first)},
                    "dataChecksums": True,
                }
            },
            "managed": {
                "roles": [
                    {
                        "name": service.name,
                        "ensure": "present",
                        "login": True,
                        "inherit": True,
                        "passwordSecret": {"name": role_secret_name(service.name)},
                    }
                    for service in platform.services
                ]
            },
            "postgresql": {
                "parameters": {
                    # 等保2.0 audit: connections and their ends are logged.
                    "log_connections": "on",
                    "log_disconnections": "on",
                    "ssl_min_protocol_version": "TLSv1.2",
                }
            },
            "monitoring": {"enablePodMonitor": True},
        }
        backup = db.backup
        if backup is not None:
            if backup.method == "barmanObjectStore":
                self._backup_secret(name, args, meta_labels, child)
                credentials = {
                    "accessKeyId": {"name": BACKUP_SECRET, "key": "ACCESS_KEY_ID"},
                    "secretAccessKey": {"name": BACKUP_SECRET, "key": "ACCESS_SECRET_KEY"},
                }
                store: dict[str, Any] = {
                    "destinationPath": backup.destination_path,
                    "s3Credentials": credentials,
                    "wal": {"compression": "gzip", "encryption": "AES256"},
                    "data": {"compression": "gzip", "encryption": "AES256"},
                }
                if backup.endpoint_url:
                    store["endpointURL"] = backup.endpoint_url
                spec["backup"] = {"barmanObjectStore": store, "retentionPolicy": backup.retention}
            else:
                snapshot: dict[str, Any] = {"online": True}
                if backup.snapshot_class:
                    snapshot["className"] = backup.snapshot_class
                spec["backup"] = {"volumeSnapshot": snapshot}
        cluster = k8s.apiextensions.CustomResource(
            f"{name}-cluster",
            api_version=CNPG,
            kind="Cluster",
            metadata={"name": CLUSTER_NAME, "namespace": ns, "labels": meta_labels},
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=role_secrets),
        )
        after_cluster = pulumi.ResourceOptions(parent=self, depends_on=[cluster])
        self.databases = []
        for service in platform.services:
            self.databases.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-{service.name}-database",
                    api_version=CNPG,
                    kind="Database",
                    metadata={
                        "name": f"{CLUSTER_NAME}-{service.name}",
                        "namespace": ns,
                        "labels": meta_labels,
                    },
                    spec={
                        "name": service.name,
                        "owner": service.name,
                        "cluster": {"name": CLUSTER_NAME},
                        "ensure": "present",
                        # Dropping the stack never drops a service's data.
                        "databaseReclaimPolicy": "retain",
                    },
                    opts=after_cluster,
                )
            )
        if backup is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-scheduled-backup",
                api_version=CNPG,
                kind="ScheduledBackup",
                metadata={"name": f"{CLUSTER_NAME}-daily", "namespace": ns, "labels": meta_labels},
                spec={
                    "schedule": backup.schedule,
                    "cluster": {"name": CLUSTER_NAME},
                    "method": backup.method,
                    "backupOwnerReference": "self",
                    "immediate": True,
                },
                opts=after_cluster,
            )
        self.cluster = cluster
        self.register_outputs(
            {"cluster": CLUSTER_NAME, "host": self.host, "ca_secret": self.ca_secret}
        )

    def _backup_secret(
        self,
        name: str,
        args: DatabaseArgs,
        meta_labels: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> None:
        platform = args.platform.name
        key_id = args.secrets.value(platform, "backup", "access_key_id")
        key = args.secrets.value(platform, "backup", "secret_access_key")
        k8s.core.v1.Secret(
            f"{name}-backup-credentials",
            metadata={
                "name": BACKUP_SECRET,
                "namespace": args.platform.namespace,
                "labels": meta_labels,
            },
            type="Opaque",
            string_data=pulumi.Output.secret(
                pulumi.Output.all(key_id, key).apply(
                    lambda v: {"ACCESS_KEY_ID": v[0], "ACCESS_SECRET_KEY": v[1]}
                )
            ),
            opts=child,
        )

    def url(self, service: str) -> pulumi.Output[str]:
        """The service's SQLAlchemy URL: its own role and database, TLS verified against the
        cluster's CA (mounted at ``CA_MOUNT``). A secret ``Output``."""
        host = self.host
        return pulumi.Output.secret(
            self._passwords[service].apply(
                lambda password: (
                    f"postgresql+psycopg://{service}:{quote(password, safe='')}"
                    f"@{host}:{POSTGRES_PORT}/{service}"
                    f"?sslmode=verify-full&sslrootcert={CA_MOUNT}/ca.crt"
                )
            )
        )

    @property
    def dependencies(self) -> Sequence[pulumi.Resource]:
        return [self.cluster, *self.databases]
