"""The trust list: IdPs (the national IdP) whose tokens are exchanged here (RFC 8693)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from zwfw.services.identity.models import TrustedIssuer
from zwfw.services.identity.settings import IdentitySettings
from zwfw.services.kit import bad_request


class TrustIn(BaseModel):
    issuer: str
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    max_level: str | None = None


def add_trusted_issuer(settings: IdentitySettings, db: Session, body: TrustIn) -> None:
    if not (body.jwks_uri or body.jwks) or (body.jwks_uri and body.jwks):
        raise bad_request("give exactly one of jwks_uri or jwks")
    if body.max_level is not None and body.max_level not in settings.assurance_levels:
        raise bad_request(f"unknown assurance level {body.max_level}")
    row = db.get(TrustedIssuer, body.issuer) or TrustedIssuer(issuer=body.issuer)
    row.jwks_uri, row.jwks, row.max_level, row.enabled = (
        body.jwks_uri,
        body.jwks,
        body.max_level,
        True,
    )
    db.add(row)


def seed_trust_list(settings: IdentitySettings, db: Session) -> None:
    for entry in settings.trust_list:
        if db.get(TrustedIssuer, entry.issuer) is None:
            db.add(
                TrustedIssuer(
                    issuer=entry.issuer,
                    jwks_uri=entry.jwks_uri,
                    jwks=entry.jwks,
                    max_level=entry.max_level,
                )
            )
