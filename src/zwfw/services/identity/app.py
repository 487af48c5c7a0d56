"""HTTP surface of the identity service: OIDC endpoints, login pages and the admin API."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from collections import deque
from pathlib import Path
from typing import Annotated, Any

from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from zwfw.crypto.fields import FieldProtector
from zwfw.services.identity.accounts import AccountError, Accounts
from zwfw.services.identity.keys import ALGORITHM
from zwfw.services.identity.models import Account, BrowserSession, Client, TrustedIssuer
from zwfw.services.identity.oauth import (
    ADMIN_SCOPE,
    ALL_AUTH_METHODS,
    STANDARD_SCOPES,
    TOKEN_EXCHANGE,
    AccountPrincipal,
    FormRequest,
    IdentityProvider,
    bound,
    record,
)
from zwfw.services.identity.pages import SECURITY_HEADERS, render
from zwfw.services.identity.security import (
    CertificateError,
    PasswordPolicyError,
    new_challenge,
    token_hash,
    verify_challenge_signature,
)
from zwfw.services.identity.settings import IdentitySettings
from zwfw.services.kit import (
    DbSession,
    bad_request,
    conflict,
    create_app,
    forbidden,
    not_found,
    public,
    unauthorized,
)
from zwfw.services.kit.problems import Problem

SESSION_COOKIE = "zwfw_idp_session"
MIGRATIONS = Path(__file__).parent / "migrations"


class RateLimiter:
    """Sliding one-minute window per client address."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] < now - 60:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return False
        hits.append(now)
        return True


class IdentityService:
    """Everything one instance needs, shared by its routes."""

    def __init__(self, settings: IdentitySettings) -> None:
        self.settings = settings
        self.protector = FieldProtector(
            bytes.fromhex(settings.data_key), bytes.fromhex(settings.lookup_key)
        )
        self.provider = IdentityProvider(settings, self.protector)
        self.accounts = Accounts(settings, self.protector)
        self.login_limit = RateLimiter(settings.login_rate_per_minute)
        self.token_limit = RateLimiter(settings.token_rate_per_minute)


def service(request: Request) -> IdentityService:
    return request.app.state.identity


Service = Annotated[IdentityService, Depends(service)]


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _form_items(request: Request) -> list[tuple[str, str]]:
    """The posted form, read on the event loop so that endpoints can be plain `def`.

    Endpoints touching the database run in the thread pool: a SQLite write lock held across an
    `await` would stall the event loop that its own commit needs.
    """
    if request.method != "POST":
        return []
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


FormItems = Annotated[list[tuple[str, str]], Depends(_form_items)]


def _oauth_request(request: Request, form: list[tuple[str, str]]) -> FormRequest:
    return FormRequest(
        request.method,
        str(request.url),
        # Starlette's headers: Authlib looks names up case-insensitively ("Authorization").
        request.headers,
        list(request.query_params.multi_items()),
        form,
    )


def _oauth_response(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    if isinstance(body, dict):
        return JSONResponse(body, status_code=status, headers=dict(headers))
    return Response(body or b"", status_code=status, headers=dict(headers))


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _too_many() -> Problem:
    return Problem(429, detail="too many requests; slow down", headers={"Retry-After": "60"})


# --- browser sessions ---------------------------------------------------------------------


def _load_session(db: Session, svc: IdentityService, request: Request) -> BrowserSession | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    row = db.get(BrowserSession, token_hash(raw))
    if row is None:
        return None
    now = time.time()
    settings = svc.settings
    if (
        now - row.last_seen_at > settings.session_idle_seconds
        or now - row.created_at > settings.session_absolute_seconds
    ):
        record(db, "session.timeout", "success", actor=_session_actor(db, row))
        db.delete(row)
        return None
    row.last_seen_at = now
    return row


def _session_actor(db: Session, row: BrowserSession) -> str | None:
    account = db.get(Account, row.account_id) if row.account_id else None
    return account.sub if account else None


def _new_session(db: Session, response: Response, svc: IdentityService) -> BrowserSession:
    raw = secrets.token_urlsafe(32)
    row = BrowserSession(
        id_hash=token_hash(raw), stage="password", csrf=secrets.token_urlsafe(24), amr=[]
    )
    db.add(row)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        httponly=True,
        secure=svc.settings.secure_cookies,
        samesite="lax",
        path="/",
    )
    return row


def _check_csrf(row: BrowserSession | None, form: dict[str, Any]) -> BrowserSession:
    if row is None or not secrets.compare_digest(str(form.get("csrf", "")), row.csrf):
        raise Problem(403, detail="the form expired or did not come from this site; reload it")
    return row


def _safe_next(svc: IdentityService, value: str) -> str:
    """Where to continue after sign-in: only this IdP's authorization endpoint, as an absolute
    URL so it resolves the same from every page (no open redirect)."""
    if not value:
        return ""
    parsed = urllib.parse.urlsplit(value)
    authorize = urllib.parse.urlsplit(svc.settings.issuer + "/authorize")
    if parsed.scheme or parsed.netloc:
        same = (parsed.scheme, parsed.netloc, parsed.path) == (
            authorize.scheme,
            authorize.netloc,
            authorize.path,
        )
    else:
        same = parsed.path.rsplit("/", 1)[-1] == "authorize"
    return f"{svc.settings.issuer}/authorize?{parsed.query}" if same else ""


# --- routes: discovery, keys ---------------------------------------------------------------

oidc = APIRouter()


@oidc.get("/.well-known/openid-configuration")
@public
def discovery(svc: Service) -> dict[str, Any]:
    issuer = svc.settings.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "end_session_endpoint": f"{issuer}/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            TOKEN_EXCHANGE,
        ],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "token_endpoint_auth_methods_supported": ALL_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": [ALGORITHM],
        "introspection_endpoint_auth_methods_supported": ALL_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": ALL_AUTH_METHODS,
        "scopes_supported": STANDARD_SCOPES,
        "claims_supported": [
            "sub",
            "name",
            "user_type",
            "acr",
            "region",
            "phone_number",
            "credit_code",
            "legal_representative",
        ],
        "acr_values_supported": svc.settings.assurance_levels,
        "zwfw_role": svc.settings.role,
        "zwfw_region_code": svc.settings.region_code,
    }


@oidc.get("/jwks")
@public
def jwks(svc: Service, db: DbSession) -> JSONResponse:
    return JSONResponse(
        svc.provider.keys.jwks(db),
        headers={"Cache-Control": "public, max-age=300"},
        media_type="application/jwk-set+json",
    )


# --- routes: token, introspection, revocation ------------------------------------------------


@oidc.post("/token")
@public
def token(request: Request, svc: Service, db: DbSession, form: FormItems) -> Response:
    if not svc.token_limit.allow(_address(request) or "-"):
        raise _too_many()
    oauth_request = _oauth_request(request, form)
    with bound(db, _address(request)):
        return _oauth_response(svc.provider.create_token_response(oauth_request))


@oidc.post("/introspect")
@public
def introspect(request: Request, svc: Service, db: DbSession, form: FormItems) -> Response:
    oauth_request = _oauth_request(request, form)
    with bound(db, _address(request)):
        return _oauth_response(
            svc.provider.create_endpoint_response("introspection", oauth_request)
        )


@oidc.post("/revoke")
@public
def revoke(request: Request, svc: Service, db: DbSession, form: FormItems) -> Response:
    oauth_request = _oauth_request(request, form)
    with bound(db, _address(request)):
        return _oauth_response(svc.provider.create_endpoint_response("revocation", oauth_request))


# --- routes: userinfo ------------------------------------------------------------------------


def _bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise unauthorized("a bearer access token is required")
    return value.strip()


# GET and POST are two routes so each has its own, stable, OpenAPI operation id.
@oidc.get("/userinfo", operation_id="userinfo_get")
@oidc.post("/userinfo", operation_id="userinfo_post")
@public
def userinfo(request: Request, svc: Service, db: DbSession) -> dict[str, Any]:
    claims = svc.provider.verify_own_token(db, _bearer(request))
    if claims is None:
        raise unauthorized("the access token is invalid, expired or revoked")
    if "openid" not in str(claims.get("scope", "")).split():
        raise forbidden("the access token lacks the openid scope", required_scopes=["openid"])
    account = svc.accounts.by_sub(db, claims["sub"])
    if account is None or account.disabled:
        raise unauthorized("the token's subject has no account here")
    return svc.provider.userinfo(db, account, claims["scope"])


# --- routes: authorization and login pages ----------------------------------------------------


def _authorize_error(error: OAuth2Error) -> Response:
    if error.redirect_uri:
        status, _, headers = error(None)
        return Response(status_code=302, headers=dict(headers))
    return Response(
        json.dumps({"error": error.error, "error_description": error.description}),
        status_code=400,
        media_type="application/json",
    )


@oidc.get("/authorize")
@public
def authorize(request: Request, svc: Service, db: DbSession) -> Response:
    oauth_request = _oauth_request(request, [])
    session = _load_session(db, svc, request)
    user = None
    if session is not None and session.stage == "complete" and session.account_id:
        account = db.get(Account, session.account_id)
        user = AccountPrincipal(account) if account and not account.disabled else None
    with bound(db, _address(request)):
        try:
            grant = svc.provider.get_consent_grant(oauth_request, end_user=user)
        except OAuth2Error as error:
            return _authorize_error(error)
    next_url = f"{svc.settings.issuer}/authorize?{request.url.query}"
    if user is None:
        return RedirectResponse(
            f"{svc.settings.issuer}/login?" + urllib.parse.urlencode({"next": next_url}),
            status_code=303,
        )
    client = grant.client
    params = [(k, v) for k, v in oauth_request.args.items()]
    return _html(
        render(
            "consent",
            title="授权 Consent",
            client_name=client.row.name,
            scopes=grant.request.scope,
            params=params,
            csrf=session.csrf,
            base=svc.settings.issuer,
        )
    )


@oidc.post("/authorize")
@public
def authorize_decision(request: Request, svc: Service, db: DbSession, items: FormItems) -> Response:
    form = dict(items)
    session = _check_csrf(_load_session(db, svc, request), form)
    if session.stage != "complete" or not session.account_id:
        return RedirectResponse(f"{svc.settings.issuer}/login", status_code=303)
    account = db.get(Account, session.account_id)
    params = [(k, str(v)) for k, v in form.items() if k not in ("csrf", "decision")]
    oauth_request = FormRequest("GET", str(request.url), request.headers, params, [])
    oauth_request.auth_time = session.auth_time
    oauth_request.amr = list(session.amr)
    with bound(db, _address(request)):
        try:
            grant = svc.provider.get_consent_grant(oauth_request, end_user=None)
        except OAuth2Error as error:
            return _authorize_error(error)
        allow = form.get("decision") == "allow" and account is not None
        user = AccountPrincipal(account) if allow and account else None
        record(
            db,
            "authorize.consent",
            "success" if allow else "denied",
            actor=account.sub if account else None,
            client_id=grant.client.get_client_id(),
        )
        status, _, headers = svc.provider.create_authorization_response(
            oauth_request, grant_user=user, grant=grant
        )
    return Response(status_code=302 if status == 302 else status, headers=dict(headers))


def _login_page(
    svc: IdentityService, session: BrowserSession, next_url: str, error: str | None = None
) -> HTMLResponse:
    return _html(
        render(
            "login",
            title="登录 Sign in",
            csrf=session.csrf,
            next=next_url,
            error=error,
            base=svc.settings.issuer,
        ),
        status=200 if error is None else 401,
    )


@oidc.get("/login")
@public
def login_form(request: Request, svc: Service, db: DbSession, next: str = "") -> Response:
    response = _html("")
    session = _load_session(db, svc, request)
    if session is None:
        session = _new_session(db, response, svc)
    page = _login_page(svc, session, _safe_next(svc, next))
    page.raw_headers.extend(h for h in response.raw_headers if h[0] == b"set-cookie")
    return page


def _second_factor_page(
    svc: IdentityService,
    session: BrowserSession,
    account: Account,
    next_url: str,
    error: str | None,
) -> HTMLResponse:
    if account.certificate_pem and not session.challenge:
        session.challenge = new_challenge()
    return _html(
        render(
            "second_factor",
            title="第二因素 Second factor",
            csrf=session.csrf,
            next=next_url,
            totp=account.totp_secret_enc is not None,
            certificate=account.certificate_pem is not None,
            challenge=session.challenge,
            error=error,
            base=svc.settings.issuer,
        ),
        status=200 if error is None else 401,
    )


def _finish(
    svc: IdentityService,
    db: Session,
    session: BrowserSession,
    account: Account,
    next_url: str,
    method: str,
) -> Response:
    session.stage = "complete"
    session.auth_time = time.time()
    session.amr = [*session.amr, method]
    record(db, "login.success", "success", actor=account.sub, methods=session.amr)
    return RedirectResponse(next_url or f"{svc.settings.issuer}/login", status_code=303)


@oidc.post("/login")
@public
def login_submit(request: Request, svc: Service, db: DbSession, items: FormItems) -> Response:
    if not svc.login_limit.allow(_address(request) or "-"):
        raise _too_many()
    form = dict(items)
    session = _check_csrf(_load_session(db, svc, request), form)
    next_url = _safe_next(svc, str(form.get("next", "")))
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    with bound(db, _address(request)):
        result = svc.accounts.authenticate(db, username, password)
        if result.outcome in ("invalid", "locked"):
            record(db, "login.password", "failure", actor=None, reason=result.outcome)
            message = (
                "登录失败次数过多，请稍后再试 Too many failed sign-ins; try again later."
                if result.outcome == "locked"
                else "登录名或密码错误 Wrong login name or password."
            )
            return _login_page(svc, session, next_url, message)
        account = result.account
        assert account is not None
        # A fresh identifier after the password step (no session fixation).
        db.delete(session)
        response = RedirectResponse(f"{svc.settings.issuer}/login", status_code=303)
        new = _new_session(db, response, svc)
        new.account_id = account.id
        new.amr = ["pwd"]
        record(db, "login.password", "success", actor=account.sub)
        if result.outcome == "expired":
            new.stage = "password_change"
            page = _html(
                render(
                    "password",
                    title="修改密码 Change password",
                    csrf=new.csrf,
                    next=next_url,
                    base=svc.settings.issuer,
                )
            )
        elif account.totp_secret_enc is not None or account.certificate_pem is not None:
            new.stage = "second_factor"
            page = _second_factor_page(svc, new, account, next_url, None)
        else:
            # Accounts without an enrolled second factor finish with the password alone; their
            # tokens say so in `amr`, and relying parties decide what that allows.
            redirect = _finish(svc, db, new, account, next_url, "pwd")
            redirect.headers["Set-Cookie"] = response.headers["Set-Cookie"]
            new.amr = ["pwd"]
            return redirect
        page.raw_headers.extend(h for h in response.raw_headers if h[0] == b"set-cookie")
        return page


def _pending(db: Session, svc: IdentityService, request: Request, form: dict[str, Any], stage: str):
    session = _check_csrf(_load_session(db, svc, request), form)
    if session.stage != stage or not session.account_id:
        raise Problem(409, detail="this sign-in step is not expected now; start again")
    account = db.get(Account, session.account_id)
    if account is None:
        raise Problem(409, detail="the account no longer exists")
    return session, account


@oidc.post("/login/totp")
@public
def login_totp(request: Request, svc: Service, db: DbSession, items: FormItems) -> Response:
    if not svc.login_limit.allow(_address(request) or "-"):
        raise _too_many()
    form = dict(items)
    session, account = _pending(db, svc, request, form, "second_factor")
    next_url = _safe_next(svc, str(form.get("next", "")))
    with bound(db, _address(request)):
        if not svc.accounts.check_totp(account, str(form.get("code", ""))):
            record(db, "login.totp", "failure", actor=account.sub)
            return _second_factor_page(svc, session, account, next_url, "动态口令错误 Wrong code.")
        record(db, "login.totp", "success", actor=account.sub)
        session.amr = [*session.amr, "otp"]
        return _finish(svc, db, session, account, next_url, "mfa")


@oidc.post("/login/certificate")
@public
def login_certificate(request: Request, svc: Service, db: DbSession, items: FormItems) -> Response:
    if not svc.login_limit.allow(_address(request) or "-"):
        raise _too_many()
    form = dict(items)
    session, account = _pending(db, svc, request, form, "second_factor")
    next_url = _safe_next(svc, str(form.get("next", "")))
    with bound(db, _address(request)):
        challenge = session.challenge
        # One signature attempt per challenge: a failure gets a fresh one.
        session.challenge = None
        try:
            if not account.certificate_pem or not challenge:
                raise CertificateError("no certificate is registered for this account")
            verify_challenge_signature(
                account.certificate_pem, challenge, str(form.get("signature", "")), time.time()
            )
        except CertificateError as exc:
            record(db, "login.certificate", "failure", actor=account.sub, reason=str(exc))
            return _second_factor_page(svc, session, account, next_url, str(exc))
        record(db, "login.certificate", "success", actor=account.sub)
        session.amr = [*session.amr, "hwk"]
        return _finish(svc, db, session, account, next_url, "mfa")


@oidc.post("/login/password")
@public
def login_password_change(
    request: Request, svc: Service, db: DbSession, items: FormItems
) -> Response:
    form = dict(items)
    session, account = _pending(db, svc, request, form, "password_change")
    next_url = _safe_next(svc, str(form.get("next", "")))
    with bound(db, _address(request)):
        try:
            svc.accounts.change_password(
                db, account, str(form.get("old_password", "")), str(form.get("new_password", ""))
            )
        except (AccountError, PasswordPolicyError) as exc:
            record(db, "account.password_change", "failure", actor=account.sub)
            return _html(
                render(
                    "password",
                    title="修改密码 Change password",
                    csrf=session.csrf,
                    next=next_url,
                    error=str(exc),
                    base=svc.settings.issuer,
                ),
                status=400,
            )
        record(db, "account.password_change", "success", actor=account.sub)
        if account.totp_secret_enc is not None or account.certificate_pem is not None:
            session.stage = "second_factor"
            return _second_factor_page(svc, session, account, next_url, None)
        return _finish(svc, db, session, account, next_url, "pwd")


@oidc.get("/logout")
@public
def logout(
    request: Request,
    svc: Service,
    db: DbSession,
    id_token_hint: str | None = None,
    post_logout_redirect_uri: str | None = None,
    state: str | None = None,
) -> Response:
    """RP-initiated logout: ends the session, then returns to a registered URI if asked."""
    client: Client | None = None
    if id_token_hint:
        try:
            claims = jwt.decode(id_token_hint, svc.provider.keys.key_set(db), [ALGORITHM]).claims
        except (JoseError, ValueError):
            raise bad_request("id_token_hint is not an ID token from this issuer") from None
        if claims.get("iss") != svc.settings.issuer:
            raise bad_request("id_token_hint is not an ID token from this issuer")
        aud = claims.get("aud")
        client = db.get(Client, aud[0] if isinstance(aud, list) else aud)
    session = _load_session(db, svc, request)
    if session is not None:
        record(db, "logout", "success", actor=_session_actor(db, session))
        db.delete(session)
    if post_logout_redirect_uri:
        if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
            raise bad_request("post_logout_redirect_uri is not registered for the client")
        target = post_logout_redirect_uri
        if state:
            target += ("&" if "?" in target else "?") + urllib.parse.urlencode({"state": state})
        response: Response = RedirectResponse(target, status_code=303)
    else:
        response = _html("<!doctype html><title>已退出</title><p>已退出 Signed out.</p>")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- admin API -----------------------------------------------------------------------------------

admin = APIRouter(prefix="/admin", tags=["admin"])


def require_admin(request: Request, svc: Service, db: DbSession) -> str:
    """The caller holds an access token from this IdP with the identity:admin scope."""
    claims = svc.provider.verify_own_token(db, _bearer(request))
    if claims is None:
        raise unauthorized("the access token is invalid, expired or revoked")
    if ADMIN_SCOPE not in str(claims.get("scope", "")).split():
        raise forbidden(f"the token lacks the scope {ADMIN_SCOPE}", required_scopes=[ADMIN_SCOPE])
    return str(claims["sub"])


Admin = Annotated[str, Depends(require_admin)]


class ClientIn(BaseModel):
    client_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{2,128}$")
    name: str
    auth_method: str
    jwks: dict[str, Any] | None = None
    tls_thumbprint: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    redirect_uris: list[str] = []
    post_logout_redirect_uris: list[str] = []
    grant_types: list[str]
    scopes: list[str] = []
    audiences: list[str] = []


class ClientOut(BaseModel):
    client_id: str
    name: str
    auth_method: str
    grant_types: list[str]
    scopes: list[str]
    redirect_uris: list[str]
    audiences: list[str]
    client_secret: str | None = None


GRANTS = {"authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE}


def register_client(db: Session, body: ClientIn) -> ClientOut:
    """Validate and store a client; a secret is generated only for client_secret_basic."""
    if body.auth_method not in ALL_AUTH_METHODS:
        raise bad_request(f"auth_method must be one of {ALL_AUTH_METHODS}")
    unknown = set(body.grant_types) - GRANTS
    if unknown:
        raise bad_request(f"unknown grant types {sorted(unknown)}")
    if "client_credentials" in body.grant_types and body.auth_method not in (
        "private_key_jwt",
        "self_signed_tls_client_auth",
    ):
        raise bad_request("client_credentials needs private_key_jwt or mutual-TLS authentication")
    if body.auth_method == "private_key_jwt" and not body.jwks:
        raise bad_request("private_key_jwt needs the client's public JWKS")
    if body.auth_method == "self_signed_tls_client_auth" and not body.tls_thumbprint:
        raise bad_request("mutual-TLS authentication needs the certificate's SHA-256 thumbprint")
    if "authorization_code" in body.grant_types and not body.redirect_uris:
        raise bad_request("authorization_code needs at least one redirect URI")
    if db.get(Client, body.client_id) is not None:
        raise conflict(f"client {body.client_id} exists")
    secret = secrets.token_urlsafe(32) if body.auth_method == "client_secret_basic" else None
    db.add(
        Client(
            client_id=body.client_id,
            name=body.name,
            auth_method=body.auth_method,
            secret_hash=token_hash(secret) if secret else None,
            jwks=body.jwks,
            tls_thumbprint=body.tls_thumbprint,
            redirect_uris=body.redirect_uris,
            post_logout_redirect_uris=body.post_logout_redirect_uris,
            grant_types=body.grant_types,
            scopes=body.scopes,
            audiences=body.audiences,
        )
    )
    return ClientOut(**body.model_dump(), client_secret=secret)


@admin.post("/clients", status_code=201)
@public
def admin_add_client(body: ClientIn, actor: Admin, db: DbSession) -> ClientOut:
    out = register_client(db, body)
    record(db, "admin.client.create", "success", actor=actor, client_id=body.client_id)
    return out


@admin.get("/clients")
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


@admin.delete("/clients/{client_id}", status_code=204)
@public
def admin_disable_client(client_id: str, actor: Admin, db: DbSession) -> Response:
    row = db.get(Client, client_id)
    if row is None:
        raise not_found(f"client {client_id} does not exist")
    row.disabled = True
    record(db, "admin.client.disable", "success", actor=actor, client_id=client_id)
    return Response(status_code=204)


class PersonIn(BaseModel):
    kind: str = Field(pattern=r"^(person|legal_person)$")
    username: str
    password: str
    name: str
    id_number: str | None = None
    phone: str | None = None
    credit_code: str | None = None
    legal_representative: str | None = None
    certificate_pem: str | None = None


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


def create_account(svc: IdentityService, db: Session, body: PersonIn) -> Account:
    try:
        if body.kind == "person":
            return svc.accounts.create_person(
                db,
                username=body.username,
                password=body.password,
                name=body.name,
                id_number=body.id_number,
                phone=body.phone,
            )
        if not body.credit_code or not body.legal_representative:
            raise AccountError("a legal person needs credit_code and legal_representative")
        return svc.accounts.create_legal_person(
            db,
            username=body.username,
            password=body.password,
            name=body.name,
            credit_code=body.credit_code,
            legal_representative=body.legal_representative,
            certificate_pem=body.certificate_pem,
            phone=body.phone,
        )
    except (AccountError, PasswordPolicyError, CertificateError) as exc:
        raise bad_request(str(exc)) from None


@admin.post("/accounts", status_code=201)
@public
def admin_add_account(body: PersonIn, actor: Admin, svc: Service, db: DbSession) -> AccountOut:
    account = create_account(svc, db, body)
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


@admin.post("/accounts/{sub}/level")
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


@admin.post("/accounts/{sub}/totp")
@public
def admin_enrol_totp(sub: str, actor: Admin, svc: Service, db: DbSession) -> AccountOut:
    account = _account(svc, db, sub)
    secret = svc.accounts.enrol_totp(account)
    record(db, "admin.account.totp", "success", actor=actor, subject=sub)
    return _account_out(account, totp_secret=secret)


class TrustIn(BaseModel):
    issuer: str
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    max_level: str | None = None


@admin.put("/trust")
@public
def admin_trust(body: TrustIn, actor: Admin, svc: Service, db: DbSession) -> TrustIn:
    add_trusted_issuer(svc, db, body)
    record(db, "admin.trust.put", "success", actor=actor, issuer=body.issuer)
    return body


def add_trusted_issuer(svc: IdentityService, db: Session, body: TrustIn) -> None:
    if not (body.jwks_uri or body.jwks) or (body.jwks_uri and body.jwks):
        raise bad_request("give exactly one of jwks_uri or jwks")
    if body.max_level is not None and body.max_level not in svc.settings.assurance_levels:
        raise bad_request(f"unknown assurance level {body.max_level}")
    row = db.get(TrustedIssuer, body.issuer) or TrustedIssuer(issuer=body.issuer)
    row.jwks_uri, row.jwks, row.max_level, row.enabled = (
        body.jwks_uri,
        body.jwks,
        body.max_level,
        True,
    )
    db.add(row)


@admin.get("/trust")
@public
def admin_trust_list(actor: Admin, db: DbSession) -> list[TrustIn]:
    rows = db.scalars(select(TrustedIssuer).where(TrustedIssuer.enabled.is_(True)))
    return [
        TrustIn(issuer=r.issuer, jwks_uri=r.jwks_uri, jwks=r.jwks, max_level=r.max_level)
        for r in rows
    ]


@admin.delete("/trust", status_code=204)
@public
def admin_untrust(issuer: str, actor: Admin, db: DbSession) -> Response:
    row = db.get(TrustedIssuer, issuer)
    if row is None:
        raise not_found(f"{issuer} is not on the trust list")
    row.enabled = False
    record(db, "admin.trust.remove", "success", actor=actor, issuer=issuer)
    return Response(status_code=204)


@admin.post("/keys/rotate")
@public
def admin_rotate(actor: Admin, svc: Service, db: DbSession) -> dict[str, Any]:
    kid = svc.provider.keys.rotate(db)
    record(db, "admin.keys.rotate", "success", actor=actor, kid=kid)
    return {"active_kid": kid, "published": [k["kid"] for k in svc.provider.keys.published(db)]}


# --- assembly ----------------------------------------------------------------------------------


def seed_trust_list(svc: IdentityService, db: Session) -> None:
    for entry in svc.settings.trust_list:
        if db.get(TrustedIssuer, entry.issuer) is None:
            db.add(
                TrustedIssuer(
                    issuer=entry.issuer,
                    jwks_uri=entry.jwks_uri,
                    jwks=entry.jwks,
                    max_level=entry.max_level,
                )
            )


def build(settings: IdentitySettings) -> FastAPI:
    svc = IdentityService(settings)

    def _startup(app: FastAPI) -> None:
        try:
            with app.state.kit.sessions.begin() as db:
                seed_trust_list(svc, db)
        except Exception:  # noqa: BLE001 - an unmigrated database is reported by /readyz
            return

    app = create_app(
        settings,
        title="identity",
        version="1.0",
        routers=[oidc, admin],
        migrations=MIGRATIONS,
        on_startup=[_startup],
        description="统一身份认证: OIDC provider, RFC 8693 federation, 等保 level-3 login.",
    )
    app.state.identity = svc
    return app
