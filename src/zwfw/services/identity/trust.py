"""The trust list: IdPs (the national IdP) whose tokens are exchanged here (RFC 8693). The one
place that changes it; every change is audited with its actor."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from zwfw.services.identity.events import Actor, record
from zwfw.services.identity.models import TrustedIssuer
from zwfw.services.identity.settings import IdentitySettings
from zwfw.services.identity.validation import http_url, public_jwks

Change = Literal["created", "updated", "unchanged"]


class TrustError(ValueError):
    """The trust list entry is refused; the message says why."""


class UnknownIssuer(LookupError):
    """The issuer has never been on the trust list."""


class TrustIn(BaseModel):
    """One trusted issuer: its keys by URL or inline, and the highest assurance level its
    tokens carry over. The body of ``PUT /admin/trust``."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1, max_length=255)
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    max_level: str | None = None


class TrustPut(BaseModel):
    """The answer to ``PUT /admin/trust``: what the request changed."""

    result: Change
    entry: TrustIn


def checked(settings: IdentitySettings, entry: TrustIn) -> TrustIn:
    if (entry.jwks_uri is None) == (entry.jwks is None):
        raise TrustError("give exactly one of jwks_uri or jwks")
    try:
        http_url(entry.issuer, "issuer")
        if entry.jwks_uri is not None:
            http_url(entry.jwks_uri, "jwks_uri")
        if entry.jwks is not None:
            public_jwks(entry.jwks)
    except ValueError as exc:
        raise TrustError(str(exc)) from None
    if entry.max_level is not None and entry.max_level not in settings.assurance_levels:
        raise TrustError(f"unknown assurance level {entry.max_level}")
    return entry


def _entry(row: TrustedIssuer) -> TrustIn:
    return TrustIn(issuer=row.issuer, jwks_uri=row.jwks_uri, jwks=row.jwks, max_level=row.max_level)


def list_issuers(db: Session) -> list[TrustIn]:
    """The issuers trusted now."""
    rows = db.scalars(
        select(TrustedIssuer).where(TrustedIssuer.enabled.is_(True)).order_by(TrustedIssuer.issuer)
    )
    return [_entry(row) for row in rows]


def put_issuer(
    db: Session, settings: IdentitySettings, entry: TrustIn, *, actor: Actor | str
) -> Change:
    """Trust ``entry.issuer`` as ``entry`` says: created, updated (also when it had been
    removed) or left alone when it already is."""
    entry = checked(settings, entry)
    row = db.get(TrustedIssuer, entry.issuer)
    if row is not None and row.enabled and _entry(row) == entry:
        return "unchanged"
    result: Change = "created" if row is None else "updated"
    if row is None:
        row = TrustedIssuer(issuer=entry.issuer)
        db.add(row)
    row.jwks_uri, row.jwks, row.max_level, row.enabled = (
        entry.jwks_uri,
        entry.jwks,
        entry.max_level,
        True,
    )
    record(
        db, "admin.trust.put", "success", actor=actor, issuer=entry.issuer, result=result,
        jwks_uri=entry.jwks_uri, max_level=entry.max_level,
    )  # fmt: skip
    return result


def remove_issuer(db: Session, issuer: str, *, actor: Actor | str) -> bool:
    """Stop trusting ``issuer``; False when it was not trusted any more."""
    row = db.get(TrustedIssuer, issuer)
    if row is None:
        raise UnknownIssuer(f"{issuer} is not on the trust list")
    if not row.enabled:
        return False
    row.enabled = False
    record(db, "admin.trust.remove", "success", actor=actor, issuer=issuer)
    return True


def seed_trust_list(db: Session, settings: IdentitySettings) -> None:
    """Add the settings' trust list entries the database does not know yet; entries changed
    or removed through the admin API stay as they are."""
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
