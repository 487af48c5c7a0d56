"""The stack's secrets: Pulumi secret config ``zwfw:secrets``, never plain text.

Set with ``pulumi config set --secret --path 'secrets.<platform>.<service>.<key>' VALUE``
(see infra/README.md). Each value stays a secret ``Output`` from the config to the
Kubernetes Secret it lands in, so Pulumi keeps it encrypted in the state.
"""

from __future__ import annotations

from typing import Any

import pulumi

from zwfw_infra.config import KEK_SERVICES, ConfigError, PlatformConfig

SECRETS_KEY = "secrets"
# Services that call others with a client of their own (private_key_jwt): the halls and
# e-licence libraries at their province's IdP, the hub at the provinces' IdPs.
CLIENT_KEY_SERVICES = ("hall", "elicense", "hub")


def required_keys(platform: PlatformConfig) -> dict[str, tuple[str, ...]]:
    """Which secrets each service of ``platform`` needs (hex keys, database password)."""
    keys: dict[str, tuple[str, ...]] = {}
    for service in platform.services:
        needed = ["db_password"]
        if service.name == "identity":
            # provisioning_key: the private key (PEM or JWK) of its provisioning Job.
            needed += ["data_key", "lookup_key", "provisioning_key"]
        if service.name in KEK_SERVICES:
            needed.append("kek")
        if service.name in CLIENT_KEY_SERVICES:
            # client_key: the private key (PEM or JWK) of the service's own OAuth client,
            # whose public half the provisioning Job registers at the IdP that serves it.
            needed.append("client_key")
        if service.name == "hall" and platform.channel is not None:
            # The private halves of provinces[].channel: the channel signing key (SM2) and the
            # hall's client key at the hub's intake (mutual TLS).
            needed += ["channel_key", "intake_client_key"]
        keys[service.name] = tuple(needed)
    backup = platform.database.backup
    if backup is not None and backup.method == "barmanObjectStore":
        keys["backup"] = ("access_key_id", "secret_access_key")
    return keys


class Secrets:
    """Lookup of one secret value as a secret ``Output``; a missing one is a one-line error
    naming the config path (never the value)."""

    def __init__(self, values: pulumi.Output[Any]) -> None:
        self._values = values

    @classmethod
    def from_config(cls, config: pulumi.Config) -> Secrets:
        return cls(config.require_secret_object(SECRETS_KEY))

    def value(self, platform: str, group: str, key: str) -> pulumi.Output[str]:
        path = f"zwfw:{SECRETS_KEY}.{platform}.{group}.{key}"

        def pick(values: Any) -> str:
            found = (
                values.get(platform, {}).get(group, {}).get(key)
                if isinstance(values, dict)
                else None
            )
            if not isinstance(found, str) or not found:
                raise ConfigError(
                    f"secret {path} is not set: pulumi config set --secret --path "
                    f"'{SECRETS_KEY}.{platform}.{group}.{key}' VALUE"
                )
            return found

        return pulumi.Output.secret(self._values.apply(pick))
