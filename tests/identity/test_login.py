"""等保 level-3 sign-in: second factors (TOTP, certificate), session timeouts, logout,
password expiry and rate limits, through the server-rendered pages."""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile
from zwfw.services.identity.models import Account, BrowserSession
from zwfw.services.kit import audit

from .browser import Form, sign_in
from .support import ISSUER, PASSWORD, Idp, add_client, add_person, pkce_pair, started

REDIRECT = "https://rp.test/cb"
LOGOUT_REDIRECT = "https://rp.test/bye"


def _rp(idp: Idp, audiences: tuple[str, ...] = ()) -> None:
    add_client(
        idp,
        client_id="rp",
        name="办事大厅",
        auth_method="none",
        redirect_uris=[REDIRECT],
        post_logout_redirect_uris=[LOGOUT_REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "identity:admin"],
        audiences=list(audiences),
    )


def _authorize_url(challenge: str, scope: str = "openid profile") -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "rp",
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{ISSUER}/authorize?{query}"


def _tokens(idp: Idp, code: str, verifier: str) -> dict[str, Any]:
    r = idp.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "rp",
            "code_verifier": verifier,
        },
    )
    assert r.status_code == 200, r.text
    return r.json()


def _id_claims(idp: Idp, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(idp.client.get("/jwks").json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


def _login(idp: Idp, username: str = "zhangsan", **kwargs: Any) -> tuple[Any, str]:
    verifier, challenge = pkce_pair()
    result = sign_in(idp.client, _authorize_url(challenge), REDIRECT, username, PASSWORD, **kwargs)
    return result, verifier


def _events(idp: Idp, action: str) -> list[Any]:
    with idp.db() as db:
        rows = db.execute(select(audit.audit_log).where(audit.audit_log.c.action == action))
        return list(rows)


# --- second factors ---------------------------------------------------------------------------


def _enrol_totp(idp: Idp, username: str) -> str:
    with idp.db() as db:
        account = db.scalars(select(Account).where(Account.username == username)).one()
        return idp.svc.accounts.enrol_totp(account)


def test_totp_second_factor(idp: Idp) -> None:
    _rp(idp)
    add_person(idp)
    secret = _enrol_totp(idp, "zhangsan")

    def wrong(form: Form, html: str) -> dict[str, str] | None:
        return {"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"}

    refused, _ = _login(idp, second_factor=wrong)
    assert refused.location is None
    assert refused.response.status_code == 401
    assert "Wrong code" in refused.response.text
    assert _events(idp, "login.totp")[-1].result == "failure"

    idp.client.cookies.clear()
    result, verifier = _login(
        idp, second_factor=lambda form, html: {"code": pyotp.TOTP(secret).now()}
    )
    tokens = _tokens(idp, result.query["code"], verifier)
    claims = _id_claims(idp, tokens["id_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_password_alone_does_not_reach_consent_when_a_factor_is_enrolled(idp: Idp) -> None:
    _rp(idp)
    add_person(idp)
    _enrol_totp(idp, "zhangsan")
    halfway, _ = _login(idp)  # no second factor given
    assert halfway.location is None
    assert 'name="code"' in halfway.response.text
    _, challenge = pkce_pair()
    again = idp.client.get(_authorize_url(challenge), follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith(f"{ISSUER}/login?")


def _p256_certificate() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "合肥示例科技有限公司")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def _challenge(html: str) -> str:
    match = re.search(r'<pre id="challenge">([^<]+)</pre>', html)
    assert match, html
    return match.group(1)


def _valid_credit_code() -> str:
    from zwfw.codes import parse_credit_code

    for check in "0123456789ABCDEFGHJKLMNPQRTUWXY":
        candidate = "91340100MA2MXXXXX" + check
        try:
            parse_credit_code(candidate)
        except ValueError:
            continue
        return candidate
    raise AssertionError("no valid check character")


def _certificate_login(idp: Idp, certificate_pem: str, sign: Any) -> tuple[Any, str]:
    _rp(idp)
    add_person(
        idp,
        username="hefei-tech",
        kind="legal_person",
        name="合肥示例科技有限公司",
        id_number=None,
        credit_code=_valid_credit_code(),
        legal_representative="赵六",
        certificate_pem=certificate_pem,
    )

    def factor(form: Form, html: str) -> dict[str, str] | None:
        if "signature" not in form.fields:
            return None
        signature = sign(_challenge(html).encode())
        return {"signature": base64.b64encode(signature).decode()}

    return _login(idp, "hefei-tech", second_factor=factor)


def test_certificate_login_with_p256(idp: Idp) -> None:
    key, pem = _p256_certificate()
    result, verifier = _certificate_login(
        idp, pem, lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))
    )
    claims = _id_claims(idp, _tokens(idp, result.query["code"], verifier)["id_token"])
    assert claims["amr"] == ["pwd", "hwk", "mfa"]
    assert claims["user_type"] == "legal_person"


def test_certificate_login_refuses_another_key(idp: Idp) -> None:
    _, pem = _p256_certificate()
    other = ec.generate_private_key(ec.SECP256R1())
    result, _ = _certificate_login(
        idp, pem, lambda message: other.sign(message, ec.ECDSA(hashes.SHA256()))
    )
    assert result.location is None
    assert result.response.status_code == 401
    assert "does not verify with the certificate&#39;s P-256 key" in result.response.text
    assert _events(idp, "login.certificate")[-1].result == "failure"


def _sm2_certificate() -> tuple[SM2PrivateKey, str]:
    ca = CertificateAuthority.create_root("安徽省数字证书认证中心 (test)")
    key = SM2PrivateKey.generate()
    cert = ca.issue(key.public_key, "合肥示例科技有限公司", CertProfile.SIGNER)
    return key, cert.to_pem().decode()


def test_certificate_login_with_sm2(idp: Idp) -> None:
    key, pem = _sm2_certificate()
    result, verifier = _certificate_login(idp, pem, key.sign)
    claims = _id_claims(idp, _tokens(idp, result.query["code"], verifier)["id_token"])
    assert claims["amr"] == ["pwd", "hwk", "mfa"]


def test_sm2_certificate_login_refuses_another_key(idp: Idp) -> None:
    _, pem = _sm2_certificate()
    other = SM2PrivateKey.generate()
    result, _ = _certificate_login(idp, pem, other.sign)
    assert result.location is None
    assert "does not verify with the certificate&#39;s SM2 key" in result.response.text


# --- sessions -------------------------------------------------------------------------------


def _complete_session(idp: Idp) -> None:
    _rp(idp)
    add_person(idp)
    result, _ = _login(idp)
    assert result.location is not None


def _age_sessions(idp: Idp, **fields: float) -> None:
    with idp.db() as db:
        for row in db.scalars(select(BrowserSession)):
            for name, value in fields.items():
                setattr(row, name, value)


@pytest.mark.parametrize(
    ("field", "setting"),
    [("last_seen_at", "session_idle_seconds"), ("created_at", "session_absolute_seconds")],
)
def test_session_timeouts_end_the_sign_in(idp: Idp, field: str, setting: str) -> None:
    _complete_session(idp)
    _, challenge = pkce_pair()
    # Still signed in: straight to consent.
    assert idp.client.get(_authorize_url(challenge), follow_redirects=False).status_code == 200
    _age_sessions(idp, **{field: time.time() - getattr(idp.settings, setting) - 1})
    expired = idp.client.get(_authorize_url(challenge), follow_redirects=False)
    assert expired.status_code == 303
    assert expired.headers["location"].startswith(f"{ISSUER}/login?")
    assert _events(idp, "session.timeout")


def test_rp_initiated_logout(idp: Idp) -> None:
    _rp(idp)
    add_person(idp)
    result, verifier = _login(idp)
    id_token = _tokens(idp, result.query["code"], verifier)["id_token"]
    unregistered = idp.client.get(
        "/logout",
        params={"id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.test/"},
        follow_redirects=False,
    )
    assert unregistered.status_code == 400
    assert unregistered.headers["content-type"].startswith("application/problem+json")
    r = idp.client.get(
        "/logout",
        params={
            "id_token_hint": id_token,
            "post_logout_redirect_uri": LOGOUT_REDIRECT,
            "state": "bye1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == LOGOUT_REDIRECT + "?state=bye1"
    _, challenge = pkce_pair()
    after = idp.client.get(_authorize_url(challenge), follow_redirects=False)
    assert after.headers["location"].startswith(f"{ISSUER}/login?")
    forged = idp.client.get("/logout", params={"id_token_hint": "a.b.c"})
    assert forged.status_code == 400


def test_logout_posted_as_a_form_and_client_id_matched_to_the_hint(idp: Idp) -> None:
    _rp(idp)
    add_person(idp)
    result, verifier = _login(idp)
    id_token = _tokens(idp, result.query["code"], verifier)["id_token"]
    # A client_id other than the hint's client is refused, and the session is left as it was.
    mismatched = idp.client.post(
        "/logout",
        data={
            "id_token_hint": id_token,
            "client_id": "another-client",
            "post_logout_redirect_uri": LOGOUT_REDIRECT,
        },
        follow_redirects=False,
    )
    assert mismatched.status_code == 400
    assert mismatched.headers["content-type"].startswith("application/problem+json")
    _, challenge = pkce_pair()
    still = idp.client.get(_authorize_url(challenge), follow_redirects=False)
    assert "/login?" not in still.headers.get("location", ""), "a refused logout signed out"
    posted = idp.client.post(
        "/logout",
        data={
            "id_token_hint": id_token,
            "client_id": "rp",
            "post_logout_redirect_uri": LOGOUT_REDIRECT,
            "state": "bye2",
        },
        follow_redirects=False,
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == LOGOUT_REDIRECT + "?state=bye2"
    after = idp.client.get(_authorize_url(challenge), follow_redirects=False)
    assert after.headers["location"].startswith(f"{ISSUER}/login?")


# --- password policy ---------------------------------------------------------------------------


def test_expired_password_must_be_changed(idp: Idp) -> None:
    _rp(idp)
    add_person(idp)
    with idp.db() as db:
        account = db.scalars(select(Account).where(Account.username == "zhangsan")).one()
        account.password_changed_at = time.time() - 91 * 86400
    new_password = "Another-Strong-Pass-42"
    choices = iter(["short", new_password])

    result, _ = _login(idp)
    page = result.response
    assert result.location is None
    assert "new_password" in page.text
    assert _events(idp, "login.password")[-1].result == "success"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    next_url = re.search(r'name="next" value="([^"]*)"', page.text)
    assert csrf
    assert next_url
    form = {"csrf": csrf.group(1), "next": next_url.group(1).replace("&amp;", "&")}
    weak = idp.client.post(
        "/login/password",
        data={**form, "old_password": PASSWORD, "new_password": next(choices)},
        follow_redirects=False,
    )
    assert weak.status_code == 400
    assert "at least 12 characters" in weak.text
    ok = idp.client.post(
        "/login/password",
        data={**form, "old_password": PASSWORD, "new_password": next(choices)},
        follow_redirects=False,
    )
    assert ok.status_code == 303, ok.text
    idp.client.cookies.clear()
    old, _ = _login(idp)
    assert old.location is None
    assert "Wrong login name or password" in old.response.text
    _, challenge = pkce_pair()
    fresh = sign_in(idp.client, _authorize_url(challenge), REDIRECT, "zhangsan", new_password)
    assert fresh.location is not None


# --- administrators ----------------------------------------------------------------------------


def test_admin_scope_needs_an_administrator_with_two_factors(idp: Idp) -> None:
    # An administration console: its tokens are meant for the IdP itself.
    _rp(idp, audiences=(ISSUER,))
    add_person(idp)
    verifier, challenge = pkce_pair()
    scope = "openid identity:admin"
    plain = sign_in(idp.client, _authorize_url(challenge, scope), REDIRECT, "zhangsan", PASSWORD)
    tokens = _tokens(idp, plain.query["code"], verifier)
    assert "identity:admin" not in tokens["scope"].split()
    denied = idp.client.get(
        "/admin/clients", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert denied.status_code == 403

    with idp.db() as db:
        account = db.scalars(select(Account).where(Account.username == "zhangsan")).one()
        account.is_admin = True
    secret = _enrol_totp(idp, "zhangsan")
    idp.client.cookies.clear()
    verifier, challenge = pkce_pair()
    admin = sign_in(
        idp.client,
        _authorize_url(challenge, scope),
        REDIRECT,
        "zhangsan",
        PASSWORD,
        second_factor=lambda form, html: {"code": pyotp.TOTP(secret).now()},
    )
    tokens = _tokens(idp, admin.query["code"], verifier)
    assert "identity:admin" in tokens["scope"].split()
    listed = idp.client.get(
        "/admin/clients", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert listed.status_code == 200
    assert [c["client_id"] for c in listed.json()] == ["rp"]
    # An administrator who is no longer one: the token stops opening the admin API.
    with idp.db() as db:
        account = db.scalars(select(Account).where(Account.username == "zhangsan")).one()
        account.is_admin = False
    demoted = idp.client.get(
        "/admin/clients", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert demoted.status_code == 403
    assert demoted.json()["detail"] == "the token's account is not an active administrator"


# --- rate limits -------------------------------------------------------------------------------


def test_login_and_token_endpoints_are_rate_limited(tmp_path: Path) -> None:
    with started(tmp_path, login_rate_per_minute=3, token_rate_per_minute=2) as idp:
        page = idp.client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        form = {"csrf": csrf.group(1), "username": "x", "password": "y"}
        statuses = [idp.client.post("/login", data=form).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        limited = idp.client.post("/login", data=form)
        assert limited.headers["retry-after"] == "60"
        assert limited.headers["content-type"].startswith("application/problem+json")
        token = [
            idp.client.post("/token", data={"grant_type": "client_credentials"}).status_code
            for _ in range(3)
        ]
        assert 429 not in token[:2]
        assert token[2] == 429
