"""Provisioning a platform in the cluster: once its services are up, a Job runs
``zwfw provision apply`` against their in-cluster URLs, as the Ansible role does on a host.

The plan is rendered from the stack configuration (``zwfw.provisioning.plan``): its public
parts in the ConfigMap ``provisioning-plan``, the private key it acts with in the Secret
``provisioning-keys``. The key comes from secret config (``secrets.<platform>.identity.
provisioning_key``); its public half is what the platform's IdP registers as its provisioning
client (``ZWFW_PROVISIONING_CLIENTS``), the only way to its admin API without a person.
The services' own clients are registered by the public halves of their keys
(``secrets.<platform>.<service>.client_key``): the Job never holds their private keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from zwfw.provisioning.plan import ClientPlan, Operator, ProvisioningPlan, RealmPlan, TrustPlan
from zwfw_infra import labels, pki
from zwfw_infra.config import ConfigError, Image, Resources
from zwfw_infra.service import container_security, pod_security, resource_requirements

CLIENT_ID = "provisioning"
PLAN_CONFIG_MAP = "provisioning-plan"
KEYS_SECRET = "provisioning-keys"
PLAN_MOUNT = "/plan"
PLAN_FILE = f"{PLAN_MOUNT}/plan.json"
KEYS_MOUNT = "/etc/zwfw/provisioning"
ADMIN_KEY = "admin.jwk"
CA_MOUNT = "/etc/zwfw/ca"
CA_FILE = f"{CA_MOUNT}/ca.crt"
# Long enough for token requests and a few hundred registrations; a stuck run ends.
DEADLINE_SECONDS = 600
BACKOFF_LIMIT = 4


def admin_key(value: str, path: str) -> ECKey:
    """The provisioning client's private key from secret config: PEM or a JWK (JSON), P-256.
    Its key id is the RFC 7638 thumbprint unless the JWK names one."""
    try:
        text = value.strip()
        raw: Any = json.loads(text) if text.startswith("{") else text
        key = ECKey.import_key(raw)
    except (ValueError, TypeError, JoseError):
        # Never the value, nor the parser's view of it.
        raise ConfigError(f"secret {path}: not an EC private key (PEM or JWK)") from None
    if not key.is_private or key.as_dict().get("crv") != "P-256":
        raise ConfigError(f"secret {path}: must be a P-256 private key (ES256)")
    if not key.kid:
        key = ECKey.import_key(key.as_dict(private=True), parameters={"kid": key.thumbprint()})
    return key


def private_jwk(key: ECKey) -> str:
    return json.dumps(key.as_dict(private=True), sort_keys=True)


def public_jwks(key: ECKey) -> dict[str, Any]:
    """The JWKS an IdP registers a client by: the public half only."""
    return {"keys": [key.as_dict(private=False)]}


def provisioning_clients(key: ECKey) -> str:
    """The IdP's ``provisioning_clients`` setting (JSON, as ``ZWFW_PROVISIONING_CLIENTS``)."""
    jwks = {"keys": [key.as_dict(private=False)]}
    return json.dumps([{"client_id": CLIENT_ID, "jwks": jwks}], sort_keys=True)


def platform_plan(
    *,
    realm: str,
    idp_public_url: str,
    idp_internal_url: str,
    trusted_issuers: Sequence[tuple[str, str]] = (),
    clients: Sequence[ClientPlan] = (),
) -> ProvisioningPlan:
    """What a platform's Job provisions: at its IdP (called inside the cluster, tokens named
    by its public URL), ``clients`` and the trust of ``trusted_issuers`` ``(issuer, jwks_uri)``
    for token exchange (a province's federation with the national IdP)."""
    return ProvisioningPlan(
        realms=[
            RealmPlan(
                name=realm,
                url=idp_internal_url,
                admin=Operator(
                    token_url=f"{idp_internal_url}/token",
                    assertion_audience=f"{idp_public_url}/token",
                    client_id=CLIENT_ID,
                    key_file=Path(KEYS_MOUNT) / ADMIN_KEY,
                ),
                clients=list(clients),
                trust=[TrustPlan(issuer=i, jwks_uri=j) for i, j in trusted_issuers],
            )
        ]
    )


def plan_json(plan: ProvisioningPlan) -> str:
    return json.dumps(plan.model_dump(mode="json", exclude_none=True), indent=2) + "\n"


@dataclass(frozen=True)
class ProvisioningJobArgs:
    namespace: str
    region_code: str
    # Public parts only, though built from keys in secret config (their public halves).
    plan: pulumi.Output[ProvisioningPlan]
    admin_key: pulumi.Output[ECKey]
    image: Image
    resources: Resources
    # The services' Deployments: the Job starts once they are rolled out.
    services: Sequence[pulumi.Resource]
    common_labels: Mapping[str, str]


@dataclass(frozen=True)
class ProvisioningOutputs:
    # The Job's name carries the plan's hash, known once the clients' keys are read.
    job: pulumi.Output[str]
    plan_config_map: str
    keys_secret: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "plan_config_map": self.plan_config_map,
            "keys_secret": self.keys_secret,
        }


class ProvisioningJob(pulumi.ComponentResource):
    outputs: ProvisioningOutputs

    def __init__(
        self, name: str, args: ProvisioningJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("zwfw:provisioning:ProvisioningJob", name, None, opts)
        ns = args.namespace
        child = pulumi.ResourceOptions(parent=self)
        meta = {
            **args.common_labels,
            labels.NAME: "provisioning",
            labels.REGION: args.region_code,
            labels.COMPONENT: labels.PROVISIONING_COMPONENT,
        }
        text = args.plan.apply(plan_json)
        # Jobs are immutable: a changed plan or image is a new Job, applied from the start.
        reference = args.image.reference
        digest = text.apply(
            lambda plan_text: hashlib.sha256((plan_text + reference).encode()).hexdigest()[:10]
        )
        self.outputs = ProvisioningOutputs(
            job=digest.apply(lambda d: f"provisioning-{d}"),
            plan_config_map=PLAN_CONFIG_MAP,
            keys_secret=KEYS_SECRET,
        )
        plan = k8s.core.v1.ConfigMap(
            f"{name}-plan",
            metadata={"name": PLAN_CONFIG_MAP, "namespace": ns, "labels": meta},
            data={"plan.json": text},
            opts=child,
        )
        keys = k8s.core.v1.Secret(
            f"{name}-keys",
            metadata={"name": KEYS_SECRET, "namespace": ns, "labels": meta},
            type="Opaque",
            string_data=pulumi.Output.secret(
                args.admin_key.apply(lambda key: {ADMIN_KEY: private_jwk(key)})
            ),
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={"name": "provisioning", "namespace": ns, "labels": meta},
            # It calls the services' APIs only, never the Kubernetes API.
            automount_service_account_token=False,
            opts=child,
        )
        resources = args.resources
        k8s.batch.v1.Job(
            f"{name}-job",
            metadata={"name": self.outputs.job, "namespace": ns, "labels": meta},
            spec={
                "backoff_limit": BACKOFF_LIMIT,
                "active_deadline_seconds": DEADLINE_SECONDS,
                "template": {
                    "metadata": {"labels": meta, "annotations": {"checksum/plan": digest}},
                    "spec": {
                        "restart_policy": "Never",
                        "service_account_name": "provisioning",
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "security_context": pod_security(),
                        "volumes": [
                            {
                                "name": "plan",
                                "config_map": {"name": PLAN_CONFIG_MAP, "default_mode": 0o444},
                            },
                            {
                                "name": "keys",
                                "secret": {"secret_name": KEYS_SECRET, "default_mode": 0o440},
                            },
                            {
                                "name": "ca",
                                "secret": {
                                    "secret_name": pki.CA_BUNDLE_SECRET,
                                    "default_mode": 0o444,
                                },
                            },
                            {
                                "name": "tmp",
                                "empty_dir": {"medium": "Memory", "size_limit": "16Mi"},
                            },
                        ],
                        "containers": [
                            {
                                "name": "provision",
                                "image": args.image.reference,
                                "image_pull_policy": "Always",
                                "args": [
                                    "provision",
                                    "apply",
                                    "--plan",
                                    PLAN_FILE,
                                    "--ca-file",
                                    CA_FILE,
                                ],
                                "env": [{"name": "HOME", "value": "/tmp"}],
                                "volume_mounts": [
                                    {"name": "plan", "mount_path": PLAN_MOUNT, "read_only": True},
                                    {"name": "keys", "mount_path": KEYS_MOUNT, "read_only": True},
                                    {"name": "ca", "mount_path": CA_MOUNT, "read_only": True},
                                    {"name": "tmp", "mount_path": "/tmp"},
                                ],
                                "resources": resource_requirements(resources),
                                "security_context": container_security(),
                            }
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[plan, keys, account, *args.services]
            ),
        )
        self.register_outputs({"provisioning": self.outputs.as_dict()})
