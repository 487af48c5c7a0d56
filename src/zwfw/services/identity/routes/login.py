"""The sign-in pages: password with lockout, second factor (TOTP or certificate signature),
change of an expired password; each step checks its session and anti-forgery token."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from zwfw.services.identity.accounts import AccountError
from zwfw.services.identity.events import bound, record
from zwfw.services.identity.models import Account, BrowserSession
from zwfw.services.identity.pages import render
from zwfw.services.identity.routes.deps import (
    SIGN_IN_SESSION,
    FormItems,
    Service,
    client_address,
    html,
    too_many,
)
from zwfw.services.identity.security import (
    CertificateError,
    PasswordPolicyError,
    new_challenge,
    verify_challenge_signature,
)
from zwfw.services.identity.service import IdentityService
from zwfw.services.identity.sessions import (
    check_csrf,
    load_session,
    new_session,
    safe_next,
)
from zwfw.services.kit import DbSession, authenticates_itself, public
from zwfw.services.kit.problems import Problem

router = APIRouter()

# A lock is announced for any name, existing or not, so neither message tells names apart.
LOCKED_MESSAGE = "登录失败次数过多，请稍后再试 Too many failed sign-ins; try again later."
INVALID_MESSAGE = "登录名或密码错误 Wrong login name or password."


def _login_page(
    svc: IdentityService, session: BrowserSession, next_url: str, error: str | None = None
) -> HTMLResponse:
    return html(
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


@router.get("/login", response_class=HTMLResponse)
@public
def login_form(request: Request, svc: Service, db: DbSession, next: str = "") -> Response:
    response = html("")
    session = load_session(db, svc.settings, request)
    if session is None:
        session = new_session(db, response, svc.settings)
    page = _login_page(svc, session, safe_next(svc.settings, next))
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
    return html(
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


@router.post("/login")
@authenticates_itself(SIGN_IN_SESSION)
def login_submit(request: Request, svc: Service, db: DbSession, items: FormItems) -> Response:
    if not svc.login_limit.allow(client_address(request) or "-"):
        raise too_many()
    form = dict(items)
    session = check_csrf(load_session(db, svc.settings, request), form)
    next_url = safe_next(svc.settings, str(form.get("next", "")))
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    with bound(db, client_address(request)):
        result = svc.accounts.authenticate(db, username, password)
        if result.outcome in ("invalid", "locked"):
            record(db, "login.password", "failure", actor=None, reason=result.outcome)
            message = LOCKED_MESSAGE if result.outcome == "locked" else INVALID_MESSAGE
            return _login_page(svc, session, next_url, message)
        account = result.account
        assert account is not None
        # A fresh identifier after the password step (no session fixation).
        db.delete(session)
        response = RedirectResponse(f"{svc.settings.issuer}/login", status_code=303)
        new = new_session(db, response, svc.settings)
        new.account_id = account.id
        new.amr = ["pwd"]
        record(db, "login.password", "success", actor=account.sub)
        if result.outcome == "expired":
            new.stage = "password_change"
            page = html(
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
    session = check_csrf(load_session(db, svc.settings, request), form)
    if session.stage != stage or not session.account_id:
        raise Problem(409, detail="this sign-in step is not expected now; start again")
    account = db.get(Account, session.account_id)
    if account is None:
        raise Problem(409, detail="the account no longer exists")
    return session, account


@router.post("/login/totp")
@authenticates_itself(SIGN_IN_SESSION)
def login_totp(request: Request, svc: Service, db: DbSession, items: FormItems) -> Response:
    if not svc.login_limit.allow(client_address(request) or "-"):
        raise too_many()
    form = dict(items)
    session, account = _pending(db, svc, request, form, "second_factor")
    next_url = safe_next(svc.settings, str(form.get("next", "")))
    with bound(db, client_address(request)):
        if not svc.accounts.check_totp(account, str(form.get("code", ""))):
            record(db, "login.totp", "failure", actor=account.sub)
            return _second_factor_page(svc, session, account, next_url, "动态口令错误 Wrong code.")
        record(db, "login.totp", "success", actor=account.sub)
        session.amr = [*session.amr, "otp"]
        return _finish(svc, db, session, account, next_url, "mfa")


@router.post("/login/certificate")
@authenticates_itself(SIGN_IN_SESSION)
def login_certificate(request: Request, svc: Service, db: DbSession, items: FormItems) -> Response:
    if not svc.login_limit.allow(client_address(request) or "-"):
        raise too_many()
    form = dict(items)
    session, account = _pending(db, svc, request, form, "second_factor")
    next_url = safe_next(svc.settings, str(form.get("next", "")))
    with bound(db, client_address(request)):
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


@router.post("/login/password")
@authenticates_itself(SIGN_IN_SESSION)
def login_password_change(
    request: Request, svc: Service, db: DbSession, items: FormItems
) -> Response:
    form = dict(items)
    session, account = _pending(db, svc, request, form, "password_change")
    next_url = safe_next(svc.settings, str(form.get("next", "")))
    with bound(db, client_address(request)):
        try:
            svc.accounts.change_password(
                db, account, str(form.get("old_password", "")), str(form.get("new_password", ""))
            )
        except (AccountError, PasswordPolicyError) as exc:
            record(db, "account.password_change", "failure", actor=account.sub)
            return html(
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
