"""Label conventions shared by the components, the NetworkPolicies and the checks."""

from __future__ import annotations

NAME = "app.kubernetes.io/name"
PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "app.kubernetes.io/managed-by"
TENANT = "zwfw.gov.cn/tenant"
TENANT_KIND = "zwfw.gov.cn/tenant-kind"
REGION = "zwfw.gov.cn/region-code"
ENVIRONMENT = "zwfw.gov.cn/environment"
# The Prometheus job name of a service's targets (zwfw-<service>, as on the host target).
JOB = "zwfw.gov.cn/job"
NAMESPACE_NAME = "kubernetes.io/metadata.name"
CNPG_CLUSTER = "cnpg.io/cluster"

# Pod Security Admission: every tenant namespace runs under the restricted profile.
PSA = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}

SERVICE_COMPONENT = "service"
MIGRATION_COMPONENT = "migration"
PROVISIONING_COMPONENT = "provisioning"


def common(tenant: str, environment: str) -> dict[str, str]:
    return {PART_OF: "zwfw", MANAGED_BY: "pulumi", TENANT: tenant, ENVIRONMENT: environment}


def service_selector(service: str) -> dict[str, str]:
    """Selects the serving pods of one zwfw service (not its migration jobs)."""
    return {NAME: service, PART_OF: "zwfw", COMPONENT: SERVICE_COMPONENT}
