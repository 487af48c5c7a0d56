"""Unified identity (IC-ID-*, SEC-AUTH-*): the target's IdP as relying parties, system clients
and the national side use it. Fixtures and credentials: see conftest.py in this directory."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from zwfw.codes import CodeError
from zwfw.codes.personal import parse_resident_id

if TYPE_CHECKING:
    from conftest import IdP

# An 18-character candidate; only those that pass the ID-number check digit count.
_ID_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


@pytest.mark.requirement("IC-ID-001")
def test_discovery_document(idp: IdP) -> None:
    config = idp.config
    assert idp.issuer == idp.target.base_url("identity"), (
        f"issuer {idp.issuer!r} is not the IdP's base URL {idp.target.base_url('identity')!r}"
    )
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    ):
        assert str(config.get(name, "")).startswith(("https://", "http://")), f"{name} missing"
    assert config.get("response_types_supported") == ["code"], (
        "only the authorization code flow may be offered (no implicit or hybrid)"
    )
    assert config.get("code_challenge_methods_supported") == ["S256"], (
        "PKCE must be offered with S256 only"
    )
    grants = set(config.get("grant_types_supported", []))
    for grant in ("authorization_code", "refresh_token", "client_credentials",
                  "urn:ietf:params:oauth:grant-type:token-exchange"):  # fmt: skip
        assert grant in grants, f"grant {grant} is not advertised"
    assert "ES256" in config.get("id_token_signing_alg_values_supported", [])
    methods = set(config.get("token_endpoint_auth_methods_supported", []))
    assert methods & {"private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"}, (
        "no cryptographic client authentication is offered"
    )
    assert config.get("acr_values_supported"), "assurance levels (acr) are not advertised"


@pytest.mark.requirement("IC-ID-002")
def test_jwks_is_usable(idp: IdP) -> None:
    document = idp.fetch(idp.config["jwks_uri"]).json()
    keys = document.get("keys", [])
    assert keys, "the JWKS has no keys"
    for key in keys:
        assert "d" not in key, f"key {key.get('kid')} publishes private material"
        assert key.get("kid"), "every published key needs a kid"
    token = idp.system_post("token_endpoint", {"grant_type": "client_credentials"})
    assert token.status_code == 200, token.text
    access_token = token.json()["access_token"]
    try:
        claims = idp.claims(access_token)
    except JoseError as error:
        pytest.fail(f"an issued token does not verify with the JWKS: {error}", pytrace=False)
    assert claims["iss"] == idp.issuer


@pytest.mark.requirement("IC-ID-003")
def test_code_flow_with_pkce(idp: IdP) -> None:
    nonce = secrets.token_urlsafe(12)
    result, verifier = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"), nonce=nonce
    )
    response = idp.code_tokens(result.param("code"), verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = idp.claims(tokens["id_token"])
    client_id = idp.credential("identity_rp_client_id")
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert claims["iss"] == idp.issuer
    assert client_id in audience
    assert claims["nonce"] == nonce
    assert claims["exp"] > time.time()
    assert claims.get("acr") in idp.config["acr_values_supported"]
    assert claims.get("user_type") in ("person", "legal_person")
    info = idp.userinfo(tokens["access_token"])
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == claims["sub"]
    # The code is single use.
    again = idp.code_tokens(result.param("code"), verifier)
    assert again.status_code == 400
    assert again.json().get("error") == "invalid_grant"


@pytest.mark.requirement("IC-ID-003")
@pytest.mark.parametrize("check", ["introspection", "userinfo", "refresh"])
def test_a_replayed_code_revokes_the_tokens_of_its_first_use(idp: IdP, check: str) -> None:
    # RFC 6749 §4.1.2: whoever presents a code a second time may have stolen it, so the
    # tokens of its first use must stop working. Each way of using them is checked on its own.
    result, verifier = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password")
    )
    code = result.param("code")
    first = idp.code_tokens(code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    access_token = tokens["access_token"]
    # Before the replay the tokens work: what follows cannot pass by a refusal of any token.
    if check == "introspection":
        before = idp.introspect(access_token)
        assert before.status_code == 200, before.text
        assert before.json().get("active") is True, (
            "the relying party cannot introspect its own fresh access token"
        )
    elif check == "userinfo":
        before = idp.userinfo(access_token)
        assert before.status_code == 200, f"userinfo refused a fresh token: {before.text}"
    else:
        assert tokens.get("refresh_token"), "no refresh token was issued"
    replay = idp.code_tokens(code, verifier)
    assert replay.status_code == 400, f"a replayed code got HTTP {replay.status_code}"
    assert replay.json().get("error") == "invalid_grant"
    if check == "introspection":
        after = idp.introspect(access_token)
        assert after.status_code == 200, after.text
        assert after.json().get("active") is False, (
            "the access token from the code's first use is still active after the replay"
        )
    elif check == "userinfo":
        after = idp.userinfo(access_token)
        assert after.status_code == 401, (
            f"userinfo accepted the access token from the code's first use after the replay "
            f"(HTTP {after.status_code})"
        )
    else:
        after = idp.refresh(tokens["refresh_token"])
        assert after.status_code == 400, (
            f"the refresh token from the code's first use still works after the replay "
            f"(HTTP {after.status_code})"
        )
        assert after.json().get("error") == "invalid_grant"


@pytest.mark.requirement("IC-ID-004")
def test_pkce_is_required_and_only_s256(idp: IdP) -> None:
    redirect = idp.credential("identity_rp_redirect_uri")

    def error_of(url: str) -> str:
        response = idp.http.get(url, follow_redirects=False)
        location = response.headers.get("location", "")
        if response.is_redirect and location.startswith(redirect):
            match = re.search(r"[?&]error=([a-z_]+)", location)
            return match.group(1) if match else "none"
        if response.status_code == 400:
            return str(response.json().get("error", "invalid_request"))
        return "accepted"

    assert error_of(idp.authorize_url()) == "invalid_request", "a request without PKCE passed"
    plain = idp.authorize_url(code_challenge="a" * 43, code_challenge_method="plain")
    assert error_of(plain) == "invalid_request", "PKCE plain was accepted"
    implicit = idp.authorize_url(response_type="token")
    assert error_of(implicit) == "unsupported_response_type", "the implicit flow was accepted"
    result, _ = idp.sign_in(idp.credential("identity_user"), idp.credential("identity_password"))
    wrong = idp.code_tokens(result.param("code"), secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert wrong.json().get("error") == "invalid_grant", "a wrong code_verifier was accepted"


@pytest.mark.requirement("IC-ID-005")
def test_refresh_rotation_and_reuse_detection(idp: IdP) -> None:
    first = idp.user_tokens()
    assert "refresh_token" in first, "no refresh token was issued"
    refresh = idp.refresh
    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json().get("refresh_token")
    assert rotated, "refreshing must return a new refresh token"
    assert rotated != first["refresh_token"], "the refresh token was not rotated"
    reused = refresh(first["refresh_token"])
    assert reused.status_code == 400, "a spent refresh token was accepted"
    assert reused.json().get("error") == "invalid_grant"
    after = refresh(rotated)
    assert after.status_code == 400, "reuse did not revoke the token family"


@pytest.mark.requirement("IC-ID-006")
def test_client_credentials_with_private_key_jwt(idp: IdP) -> None:
    url = idp.config["token_endpoint"]
    assertion = idp.assertion(url)
    granted = idp.http.post(url, data={"grant_type": "client_credentials", **assertion})
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]
    replay = idp.http.post(url, data={"grant_type": "client_credentials", **assertion})
    assert replay.status_code in (400, 401), "a replayed client assertion was accepted"
    assert replay.json().get("error") == "invalid_client"
    stranger = ECKey.generate_key("P-256", parameters={"kid": idp.client_key().kid})
    forged = idp.http.post(
        url, data={"grant_type": "client_credentials", **idp.assertion(url, stranger)}
    )
    assert forged.status_code in (400, 401), "an assertion signed with another key was accepted"
    assert forged.json().get("error") == "invalid_client"
    active = idp.system_post("introspection_endpoint", {"token": token})
    assert active.status_code == 200, active.text
    assert active.json().get("active") is True
    revoked = idp.system_post("revocation_endpoint", {"token": token})
    assert revoked.status_code == 200, revoked.text
    inactive = idp.system_post("introspection_endpoint", {"token": token})
    assert inactive.json() == {"active": False}


def _level_rank(idp: IdP, level: str) -> int:
    return list(idp.config["acr_values_supported"]).index(level)


@pytest.mark.requirement("IC-ID-007")
def test_token_exchange_from_the_national_idp(idp: IdP) -> None:
    top = idp.config["acr_values_supported"][-1]
    subject = idp.federation_token(acr=top)
    response = idp.exchange(subject)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("issued_token_type") == "urn:ietf:params:oauth:token-type:access_token"
    claims = idp.claims(body["access_token"])
    national = jwt.decode(subject, idp.federation_key()).claims
    assert claims["iss"] == idp.issuer
    assert claims["sub"] == national["sub"], "the person's subject was not kept"
    assert _level_rank(idp, claims["acr"]) <= _level_rank(idp, top), "assurance level was raised"
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert audience == [idp.credential("identity_client_id")], (
        f"the token is not restricted to the exchanging client: aud={audience}"
    )
    lowest = idp.config["acr_values_supported"][0]
    low = idp.exchange(idp.federation_token(acr=lowest))
    assert idp.claims(low.json()["access_token"])["acr"] == lowest, "assurance level was raised"


@pytest.mark.requirement("IC-ID-008")
@pytest.mark.parametrize("case", ["untrusted-issuer", "expired", "wrong-audience", "bad-signature"])
def test_token_exchange_refusals(idp: IdP, case: str) -> None:
    past = int(time.time()) - 3600
    if case == "untrusted-issuer":
        rogue = ECKey.generate_key("P-256", parameters={"kid": "rogue"})
        token = idp.federation_token(rogue, iss="https://untrusted-idp.invalid")
    elif case == "expired":
        token = idp.federation_token(iat=past, exp=past + 600)
    elif case == "wrong-audience":
        token = idp.federation_token(aud=["https://another-province.invalid"])
    else:
        trusted = json.loads(idp.credential("federation_issuer_key"))
        forger = ECKey.generate_key("P-256", parameters={"kid": trusted.get("kid", "")})
        token = idp.federation_token(forger)
    response = idp.exchange(token)
    assert response.status_code == 400, f"{case}: HTTP {response.status_code} {response.text}"
    assert response.json().get("error") == "invalid_grant", response.text


def _normalised(page: httpx.Response) -> str:
    # Per-request values (CSRF tokens, nonces) aside, the two answers must be identical.
    return re.sub(r'value="[^"]*"', 'value=""', page.text)


@pytest.mark.requirement("SEC-AUTH-001")
def test_login_failure_lockout_without_username_enumeration(idp: IdP) -> None:
    wrong = "Wrong-" + secrets.token_urlsafe(12)
    # One failure for the everyday test person (reset by its next sign-in), one for a name
    # that does not exist: the answers must not tell them apart.
    known, _ = idp.sign_in(idp.credential("identity_user"), wrong)
    unknown, _ = idp.sign_in("nobody-" + secrets.token_hex(6), wrong)
    assert known.location is None, "a wrong password was accepted"
    assert known.password_answer is not None
    assert unknown.password_answer is not None
    assert known.password_answer.status_code == unknown.password_answer.status_code
    assert _normalised(known.password_answer) == _normalised(unknown.password_answer), (
        "the answer for an unknown login name differs from a wrong password"
    )
    user = idp.credential("identity_lockout_user")
    password = idp.credential("identity_lockout_password")

    def locked_after_failures() -> bool:
        for _ in range(10):
            idp.sign_in(user, wrong)
        locked, _ = idp.sign_in(user, password)
        return locked.location is None

    # A lock left by an earlier run can run out while the failures below are made, and the
    # right password then passes: that sign-in clears the name, so a second round decides.
    assert locked_after_failures() or locked_after_failures(), (
        "the right password was accepted after 10 failures, twice"
    )


@pytest.mark.requirement("SEC-AUTH-002")
def test_no_resident_id_number_in_tokens_or_userinfo(idp: IdP) -> None:
    tokens = idp.user_tokens()
    info = idp.http.get(
        idp.config["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    texts = {"userinfo": info.text}
    for name in ("id_token", "access_token"):
        payload = tokens[name].split(".")[1]
        texts[name] = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    for name, text in texts.items():
        for candidate in _ID_CANDIDATE.findall(text):
            try:
                parse_resident_id(candidate)
            except CodeError:
                continue
            pytest.fail(f"{name} carries a resident ID number", pytrace=False)


@pytest.mark.requirement("SEC-AUTH-003")
def test_sign_in_page_is_protected(idp: IdP) -> None:
    with idp.browser() as browser:
        url = idp.authorize_url(code_challenge="x" * 43, code_challenge_method="S256")
        start = browser.get(url, follow_redirects=True)
        assert start.status_code == 200
        headers = start.headers
        framing = headers.get("x-frame-options", "").upper() == "DENY" or (
            "frame-ancestors 'none'" in headers.get("content-security-policy", "")
        )
        assert framing, "the sign-in page can be framed (clickjacking)"
        assert headers.get("x-content-type-options") == "nosniff"
        forms = [f for f in idp.forms(start.text) if "password" in f.types.values()]
        assert forms, "no sign-in form found"
        form = forms[0]
        data = {
            name: value
            for name, value in form.fields.items()
            if not (form.types[name] == "hidden" and re.search("csrf|token", name, re.I))
        }
        data.update({n: "x" for n, t in form.types.items() if t in ("text", "password")})
        # The same form without its anti-forgery token.
        cross_site = browser.post(
            httpx.URL(str(start.url)).join(form.action), data=data, follow_redirects=False
        )
        assert cross_site.status_code in (400, 403), (
            f"a sign-in without the anti-forgery token got HTTP {cross_site.status_code}"
        )
