"""Settings of the national hub."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from zwfw.services.kit import AuthSettings, ServiceSettings


class HubSettings(ServiceSettings):
    """The hub: the channel's receiving side, its own signing identity for routed requests, and
    which citizen tokens it will forward in a cross-province licence exchange."""

    service: str = "hub"
    region_code: str = Field(default="100000", pattern=r"^\d{6}$")
    # The recipient name provinces put in Zwfw-Recipient.
    channel_id: str = Field(default="hub", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    channel_window_seconds: int = Field(default=300, ge=10, le=3600)
    # Refuse messages whose mutual-TLS client certificate the application cannot see.
    require_client_certificate: bool = False
    # Gateways allowed to pass the verified client certificate in RFC 9440 Client-Cert.
    trusted_proxies: list[str] = Field(default_factory=list)
    # SM2 root(s) of the national CA: provinces' channel signing certificates must chain here.
    national_ca_file: Path | None = None
    # The hub's own SM2 channel signing key and certificate (signs requests it routes).
    signing_key_file: Path | None = None
    signing_certificate_file: Path | None = None
    # Citizens' (federated) tokens the hub accepts to route a licence exchange: issued by the
    # national IdP with the hub among their audiences.
    subject_tokens: AuthSettings = Field(default_factory=AuthSettings)
    # The longest an annotated copy routed through the hub may stay valid.
    exchange_max_copy_days: int = Field(default=30, ge=1, le=365)
    exchange_timeout_seconds: float = Field(default=15.0, gt=0)
    # The hub's OAuth client at every province IdP (private_key_jwt, the same client id at
    # each): its own elicense:share token and the token exchange of the citizen's national
    # token for their consent (see zwfw.services.hub.exchange). Unset: nothing is routed.
    province_client_id: str | None = None
    province_client_key_file: Path | None = None  # the client's private JWK (JSON) or PEM
    # Token endpoints of provinces' IdPs by region code (xx0000), called there instead of the
    # one the registered IdP's discovery names (e.g. their in-cluster address when the hub
    # reaches them only inside a cluster); assertions still name the registered IdP's public
    # ``<identity>/token``. Provinces not listed: discovery at their registered IdP.
    province_token_urls: dict[str, str] = Field(default_factory=dict)
    # Base URLs of provinces' e-licence libraries by region code, called there instead of the
    # registered ``elicense`` endpoint (the same in-cluster case); the citizen's consent token
    # still names the registered public library as its audience. Not listed: the registered one.
    province_elicense_urls: dict[str, str] = Field(default_factory=dict)

    @field_validator("province_token_urls", "province_elicense_urls")
    @classmethod
    def _province_urls(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for region, url in value.items():
            if not (len(region) == 6 and region.isdigit() and region.endswith("0000")):
                raise ValueError(f"{region} is not a province-level region code (xx0000)")
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{info.field_name}.{region}: {url} is not an http(s) URL")
        return value

    # E-supervision counts a date as past once the day is over in this time zone.
    timezone: str = "Asia/Shanghai"
