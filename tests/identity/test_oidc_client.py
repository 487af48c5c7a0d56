"""The code + PKCE login driven by an independent OIDC client (httpx-oauth) against a real
`zwfw serve` process, the ID token checked with an independent JOSE library (PyJWT)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from httpx_oauth.clients.openid import OpenID
from httpx_oauth.oauth2 import GetAccessTokenError, RefreshTokenError
from sqlalchemy.orm import Session

from zwfw.services.identity.accounts import AccountIn
from zwfw.services.identity.clients import ClientIn, register_client
from zwfw.services.identity.service import IdentityService

from .browser import sign_in
from .processes import IdpProcess, running, seed, write_config
from .support import PASSWORD, SEEDER

REDIRECT = "https://hall.ah.gov.test/oidc/callback"
ID_NUMBER = "11010519491231002X"


@pytest.fixture(scope="module")
def idp_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IdpProcess, str]]:
    directory: Path = tmp_path_factory.mktemp("oidc")
    config, _ = write_config(directory, "idp")
    stored: dict[str, str] = {}

    def setup(svc: IdentityService, db: Session) -> None:
        svc.accounts.register(
            db,
            AccountIn(
                kind="person",
                username="lisi",
                password=PASSWORD,
                name="李四",
                id_number=ID_NUMBER,
                phone="13712345678",
            ),
            actor=SEEDER,
        )
        out = register_client(
            db,
            ClientIn(
                client_id="ah-hall",
                name="安徽政务服务网",
                auth_method="client_secret_basic",
                redirect_uris=[REDIRECT],
                grant_types=["authorization_code", "refresh_token"],
                scopes=["openid", "profile", "phone"],
            ),
            actor=SEEDER,
        )
        assert out.client_secret
        stored["secret"] = out.client_secret

    seed(config, setup)
    with running(config) as idp:
        yield idp, stored["secret"]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def test_code_pkce_login_with_an_independent_client(idp_process: tuple[IdpProcess, str]) -> None:
    idp, secret = idp_process
    rp = OpenID("ah-hall", secret, idp.url + "/.well-known/openid-configuration")
    verifier, nonce, state = secrets.token_urlsafe(48), secrets.token_urlsafe(12), "xyz"
    authorize_url = asyncio.run(
        rp.get_authorization_url(
            REDIRECT,
            state=state,
            scope=["openid", "profile", "phone"],
            code_challenge=_s256(verifier),
            code_challenge_method="S256",
            extras_params={"nonce": nonce},
        )
    )
    assert authorize_url.startswith(idp.url + "/authorize?")
    with httpx.Client() as browser:
        result = sign_in(browser, authorize_url, REDIRECT, "lisi", PASSWORD)
    assert result.query["state"] == state
    code = result.query["code"]

    token = asyncio.run(rp.get_access_token(code, REDIRECT, code_verifier=verifier))
    assert token["token_type"].lower() == "bearer"
    jwks = pyjwt.PyJWKClient(rp.openid_configuration["jwks_uri"])
    id_token = token["id_token"]
    claims = pyjwt.decode(
        id_token,
        jwks.get_signing_key_from_jwt(id_token).key,
        algorithms=["ES256"],
        audience="ah-hall",
        issuer=idp.url,
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    assert claims["nonce"] == nonce
    # at_hash binds the access token to the ID token (OIDC Core 3.1.3.6).
    digest = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert claims["acr"] == "registered"
    assert claims["user_type"] == "person"
    assert claims["region"] == "340000"
    assert pyjwt.get_unverified_header(id_token)["alg"] == "ES256"

    profile = asyncio.run(rp.get_profile(token["access_token"]))
    assert profile["sub"] == claims["sub"]
    assert profile["name"] == "李四"
    assert profile["phone_number"] == "137****5678"
    for text in (id_token, token["access_token"], str(profile), str(claims)):
        assert ID_NUMBER not in text

    # The library's refresh gets a rotated refresh token; the spent one is refused.
    refreshed = asyncio.run(rp.refresh_token(token["refresh_token"]))
    assert refreshed["refresh_token"] != token["refresh_token"]
    with pytest.raises(RefreshTokenError):
        asyncio.run(rp.refresh_token(token["refresh_token"]))
    # Reuse ended the whole login: the rotated token is dead too.
    with pytest.raises(RefreshTokenError):
        asyncio.run(rp.refresh_token(refreshed["refresh_token"]))


def test_wrong_code_verifier_is_refused(idp_process: tuple[IdpProcess, str]) -> None:
    idp, secret = idp_process
    rp = OpenID("ah-hall", secret, idp.url + "/.well-known/openid-configuration")
    verifier = secrets.token_urlsafe(48)
    url = asyncio.run(
        rp.get_authorization_url(
            REDIRECT,
            state="s",
            scope=["openid"],
            code_challenge=_s256(verifier),
            code_challenge_method="S256",
        )
    )
    with httpx.Client() as browser:
        code = sign_in(browser, url, REDIRECT, "lisi", PASSWORD).query["code"]
    with pytest.raises(GetAccessTokenError) as refused:
        asyncio.run(rp.get_access_token(code, REDIRECT, code_verifier=secrets.token_urlsafe(48)))
    assert refused.value.response is not None
    assert refused.value.response.json()["error"] == "invalid_grant"


def test_plain_pkce_is_refused_before_sign_in(idp_process: tuple[IdpProcess, str]) -> None:
    idp, secret = idp_process
    rp = OpenID("ah-hall", secret, idp.url + "/.well-known/openid-configuration")
    url = asyncio.run(
        rp.get_authorization_url(
            REDIRECT,
            state="s",
            scope=["openid"],
            code_challenge="a" * 43,
            code_challenge_method="plain",
        )
    )
    response = httpx.get(url, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT)
    assert "error=invalid_request" in response.headers["location"]
