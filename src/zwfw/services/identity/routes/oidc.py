"""OpenID Connect and OAuth 2.0 endpoints: discovery, keys, token, introspection, revocation,
userinfo, authorization (with consent) and logout."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Annotated, Any, cast

from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from zwfw.services.identity.events import bound, record
from zwfw.services.identity.keys import ALGORITHM
from zwfw.services.identity.models import Account, Client
from zwfw.services.identity.oauth import (
    ALL_AUTH_METHODS,
    STANDARD_SCOPES,
    TOKEN_EXCHANGE,
    AccountPrincipal,
    FormRequest,
)
from zwfw.services.identity.pages import render
from zwfw.services.identity.routes.deps import (
    CLIENT_AUTHENTICATION,
    JWK_SET,
    OAUTH_ERROR,
    OAUTH_ERRORS,
    REDIRECT,
    SIGN_IN_SESSION,
    FormItems,
    Service,
    authlib_request,
    authlib_response,
    bearer_token,
    client_address,
    html,
    too_many,
)
from zwfw.services.identity.service import IdentityService
from zwfw.services.identity.sessions import (
    SESSION_COOKIE,
    check_csrf,
    load_session,
    session_actor,
)
from zwfw.services.kit import (
    DbSession,
    authenticates_itself,
    bad_request,
    forbidden,
    kit_state,
    public,
    unauthorized,
)

router = APIRouter()

# What Authlib's server methods answer: status, body, headers.
OAuthResult = tuple[int, Any, list[tuple[str, str]]]


@router.get("/.well-known/openid-configuration")
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
        # Request objects are refused (request_not_supported); request_uri defaults to true.
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
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


@router.get("/jwks", response_class=Response, responses=JWK_SET)
@public
def jwks(svc: Service, db: DbSession) -> JSONResponse:
    return JSONResponse(
        svc.provider.keys.jwks(db),
        headers={"Cache-Control": "public, max-age=300"},
        media_type="application/jwk-set+json",
    )


# --- token, introspection, revocation ------------------------------------------------


async def _oauth_call(
    request: Request, form: list[tuple[str, str]], call: Callable[[FormRequest], OAuthResult]
) -> Response:
    """Run one Authlib call in its own transaction, in one trip to the thread pool: committed
    when it returns (error answers and their audit records included), rolled back when it
    raises. The request-scoped ``DbSession`` would cost two more trips, for opening and for
    committing, on the IdP's busiest routes."""
    oauth_request = authlib_request(request, form)
    sessions = kit_state(request.app).sessions
    address = client_address(request)

    def run() -> OAuthResult:
        with sessions.begin() as db, bound(db, address):
            return call(oauth_request)

    return authlib_response(await run_in_threadpool(run))


@router.post("/token", responses=OAUTH_ERRORS)
@authenticates_itself(CLIENT_AUTHENTICATION)
async def token(request: Request, svc: Service, form: FormItems) -> Response:
    if not svc.token_limit.allow(client_address(request) or "-"):
        raise too_many()
    return await _oauth_call(request, form, svc.provider.create_token_response)


@router.post("/introspect", responses=OAUTH_ERRORS)
@authenticates_itself(CLIENT_AUTHENTICATION)
async def introspect(request: Request, svc: Service, form: FormItems) -> Response:
    return await _oauth_call(
        request, form, lambda r: svc.provider.create_endpoint_response("introspection", r)
    )


@router.post("/revoke", responses=OAUTH_ERRORS)
@authenticates_itself(CLIENT_AUTHENTICATION)
async def revoke(request: Request, svc: Service, form: FormItems) -> Response:
    return await _oauth_call(
        request, form, lambda r: svc.provider.create_endpoint_response("revocation", r)
    )


# --- userinfo ------------------------------------------------------------------------


@router.get("/userinfo", operation_id="userinfo_get")
@router.post("/userinfo", operation_id="userinfo_post")
@authenticates_itself("an access token of this IdP, checked against its token records")
def userinfo(request: Request, svc: Service, db: DbSession) -> dict[str, Any]:
    claims = svc.provider.verify_own_token(db, bearer_token(request))
    if claims is None:
        raise unauthorized("the access token is invalid, expired or revoked")
    if "openid" not in str(claims.get("scope", "")).split():
        raise forbidden("the access token lacks the openid scope", required_scopes=["openid"])
    account = svc.accounts.by_sub(db, claims["sub"])
    if account is None or account.disabled:
        raise unauthorized("the token's subject has no account here")
    return svc.provider.userinfo(db, account, claims["scope"])


# --- authorization and consent ----------------------------------------------------------------


def _authorize_error(error: OAuth2Error) -> Response:
    if error.redirect_uri:
        status, _, headers = error(None)
        return Response(status_code=302, headers=dict(headers))
    return Response(
        json.dumps({"error": error.error, "error_description": error.description}),
        status_code=400,
        media_type="application/json",
    )


def _max_age(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise ValueError(value)
    return int(value)


def _after_sign_in(query: str) -> str:
    """An authorization request's query without what a fresh sign-in satisfies."""
    kept = []
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name == "max_age":
            continue
        if name == "prompt":
            value = " ".join(p for p in value.split() if p != "login")
            if not value:
                continue
        kept.append((name, value))
    return urllib.parse.urlencode(kept)


@router.get(
    "/authorize",
    response_class=HTMLResponse,
    responses={302: REDIRECT, 303: REDIRECT, 400: OAUTH_ERROR},
)
@public
def authorize(request: Request, svc: Service, db: DbSession) -> Response:
    oauth_request = authlib_request(request, [])
    session = load_session(db, svc.settings, request)
    user = None
    if session is not None and session.stage == "complete" and session.account_id:
        account = db.get(Account, session.account_id)
        user = AccountPrincipal(account) if account and not account.disabled else None
    try:
        max_age = _max_age(request.query_params.get("max_age"))
    except ValueError:
        return _authorize_error(InvalidRequestError("max_age must be a non-negative integer"))
    if user is not None and session is not None:
        # OpenID Connect Core 3.1.2.1: prompt=login, or a sign-in older than max_age, asks the
        # person to sign in again (with prompt=none that is login_required, from Authlib).
        age = time.time() - session.auth_time if session.auth_time is not None else None
        prompts = str(request.query_params.get("prompt", "")).split()
        if "login" in prompts or (max_age is not None and (age is None or age > max_age)):
            user = None
    with bound(db, client_address(request)):
        try:
            grant = svc.provider.get_consent_grant(oauth_request, end_user=user)
        except OAuth2Error as error:
            return _authorize_error(error)
    # The sign-in that follows satisfies prompt=login and any max_age: the request comes back
    # without them, or it would ask again forever.
    next_url = f"{svc.settings.issuer}/authorize?{_after_sign_in(request.url.query)}"
    if user is None or session is None:
        return RedirectResponse(
            f"{svc.settings.issuer}/login?" + urllib.parse.urlencode({"next": next_url}),
            status_code=303,
        )
    if "none" in str(request.query_params.get("prompt", "")).split():
        # OpenID Connect Core 3.1.2.1: prompt=none shows no page at all, and consent is asked
        # every time here (none is kept): the relying party learns consent_required.
        return _authorize_error(
            ConsentRequiredError(state=grant.request.payload.state, redirect_uri=grant.redirect_uri)
        )
    client = grant.client
    params = [(k, v) for k, v in oauth_request.args.items()]
    return html(
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


@router.post(
    "/authorize",
    response_class=Response,
    responses={302: REDIRECT, 303: REDIRECT, 400: OAUTH_ERROR},
)
@authenticates_itself(SIGN_IN_SESSION)
def authorize_decision(request: Request, svc: Service, db: DbSession, items: FormItems) -> Response:
    form = dict(items)
    if "client_id" in form and "csrf" not in form and "decision" not in form:
        # OpenID Connect Core 3.1.2.1: the endpoint takes an authorization request by POST as
        # by GET. It is answered as the same request by GET; only the consent page's own form
        # (its anti-forgery token and a decision) decides anything here.
        query = urllib.parse.urlencode(items)
        return RedirectResponse(f"{svc.settings.issuer}/authorize?{query}", status_code=303)
    session = check_csrf(load_session(db, svc.settings, request), form)
    if session.stage != "complete" or not session.account_id:
        return RedirectResponse(f"{svc.settings.issuer}/login", status_code=303)
    account = db.get(Account, session.account_id)
    params = [(k, str(v)) for k, v in form.items() if k not in ("csrf", "decision")]
    oauth_request = FormRequest("GET", str(request.url), request.headers, params, [])
    oauth_request.auth_time = session.auth_time
    oauth_request.amr = list(session.amr)
    with bound(db, client_address(request)):
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
        # Authlib answers (status, body, headers) here; its stubs say object.
        status, _, headers = cast(
            tuple[int, Any, list[tuple[str, str]]],
            svc.provider.create_authorization_response(oauth_request, grant_user=user, grant=grant),
        )
    return Response(status_code=302 if status == 302 else status, headers=dict(headers))


@router.get("/logout", response_class=HTMLResponse, responses={303: REDIRECT})
@public
def logout(
    request: Request,
    svc: Service,
    db: DbSession,
    id_token_hint: str | None = None,
    post_logout_redirect_uri: str | None = None,
    state: str | None = None,
    client_id: str | None = None,
) -> Response:
    """RP-initiated logout: ends the session, then returns to a registered URI if asked."""
    return _end_session(request, svc, db, id_token_hint, post_logout_redirect_uri, state, client_id)


@router.post("/logout", response_class=HTMLResponse, responses={303: REDIRECT})
@public
def logout_by_form(
    request: Request,
    svc: Service,
    db: DbSession,
    id_token_hint: Annotated[str | None, Form()] = None,
    post_logout_redirect_uri: Annotated[str | None, Form()] = None,
    state: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
) -> Response:
    """RP-initiated logout posted as a form (RP-Initiated Logout 1.0 §2: GET and POST)."""
    return _end_session(request, svc, db, id_token_hint, post_logout_redirect_uri, state, client_id)


def _end_session(
    request: Request, svc: IdentityService, db: Session, id_token_hint: str | None,
    post_logout_redirect_uri: str | None, state: str | None, client_id: str | None,
) -> Response:  # fmt: skip
    client: Client | None = None
    if id_token_hint:
        try:
            claims = jwt.decode(id_token_hint, svc.provider.keys.key_set(db), [ALGORITHM]).claims
        except (JoseError, ValueError):
            raise bad_request("id_token_hint is not an ID token from this issuer") from None
        if claims.get("iss") != svc.settings.issuer:
            raise bad_request("id_token_hint is not an ID token from this issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        # RP-Initiated Logout 1.0 §2: a client_id given with a hint must be the hint's client.
        if client_id is not None and client_id not in audiences:
            raise bad_request("client_id is not the client the id_token_hint was issued to")
        client = db.get(Client, client_id or audiences[0])
    elif client_id is not None:
        client = db.get(Client, client_id)
    if post_logout_redirect_uri and (
        client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris
    ):
        raise bad_request("post_logout_redirect_uri is not registered for the client")
    session = load_session(db, svc.settings, request)
    if session is not None:
        record(db, "logout", "success", actor=session_actor(db, session))
        db.delete(session)
    if post_logout_redirect_uri:
        target = post_logout_redirect_uri
        if state:
            target += ("&" if "?" in target else "?") + urllib.parse.urlencode({"state": state})
        response: Response = RedirectResponse(target, status_code=303)
    else:
        response = html("<!doctype html><title>已退出</title><p>已退出 Signed out.</p>")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
