"""The admin API: clients, accounts, the trust list and signing keys, for callers holding an
access token of this IdP with the identity:admin scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from zwfw.services.identity.accounts import AccountError, PersonIn
from zwfw.services.identity.clients import ClientIn, ClientOut, register_client
from zwfw.services.identity.events import record
from zwfw.services.identity.models import Account, Client, TrustedIssuer
from zwfw.services.identity.oauth import ADMIN_SCOPE
from zwfw.services.identity.routes.deps import Service, bearer_token
from zwfw.services.identity.service import IdentityService
from zwfw.services.identity.trust import TrustIn, add_trusted_issuer
from zwfw.services.kit import DbSession, bad_request, forbidden, not_found, public, unauthorized

router = APIRouter(prefix="/admin", tags=["admin"])


def require_admin(request: Request, svc: Service, db: DbSession) -> str:
    """The caller holds an access token from this IdP with the identity:admin scope."""
    claims = svc.provider.verify_own_token(db, bearer_token(request))
    if claims is None:
        raise unauthorized("the access token is invalid, expired or revoked")
    if ADMIN_SCOPE not in str(claims.get("scope", "")).split():
        raise forbidden(f"the token lacks the scope {ADMIN_SCOPE}", required_scopes=[ADMIN_SCOPE])
    return str(claims["sub"])


Admin = Annotated[str, Depends(require_admin)]


@router.post("/clients", status_code=201)
@public
def admin_add_client(body: ClientIn, actor: Admin, db: DbSession) -> ClientOut:
    out = register_client(db, body)
    record(db, "admin.client.create", "success", actor=actor, client_id=body.client_id)
    return out


@router.get("/clients")
@public
def admin_list_clients(actor: Admin, db: DbSession) -> list[ClientOut]:
    rows = db.scalars(select(Client).order_by(Client.client_id))
    return [
        ClientOut(
            client_id=r.client_id,
            name=r.name,
            auth_method=r.auth_method,
            grant_types=r.grant_types,
            scopes=r.scopes,
            redirect_uris=r.redirect_uris,
            audiences=r.audiences,
        )
        for r in rows
    ]


@router.delete("/clients/{client_id}", status_code=204)
@public
def admin_disable_client(client_id: str, actor: Admin, db: DbSession) -> Response:
    row = db.get(Client, client_id)
    if row is None:
        raise not_found(f"client {client_id} does not exist")
    row.disabled = True
    record(db, "admin.client.disable", "success", actor=actor, client_id=client_id)
    return Response(status_code=204)


class AccountOut(BaseModel):
    sub: str
    kind: str
    username: str
    level: str
    region: str
    totp_secret: str | None = None


def _account_out(account: Account, totp_secret: str | None = None) -> AccountOut:
    return AccountOut(
        sub=account.sub,
        kind=account.kind,
        username=account.username,
        level=account.level,
        region=account.region,
        totp_secret=totp_secret,
    )


@router.post("/accounts", status_code=201)
@public
def admin_add_account(body: PersonIn, actor: Admin, svc: Service, db: DbSession) -> AccountOut:
    account = _create_account(svc, db, body)
    record(db, "admin.account.create", "success", actor=actor, subject=account.sub)
    return _account_out(account)


def _account(svc: IdentityService, db: Session, sub: str) -> Account:
    account = svc.accounts.by_sub(db, sub)
    if account is None:
        raise not_found("no such account")
    return account


class LevelIn(BaseModel):
    level: str
    verified_attributes: list[str] = []
    evidence_ref: str = Field(min_length=1, description="Reference of the verification record.")


@router.post("/accounts/{sub}/level")
@public
def admin_set_level(
    sub: str, body: LevelIn, actor: Admin, svc: Service, db: DbSession
) -> AccountOut:
    account = _account(svc, db, sub)
    try:
        previous = svc.accounts.change_level(db, account, body.level, body.verified_attributes)
    except AccountError as exc:
        raise bad_request(str(exc)) from None
    record(
        db,
        "admin.account.level",
        "success",
        actor=actor,
        subject=sub,
        previous=previous,
        level=body.level,
        attributes=sorted(body.verified_attributes),
        evidence=body.evidence_ref,
    )
    return _account_out(account)


@router.post("/accounts/{sub}/totp")
@public
def admin_enrol_totp(sub: str, actor: Admin, svc: Service, db: DbSession) -> AccountOut:
    account = _account(svc, db, sub)
    secret = svc.accounts.enrol_totp(account)
    record(db, "admin.account.totp", "success", actor=actor, subject=sub)
    return _account_out(account, totp_secret=secret)


@router.put("/trust")
@public
def admin_trust(body: TrustIn, actor: Admin, svc: Service, db: DbSession) -> TrustIn:
    add_trusted_issuer(svc.settings, db, body)
    record(db, "admin.trust.put", "success", actor=actor, issuer=body.issuer)
    return body


@router.get("/trust")
@public
def admin_trust_list(actor: Admin, db: DbSession) -> list[TrustIn]:
    rows = db.scalars(select(TrustedIssuer).where(TrustedIssuer.enabled.is_(True)))
    return [
        TrustIn(issuer=r.issuer, jwks_uri=r.jwks_uri, jwks=r.jwks, max_level=r.max_level)
        for r in rows
    ]


@router.delete("/trust", status_code=204)
@public
def admin_untrust(issuer: str, actor: Admin, db: DbSession) -> Response:
    row = db.get(TrustedIssuer, issuer)
    if row is None:
        raise not_found(f"{issuer} is not on the trust list")
    row.enabled = False
    record(db, "admin.trust.remove", "success", actor=actor, issuer=issuer)
    return Response(status_code=204)


@router.post("/keys/rotate")
@public
def admin_rotate(actor: Admin, svc: Service, db: DbSession) -> dict[str, Any]:
    kid = svc.provider.keys.rotate(db)
    record(db, "admin.keys.rotate", "success", actor=actor, kid=kid)
    return {"active_kid": kid, "published": [k["kid"] for k in svc.provider.keys.published(db)]}


def _create_account(svc: IdentityService, db: Session, body: PersonIn) -> Account:
    try:
        return svc.accounts.create(db, body)
    except AccountError as exc:
        raise bad_request(str(exc)) from None
