"""The province registry: who may report to the hub and be routed to, and how they prove it.
Every change is audited with its actor."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from zwfw.codes import CodeError, parse_division
from zwfw.crypto.x509 import CertificateError, SM2Certificate, load_pem_bundle, verify_chain
from zwfw.formats.channel import certificate_key_id
from zwfw.services.hub.models import Province, utcnow
from zwfw.services.hub.settings import HubSettings
from zwfw.services.kit import Problem, audit, conflict, not_found

SCOPE_PROVINCES_READ = "hub:provinces:read"
SCOPE_PROVINCES_WRITE = "hub:provinces:write"

ENDPOINT_NAMES = ("discovery", "identity", "hall", "elicense", "eseal")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def _province_region(value: str) -> str:
    try:
        parsed = parse_division(value)
    except CodeError as exc:
        raise ValueError(str(exc)) from None
    if not str(parsed).endswith("0000"):
        raise ValueError("a province registers with its province-level code (PP0000)")
    return str(parsed)


def _check_fingerprint(value: str) -> str:
    value = value.replace(":", "").lower()
    if not _FINGERPRINT.match(value):
        raise ValueError("must be a SHA-256 fingerprint: 64 hex digits")
    return value


def _check_endpoints(value: dict[str, HttpUrl]) -> dict[str, HttpUrl]:
    unknown = sorted(set(value) - set(ENDPOINT_NAMES))
    if unknown:
        raise ValueError(f"unknown endpoint names {unknown}; use {list(ENDPOINT_NAMES)}")
    return value


class ProvinceIn(BaseModel):
    """A province's registration."""

    model_config = ConfigDict(extra="forbid")

    region_code: str = Field(examples=["340000"])
    name: str = Field(min_length=1, max_length=100, examples=["安徽省"])
    endpoints: dict[str, HttpUrl] = Field(
        description="Base URLs by service: discovery, identity, hall, elicense, eseal"
    )
    oauth_client_id: str = Field(min_length=1, max_length=200)
    tls_fingerprint: str = Field(
        description="SHA-256 of the mutual-TLS client certificate (DER), lowercase hex"
    )
    tls_subject: str = Field(min_length=1, max_length=500)
    signing_certificate: str = Field(
        description="The SM2 channel signing certificate (PEM) issued by the national CA"
    )
    status: Literal["active", "suspended"] = "active"

    @field_validator("region_code")
    @classmethod
    def _region(cls, value: str) -> str:
        return _province_region(value)

    @field_validator("tls_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        return _check_fingerprint(value)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, HttpUrl]) -> dict[str, HttpUrl]:
        return _check_endpoints(value)


class ProvinceChange(BaseModel):
    """A change to a registration; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "suspended"] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=100)
    endpoints: dict[str, HttpUrl] | None = None
    oauth_client_id: str | None = Field(default=None, min_length=1, max_length=200)
    tls_fingerprint: str | None = None
    tls_subject: str | None = Field(default=None, min_length=1, max_length=500)
    signing_certificate: str | None = None

    @field_validator("tls_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return None if value is None else _check_fingerprint(value)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, HttpUrl] | None) -> dict[str, HttpUrl] | None:
        return None if value is None else _check_endpoints(value)


class ProvinceOut(BaseModel):
    region_code: str
    name: str
    status: str
    endpoints: dict[str, str]
    oauth_client_id: str
    tls_fingerprint: str
    tls_subject: str
    signing_key_id: str
    signing_certificate: str
    created_at: str
    updated_at: str


def province_out(province: Province) -> ProvinceOut:
    return ProvinceOut(
        region_code=province.region_code,
        name=province.name,
        status=province.status,
        endpoints=dict(province.endpoints),
        oauth_client_id=province.oauth_client_id,
        tls_fingerprint=province.tls_fingerprint,
        tls_subject=province.tls_subject,
        signing_key_id=province.signing_key_id,
        signing_certificate=province.signing_certificate,
        created_at=province.created_at.isoformat(),
        updated_at=province.updated_at.isoformat(),
    )


def _national_roots(settings: HubSettings) -> list[SM2Certificate]:
    if settings.national_ca_file is None:
        raise Problem(503, detail="the national CA is not configured on the hub (national_ca_file)")
    return load_pem_bundle(settings.national_ca_file.read_bytes())


def checked_signing_certificate(settings: HubSettings, pem: str) -> SM2Certificate:
    """The province's SM2 signing certificate, validated up to the national CA now."""
    try:
        certificate = SM2Certificate.load(pem.encode())
    except (CertificateError, ValueError) as exc:
        raise Problem(422, detail=f"signing_certificate is not an SM2 certificate: {exc}") from None
    try:
        verify_chain(certificate, _national_roots(settings))
    except CertificateError as exc:
        raise Problem(
            422,
            detail=f"signing_certificate is not valid under the national CA: {exc}",
            reason=exc.code.value,
        ) from None
    return certificate


def _unique(db: Session, region: str, client_id: str | None, fingerprint: str | None) -> None:
    if client_id is not None:
        other = db.scalar(select(Province).where(Province.oauth_client_id == client_id))
        if other is not None and other.region_code != region:
            raise conflict(f"OAuth client {client_id} is registered to {other.region_code}")
    if fingerprint is not None:
        other = db.scalar(select(Province).where(Province.tls_fingerprint == fingerprint))
        if other is not None and other.region_code != region:
            raise conflict(f"that TLS client certificate is registered to {other.region_code}")


def register(db: Session, settings: HubSettings, body: ProvinceIn, *, actor: str) -> ProvinceOut:
    if db.get(Province, body.region_code) is not None:
        raise conflict(f"province {body.region_code} is already registered")
    _unique(db, body.region_code, body.oauth_client_id, body.tls_fingerprint)
    certificate = checked_signing_certificate(settings, body.signing_certificate)
    now = utcnow()
    province = Province(
        region_code=body.region_code,
        name=body.name,
        status=body.status,
        endpoints={k: str(v).rstrip("/") for k, v in body.endpoints.items()},
        oauth_client_id=body.oauth_client_id,
        tls_fingerprint=body.tls_fingerprint,
        tls_subject=body.tls_subject,
        signing_certificate=certificate.to_pem().decode(),
        signing_key_id=certificate_key_id(certificate),
        created_at=now,
        updated_at=now,
    )
    db.add(province)
    audit.record(
        db,
        actor=actor,
        action="province.register",
        resource=f"province/{body.region_code}",
        result="success",
        detail={"oauth_client_id": body.oauth_client_id, "status": body.status},
    )
    db.flush()
    return province_out(province)


def registered(db: Session) -> list[ProvinceOut]:
    rows = db.scalars(select(Province).order_by(Province.region_code))
    return [province_out(p) for p in rows]


def _get(db: Session, region_code: str) -> Province:
    province = db.get(Province, region_code)
    if province is None:
        raise not_found(f"province {region_code} is not registered")
    return province


def registration(db: Session, region_code: str) -> ProvinceOut:
    return province_out(_get(db, region_code))


def change(
    db: Session, settings: HubSettings, region_code: str, body: ProvinceChange, *, actor: str
) -> ProvinceOut:
    province = _get(db, region_code)
    _unique(db, region_code, body.oauth_client_id, body.tls_fingerprint)
    changes: dict[str, Any] = body.model_dump(exclude_none=True)
    if "signing_certificate" in changes:
        certificate = checked_signing_certificate(settings, changes.pop("signing_certificate"))
        province.signing_certificate = certificate.to_pem().decode()
        province.signing_key_id = certificate_key_id(certificate)
        changes["signing_key_id"] = province.signing_key_id
    if "endpoints" in changes:
        changes["endpoints"] = {k: str(v).rstrip("/") for k, v in body.endpoints.items()}  # type: ignore[union-attr]
    for key, value in changes.items():
        setattr(province, key, value)
    province.updated_at = utcnow()
    audit.record(
        db,
        actor=actor,
        action="province.change",
        resource=f"province/{region_code}",
        result="success",
        detail={k: v for k, v in changes.items() if k in ("status", "oauth_client_id", "name")}
        | {"changed": sorted(changes)},
    )
    return province_out(province)
