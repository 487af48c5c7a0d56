"""Settings of the province's service hall."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from zwfw.services.kit import ServiceSettings

# The interconnection profile version this hall implements (the requirement catalog's
# `spec_version`; a test keeps the two equal).
SPEC_VERSION = "0.1.0"


class ElicenseSettings(BaseModel):
    """Where the province's e-licence library (电子证照库) is, for 免证办 materials."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    # How long an annotated copy (加注件) made for a case stays usable.
    copy_validity_days: int = Field(default=30, ge=1, le=366)
    # The hall's own OAuth client at the province IdP (private_key_jwt), holding
    # ``elicense:share``; the applicant's token travels as the consent (holder_token).
    token_url: str | None = None
    client_id: str | None = None
    client_key_file: Path | None = None  # the client's private JWK (JSON) or PEM
    # The audience its assertions name when token_url is not the IdP's public token endpoint
    # (the IdP called at an internal address accepts only its public one); unset: token_url.
    assertion_audience: str | None = None
    scope: str = "elicense:share"
    # Seal authority roots copies are verified against, offline: the province's e-seal
    # ``GET /trust`` and/or a PEM bundle (other provinces' roots, for cross-province copies).
    trust_url: str | None = None
    trust_bundle: Path | None = None
    # The e-licence services of other provinces by region code (xx0000): their registries
    # confirm the copies fetched through the hub (public POST /verify); a copy of a province
    # not listed is refused. This province's own library confirms its own copies.
    registries: dict[str, str] = Field(default_factory=dict)

    @field_validator("registries")
    @classmethod
    def _registries(cls, value: dict[str, str]) -> dict[str, str]:
        for region, url in value.items():
            if not (len(region) == 6 and region.isdigit() and region.endswith("0000")):
                raise ValueError(f"{region} is not a province-level region code (xx0000)")
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"registries.{region}: {url} is not an http(s) base URL")
        return value

    @model_validator(mode="after")
    def _complete(self) -> ElicenseSettings:
        if self.base_url is None:
            return self
        needed = ("token_url", "client_id", "client_key_file")
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"elicense.base_url is set, so set elicense.{', elicense.'.join(missing)} too"
            )
        if self.trust_url is None and self.trust_bundle is None:
            raise ValueError("elicense.base_url is set, so set elicense.trust_url or trust_bundle")
        return self


class DiscoverySettings(BaseModel):
    """What `/.well-known/zwfw` announces besides the hall itself."""

    model_config = ConfigDict(extra="forbid")

    # Base URLs of the province's other services: identity, elicense, eseal.
    services: dict[str, HttpUrl] = Field(default_factory=dict)
    # JWKS URIs by name, e.g. {"identity": ".../jwks", "hall-reports": ".../jwks"}.
    jwks_uris: dict[str, HttpUrl] = Field(default_factory=dict)
    hub_url: HttpUrl | None = None


class HubSettings(BaseModel):
    """Reporting cases and evaluations to the national hub (off while ``base_url`` is unset).

    Secrets are files generated at deploy time, never values in the settings file.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    # OAuth client at the national IdP, authenticating with private_key_jwt.
    token_url: str | None = None
    client_id: str | None = None
    client_key_file: Path | None = None  # the client's private JWK (JSON)
    # As elicense.assertion_audience: the national IdP's public token endpoint when called
    # at another address; unset: token_url.
    assertion_audience: str | None = None
    scope: str = "hub:report"
    # Scope of the token for cross-province licence exchange (None: the hall does not use it).
    exchange_scope: str | None = "hub:exchange"
    # SM2 signing key and certificate of the channel (zwfw.formats.channel).
    signing_key_file: Path | None = None
    signing_cert_file: Path | None = None
    # Mutual TLS towards the hub.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    ca_bundle: Path | None = None
    base_delay_seconds: float = Field(default=1.0, gt=0)
    max_delay_seconds: float = Field(default=300.0, gt=0)
    # Seconds one delivery attempt may take before it counts as failed (and is retried).
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Attempts per report before it is given up (marked rejected for operators to requeue).
    # None, the default, retries until the hub takes it: reports outlive a hub outage.
    max_attempts: int | None = Field(default=None, ge=1)
    # A file holding seconds to add to this host's clock when signing reports, read at every
    # attempt (missing or empty: none). Certification sandboxes skew a province's clock
    # with it (the faults suite's clock_skew, FT-CLK-001); a deployment leaves it unset.
    clock_offset_file: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> HubSettings:
        if self.base_url is None:
            return self
        needed = (
            "token_url",
            "client_id",
            "client_key_file",
            "signing_key_file",
            "signing_cert_file",
        )
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"hub.base_url is set, so set hub.{', hub.'.join(missing)} too")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("hub.tls_cert_file and hub.tls_key_file go together")
        if self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError("hub.max_delay_seconds is below hub.base_delay_seconds")
        return self


class HallSettings(ServiceSettings):
    service: str = "hall"
    spec_version: str = SPEC_VERSION
    # 差评 rectification deadline in working days: provinces use 5 or 15 (provincial practice).
    rectification_days: int = Field(default=5, ge=1, le=60)
    # Years the State Council calendar does not cover yet (see zwfw.codes.workdays).
    holiday_file: Path | None = None
    # Largest uploaded material accepted, in bytes (decoded).
    max_material_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    elicense: ElicenseSettings = Field(default_factory=ElicenseSettings)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    hub: HubSettings = Field(default_factory=HubSettings)
