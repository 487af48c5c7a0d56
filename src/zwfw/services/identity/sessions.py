"""Browser sessions of the sign-in pages: an opaque cookie (only its hash is stored), idle and
absolute timeouts, the anti-forgery token, and where to continue after sign-in."""

from __future__ import annotations

import secrets
import time
import urllib.parse
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from zwfw.services.identity.events import record
from zwfw.services.identity.models import Account, BrowserSession
from zwfw.services.identity.security import token_hash
from zwfw.services.identity.settings import IdentitySettings
from zwfw.services.kit.problems import Problem

SESSION_COOKIE = "zwfw_idp_session"


def load_session(
    db: Session, settings: IdentitySettings, request: Request
) -> BrowserSession | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    row = db.get(BrowserSession, token_hash(raw))
    if row is None:
        return None
    now = time.time()
    if (
        now - row.last_seen_at > settings.session_idle_seconds
        or now - row.created_at > settings.session_absolute_seconds
    ):
        record(db, "session.timeout", "success", actor=session_actor(db, row))
        db.delete(row)
        return None
    row.last_seen_at = now
    return row


def session_actor(db: Session, row: BrowserSession) -> str | None:
    account = db.get(Account, row.account_id) if row.account_id else None
    return account.sub if account else None


def new_session(db: Session, response: Response, settings: IdentitySettings) -> BrowserSession:
    raw = secrets.token_urlsafe(32)
    row = BrowserSession(
        id_hash=token_hash(raw), stage="password", csrf=secrets.token_urlsafe(24), amr=[]
    )
    db.add(row)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path="/",
    )
    return row


def check_csrf(row: BrowserSession | None, form: dict[str, Any]) -> BrowserSession:
    if row is None or not secrets.compare_digest(str(form.get("csrf", "")), row.csrf):
        raise Problem(403, detail="the form expired or did not come from this site; reload it")
    return row


def safe_next(settings: IdentitySettings, value: str) -> str:
    """Where to continue after sign-in: only this IdP's authorization endpoint, as an absolute
    URL so it resolves the same from every page (no open redirect)."""
    if not value:
        return ""
    parsed = urllib.parse.urlsplit(value)
    authorize = urllib.parse.urlsplit(settings.issuer + "/authorize")
    if parsed.scheme or parsed.netloc:
        same = (parsed.scheme, parsed.netloc, parsed.path) == (
            authorize.scheme,
            authorize.netloc,
            authorize.path,
        )
    else:
        same = parsed.path.rsplit("/", 1)[-1] == "authorize"
    return f"{settings.issuer}/authorize?{parsed.query}" if same else ""
