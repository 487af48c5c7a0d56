"""The authorization code + PKCE flow through the login pages, and what follows it."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select

from zwfw.services.identity.models import Client
from zwfw.services.kit import audit

from .browser import sign_in
from .support import (
    ISSUER,
    PASSWORD,
    Idp,
    add_client,
    add_person,
    client_assertion,
    pkce_pair,
    started,
)

REDIRECT = "https://rp.test/cb"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def _login_and_authorize(idp: Idp, challenge: str, username: str = "zhangsan") -> str:
    params = {
        "response_type": "code",
        "client_id": "rp",
        "redirect_uri": REDIRECT,
        "scope": "openid profile phone",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    login = idp.client.get("/authorize", params=params, follow_redirects=False)
    assert login.status_code == 303, login.text
    page = idp.client.get(login.headers["location"])
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    url = f"{ISSUER}/authorize?{urllib.parse.urlencode(params)}"
    result = sign_in(idp.client, url, REDIRECT, username, PASSWORD)
    assert result.query["state"] == "s1"
    return result.query["code"]


def _public_rp(idp: Idp) -> None:
    add_client(
        idp,
        client_id="rp",
        name="办事大厅",
        auth_method="none",
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "phone"],
    )


def test_code_pkce_flow_issues_tokens_without_id_number(idp: Idp) -> None:
    _public_rp(idp)
    sub = add_person(idp)
    verifier, challenge = pkce_pair()
    code = _login_and_authorize(idp, challenge)
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
    tokens = r.json()
    keys = KeySet.import_key_set(idp.client.get("/jwks").json())
    id_token = jwt.decode(tokens["id_token"], keys, algorithms=["ES256"]).claims
    assert id_token["sub"] == sub
    assert id_token["aud"] == ["rp"]
    assert id_token["iss"] == ISSUER
    assert id_token["nonce"] == "n1"
    assert id_token["acr"] == "registered"
    access = jwt.decode(tokens["access_token"], keys, algorithms=["ES256"]).claims
    assert access["user_type"] == "person"
    info = idp.client.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    assert info["phone_number"] == "138****5678"
    for text in (tokens["id_token"], tokens["access_token"], str(info), str(id_token)):
        assert "11010519491231002X" not in text
    # The code is single-use.
    again = idp.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "rp",
            "code_verifier": verifier,
        },
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def _signed_in_request(idp: Idp, state: str) -> tuple[str, dict[str, str]]:
    """A person signed in and consented once through the public relying party: the PKCE
    verifier and the parameters of a next authorization request from the same browser."""
    _public_rp(idp)
    add_person(idp)
    verifier, challenge = pkce_pair()
    _login_and_authorize(idp, challenge)
    return verifier, {
        "response_type": "code", "client_id": "rp", "redirect_uri": REDIRECT,
        "scope": "openid", "state": state, "code_challenge": challenge,
        "code_challenge_method": "S256",
    }  # fmt: skip


def test_prompt_login_and_max_age_ask_a_signed_in_person_to_sign_in_again(
    idp: Idp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenID Connect Core 3.1.2.1: prompt=login, or a sign-in older than max_age, must not be
    # taken from the session; the sign-in that follows renews auth_time.
    import time as clock

    verifier, base = _signed_in_request(idp, "s2")

    def asks_to_sign_in(**extra: str) -> bool:
        answer = idp.client.get("/authorize", params=base | extra, follow_redirects=False)
        assert answer.status_code in (200, 302, 303), answer.text
        return answer.is_redirect and "/login?" in answer.headers["location"]

    assert not asks_to_sign_in()
    assert not asks_to_sign_in(max_age="3600")
    assert asks_to_sign_in(prompt="login")
    assert asks_to_sign_in(prompt="consent login")
    # After the sign-in it asks for, the request comes back without what that satisfied.
    login = idp.client.get("/authorize", params=base | {"prompt": "login", "max_age": "0"},
                           follow_redirects=False)  # fmt: skip
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(login.headers["location"]).query)["next"]
    assert "prompt" not in back[0]
    assert "max_age" not in back[0]
    assert "state=s2" in back[0]
    # prompt=none with a sign-in older than max_age: login_required to the relying party.
    signed_in = clock.time()
    monkeypatch.setattr(clock, "time", lambda: signed_in + 120)
    assert asks_to_sign_in(max_age="60")
    assert not asks_to_sign_in(max_age="600")
    none = idp.client.get("/authorize", params=base | {"prompt": "none", "max_age": "60"},
                          follow_redirects=False)  # fmt: skip
    assert none.headers["location"].startswith(REDIRECT), none.text
    assert "error=login_required" in none.headers["location"]
    monkeypatch.undo()
    bad = idp.client.get("/authorize", params=base | {"max_age": "-1"}, follow_redirects=False)
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_request")
    # Signing in again renews auth_time.
    renewing = int(clock.time())
    again = f"{ISSUER}/authorize?{urllib.parse.urlencode(base | {'prompt': 'login'})}"
    result = sign_in(idp.client, again, REDIRECT, "zhangsan", PASSWORD)
    tokens = idp.client.post("/token", data={
        "grant_type": "authorization_code", "code": result.query["code"],
        "redirect_uri": REDIRECT, "client_id": "rp", "code_verifier": verifier,
    })  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    keys = KeySet.import_key_set(idp.client.get("/jwks").json())
    claims = jwt.decode(tokens.json()["id_token"], keys, algorithms=["ES256"]).claims
    assert claims["auth_time"] >= renewing


def test_a_replayed_code_revokes_the_tokens_of_its_first_use(idp: Idp) -> None:
    # RFC 6749 §4.1.2: a code used twice is refused, and the tokens it gave are revoked.
    _public_rp(idp)
    add_person(idp)
    verifier, challenge = pkce_pair()
    code = _login_and_authorize(idp, challenge)
    redeem = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "rp",
        "code_verifier": verifier,
    }
    first = idp.client.post("/token", data=redeem)
    assert first.status_code == 200, first.text
    tokens = first.json()

    def introspected() -> dict:
        return idp.client.post(
            "/introspect", data={"token": tokens["access_token"], "client_id": "rp"}
        ).json()

    def userinfo() -> int:
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        return idp.client.get("/userinfo", headers=bearer).status_code

    assert introspected()["active"] is True
    assert userinfo() == 200
    replay = idp.client.post("/token", data=redeem)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert introspected() == {"active": False}
    assert userinfo() == 401
    refresh = idp.client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "rp",
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "invalid_grant"
    with idp.db() as db:
        replays = list(
            db.execute(
                select(audit.audit_log).where(audit.audit_log.c.action == "token.code_replay")
            )
        )
    assert [(r.result, r.detail["client_id"]) for r in replays] == [("failure", "rp")]


def test_refresh_rotation_and_reuse_revokes_family(idp: Idp) -> None:
    _public_rp(idp)
    add_person(idp)
    verifier, challenge = pkce_pair()
    code = _login_and_authorize(idp, challenge)
    first = idp.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "rp",
            "code_verifier": verifier,
        },
    ).json()
    refresh = {"grant_type": "refresh_token", "client_id": "rp"}
    second = idp.client.post("/token", data={**refresh, "refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    rotated = second.json()["refresh_token"]
    assert rotated != first["refresh_token"]
    reuse = idp.client.post("/token", data={**refresh, "refresh_token": first["refresh_token"]})
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # The whole family is gone: the legitimately rotated token no longer works either.
    after = idp.client.post("/token", data={**refresh, "refresh_token": rotated})
    assert after.status_code == 400
    me = idp.client.get(
        "/userinfo", headers={"Authorization": f"Bearer {second.json()['access_token']}"}
    )
    assert me.status_code == 401


def test_pkce_is_required_and_plain_is_refused(idp: Idp) -> None:
    _public_rp(idp)
    base = {
        "response_type": "code",
        "client_id": "rp",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "x",
    }
    missing = idp.client.get("/authorize", params=base, follow_redirects=False)
    plain = idp.client.get(
        "/authorize",
        params={**base, "code_challenge": "a" * 43, "code_challenge_method": "plain"},
        follow_redirects=False,
    )
    implicit = idp.client.get(
        "/authorize", params={**base, "response_type": "token"}, follow_redirects=False
    )
    for response, error in (
        (missing, "invalid_request"),
        (plain, "invalid_request"),
        (implicit, "unsupported_response_type"),
    ):
        assert response.status_code == 302, response.text
        assert f"error={error}" in response.headers["location"]


def test_prompt_none_with_a_sign_in_session_shows_no_consent_page(idp: Idp) -> None:
    # OpenID Connect Core 3.1.2.1: no page at all, consent included; consent is asked every
    # time, so the relying party learns consent_required, with its state.
    _, params = _signed_in_request(idp, "s3")
    none = idp.client.get("/authorize", params=params | {"prompt": "none"},
                          follow_redirects=False)  # fmt: skip
    assert none.status_code == 302, none.text
    back = urllib.parse.urlsplit(none.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT
    assert dict(urllib.parse.parse_qsl(back.query)) == {"error": "consent_required", "state": "s3"}
    # Without prompt=none the same session is asked for its consent on a page.
    page = idp.client.get("/authorize", params=params, follow_redirects=False)
    assert page.status_code == 200
    assert 'value="allow"' in page.text


def test_an_authorization_request_by_post_is_taken_as_by_get(idp: Idp) -> None:
    _public_rp(idp)
    params = {
        "response_type": "code",
        "client_id": "rp",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "posted state",
        "nonce": "n2",
        "code_challenge": "a" * 43,
        "code_challenge_method": "S256",
    }
    posted = idp.client.post("/authorize", data=params, follow_redirects=False)
    assert posted.status_code == 303, posted.text
    location = urllib.parse.urlsplit(posted.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/authorize"
    assert dict(urllib.parse.parse_qsl(location.query)) == params
    # Without a client it is no authorization request: the consent form's rules apply.
    empty = idp.client.post("/authorize", data={"state": "x"}, follow_redirects=False)
    assert empty.status_code == 403, empty.text


def test_a_client_key_set_replaced_in_the_registry_takes_effect_at_once(idp: Idp) -> None:
    old, new = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    add_client(
        idp,
        client_id="hub",
        name="hub",
        auth_method="private_key_jwt",
        jwks={"keys": [old.as_dict(private=False)]},
        grant_types=["client_credentials"],
        scopes=["hub:sync"],
    )

    def grant(key: ECKey) -> httpx.Response:
        return idp.client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "scope": "hub:sync",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client_assertion(key, "hub", ISSUER + "/token"),
            },
        )

    assert grant(old).status_code == 200
    assert grant(new).json()["error"] == "invalid_client"
    with idp.db() as db:
        db.get(Client, "hub").jwks = {"keys": [new.as_dict(private=False)]}
    # The parsed key set of the old registration must not outlive it.
    assert grant(old).json()["error"] == "invalid_client"
    assert grant(new).status_code == 200


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_idp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Idp]:
    """The IdP on SQLite, and on PostgreSQL: the replay store's insert-unless-present differs
    by dialect (psycopg gives no rowcount for it)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("idp")
        return
    databases = request.getfixturevalue("service_databases")
    with started(tmp_path, database_url=databases("identity")) as instance:
        yield instance


def test_client_credentials_with_private_key_jwt(any_database_idp: Idp) -> None:
    idp = any_database_idp
    key = ECKey.generate_key("P-256")
    add_client(
        idp,
        client_id="hub",
        name="hub",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials"],
        scopes=["hub:sync", "identity:introspect"],
    )
    form = {
        "grant_type": "client_credentials",
        "scope": "hub:sync",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    assertion = client_assertion(key, "hub", ISSUER + "/token")
    r = idp.client.post("/token", data={**form, "client_assertion": assertion})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    # The same assertion cannot be replayed.
    replay = idp.client.post("/token", data={**form, "client_assertion": assertion})
    assert replay.status_code in (400, 401)
    assert replay.json()["error"] == "invalid_client"
    wrong = client_assertion(ECKey.generate_key("P-256"), "hub", ISSUER + "/token")
    bad = idp.client.post("/token", data={**form, "client_assertion": wrong})
    assert bad.json()["error"] == "invalid_client"

    def introspect() -> dict:
        return idp.client.post(
            "/introspect",
            data={
                "token": token,
                "client_assertion_type": form["client_assertion_type"],
                "client_assertion": client_assertion(key, "hub", ISSUER + "/introspect"),
            },
        ).json()

    assert introspect()["active"] is True
    revoked = idp.client.post(
        "/revoke",
        data={
            "token": token,
            "client_assertion_type": form["client_assertion_type"],
            "client_assertion": client_assertion(key, "hub", ISSUER + "/revoke"),
        },
    )
    assert revoked.status_code == 200
    assert introspect() == {"active": False}


def test_client_credentials_grant_only_the_registered_scopes(idp: Idp) -> None:
    key = ECKey.generate_key("P-256")
    add_client(
        idp,
        client_id="hall",
        name="hall",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials"],
        scopes=["elicense:share"],
        audiences=[ISSUER],
    )

    def token(scope: str) -> httpx.Response:
        return idp.client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client_assertion(key, "hall", ISSUER + "/token"),
            },
        )

    granted = token("elicense:share")
    assert granted.status_code == 200, granted.text
    assert granted.json()["scope"] == "elicense:share"
    # Not the IdP's administration, nor another service's scope, nor a mix.
    for scope in ("identity:admin", "elicense:issue", "elicense:share identity:admin"):
        refused = token(scope)
        assert refused.status_code == 400, (scope, refused.text)
        assert refused.json()["error"] == "invalid_scope"


def test_lockout_after_failures_and_no_enumeration(idp: Idp) -> None:
    add_person(idp)

    def attempt(username: str, password: str) -> tuple[int, str]:
        page = idp.client.get("/login")
        r = idp.client.post(
            "/login",
            data={"csrf": _csrf(page.text), "username": username, "password": password},
            follow_redirects=False,
        )
        return r.status_code, r.text

    for _ in range(4):
        status, text = attempt("zhangsan", "wrong-Password-1")
        assert status == 401
        assert "Wrong login name or password" in text
    status, text = attempt("zhangsan", "wrong-Password-1")
    assert "try again later" in text
    # Locked: even the right password is refused now.
    status, text = attempt("zhangsan", PASSWORD)
    assert status == 401
    assert "try again later" in text
    # An unknown name gives the same answers and locks the same way.
    for _ in range(5):
        status, text = attempt("nobody", "wrong-Password-1")
    assert "try again later" in text


def test_login_form_needs_csrf_token(idp: Idp) -> None:
    add_person(idp)
    idp.client.get("/login")
    r = idp.client.post("/login", data={"username": "zhangsan", "password": PASSWORD})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
