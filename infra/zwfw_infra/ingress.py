"""A platform's public entry: cert-manager certificates for its host names and ingress-nginx
Ingresses with TLS, HSTS and security headers (controller-wide, charts/values), per-client
rate limits (stricter on sign-in and token endpoints), re-encryption to the services verified
against the internal CA, ``/metrics`` closed, and mutual TLS on the hub's province-facing
intake."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from zwfw_infra import pki
from zwfw_infra.config import IngressConfig, IssuerRef
from zwfw_infra.network import SERVICE_PORT

NGINX = "nginx.ingress.kubernetes.io"
# Where guessing is the threat (等保2.0: login-failure handling), as the host target's gateway.
SIGN_IN_PATHS = ("/token", "/login", "/authorize", "/introspect", "/revoke")
# What provinces send to the hub over the interconnection channel.
INTAKE_PATHS = ("/reports", "/exchange")
# Source ranges of a path nobody may reach through the ingress (every address).
CLOSED = "0.0.0.0/0,::/0"


@dataclass(frozen=True)
class PublicService:
    service: str
    host: str


@dataclass(frozen=True)
class IngressArgs:
    namespace: str
    services: Sequence[PublicService]
    ingress: IngressConfig
    ingress_class: str
    issuer: IssuerRef
    common_labels: Mapping[str, str]
    # The hub's intake host and the Secret (namespace/name) with the channel CA (ca.crt).
    intake_host: str | None = None
    channel_ca_secret: str | None = None


class PlatformIngress(pulumi.ComponentResource):
    """Certificates and Ingresses of one platform; ``hosts`` lists what it publishes."""

    hosts: list[str]

    def __init__(self, name: str, args: IngressArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zwfw:ingress:PlatformIngress", name, None, opts)
        self._args = args
        self._name = name
        self.hosts = []
        issuer = {"name": args.issuer.name, "kind": args.issuer.kind}
        for public in args.services:
            tls_secret = f"{public.service}-public-tls"
            self._certificate(public.service, public.host, tls_secret, issuer)
            backend = public.service
            self._ingress(public.service, public.host, tls_secret, backend, [("/", "Prefix")], {})
            closed = ["/metrics"]
            if public.service == "hub":
                # The intake is on its own host, behind mutual TLS; not around it on this one.
                closed += list(INTAKE_PATHS)
            self._ingress(
                f"{public.service}-closed",
                public.host,
                tls_secret,
                backend,
                [(path, "Prefix") for path in closed],
                # Prometheus scrapes each replica inside the cluster; nobody outside does.
                {f"{NGINX}/denylist-source-range": CLOSED},
            )
            if public.service == "identity":
                self._ingress(
                    "identity-sign-in",
                    public.host,
                    tls_secret,
                    backend,
                    [(path, "Prefix") for path in SIGN_IN_PATHS],
                    {f"{NGINX}/limit-rps": str(args.ingress.sign_in_rate_per_second)},
                )
            if public.service == "hub" and args.intake_host and args.channel_ca_secret:
                self._certificate("hub-intake", args.intake_host, "hub-intake-public-tls", issuer)
                self._ingress(
                    "hub-intake",
                    args.intake_host,
                    "hub-intake-public-tls",
                    backend,
                    [(path, "Prefix") for path in INTAKE_PATHS],
                    {
                        f"{NGINX}/auth-tls-verify-client": "on",
                        f"{NGINX}/auth-tls-secret": args.channel_ca_secret,
                        f"{NGINX}/auth-tls-verify-depth": "2",
                        f"{NGINX}/auth-tls-pass-certificate-to-upstream": "false",
                    },
                )
        self.register_outputs({"hosts": self.hosts})

    def _certificate(self, name: str, host: str, secret: str, issuer: Mapping[str, str]) -> None:
        pki.certificate(
            f"{self._name}-{name}-public-certificate",
            name=secret,
            namespace=self._args.namespace,
            spec=pki.serving_certificate_spec(secret, [host], issuer),
            labels=self._args.common_labels,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _ingress(
        self,
        name: str,
        host: str,
        tls_secret: str,
        backend: str,
        paths: Sequence[tuple[str, str]],
        extra: Mapping[str, str],
    ) -> None:
        args = self._args
        annotations: dict[str, Any] = {
            f"{NGINX}/force-ssl-redirect": "true",
            f"{NGINX}/backend-protocol": "HTTPS",
            # Re-encrypted to the service, verified against the internal CA only.
            f"{NGINX}/proxy-ssl-verify": "on",
            f"{NGINX}/proxy-ssl-secret": f"{args.namespace}/{pki.CA_BUNDLE_SECRET}",
            f"{NGINX}/proxy-ssl-name": f"{backend}.{args.namespace}.svc",
            f"{NGINX}/proxy-ssl-server-name": "on",
            f"{NGINX}/proxy-ssl-protocols": "TLSv1.2 TLSv1.3",
            f"{NGINX}/proxy-body-size": args.ingress.body_size,
            f"{NGINX}/limit-rps": str(args.ingress.rate_per_second),
            f"{NGINX}/limit-burst-multiplier": "2",
            **extra,
        }
        if host not in self.hosts:
            self.hosts.append(host)
        k8s.networking.v1.Ingress(
            f"{self._name}-{name}-ingress",
            metadata={
                "name": name,
                "namespace": args.namespace,
                "labels": dict(args.common_labels),
                "annotations": annotations,
            },
            spec={
                "ingress_class_name": args.ingress_class,
                "tls": [{"hosts": [host], "secret_name": tls_secret}],
                "rules": [
                    {
                        "host": host,
                        "http": {
                            "paths": [
                                {
                                    "path": path,
                                    "path_type": path_type,
                                    "backend": {
                                        "service": {
                                            "name": backend,
                                            "port": {"number": SERVICE_PORT},
                                        }
                                    },
                                }
                                for path, path_type in paths
                            ]
                        },
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
