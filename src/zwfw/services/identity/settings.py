"""Configuration of one identity service instance (a province's IdP or the national root IdP)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zwfw.services.identity.validation import CLIENT_ID_PATTERN, http_url, public_jwks
from zwfw.services.kit import ServiceSettings


class TrustedIssuerConfig(BaseModel):
    """An IdP whose tokens this instance accepts for token exchange."""

    issuer: str
    jwks_uri: str | None = None
    # Inline JWKS, for deployments that pin the peer's keys instead of fetching them.
    jwks: dict[str, object] | None = None
    # Highest assurance level a token from this issuer can carry over.
    max_level: str | None = None

    @model_validator(mode="after")
    def _keys(self) -> TrustedIssuerConfig:
        if (self.jwks_uri is None) == (self.jwks is None):
            raise ValueError(
                f"trust list entry {self.issuer}: give exactly one of jwks_uri or jwks"
            )
        http_url(self.issuer, "issuer")
        if self.jwks_uri is not None:
            http_url(self.jwks_uri, "jwks_uri")
        if self.jwks is not None:
            public_jwks(self.jwks)
        return self


class ProvisioningClientConfig(BaseModel):
    """A system client the IdP registers at start-up for automated provisioning (Ansible,
    Pulumi): it authenticates with private_key_jwt and holds only the identity:admin scope,
    for this IdP's admin API. Changed or removed here, it changes or is disabled at the next
    start."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(pattern=CLIENT_ID_PATTERN)
    name: str | None = Field(default=None, max_length=200)
    # The client's public keys; its private key never comes near the IdP.
    jwks: dict[str, Any]

    @field_validator("jwks")
    @classmethod
    def _public(cls, value: dict[str, Any]) -> dict[str, Any]:
        return public_jwks(value)


class IdentitySettings(ServiceSettings):
    """The issuer identifier is `public_base_url`; keys come from `ZWFW_*` variables."""

    service: str = "identity"
    role: Literal["province", "national"] = "province"
    # 16-byte SM4 key (hex) protecting personal data and private keys at rest.
    data_key: str = Field(min_length=32, max_length=32)
    # HMAC-SM3 key (hex) for looking up ID numbers without decrypting them.
    lookup_key: str = Field(min_length=32)

    access_token_ttl: int = 600
    id_token_ttl: int = 600
    refresh_token_ttl: int = 8 * 3600
    code_ttl: int = 120
    exchanged_token_ttl: int = 600

    # 等保 level 3: login-failure handling, complexity, regular change, session timeout.
    lockout_threshold: int = 5
    lockout_seconds: int = 15 * 60
    password_min_length: int = 12
    password_min_classes: int = 3
    password_max_age_days: int = 90
    # argon2id cost. Default: OWASP Password Storage Cheat Sheet's first choice (19 MiB, 2
    # passes, 1 lane); stored hashes are upgraded at the next sign-in when this changes.
    password_hash_memory_kib: int = Field(default=19456, ge=7168)
    password_hash_time_cost: int = Field(default=2, ge=1)
    password_hash_parallelism: int = Field(default=1, ge=1)
    session_idle_seconds: int = 15 * 60
    session_absolute_seconds: int = 8 * 3600

    # Per client address, per minute; provincial practice varies, so both are settings.
    login_rate_per_minute: int = 60
    token_rate_per_minute: int = 60000

    assurance_levels: list[str] = ["registered", "real_name", "face_verified"]
    trust_list: list[TrustedIssuerConfig] = []
    # Admin clients for provisioning, e.g. ZWFW_PROVISIONING_CLIENTS='[{"client_id": …,
    # "jwks": {"keys": […]}}]'; the only way to have the admin API without a human administrator.
    provisioning_clients: list[ProvisioningClientConfig] = []
    # Header set by the TLS-terminating gateway with the URL-escaped client certificate (PEM).
    mtls_cert_header: str | None = None
    # Seconds before an unused rotated-out key leaves the JWKS beyond the longest token life.
    key_grace_seconds: int = 60
    secure_cookies: bool = True

    @field_validator("data_key", "lookup_key")
    @classmethod
    def _hex(cls, value: str) -> str:
        bytes.fromhex(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IdentitySettings:
        ids = [c.client_id for c in self.provisioning_clients]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"provisioning_clients names {', '.join(repeated)} more than once")
        for entry in self.trust_list:
            if entry.max_level is not None and entry.max_level not in self.assurance_levels:
                raise ValueError(
                    f"trust list entry {entry.issuer}: unknown level {entry.max_level}"
                )
        return self

    @property
    def issuer(self) -> str:
        return self.public_base_url.rstrip("/")

    @property
    def max_token_ttl(self) -> int:
        return max(self.access_token_ttl, self.id_token_ttl, self.exchanged_token_ttl)

    def level_rank(self, level: str) -> int:
        try:
            return self.assurance_levels.index(level)
        except ValueError:
            raise ValueError(f"unknown assurance level {level!r}") from None
