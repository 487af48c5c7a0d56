"""Certificate authorities of the stack.

- Internal CA (``zwfw-internal`` ClusterIssuer, cert-manager ``ca`` issuer): every service's
  serving certificate; services, the ingress controller and Prometheus verify each other
  against it, so in-cluster traffic is encrypted and authenticated too (密评: confidentiality
  in transit). Its certificate is stack config, its key Pulumi secret config: both made at
  deploy time by the operator (infra/README.md), so the program can hand the CA certificate
  (and only it) to whoever verifies.
- Interconnection channel CA (national, out of band): the hub's province-facing intake accepts
  only client certificates it issued (mutual TLS at the ingress controller).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

CERT_MANAGER = "cert-manager.io/v1"
INTERNAL_ISSUER = "zwfw-internal"
INTERNAL_CA_SECRET = "zwfw-internal-ca"
# A ca.crt-only copy in each platform namespace: with no tls.crt in it, the ingress controller
# verifies the services without presenting a client certificate of its own.
CA_BUNDLE_SECRET = "zwfw-internal-ca-bundle"
CHANNEL_CA_SECRET = "hub-channel-ca"
# Serving certificates: 90 days, renewed 30 days before expiry.
LEAF_DURATION = "2160h"
LEAF_RENEW_BEFORE = "720h"
_KEY = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}


def certificate(
    resource_name: str,
    *,
    name: str,
    namespace: str,
    spec: Mapping[str, Any],
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=CERT_MANAGER,
        kind="Certificate",
        metadata={"name": name, "namespace": namespace, "labels": dict(labels)},
        spec=dict(spec),
        opts=opts,
    )


def serving_certificate_spec(
    secret_name: str, dns_names: Sequence[str], issuer: Mapping[str, str], *, client: bool = False
) -> dict[str, Any]:
    usages = ["digital signature", "key encipherment", "server auth"]
    if client:
        usages.append("client auth")
    return {
        "secretName": secret_name,
        "dnsNames": list(dns_names),
        "duration": LEAF_DURATION,
        "renewBefore": LEAF_RENEW_BEFORE,
        "privateKey": dict(_KEY),
        "usages": usages,
        "issuerRef": {"group": "cert-manager.io", **issuer},
    }


def ca_bundle(
    resource_name: str,
    *,
    name: str,
    namespace: str,
    certificate_pem: str,
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """A Secret holding only a CA certificate (``ca.crt``), for whoever verifies with it."""
    return k8s.core.v1.Secret(
        resource_name,
        metadata={"name": name, "namespace": namespace, "labels": dict(labels)},
        type="Opaque",
        string_data={"ca.crt": certificate_pem},
        opts=opts,
    )


@dataclass(frozen=True)
class PkiArgs:
    cert_manager_namespace: str
    internal_ca_certificate: str
    internal_ca_key: pulumi.Output[str]
    common_labels: Mapping[str, str]


class Pki(pulumi.ComponentResource):
    """The internal CA's key pair (in cert-manager's namespace) and its ClusterIssuer."""

    internal_issuer: dict[str, str]

    def __init__(self, name: str, args: PkiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zwfw:pki:Pki", name, None, opts)
        meta_labels = dict(args.common_labels)
        ca_secret = k8s.core.v1.Secret(
            f"{name}-internal-ca",
            metadata={
                "name": INTERNAL_CA_SECRET,
                "namespace": args.cert_manager_namespace,
                "labels": meta_labels,
            },
            type="kubernetes.io/tls",
            string_data=pulumi.Output.secret(
                args.internal_ca_key.apply(
                    lambda key: {"tls.crt": args.internal_ca_certificate, "tls.key": key}
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.issuer = k8s.apiextensions.CustomResource(
            f"{name}-internal-issuer",
            api_version=CERT_MANAGER,
            kind="ClusterIssuer",
            metadata={"name": INTERNAL_ISSUER, "labels": meta_labels},
            spec={"ca": {"secretName": INTERNAL_CA_SECRET}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ca_secret]),
        )
        self.internal_issuer = {"name": INTERNAL_ISSUER, "kind": "ClusterIssuer"}
        self.register_outputs({"internal_issuer": INTERNAL_ISSUER})
