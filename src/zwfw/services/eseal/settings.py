"""Configuration of the e-seal service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from zwfw.services.kit import ServiceSettings


class EsealSettings(ServiceSettings):
    """The seal authority's CA and maker keys are generated on first start and kept only in the
    encrypted key store (KEK from ``ZWFW_KEK`` / ``ZWFW_KEK_FILE``)."""

    service: str = "eseal"
    # Subject of the generated root CA and seal-maker (制章者) certificates.
    authority_name: str = "电子印章制章系统"
    authority_organisation: str | None = None
    root_valid_days: int = Field(default=7300, ge=30)
    maker_valid_days: int = Field(default=3650, ge=30)
    # Further roots whose seals this service verifies (other provinces' seal authorities).
    trust_anchor_files: list[Path] = Field(default_factory=list)
    # How long a worker may answer verification from the seal status it last read. 0: every
    # verification reads the register, so a suspension or revocation made through any replica
    # fails step 3 at once (GB/T 38540); above 0 only for a single-process deployment.
    status_cache_seconds: float = Field(default=0.0, ge=0)
    max_picture_bytes: int = Field(default=256 * 1024, ge=1024)
    max_content_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # The e-licence service's OAuth client id: the one signer a licence seal (category
    # ``licence``, 电子证照专用章) may have. Unset, no licence seal can be made.
    licence_client: str | None = Field(default=None, min_length=1, max_length=200)
