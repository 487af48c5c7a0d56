"""The admin API: clients, accounts, the trust list and signing keys, for callers holding an
access token of this IdP, meant for it (audience), with the identity:admin scope: an
administrator signed in with two factors, or a provisioning client of the settings.

Made for automated, rerunnable provisioning: ``PUT`` creates or replaces (201 created, 200
updated or unchanged, saying which), lookups find what an earlier run made (an account by
login name), ``DELETE`` of what is gone already succeeds. Every change is audited with the
caller; refused input is an RFC 9457 problem."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from zwfw.services.identity import clients, trust
from zwfw.services.identity.accounts import (
    AccountConflict,
    AccountError,
    AccountIn,
    LevelIn,
)
from zwfw.services.identity.clients import ClientIn, ClientOut, ClientPut, ClientSpec
from zwfw.services.identity.events import Actor, record
from zwfw.services.identity.models import Account, Client
from zwfw.services.identity.oauth import ADMIN_SCOPE
from zwfw.services.identity.routes.deps import Service, bearer_token, client_address
from zwfw.services.identity.service import IdentityService
from zwfw.services.identity.trust import TrustIn, TrustPut
from zwfw.services.identity.validation import CLIENT_ID_PATTERN
from zwfw.services.kit import (
    DbSession,
    audit,
    authenticates_itself,
    bad_request,
    conflict,
    forbidden,
    not_found,
    unauthorized,
)
from zwfw.services.kit.problems import Problem

router = APIRouter(prefix="/admin", tags=["admin"])
# Every admin route checks its caller with require_admin, not with the kit's bearer check
# (which trusts another issuer's JWKS; the IdP checks its own token records).
ADMIN_TOKEN = "an access token of this IdP for its admin API (require_admin)"


def _denied(request: Request, svc: IdentityService, problem: Problem, who: str | None) -> Problem:
    if svc.settings.audit.record_denied:
        # Kept even though the request's transaction rolls back.
        audit.record(
            request,
            actor=who or "anonymous",
            action="auth.denied",
            resource=f"{request.method} {request.url.path}",
            result=f"denied:{problem.status}",
            detail={"reason": problem.detail},
        )
    return problem


def require_admin(request: Request, svc: Service, db: DbSession) -> Actor:
    """The caller, holding an active access token of this IdP for its admin API."""
    try:
        # Until the settings' provisioning clients are in force, none is trusted here.
        svc.provision(request.app.state.kit.sessions)
    except SQLAlchemyError:
        raise Problem(503, detail="the IdP's database is not ready; run zwfw migrate") from None
    try:
        token = bearer_token(request)
    except Problem as refused:
        raise _denied(request, svc, refused, None) from None
    found = svc.provider.own_token(db, token)
    if found is None:
        problem = unauthorized("the access token is invalid, expired or revoked")
        raise _denied(request, svc, problem, None)
    claims, row = found
    subject = str(claims["sub"])
    if ADMIN_SCOPE not in str(claims.get("scope", "")).split():
        problem = forbidden(
            f"the token lacks the scope {ADMIN_SCOPE}", required_scopes=[ADMIN_SCOPE]
        )
        raise _denied(request, svc, problem, subject)
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if svc.settings.issuer not in audiences:
        problem = unauthorized(
            f"the token is not meant for this IdP (aud lacks {svc.settings.issuer})"
        )
        raise _denied(request, svc, problem, subject)
    if row.account_id is not None:
        account = db.get(Account, row.account_id)
        if account is None or account.disabled or not account.is_admin:
            problem = forbidden("the token's account is not an active administrator")
            raise _denied(request, svc, problem, subject)
    elif row.subject != row.client_id:
        # On someone's behalf (token exchange for a federated person): not an administrator.
        problem = forbidden("the token's subject is not an administrator of this IdP")
        raise _denied(request, svc, problem, subject)
    else:
        client = db.get(Client, row.client_id)
        if client is None or client.disabled:
            problem = unauthorized("the token's client is disabled")
            raise _denied(request, svc, problem, subject)
    return Actor(subject, client_address(request))


Admin = Annotated[Actor, Depends(require_admin)]


@contextmanager
def _refusals() -> Iterator[None]:
    """Domain refusals as problems: 409 conflicts, 404 unknown names, 400 invalid input."""
    try:
        yield
    except (clients.ClientConflict, AccountConflict) as exc:
        raise conflict(str(exc)) from None
    except (clients.UnknownClient, trust.UnknownIssuer) as exc:
        raise not_found(str(exc)) from None
    except (clients.ClientError, trust.TrustError, AccountError) as exc:
        raise bad_request(str(exc)) from None


def _status(response: Response, result: str) -> None:
    response.status_code = 201 if result == "created" else 200


# --- clients -------------------------------------------------------------------------------


@router.post("/clients", status_code=201)
@authenticates_itself(ADMIN_TOKEN)
def admin_add_client(body: ClientIn, actor: Admin, db: DbSession) -> ClientOut:
    """Register a new client (409 if the id is taken); a client_secret_basic client's secret
    is in this answer only."""
    with _refusals():
        return clients.register_client(db, body, actor=actor)


@router.get("/clients")
@authenticates_itself(ADMIN_TOKEN)
def admin_list_clients(actor: Admin, db: DbSession) -> list[ClientOut]:
    return clients.list_clients(db)


@router.get("/clients/{client_id}")
@authenticates_itself(ADMIN_TOKEN)
def admin_get_client(client_id: str, actor: Admin, db: DbSession) -> ClientOut:
    with _refusals():
        return clients.get_client(db, client_id)


@router.put(
    "/clients/{client_id}",
    responses={201: {"model": ClientPut, "description": "Created"}},
)
@authenticates_itself(ADMIN_TOKEN)
def admin_put_client(
    client_id: Annotated[str, Path(pattern=CLIENT_ID_PATTERN)],
    body: ClientSpec,
    actor: Admin,
    db: DbSession,
    response: Response,
) -> ClientPut:
    """Create or replace the client: 201 created, 200 updated or unchanged (``result``)."""
    with _refusals():
        out, result = clients.put_client(db, client_id, body, actor=actor)
    _status(response, result)
    return ClientPut(result=result, client=out)


@router.delete("/clients/{client_id}", status_code=204)
@authenticates_itself(ADMIN_TOKEN)
def admin_disable_client(client_id: str, actor: Admin, db: DbSession) -> Response:
    """Disable the client and revoke its tokens (204 also when it was disabled already)."""
    with _refusals():
        clients.disable_client(db, client_id, actor=actor)
    return Response(status_code=204)


# --- accounts ------------------------------------------------------------------------------


class AccountOut(BaseModel):
    sub: str
    kind: str
    username: str
    name: str
    level: str
    region: str
    admin: bool
    disabled: bool
    # Enrolled second factors: totp, certificate.
    second_factors: list[str]
    # Only in the answer that enrolled it.
    totp_secret: str | None = None


def _account_out(account: Account, totp_secret: str | None = None) -> AccountOut:
    factors = [
        name
        for name, enrolled in (
            ("totp", account.totp_secret_enc is not None),
            ("certificate", account.certificate_pem is not None),
        )
        if enrolled
    ]
    return AccountOut(
        sub=account.sub,
        kind=account.kind,
        username=account.username,
        name=account.name,
        level=account.level,
        region=account.region,
        admin=account.is_admin,
        disabled=account.disabled,
        second_factors=factors,
        totp_secret=totp_secret,
    )


def _account(svc: IdentityService, db: Session, sub: str) -> Account:
    account = svc.accounts.by_sub(db, sub)
    if account is None:
        raise not_found("no such account")
    return account


@router.post("/accounts", status_code=201)
@authenticates_itself(ADMIN_TOKEN)
def admin_add_account(body: AccountIn, actor: Admin, svc: Service, db: DbSession) -> AccountOut:
    """Open an account (409 if the login name, ID number or credit code has one)."""
    with _refusals():
        return _account_out(svc.accounts.register(db, body, actor=actor))


@router.get("/accounts")
@authenticates_itself(ADMIN_TOKEN)
def admin_find_accounts(
    actor: Admin,
    svc: Service,
    db: DbSession,
    username: Annotated[str, Query(min_length=1, max_length=64, description="Login name.")],
) -> list[AccountOut]:
    """The account with this login name, if any (an empty list otherwise)."""
    account = svc.accounts.by_username(db, username)
    return [_account_out(account)] if account is not None else []


@router.get("/accounts/{sub}")
@authenticates_itself(ADMIN_TOKEN)
def admin_get_account(sub: str, actor: Admin, svc: Service, db: DbSession) -> AccountOut:
    return _account_out(_account(svc, db, sub))


@router.post("/accounts/{sub}/level")
@authenticates_itself(ADMIN_TOKEN)
def admin_set_level(
    sub: str, body: LevelIn, actor: Admin, svc: Service, db: DbSession
) -> AccountOut:
    """Move the account to ``level``; raising it needs what the level asks to be verified."""
    account = _account(svc, db, sub)
    with _refusals():
        svc.accounts.set_level(db, account, body, actor=actor)
    return _account_out(account)


@router.post("/accounts/{sub}/totp")
@authenticates_itself(ADMIN_TOKEN)
def admin_enrol_totp(sub: str, actor: Admin, svc: Service, db: DbSession) -> AccountOut:
    """A new TOTP secret for the account, in this answer only."""
    account = _account(svc, db, sub)
    secret = svc.accounts.replace_totp(db, account, actor=actor)
    return _account_out(account, totp_secret=secret)


# --- trust list ----------------------------------------------------------------------------


@router.put("/trust", responses={201: {"model": TrustPut, "description": "Created"}})
@authenticates_itself(ADMIN_TOKEN)
def admin_trust(
    body: TrustIn, actor: Admin, svc: Service, db: DbSession, response: Response
) -> TrustPut:
    """Trust an issuer as given: 201 created, 200 updated or unchanged (``result``)."""
    with _refusals():
        result = trust.put_issuer(db, svc.settings, body, actor=actor)
    _status(response, result)
    return TrustPut(result=result, entry=body)


@router.get("/trust")
@authenticates_itself(ADMIN_TOKEN)
def admin_trust_list(actor: Admin, db: DbSession) -> list[TrustIn]:
    return trust.list_issuers(db)


@router.delete("/trust", status_code=204)
@authenticates_itself(ADMIN_TOKEN)
def admin_untrust(
    actor: Admin,
    db: DbSession,
    issuer: Annotated[str, Query(min_length=1, max_length=255)],
) -> Response:
    """Stop trusting the issuer (204 also when it was removed already)."""
    with _refusals():
        trust.remove_issuer(db, issuer, actor=actor)
    return Response(status_code=204)


# --- signing keys --------------------------------------------------------------------------


@router.post("/keys/rotate")
@authenticates_itself(ADMIN_TOKEN)
def admin_rotate(actor: Admin, svc: Service, db: DbSession) -> dict[str, Any]:
    """Sign with a new key from now on; earlier keys stay published until their tokens
    expire."""
    kid = svc.provider.keys.rotate(db)
    record(db, "admin.keys.rotate", "success", actor=actor, kid=kid)
    return {"active_kid": kid, "published": [k["kid"] for k in svc.provider.keys.published(db)]}
