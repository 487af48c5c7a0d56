"""Configuration of the e-licence service."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zwfw.codes import CodeError, parse_credit_code
from zwfw.services.kit import ServiceSettings


class IssuerConfig(BaseModel):
    """An issuing authority (颁发机构) of this platform and the seal its licences carry."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    es_id: str = Field(min_length=1, max_length=64)


class SealServiceConfig(BaseModel):
    """How this service reaches the e-seal service that holds the issuers' seals.

    Sealing goes over HTTP to ``POST {base_url}/seals/{es_id}/sign`` with a client-credentials
    token from ``token_url`` (RFC 7523 ``private_key_jwt`` with the JWK or PEM key in
    ``client_key_file``); this client's id must be on each issuer seal's signer list.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = "http://127.0.0.1:8001"
    token_url: str | None = None
    client_id: str | None = None
    client_key_file: Path | None = None
    # The IdP's public token endpoint, named in the assertions when token_url is another
    # address of it (an in-cluster URL); unset: token_url.
    assertion_audience: str | None = None
    scope: str = "eseal:sign"
    timeout_seconds: float = Field(default=10.0, gt=0)
    # The seal authority's root certificate changes rarely; statuses more often.
    trust_cache_seconds: float = Field(default=300.0, ge=0)
    status_cache_seconds: float = Field(default=10.0, ge=0)


class ElicenseSettings(ServiceSettings):
    service: str = "elicense"
    # Issuing authorities by credit code.
    issuers: dict[str, IssuerConfig] = Field(default_factory=dict)
    eseal: SealServiceConfig = Field(default_factory=SealServiceConfig)
    # Longest life of an annotated copy (provincial practice; configurable).
    max_copy_days: int = Field(default=30, ge=1, le=3650)
    # Licence dates (issue, validity, expiry by date) are calendar dates in this zone.
    timezone: str = "Asia/Shanghai"

    @field_validator("issuers")
    @classmethod
    def _credit_codes(cls, value: dict[str, IssuerConfig]) -> dict[str, IssuerConfig]:
        for code in value:
            try:
                parse_credit_code(code)
            except CodeError as exc:
                raise ValueError(f"issuer {code}: {exc}") from None
        return value
