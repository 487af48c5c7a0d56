"""Unified identity (IC-ID-*, SEC-AUTH-*): the target's IdP as relying parties, system clients
and the national side use it. Fixtures and credentials: see conftest.py in this directory."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Literal

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from zwfw.codes import CodeError
from zwfw.codes.personal import parse_resident_id
from zwfw.harness.faults import execute
from zwfw.harness.forms import Form
from zwfw.harness.results import Inconclusive

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import IdP, SignIn

    from zwfw.harness.profile import ServiceName

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# An 18-character candidate; only those that pass the ID-number check digit count.
_ID_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


@pytest.mark.requirement(
    "IC-ID-001",
    catches=("issuer-not-base-url", "endpoint-missing", "implicit-offered", "pkce-plain-offered",
             "grant-missing", "weak-id-token-alg", "no-crypto-client-auth", "acr-missing",
             "required-metadata-missing"),
)  # fmt: skip
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
    id_token_algs = list(config.get("id_token_signing_alg_values_supported", []))
    assert "ES256" in id_token_algs, f"ES256 ID tokens are not offered: {id_token_algs}"
    weak = [a for a in id_token_algs if a == "none" or a.upper().startswith("HS")]
    assert not weak, f"ID tokens may be signed with {weak}"
    methods = set(config.get("token_endpoint_auth_methods_supported", []))
    assert methods & {"private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"}, (
        "no cryptographic client authentication is offered"
    )
    # Client assertions are verified with the client's registered public key: an alg without
    # a signature, or a MAC (keyed by what? the public key?), has no place among them.
    assertion_algs = list(config.get("token_endpoint_auth_signing_alg_values_supported", []))
    weak = [a for a in assertion_algs if a == "none" or a.upper().startswith("HS")]
    assert not weak, f"client assertions may use {weak}"
    assert config.get("acr_values_supported"), "assurance levels (acr) are not advertised"
    # Discovery §3 requires subject_types_supported (the OP test plan's OP-Discovery-Config);
    # a relying party that reads it learns whether sub is the same for every client.
    subject_types = config.get("subject_types_supported")
    assert isinstance(subject_types, list), "subject_types_supported missing"
    assert subject_types, "subject_types_supported is empty"
    assert set(subject_types) <= {"public", "pairwise"}, (
        f"subject_types_supported names unknown types: {subject_types}"
    )
    if "scopes_supported" in config:
        assert "openid" in config["scopes_supported"], (
            f"scopes_supported leaves out openid: {config['scopes_supported']}"
        )


_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def _verify_with_its_key(
    idp: IdP, jwks: list[dict[str, Any]], name: str, token: str
) -> dict[str, Any]:
    """The token's claims, verified with the one published key its header names, and only
    that one (a key set would let any published key verify it)."""
    header = idp.header_of(token)
    assert header.get("alg") == "ES256", f"{name} is signed with alg {header.get('alg')!r}"
    kid = header.get("kid")
    named = [key for key in jwks if key.get("kid") == kid]
    assert len(named) == 1, f"{name} names kid {kid!r}, published {len(named)} times"
    key = named[0]
    assert key.get("alg") in (None, "ES256"), (
        f"{name} is ES256 but its key {kid!r} is published for {key.get('alg')}"
    )
    try:
        return dict(jwt.decode(token, ECKey.import_key(key), algorithms=["ES256"]).claims)
    except (JoseError, ValueError) as error:
        pytest.fail(f"{name} does not verify with key {kid!r}: {error}", pytrace=False)


@pytest.mark.requirement(
    "IC-ID-002",
    catches=("private-material", "kid-missing", "kid-mismatch", "alg-mismatch",
             "token-unverifiable"),
)  # fmt: skip
def test_jwks_verifies_every_token(idp: IdP) -> None:
    document = idp.fetch(idp.config["jwks_uri"]).json()
    keys = list(document.get("keys", []))
    assert keys, "the JWKS has no keys"
    kids = [key.get("kid") for key in keys]
    for key in keys:
        leaked = [m for m in _PRIVATE_MEMBERS if m in key]
        assert not leaked, f"key {key.get('kid')} publishes private members {leaked}"
        assert key.get("kid"), "every published key needs a kid"
    assert len(set(kids)) == len(kids), f"kids are not unique: {kids}"
    # Every kind of token the IdP issues, not one of them.
    tokens: dict[str, str] = {}
    granted = idp.system_post("token_endpoint", {"grant_type": "client_credentials"})
    assert granted.status_code == 200, granted.text
    tokens["client credentials access token"] = granted.json()["access_token"]
    signed_in = idp.user_tokens()
    tokens["ID token"] = signed_in["id_token"]
    tokens["code flow access token"] = signed_in["access_token"]
    refreshed = idp.refresh(signed_in["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    tokens["refreshed access token"] = refreshed.json()["access_token"]
    if refreshed.json().get("id_token"):
        tokens["refreshed ID token"] = refreshed.json()["id_token"]
    exchanged = idp.exchange(idp.federation_token())
    assert exchanged.status_code == 200, exchanged.text
    tokens["exchanged access token"] = exchanged.json()["access_token"]
    for name, token in tokens.items():
        claims = _verify_with_its_key(idp, keys, name, token)
        assert claims.get("iss") == idp.issuer, f"{name} has iss {claims.get('iss')!r}"


# Clock difference tolerated between the harness and the IdP when judging iat.
_CLOCK_SKEW = 300


def _half_hash(token: str) -> str:
    # OpenID Connect Core §3.1.3.6: left half of SHA-256 (the hash of ES256), base64url.
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


@pytest.mark.requirement(
    "IC-ID-003",
    catches=("state-not-echoed", "id-token-issuer", "id-token-audience", "id-token-nonce",
             "id-token-times", "id-token-auth-time", "id-token-at-hash", "id-token-claims",
             "userinfo-subject", "code-reusable"),
)  # fmt: skip
def test_code_flow_with_pkce(idp: IdP) -> None:
    nonce = secrets.token_urlsafe(12)
    state = "st-" + secrets.token_urlsafe(12)
    signing_in = time.time()
    result, verifier = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"),
        nonce=nonce, state=state,
    )  # fmt: skip
    assert result.param("state") == state, "the redirect does not carry the request's state"
    issued_at = time.time()
    response = idp.code_tokens(result.param("code"), verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = idp.claims(tokens["id_token"])
    client_id = idp.credential("identity_rp_client_id")
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert claims["iss"] == idp.issuer, f"ID token iss {claims['iss']!r}"
    assert client_id in audience, f"the client is not in the ID token's aud {audience}"
    if len(audience) > 1 or "azp" in claims:
        assert claims.get("azp") == client_id, f"ID token azp {claims.get('azp')!r}"
    assert claims.get("nonce") == nonce, "the ID token does not carry the request's nonce"
    iat, exp = claims.get("iat"), claims.get("exp")
    assert isinstance(iat, int | float), "the ID token has no iat"
    assert isinstance(exp, int | float), "the ID token has no exp"
    assert abs(iat - issued_at) <= _CLOCK_SKEW, f"ID token iat {iat} is far from {issued_at:.0f}"
    assert exp > iat, f"ID token exp {exp} is not after its iat {iat}"
    assert exp > issued_at, f"ID token exp {exp} has passed"
    if "auth_time" in claims:
        # The person signed in with a password just now, in a fresh browser: that is the time.
        auth_time = claims["auth_time"]
        assert isinstance(auth_time, int | float), f"ID token auth_time {auth_time!r}"
        assert signing_in - _CLOCK_SKEW <= auth_time <= iat + _CLOCK_SKEW, (
            f"ID token auth_time {auth_time} is not the sign-in's time ({signing_in:.0f})"
        )
    if "at_hash" in claims:
        assert claims["at_hash"] == _half_hash(tokens["access_token"]), (
            "the ID token's at_hash does not match the access token"
        )
    assert claims.get("acr") in idp.config["acr_values_supported"]
    assert claims.get("user_type") in ("person", "legal_person")
    info = idp.userinfo(tokens["access_token"])
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == claims["sub"], "userinfo answers for another subject"
    # The code is single use.
    again = idp.code_tokens(result.param("code"), verifier)
    assert again.status_code == 400, f"a code used twice got HTTP {again.status_code}"
    assert again.json().get("error") == "invalid_grant"


@pytest.mark.requirement("IC-ID-003", catches=("code-other-client",))
def test_code_is_bound_to_its_client(idp: IdP) -> None:
    # Another client of the same IdP (the system client) presents a relying party's code.
    result, verifier = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password")
    )
    stolen = idp.system_post(
        "token_endpoint",
        {
            "grant_type": "authorization_code",
            "code": result.param("code"),
            "redirect_uri": idp.credential("identity_rp_redirect_uri"),
            "code_verifier": verifier,
            "client_id": idp.credential("identity_client_id"),
        },
    )
    assert stolen.status_code in (400, 401), (
        f"another client redeemed the relying party's code (HTTP {stolen.status_code})"
    )
    assert "access_token" not in stolen.text


@pytest.mark.requirement("IC-ID-015", catches=("password-grant-offered", "password-grant-taken"))
def test_no_resource_owner_password_grant(idp: IdP) -> None:
    # RFC 9700 section 2.4: the password grant MUST NOT be used, by public or confidential
    # clients: the client would see the person's password.
    assert "password" not in idp.config.get("grant_types_supported", []), (
        "the discovery document offers the resource owner password grant"
    )
    data = {"grant_type": "password", "username": idp.credential("identity_user"),
            "password": idp.credential("identity_password"), "scope": "openid"}  # fmt: skip
    answers = {
        "the public relying party": idp.http.post(
            idp.config["token_endpoint"],
            data={**data, "client_id": idp.credential("identity_rp_client_id")},
        ),
        "the system client": idp.system_post("token_endpoint", data),
    }
    for who, answer in answers.items():
        assert answer.status_code in (400, 401), (
            f"{who} used the password grant (HTTP {answer.status_code})"
        )
        assert "access_token" not in answer.text, f"{who} got a token for a password"


@pytest.mark.requirement("IC-ID-016", catches=("sign-in-shown", "no-login-required"))
def test_prompt_none_without_a_session_returns_login_required(idp: IdP) -> None:
    # OpenID Connect Core section 3.1.2.6: prompt=none must not show any page; without a
    # sign-in session the relying party learns login_required (with its state), at once.
    redirect = idp.credential("identity_rp_redirect_uri")
    _, challenge = idp.pkce()
    state = "st-" + secrets.token_urlsafe(8)
    url = idp.authorize_url(
        code_challenge=challenge, code_challenge_method="S256", prompt="none", state=state
    )
    with idp.browser() as browser:
        response = browser.get(url, follow_redirects=False)
    location = response.headers.get("location", "")
    returned = response.is_redirect and location.startswith(redirect)
    assert returned, (
        f"prompt=none without a session did not return to the relying party: HTTP "
        f"{response.status_code} {location[:80]}"
    )
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert "code" not in params, "prompt=none without a session sent a code"
    assert params.get("error") in ("login_required", "interaction_required"), (
        f"prompt=none without a session answered {params}"
    )
    assert params.get("state") == state, "the login_required redirect lost the state"


@pytest.mark.requirement("IC-ID-016", catches=("page-with-session", "session-ignored"))
def test_prompt_none_with_a_session_shows_no_page(idp: IdP) -> None:
    # OpenID Connect Core 3.1.2.1: "MUST NOT display any authentication or consent user
    # interface pages", also to a person who is signed in; the session must not be ignored.
    redirect = idp.credential("identity_rp_redirect_uri")
    with idp.browser() as browser:
        first, _ = idp.sign_in(
            idp.credential("identity_user"), idp.credential("identity_password"), browser=browser
        )
        assert first.location is not None, "the sign-in that opens the session did not complete"
        verifier, challenge = idp.pkce()
        state = "st-" + secrets.token_urlsafe(8)
        url = idp.authorize_url(
            code_challenge=challenge, code_challenge_method="S256", prompt="none", state=state
        )
        response = browser.get(url, follow_redirects=False)
    location = response.headers.get("location", "")
    returned = response.is_redirect and location.startswith(redirect)
    assert returned, (
        "prompt=none with a sign-in session did not return to the relying party at once: "
        f"HTTP {response.status_code} {location[:80]}"
    )
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert params.get("state") == state, "the return from prompt=none lost the state"
    if "code" in params:
        tokens = idp.code_tokens(params["code"], verifier)
        assert tokens.status_code == 200, f"the code of prompt=none: {tokens.text[:200]}"
    else:
        assert params.get("error") in ("consent_required", "interaction_required"), (
            f"prompt=none with a live sign-in session answered {params}"
        )


@pytest.mark.requirement(
    "IC-ID-017",
    catches=("prompt-login-ignored", "max-age-ignored", "auth-time-not-renewed",
             "session-auth-time", "session-nonce"),
)  # fmt: skip
def test_prompt_login_and_max_age_make_the_person_sign_in_again(idp: IdP) -> None:
    # OpenID Connect Core section 3.1.2.1, as the OP test plan's OP-prompt-login and
    # OP-Req-max_age=1 check it: the session is not enough, and auth_time tells the new sign-in.
    user, password = idp.credential("identity_user"), idp.credential("identity_password")

    def request(**params: str) -> str:
        _, challenge = idp.pkce()
        return idp.authorize_url(code_challenge=challenge, code_challenge_method="S256", **params)

    def id_claims(result: SignIn, verifier: str) -> dict[str, Any]:
        tokens = idp.code_tokens(result.param("code"), verifier)
        assert tokens.status_code == 200, tokens.text
        claims = idp.claims(tokens.json()["id_token"])
        value = claims.get("auth_time")
        assert isinstance(value, int | float), f"an ID token answering max_age: auth_time {value!r}"
        return claims

    with idp.browser() as browser:
        first, verifier = idp.sign_in(
            user, password, browser=browser, max_age="3600", nonce=secrets.token_urlsafe(12)
        )
        signed_in = id_claims(first, verifier)["auth_time"]
        assert _asks_for_password(idp, browser, request(prompt="login")), (
            "prompt=login with a live sign-in session did not ask the person to sign in again"
        )
        # Older than max_age=1 once more than a second has passed since the IdP's own auth_time.
        time.sleep(2.5)
        assert _asks_for_password(idp, browser, request(max_age="1")), (
            "a sign-in older than max_age=1 was taken without signing in again"
        )
        # The live session answers a request of its own (OP-nonce-code, in the same browser):
        # that request's nonce and state, and the session's sign-in as auth_time, not the time
        # of this authorization (the sleep above keeps the two apart).
        nonce, state = secrets.token_urlsafe(12), "st-" + secrets.token_urlsafe(8)
        kept, verifier = idp.sign_in(
            user, password, browser=browser, max_age="3600", nonce=nonce, state=state
        )
        assert kept.param("state") == state, "the session's redirect lost the request's state"
        from_session = id_claims(kept, verifier)
        assert from_session.get("nonce") == nonce, (
            f"an ID token from the live session carries nonce {from_session.get('nonce')!r}, "
            f"not its request's"
        )
        if kept.password_answer is None:  # no new sign-in was asked for
            assert abs(from_session["auth_time"] - signed_in) <= 1, (
                f"an ID token from the live session has auth_time {from_session['auth_time']}, "
                f"the session signed in at {signed_in}"
            )
        again, verifier = idp.sign_in(
            user, password, browser=browser, prompt="login", max_age="3600"
        )
        renewed = id_claims(again, verifier)["auth_time"]
    assert renewed > signed_in, (
        f"after signing in again the ID token's auth_time {renewed} is not later than the first "
        f"sign-in's {signed_in}"
    )


@pytest.mark.requirement("IC-ID-003", catches=("post-request-refused",))
def test_an_authorization_request_by_post_completes(idp: IdP) -> None:
    # OpenID Connect Core 3.1.2.1: the authorization endpoint takes GET and POST alike. The
    # posted parameters must all take effect: the state comes back, the nonce is in the ID
    # token and the code is bound to the posted PKCE challenge.
    nonce = secrets.token_urlsafe(12)
    state = "st-" + secrets.token_urlsafe(12)
    result, verifier = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"),
        posted=True, nonce=nonce, state=state,
    )  # fmt: skip
    assert result.location is not None, (
        "an authorization request sent by POST did not return to the relying party: HTTP "
        f"{result.response.status_code} {result.response.text[:200]}"
    )
    assert result.param("state") == state, "the redirect does not carry the posted state"
    response = idp.code_tokens(result.param("code"), verifier)
    assert response.status_code == 200, f"the code of a posted request: {response.text[:300]}"
    claims = idp.claims(response.json()["id_token"])
    assert claims.get("nonce") == nonce, "the ID token does not carry the posted nonce"
    # A second posted request, its code presented with another verifier: the challenge
    # was taken from the form, not dropped.
    other, _ = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"), posted=True
    )
    wrong = idp.code_tokens(other.param("code"), idp.pkce()[0])
    assert wrong.status_code == 400, (
        f"the code of a posted request was exchanged with another verifier: {wrong.text[:200]}"
    )


@pytest.mark.requirement("IC-ID-003", catches=("declined-consent",))
def test_declined_consent_sends_no_code(idp: IdP) -> None:
    # RFC 6749 section 4.1.2.1: the person said no, so the relying party learns access_denied.
    state = "st-" + secrets.token_urlsafe(8)
    result, _ = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"),
        decline=True, state=state,
    )  # fmt: skip
    if not result.consent_asked:
        # No consent asked (the person was sent back directly), nothing to decline.
        return
    assert result.location is not None, (
        f"declining consent did not return to the relying party (HTTP "
        f"{result.response.status_code}; is there a button besides allow?)"
    )
    params = result.params
    assert "code" not in params, "declining consent still sent the relying party a code"
    assert params.get("error") == "access_denied", f"declined consent answered {params}"
    assert params.get("state") == state, "the declined consent's redirect lost the state"


@pytest.mark.requirement("IC-ID-003", catches=("response-type-defaulted",))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_authorization_request_without_response_type_gets_no_code(idp: IdP, method: str) -> None:
    # OpenID Connect Core 3.1.2.1: response_type is required, in a request by GET or by POST;
    # RFC 6749 4.1.2.1: a request that lacks it is answered invalid_request (the OpenID
    # Foundation's oidcc-response-type-missing), with the request's state. An IdP that supplies
    # a default chooses the flow for the client.
    state = "st-" + secrets.token_urlsafe(8)
    result, _ = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"),
        response_type=None, state=state, posted=method == "POST",
    )  # fmt: skip
    if result.location is None:
        return  # an error page, as for a request the IdP cannot answer the client
    params = result.params
    assert "code" not in params, (
        f"a request by {method} without response_type was answered with a code"
    )
    assert params.get("error") in ("invalid_request", "unsupported_response_type"), (
        f"a request by {method} without response_type was redirected without an error: {params}"
    )
    assert params.get("state") == state, (
        f"the error redirect of a request by {method} without response_type lost the state: "
        f"{params}"
    )


def _unsigned_jwt(claims: dict[str, Any]) -> str:
    """A request object with ``alg`` none (OpenID Connect Core 6.1 allows it)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.requirement(
    "IC-ID-019", catches=("request-object-ignored", "request-uri-ignored", "support-not-stated")
)
@pytest.mark.parametrize("parameter", ["request", "request_uri"])
def test_request_objects_are_taken_as_stated_or_refused(idp: IdP, parameter: str) -> None:
    # OpenID Connect Core 6.1 and 6.2: an OP that does not support the request (request_uri)
    # parameter MUST answer a request using it with request_not_supported
    # (request_uri_not_supported); one that does takes the request object's values over the
    # query's. OpenID Connect Discovery 1.0 section 3: request_parameter_supported defaults to
    # false, request_uri_parameter_supported to true. (The OpenID Foundation's
    # oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported and
    # oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported.)
    stated = f"{parameter}_parameter_supported"
    supported = idp.config.get(stated, parameter == "request_uri")
    assert isinstance(supported, bool), f"the discovery's {stated} is {supported!r}, no boolean"
    query_state, object_state = "st-" + secrets.token_urlsafe(8), "ro-" + secrets.token_urlsafe(8)
    if parameter == "request":
        client_id = idp.credential("identity_rp_client_id")
        value = _unsigned_jwt({
            "iss": client_id, "aud": idp.issuer, "client_id": client_id,
            "response_type": "code", "redirect_uri": idp.credential("identity_rp_redirect_uri"),
            "scope": "openid profile", "state": object_state,
        })  # fmt: skip
    else:
        # A request URI no one published (RFC 9126's form): nothing the IdP can take.
        value = "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(16)
    result, _ = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"),
        state=query_state, **{parameter: value},
    )  # fmt: skip
    params = result.params
    unsupported = f"{parameter}_not_supported"
    if not supported:
        answered = params or f"HTTP {result.response.status_code}, no return to the client"
        assert params.get("error") == unsupported, (
            f"the discovery says {stated} false, yet a request with a {parameter} parameter was "
            f"answered {answered}, not {unsupported}"
        )
        assert params.get("state") == query_state, f"the {unsupported} redirect lost the state"
        return
    assert params.get("error") != unsupported, (
        f"the discovery says {stated} "
        f"{'true' if stated in idp.config else 'nothing (true by default)'}, yet a request with "
        f"a {parameter} parameter was refused as {unsupported}"
    )
    if "code" in params:
        assert parameter == "request", "a request_uri no one published was answered a code"
        assert params.get("state") == object_state, (
            "a request object's state did not supersede the query's: the request object was "
            f"ignored ({params.get('state')!r})"
        )


@pytest.mark.requirement("IC-ID-003", catches=("replay-keeps-tokens",))
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


def _authorize_error(idp: IdP, url: str) -> str:
    """How the authorization endpoint answers before any sign-in: the error it redirects or
    answers with, ``none`` for a redirect without one, ``accepted`` for anything else (it goes
    on to the sign-in)."""
    redirect = idp.credential("identity_rp_redirect_uri")
    response = idp.http.get(url, follow_redirects=False)
    location = response.headers.get("location", "")
    if response.is_redirect and location.startswith(redirect):
        match = re.search(r"[?&]error=([a-z_]+)", location)
        return match.group(1) if match else "none"
    if response.status_code == 400:
        return str(response.json().get("error", "invalid_request"))
    return "accepted"


@pytest.mark.requirement(
    "IC-ID-004",
    catches=("no-challenge", "plain-method", "method-omitted", "implicit-flow", "hybrid-flow"),
)
def test_pkce_is_required_and_only_s256(idp: IdP) -> None:
    _, challenge = idp.pkce()
    assert _authorize_error(idp, idp.authorize_url()) == "invalid_request", (
        "a request without PKCE passed"
    )
    plain = idp.authorize_url(code_challenge="a" * 43, code_challenge_method="plain")
    assert _authorize_error(idp, plain) == "invalid_request", "PKCE plain was accepted"
    # RFC 7636 §4.3: a challenge without a method is plain.
    omitted = idp.authorize_url(code_challenge=challenge)
    assert _authorize_error(idp, omitted) == "invalid_request", (
        "a code_challenge without a method (plain by default) was accepted"
    )
    implicit = idp.authorize_url(response_type="token")
    assert _authorize_error(idp, implicit) == "unsupported_response_type", (
        "the implicit flow was accepted"
    )
    hybrid = idp.authorize_url(
        response_type="code id_token", code_challenge=challenge, code_challenge_method="S256",
        nonce=secrets.token_urlsafe(8),
    )  # fmt: skip
    assert _authorize_error(idp, hybrid) in ("unsupported_response_type", "invalid_request"), (
        "the hybrid flow (code id_token) was accepted"
    )


@pytest.mark.requirement("IC-ID-004", catches=("wrong-verifier", "missing-verifier"))
@pytest.mark.parametrize("verifier", ["wrong", "missing"])
def test_code_needs_its_verifier(idp: IdP, verifier: str) -> None:
    result, _ = idp.sign_in(idp.credential("identity_user"), idp.credential("identity_password"))
    data = {
        "grant_type": "authorization_code",
        "code": result.param("code"),
        "redirect_uri": idp.credential("identity_rp_redirect_uri"),
        "client_id": idp.credential("identity_rp_client_id"),
    }
    if verifier == "wrong":
        data["code_verifier"] = secrets.token_urlsafe(48)
    response = idp.http.post(idp.config["token_endpoint"], data=data)
    assert response.status_code == 400, (
        f"a code was exchanged with a {verifier} code_verifier (HTTP {response.status_code})"
    )
    error = response.json().get("error")
    expected = ("invalid_grant",) if verifier == "wrong" else ("invalid_grant", "invalid_request")
    assert error in expected, f"{verifier} code_verifier answered {error!r}"


@pytest.mark.requirement(
    "IC-ID-005", catches=("not-rotated", "spent-accepted", "family-survives", "access-survives")
)
def test_refresh_rotation_and_reuse_detection(idp: IdP) -> None:
    first = idp.user_tokens()
    assert "refresh_token" in first, "no refresh token was issued"
    refresh = idp.refresh
    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json().get("refresh_token")
    assert rotated, "refreshing must return a new refresh token"
    assert rotated != first["refresh_token"], "the refresh token was not rotated"
    latest_access = second.json()["access_token"]
    before = idp.introspect(latest_access)
    assert before.status_code == 200, before.text
    assert before.json().get("active") is True, "the refreshed access token is not active"
    reused = refresh(first["refresh_token"])
    assert reused.status_code == 400, "a spent refresh token was accepted"
    assert reused.json().get("error") == "invalid_grant"
    after = refresh(rotated)
    assert after.status_code == 400, "reuse did not revoke the token family"
    # Every token of the sign-in, the access tokens too.
    inactive = idp.introspect(latest_access)
    assert inactive.status_code == 200, inactive.text
    assert inactive.json().get("active") is False, (
        "an access token of the sign-in is still active after the refresh token's reuse"
    )


@pytest.mark.requirement("IC-ID-005", catches=("other-client", "scope-widened"))
def test_refresh_token_bound_to_client_and_scope(idp: IdP) -> None:
    tokens = idp.user_tokens()
    granted = set(str(tokens.get("scope", "openid profile")).split())
    stolen = idp.system_post(
        "token_endpoint",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": idp.credential("identity_client_id"),
        },
    )
    assert stolen.status_code in (400, 401), (
        f"another client refreshed the relying party's token (HTTP {stolen.status_code})"
    )
    assert "access_token" not in stolen.text
    wider = sorted(granted | {"phone"})
    widened = idp.http.post(
        idp.config["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": idp.credential("identity_rp_client_id"),
            "scope": " ".join(wider),
        },
    )
    if widened.status_code == 200:
        body = widened.json()
        got = set(str(body.get("scope", "")).split())
        carried = set(str(idp.claims(body["access_token"]).get("scope", "")).split())
        assert got <= granted, f"a refresh widened the scope {sorted(granted)} to {sorted(got)}"
        assert carried <= granted, (
            f"a refreshed access token carries {sorted(carried)}, granted {sorted(granted)}"
        )
    else:
        assert widened.status_code == 400, widened.text
        assert widened.json().get("error") == "invalid_scope", widened.text


def _public_pem(key: ECKey) -> bytes:
    public = ECKey.import_key(key.as_dict(private=False))
    return public.as_pem(private=False)


@pytest.mark.requirement(
    "IC-ID-006",
    catches=("replay-accepted", "other-key-accepted", "alg-none-accepted", "hs256-public-key",
             "expired-accepted", "not-yet-valid-accepted", "wrong-audience-accepted",
             "issuer-mismatch-accepted"),
)  # fmt: skip
@pytest.mark.parametrize(
    "case",
    ["replay", "other-key", "alg-none", "hs256-public-key", "expired", "not-yet-valid",
     "wrong-audience", "issuer-mismatch"],
)  # fmt: skip
def test_client_assertion_refusals(idp: IdP, case: str) -> None:
    url = idp.config["token_endpoint"]
    grant = {"grant_type": "client_credentials"}
    now = int(time.time())
    key = idp.client_key()
    if case == "replay":
        assertion = idp.assertion(url)
        first = idp.http.post(url, data={**grant, **assertion})
        assert first.status_code == 200, f"a fresh assertion was refused: {first.text}"
    elif case == "other-key":
        stranger = ECKey.generate_key("P-256", parameters={"kid": key.kid})
        assertion = idp.assertion(url, stranger)
    elif case in ("alg-none", "hs256-public-key"):
        claims = idp.assertion_claims(url)
        if case == "alg-none":
            token = idp.unsigned_jwt(claims, kid=str(key.kid))
        else:
            # The classic key confusion: a MAC keyed with the public key the IdP holds.
            token = idp.hs256_jwt(claims, _public_pem(key), kid=str(key.kid))
        assertion = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}
    elif case == "expired":
        # Ten minutes past: beyond any clock leeway.
        assertion = idp.assertion(url, iat=now - 900, exp=now - 600)
    elif case == "not-yet-valid":
        assertion = idp.assertion(url, nbf=now + 600, exp=now + 900)
    elif case == "wrong-audience":
        assertion = idp.assertion("https://another-idp.invalid/token")
    else:
        other = "another-client-" + secrets.token_hex(4)
        assertion = idp.assertion(url, iss=other)
    response = idp.http.post(url, data={**grant, **assertion})
    assert response.status_code in (400, 401), (
        f"{case}: the client assertion was accepted (HTTP {response.status_code})"
    )
    assert response.json().get("error") == "invalid_client", f"{case}: {response.text}"


@pytest.mark.requirement("IC-ID-006", catches=("introspection-wrong", "revoked-still-active"))
def test_client_credentials_introspection_and_revocation(idp: IdP) -> None:
    granted = idp.system_post("token_endpoint", {"grant_type": "client_credentials"})
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]
    issued = idp.claims(token)
    active = idp.system_post("introspection_endpoint", {"token": token})
    assert active.status_code == 200, active.text
    body = active.json()
    assert body.get("active") is True, f"a fresh token is not active: {body}"
    client_id = idp.credential("identity_client_id")
    assert body.get("client_id") == client_id, f"introspection client_id {body.get('client_id')!r}"
    if "exp" in body:
        assert body["exp"] == issued["exp"], f"introspection exp {body['exp']} != {issued['exp']}"
    if "scope" in body:
        assert set(str(body["scope"]).split()) == set(str(issued.get("scope", "")).split()), (
            f"introspection scope {body['scope']!r}, the token has {issued.get('scope')!r}"
        )
    revoked = idp.system_post("revocation_endpoint", {"token": token})
    assert revoked.status_code == 200, revoked.text
    inactive = idp.system_post("introspection_endpoint", {"token": token})
    assert inactive.json() == {"active": False}, f"a revoked token: {inactive.json()}"


@pytest.mark.requirement(
    "IC-ID-006", catches=("revoked-by-another-client", "disclosed-to-another-client")
)
def test_another_client_neither_reads_nor_revokes_a_system_token(idp: IdP) -> None:
    # The relying party, a public client with no credentials of its own, is the other client:
    # a token scanner needs nothing more (RFC 7662 §4), and RFC 7009 §2.1 ends only the
    # requesting client's own tokens.
    granted = idp.system_post("token_endpoint", {"grant_type": "client_credentials"})
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]
    read = idp.introspect(token)
    if read.status_code == 200:
        facts = read.json()
        assert facts.get("active") is not True, (
            f"the relying party introspected the system client's token: {facts}"
        )
        disclosed = sorted(set(facts) & {"client_id", "sub", "scope", "exp", "jti"})
        assert not disclosed, f"an inactive answer to another client discloses {disclosed}"
    else:
        assert read.status_code in (400, 401, 403), (read.status_code, read.text[:300])
    idp.revoke(token)
    still = idp.system_post("introspection_endpoint", {"token": token})
    assert still.status_code == 200, still.text
    assert still.json().get("active") is True, (
        f"the relying party's revocation request ended the system client's token: {still.json()}"
    )


@pytest.mark.requirement("IC-ID-006", catches=("unregistered-scope", "public-client-credentials"))
def test_client_credentials_grant_only_what_is_registered(idp: IdP) -> None:
    # A scope nobody registered: granting it would grant any scope (an admin scope too).
    unknown = "zwfw-unregistered-" + secrets.token_hex(4)
    asked = idp.system_post(
        "token_endpoint", {"grant_type": "client_credentials", "scope": unknown}
    )
    if asked.status_code == 200:
        body = asked.json()
        assert unknown not in str(body.get("scope", "")).split(), (
            f"the client credentials grant answered the unregistered scope {unknown}"
        )
        carried = str(idp.claims(body["access_token"]).get("scope", "")).split()
        assert unknown not in carried, f"the access token carries the unregistered scope {unknown}"
    else:
        assert asked.status_code == 400, asked.text
        assert asked.json().get("error") == "invalid_scope", asked.text
    # RFC 6749 section 4.4: only confidential clients; the public relying party names itself only.
    public = idp.http.post(
        idp.config["token_endpoint"],
        data={"grant_type": "client_credentials",
              "client_id": idp.credential("identity_rp_client_id")},
    )  # fmt: skip
    assert public.status_code in (400, 401), (
        f"a public client obtained a client credentials token (HTTP {public.status_code})"
    )
    assert "access_token" not in public.text


def _level_rank(idp: IdP, level: str) -> int:
    return list(idp.config["acr_values_supported"]).index(level)


@pytest.mark.requirement(
    "IC-ID-007", catches=("subject-changed", "level-raised", "audience-widened", "issuer-wrong")
)
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


@pytest.mark.requirement("IC-ID-007", catches=("audience-unchecked",))
def test_token_exchange_refuses_an_audience_not_allowed(idp: IdP) -> None:
    # RFC 8693 section 2.2.2: a target service the client may not address is refused, not
    # answered with a token for it.
    elsewhere = "https://not-a-registered-audience.invalid/api"
    response = idp.exchange(idp.federation_token(), audience=elsewhere)
    assert response.status_code == 400, (
        f"an exchange for an audience the client may not address got HTTP {response.status_code}"
    )
    assert response.json().get("error") in ("invalid_target", "invalid_request"), response.text
    assert "access_token" not in response.text


_EXCHANGE_REFUSALS = ["untrusted-issuer", "expired", "just-expired", "not-yet-valid", "no-expiry",
                      "wrong-audience", "bad-signature", "alg-none", "malformed"]  # fmt: skip


@pytest.mark.requirement(
    "IC-ID-008",
    catches=tuple(_EXCHANGE_REFUSALS),
)
@pytest.mark.parametrize("case", _EXCHANGE_REFUSALS)
def test_token_exchange_refusals(idp: IdP, case: str) -> None:
    now = int(time.time())
    if case == "untrusted-issuer":
        rogue = ECKey.generate_key("P-256", parameters={"kid": "rogue"})
        token = idp.federation_token(rogue, iss="https://untrusted-idp.invalid")
    elif case == "expired":
        token = idp.federation_token(iat=now - 3600, exp=now - 3000)
    elif case == "just-expired":
        # Two minutes past: a leeway for clock differences is at most a minute.
        token = idp.federation_token(iat=now - 420, exp=now - 120)
    elif case == "not-yet-valid":
        token = idp.federation_token(nbf=now + 600, exp=now + 900)
    elif case == "no-expiry":
        token = idp.federation_token(exp=None)
    elif case == "wrong-audience":
        token = idp.federation_token(aud=["https://another-province.invalid"])
    elif case == "bad-signature":
        trusted = json.loads(idp.credential("federation_issuer_key"))
        forger = ECKey.generate_key("P-256", parameters={"kid": trusted.get("kid", "")})
        token = idp.federation_token(forger)
    elif case == "malformed":
        token = "not-a-jwt." + secrets.token_urlsafe(24)
    else:
        signed = idp.federation_token()
        token = idp.unsigned_jwt(idp.payload_of(signed), kid=str(idp.header_of(signed)["kid"]))
    response = idp.exchange(token)
    assert response.status_code == 400, f"{case}: HTTP {response.status_code} {response.text}"
    assert response.json().get("error") == "invalid_grant", response.text


@pytest.mark.requirement("IC-ID-008", catches=("no-subject-token", "unknown-token-type"))
@pytest.mark.parametrize("case", ["no-subject-token", "unknown-token-type"])
def test_token_exchange_refuses_an_incomplete_request(idp: IdP, case: str) -> None:
    # Each part missing on its own: a check of "both missing" passes one of them alone.
    subject = idp.federation_token()
    data = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": subject,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}  # fmt: skip
    if case == "no-subject-token":
        del data["subject_token"]
    else:
        data["subject_token_type"] = "urn:zwfw:certification:no-such-token-type"
    response = idp.system_post("token_endpoint", data)
    assert response.status_code == 400, f"{case}: HTTP {response.status_code} {response.text}"
    assert response.json().get("error") == "invalid_request", f"{case}: {response.text}"
    assert "access_token" not in response.text


def _normalised(page: httpx.Response) -> str:
    # Per-request values (CSRF tokens, nonces) aside, the two answers must be identical.
    return re.sub(r'value="[^"]*"', 'value=""', page.text)


# Headers whose values differ from one answer to the next whatever the login name.
_PER_ANSWER_HEADERS = frozenset(
    {"date", "content-length", "etag", "last-modified", "expires", "age", "server-timing"}
)


def _header_shape(page: httpx.Response) -> list[str]:
    """The answer's headers with per-answer values (dates, nonces, request IDs, cookie values)
    taken out: what is left is the same for every failed sign-in that reveals nothing."""
    shape = []
    for name, value in page.headers.multi_items():
        name = name.lower()
        if name in _PER_ANSWER_HEADERS:
            shape.append(name)
        elif name == "set-cookie":
            cookie, _, attributes = value.partition(";")
            kept = sorted(
                a.split("=")[0].strip().lower()
                for a in attributes.split(";")
                if a.split("=")[0].strip().lower() not in ("expires", "max-age")
            )
            shape.append(f"set-cookie: {cookie.split('=')[0].strip()}; {'; '.join(kept)}")
        else:
            shape.append(f"{name}: {re.sub(r'[A-Za-z0-9+/_=-]{16,}', '…', value)}")
    return sorted(shape)


def _same_answer(first: httpx.Response, second: httpx.Response) -> str | None:
    """What tells two failed sign-ins apart (status, page or headers), or None."""
    if first.status_code != second.status_code:
        return f"HTTP {first.status_code} vs {second.status_code}"
    if _normalised(first) != _normalised(second):
        return "the pages differ"
    if _header_shape(first) != _header_shape(second):
        differing = set(_header_shape(first)) ^ set(_header_shape(second))
        return f"the headers differ: {sorted(differing)}"
    return None


def _wrong_password() -> str:
    # A new one every time: an IdP may fairly not count a repeated typo twice.
    return "Wrong-" + secrets.token_urlsafe(12)


@pytest.mark.requirement("SEC-AUTH-001", catches=("name-enumeration", "headers-reveal-name"))
def test_a_wrong_password_and_an_unknown_name_are_answered_alike(idp: IdP) -> None:
    # One failure for the everyday test person (reset by its next sign-in), one for a name
    # that does not exist: the answers must not tell them apart, in the page or its headers.
    known, _ = idp.sign_in(idp.credential("identity_user"), _wrong_password())
    unknown, _ = idp.sign_in("nobody-" + secrets.token_hex(6), _wrong_password())
    assert known.location is None, "a wrong password was accepted"
    assert known.password_answer is not None
    assert unknown.password_answer is not None
    difference = _same_answer(known.password_answer, unknown.password_answer)
    assert difference is None, (
        f"the answer for an unknown login name differs from a wrong password: {difference}"
    )


@pytest.mark.requirement(
    "SEC-AUTH-001",
    catches=(
        "no-lockout",
        "lock-too-short",
        "lock-reveals-name",
        "lock-confirms-password",
        "lock-bypassed-by-spelling",
    ),
)
def test_login_failures_lock_the_name_for_a_while(idp: IdP) -> None:
    user = idp.credential("identity_lockout_user")
    password = idp.credential("identity_lockout_password")

    def answer_to(name: str, secret: str) -> tuple[bool, httpx.Response]:
        attempt, _ = idp.sign_in(name, secret)
        assert attempt.password_answer is not None, "no answer to the submitted password"
        return attempt.location is not None, attempt.password_answer

    # A name that does not exist, failed as often: its answer is the standard to meet.
    nobody = "nobody-" + secrets.token_hex(6)
    for _ in range(10):
        answer_to(nobody, _wrong_password())
    _, unknown_answer = answer_to(nobody, _wrong_password())

    def lockout_round() -> tuple[str, httpx.Response, httpx.Response]:
        for _ in range(10):
            answer_to(user, _wrong_password())
        _, locked_wrong = answer_to(user, _wrong_password())
        accepted, locked_right = answer_to(user, password)
        if accepted:
            return "accepted", locked_wrong, locked_right
        # A lock measured in milliseconds instead of seconds is over by now.
        time.sleep(2)
        accepted, _ = answer_to(user, password)
        return ("released" if accepted else "held"), locked_wrong, locked_right

    # A lock left by an earlier run can run out during a round, and the right password then
    # passes: that sign-in clears the name, so a second round decides.
    outcome, locked_wrong, locked_right = lockout_round()
    if outcome != "held":
        outcome, locked_wrong, locked_right = lockout_round()
    assert outcome != "accepted", "the right password was accepted after 10 failures, twice"
    assert outcome != "released", "the lock after 10 failures was over within 2 seconds, twice"
    difference = _same_answer(locked_wrong, unknown_answer)
    assert difference is None, (
        "after 11 failures, a locked name is answered otherwise than a name that does not "
        f"exist: {difference}"
    )
    difference = _same_answer(locked_right, locked_wrong)
    assert difference is None, (
        f"a locked name's answer tells the right password from a wrong one: {difference}"
    )

    # Whether names are told apart by case, width or spaces is the IdP's choice; a lock keyed on
    # the name as typed, in front of an account lookup that ignores them, lets the locked person
    # in. Chinese input methods type full-width letters and the ideographic space (U+3000).
    def bypasses_lock(spelling: str) -> bool:
        if not answer_to(spelling, password)[0]:
            return False
        if not answer_to(user, password)[0]:
            return True  # the name as registered is still locked
        # The lock ran out meanwhile: lock the name again and try the spelling at once.
        for _ in range(10):
            answer_to(user, _wrong_password())
        return answer_to(spelling, password)[0]

    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in user)
    spellings = dict.fromkeys(
        [
            user.upper(),
            user.lower(),
            f" {user}",
            f"{user} ",
            full_width,
            f"\u3000{user}",
            f"{user}\u3000",
        ]
    )
    bypassing = [repr(s) for s in spellings if s != user and bypasses_lock(s)]
    assert not bypassing, (
        f"the locked name {user!r} signs in with its password as {', '.join(bypassing)}"
    )


def _id_numbers_in(text: str) -> bool:
    for candidate in _ID_CANDIDATE.findall(text):
        try:
            parse_resident_id(candidate)
        except CodeError:
            continue
        return True
    return False


@pytest.mark.requirement(
    "SEC-AUTH-002",
    catches=("id-token", "access-token", "userinfo", "refreshed-tokens", "introspection"),
)
def test_no_resident_id_number_in_tokens_or_userinfo(idp: IdP) -> None:
    tokens = idp.user_tokens()
    info = idp.userinfo(tokens["access_token"])
    assert info.status_code == 200, info.text
    texts = {"userinfo": info.text}
    introspected = idp.introspect(tokens["access_token"])
    assert introspected.status_code == 200, introspected.text
    texts["introspection"] = introspected.text
    for name in ("id_token", "access_token"):
        texts[name] = json.dumps(idp.payload_of(tokens[name]), ensure_ascii=False)
    refreshed = idp.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    for name in ("id_token", "access_token"):
        if refreshed.json().get(name):
            payload = idp.payload_of(refreshed.json()[name])
            texts[f"refreshed {name}"] = json.dumps(payload, ensure_ascii=False)
    leaking = [name for name, text in texts.items() if _id_numbers_in(text)]
    assert not leaking, f"a resident ID number is carried by: {', '.join(leaking)}"


def _anti_framing(headers: httpx.Headers) -> bool:
    return headers.get("x-frame-options", "").upper() == "DENY" or (
        "frame-ancestors 'none'" in headers.get("content-security-policy", "")
    )


def _without_csrf(form: Form) -> dict[str, str]:
    return {
        name: value
        for name, value in form.fields.items()
        if not (form.types.get(name) == "hidden" and re.search("csrf|token", name, re.I))
    }


@pytest.mark.requirement(
    "SEC-AUTH-003", catches=("sign-in-frameable", "nosniff-missing", "csrf-missing", "csrf-forged")
)
def test_sign_in_page_is_protected(idp: IdP) -> None:
    _, challenge = idp.pkce()
    with idp.browser() as browser:
        url = idp.authorize_url(code_challenge=challenge, code_challenge_method="S256")
        start = browser.get(url, follow_redirects=True)
        assert start.status_code == 200
        assert _anti_framing(start.headers), "the sign-in page can be framed (clickjacking)"
        assert start.headers.get("x-content-type-options") == "nosniff"
        forms = [f for f in idp.forms(start.text) if "password" in f.types.values()]
        assert forms, "no sign-in form found"
        form = forms[0]
        data = _without_csrf(form)
        data.update({n: "x" for n, t in form.types.items() if t in ("text", "password")})
        action = httpx.URL(str(start.url)).join(form.action)
        # The same form without its anti-forgery token, then with a made-up one.
        cross_site = browser.post(action, data=data, follow_redirects=False)
        assert cross_site.status_code in (400, 403), (
            f"a sign-in without the anti-forgery token got HTTP {cross_site.status_code}"
        )
        tokens = [n for n in form.fields if n not in data]
        assert tokens, "the sign-in form carries no anti-forgery token"
        forged = {**data, **{n: secrets.token_urlsafe(24) for n in tokens}}
        made_up = browser.post(action, data=forged, follow_redirects=False)
        assert made_up.status_code in (400, 403), (
            f"a sign-in with a made-up anti-forgery token got HTTP {made_up.status_code}"
        )


# A state value that breaks out of an attribute and opens an element unless it is escaped.
_MARKUP = '"><img src=x data-probe="zwfw">'


@pytest.mark.requirement(
    "SEC-AUTH-003",
    catches=("consent-frameable", "nosniff-missing", "consent-csrf", "markup-reflected"),
)
def test_consent_page_is_protected(idp: IdP) -> None:
    redirect = idp.credential("identity_rp_redirect_uri")
    _, challenge = idp.pkce()
    with idp.browser() as browser:
        url = idp.authorize_url(
            code_challenge=challenge, code_challenge_method="S256", state="s" + _MARKUP
        )
        page = browser.get(url, follow_redirects=True)
        password = [f for f in idp.forms(page.text) if "password" in f.types.values()]
        assert password, "no sign-in form found"
        form = password[0]
        data = dict(form.fields)
        kinds = form.types
        data[next(n for n, t in kinds.items() if t in ("text", "email", "tel"))] = idp.credential(
            "identity_user"
        )
        data[next(n for n, t in kinds.items() if t == "password")] = idp.credential(
            "identity_password"
        )
        response = browser.request(
            form.method.upper(), httpx.URL(str(page.url)).join(form.action), data=data,
            follow_redirects=False,
        )  # fmt: skip
        for _ in range(8):
            location = response.headers.get("location", "")
            if not response.is_redirect or location.startswith(redirect):
                break
            response = browser.get(response.url.join(location), follow_redirects=False)
        consent = [f for f in idp.forms(response.text) if any(v == "allow" for _, v in f.buttons)]
        if not consent:
            # No consent page: the person was sent back to the relying party directly.
            assert response.is_redirect, f"after the sign-in: HTTP {response.status_code}"
            return
        assert _MARKUP not in response.text, "the consent page reflects the state unescaped"
        assert _anti_framing(response.headers), "the consent page can be framed (clickjacking)"
        assert response.headers.get("x-content-type-options") == "nosniff"
        allow = consent[0]
        name, value = next((n, v) for n, v in allow.buttons if v == "allow")
        forged = browser.request(
            allow.method.upper(), response.url.join(allow.action),
            data={**_without_csrf(allow), name: value}, follow_redirects=False,
        )  # fmt: skip
        assert forged.status_code in (400, 403), (
            f"a consent without its anti-forgery token got HTTP {forged.status_code} "
            f"{forged.headers.get('location', '')[:80]}"
        )


def _changed_redirect_uri(registered: str, change: str) -> str | None:
    """The registered redirect URI with one change a loose comparison would overlook (None:
    the URI has nothing this change can alter)."""
    parts = urllib.parse.urlsplit(registered)
    if change == "path-appended":
        return registered.rstrip("/") + "/evil"
    if change == "query-appended":
        return registered + ("&" if parts.query else "?") + "next=https://evil.invalid/"
    if change == "other-host":
        return urllib.parse.urlunsplit((parts.scheme, "evil.invalid", parts.path, parts.query, ""))
    if change == "path-case-changed":
        # Paths are case-sensitive (RFC 3986 6.2.2.1); scheme and host are not.
        path = parts.path.swapcase()
        return None if path == parts.path else parts._replace(path=path).geturl()
    if change == "slash-appended":
        path = parts.path[:-1] if parts.path.endswith("/") else parts.path + "/"
        return parts._replace(path=path).geturl()
    # port-changed: another port of the same host (not the scheme's default, which is the same
    # origin written out).
    port = (parts.port or {"https": 443, "http": 80}.get(parts.scheme, 443)) + 1
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return parts._replace(netloc=f"{host}:{port}").geturl()


@pytest.mark.requirement(
    "IC-ID-009",
    catches=("path-appended", "query-appended", "other-host", "error-redirected",
             "compared-loosely"),
)  # fmt: skip
@pytest.mark.parametrize(
    "change",
    ["path-appended", "query-appended", "other-host", "path-case-changed", "slash-appended",
     "port-changed"],
)  # fmt: skip
def test_redirect_uri_is_matched_exactly(idp: IdP, change: str) -> None:
    registered = idp.credential("identity_rp_redirect_uri")
    _, challenge = idp.pkce()
    pkce_params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    # The registered URI itself is taken: what follows cannot pass by refusing everything.
    assert _authorize_error(idp, idp.authorize_url(**pkce_params)) == "accepted", (
        "an authorization request with the registered redirect URI was refused"
    )
    unregistered = _changed_redirect_uri(registered, change)
    if unregistered is None:
        return  # e.g. a path without letters: no other case to write it in
    first = idp.http.get(
        idp.authorize_url(redirect_uri=unregistered, **pkce_params), follow_redirects=False
    )
    assert not first.headers.get("location", "").startswith(unregistered), (
        f"the IdP redirected to an unregistered redirect URI ({change}) before the sign-in"
    )
    # A faulty IdP may check only at the end: sign in and see where the code would go.
    result, _ = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"),
        redirect_uri=unregistered,
    )  # fmt: skip
    assert result.location is None, (
        f"the IdP redirected to an unregistered redirect URI ({change}) after the sign-in"
    )


@pytest.mark.requirement("IC-ID-009", catches=("unknown-client-redirected",))
@pytest.mark.parametrize("client", ["unknown-client", "no-client"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_request_without_a_known_client_is_not_redirected(
    idp: IdP, client: str, method: str
) -> None:
    # RFC 6749 §4.1.2.1: with the client missing or invalid there is no registered URI to
    # compare with, and redirecting to the one given would send anyone anywhere (RFC 9700
    # §4.11.2, the authorization server as open redirector).
    elsewhere = "https://redirect-target.invalid/cb"
    _, challenge = idp.pkce()
    url = idp.authorize_url(
        redirect_uri=elsewhere, code_challenge=challenge, code_challenge_method="S256",
        client_id="no-such-client-" + secrets.token_hex(4),
    )  # fmt: skip
    endpoint, _, query = url.partition("?")
    params = urllib.parse.parse_qsl(query)
    if client == "no-client":
        params = [(name, value) for name, value in params if name != "client_id"]
    reached: list[str] = []
    with idp.browser() as browser:
        if method == "GET":
            answer = browser.get(f"{endpoint}?{urllib.parse.urlencode(params)}")
        else:
            answer = browser.post(endpoint, data=dict(params))
        # Redirects are followed while they stay on the IdP (a POST may be answered as the
        # same request by GET): none may lead to the URI the request gave.
        for _ in range(5):
            if not answer.is_redirect:
                break
            location = urllib.parse.urljoin(str(answer.url), answer.headers["location"])
            reached.append(location)
            if urllib.parse.urlsplit(location).netloc != urllib.parse.urlsplit(endpoint).netloc:
                break
            answer = browser.get(location)
    assert not any(location.startswith(elsewhere) for location in reached), (
        f"a {method} request with {client} was redirected to the redirect_uri it gave: {reached}"
    )


# Where a forged continuation would send the person: a host that cannot exist.
_ELSEWHERE = "continuation.invalid"


def _pointed_elsewhere(value: str, issuer: str) -> list[str]:
    """Forgeries of a continuation ``value`` (a URL of the IdP, absolute or a path): its path and
    query at another origin, as an absolute and as a scheme-relative URL."""
    parsed = urllib.parse.urlsplit(value)
    if parsed.netloc not in ("", urllib.parse.urlsplit(issuer).netloc):
        return []
    if not parsed.path.startswith("/") or parsed.path.startswith("//"):
        return []
    rest = urllib.parse.urlunsplit(("", "", parsed.path, parsed.query, ""))
    return [f"https://{_ELSEWHERE}{rest}", f"//{_ELSEWHERE}{rest}"]


def _password_form(idp: IdP, page: httpx.Response) -> Form | None:
    return next((f for f in idp.forms(page.text) if "password" in f.types.values()), None)


def _continuations_after_sign_in(
    idp: IdP, browser: httpx.Client, page: httpx.Response, form: Form, fields: dict[str, str]
) -> list[str]:
    """Where the browser is sent once the person signs in with ``form`` (``fields`` as sent):
    redirects are followed, and a consent page allowed, while they stay on the IdP."""
    kinds = form.types
    data = dict(fields)
    data[next(n for n, t in kinds.items() if t in ("text", "email", "tel"))] = idp.credential(
        "identity_user"
    )
    data[next(n for n, t in kinds.items() if t == "password")] = idp.credential("identity_password")
    here = str(page.url)
    answer = browser.request(
        form.method.upper(), urllib.parse.urljoin(here, form.action), data=data
    )
    idp_host = urllib.parse.urlsplit(idp.issuer).netloc
    reached: list[str] = []
    allowed = False
    for _ in range(8):
        if answer.is_redirect:
            location = urllib.parse.urljoin(str(answer.url), answer.headers["location"])
            reached.append(location)
            if urllib.parse.urlsplit(location).netloc != idp_host:
                break
            answer = browser.get(location)
            continue
        forms = idp.forms(answer.text)
        consent = next((f for f in forms if any(v == "allow" for _, v in f.buttons)), None)
        if consent is None or allowed:
            break
        allowed = True
        button = next((n, v) for n, v in consent.buttons if v == "allow")
        target = urllib.parse.urljoin(str(answer.url), consent.action)
        answer = browser.request(
            consent.method.upper(), target, data={**consent.fields, button[0]: button[1]}
        )
    return reached


@pytest.mark.requirement("IC-ID-009", catches=("sign-in-continues-elsewhere",))
@pytest.mark.parametrize("carrier", ["address", "form"])
def test_the_sign_in_pages_continue_only_at_the_idp(idp: IdP, carrier: str) -> None:
    # RFC 9700 §4.11 (open redirection): sign-in pages often carry where to go on (the pending
    # authorization request) in their address or in a hidden form field. A value naming another
    # origin must not be followed once the person has signed in, or every sign-in link of the
    # province can send its residents, signed in, to a page that imitates the IdP.
    _, challenge = idp.pkce()
    url = idp.authorize_url(code_challenge=challenge, code_challenge_method="S256")
    for variant in (0, 1):
        with idp.browser() as browser:
            page = browser.get(url)
            for _ in range(5):
                if not page.is_redirect:
                    break
                page = browser.get(urllib.parse.urljoin(str(page.url), page.headers["location"]))
            form = _password_form(idp, page)
            assert form is not None, f"the authorization request led to no sign-in form ({page})"
            fields = dict(form.fields)
            if carrier == "address":
                query = urllib.parse.parse_qsl(page.url.query.decode(), keep_blank_values=True)
                forged = [(k, (_pointed_elsewhere(v, idp.issuer) or [v, v])[variant])
                          for k, v in query]  # fmt: skip
                if forged == query:
                    return  # the sign-in page's address carries no continuation
                page = browser.get(
                    page.url.copy_with(query=urllib.parse.urlencode(forged).encode())
                )
                form = _password_form(idp, page)
                if form is None:
                    continue  # the forged address is refused: nothing to follow
                fields = dict(form.fields)
            else:
                hidden = [n for n, t in form.types.items() if t == "hidden"]
                candidates = {n: _pointed_elsewhere(fields[n], idp.issuer) for n in hidden}
                forgeries = {n: f[variant] for n, f in candidates.items() if f}
                if not forgeries:
                    return  # the sign-in form carries no continuation
                fields.update(forgeries)
            reached = _continuations_after_sign_in(idp, browser, page, form, fields)
            sent = [location for location in reached
                    if urllib.parse.urlsplit(location).netloc == _ELSEWHERE]  # fmt: skip
            assert not sent, (
                f"a continuation forged in the sign-in page's {carrier} sends the signed-in "
                f"person to another origin: {sent[0]}"
            )


@pytest.mark.requirement("IC-ID-009", catches=("token-redirect-mismatch",))
def test_code_needs_its_redirect_uri(idp: IdP) -> None:
    result, verifier = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password")
    )
    response = idp.http.post(
        idp.config["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": result.param("code"),
            "redirect_uri": idp.credential("identity_rp_redirect_uri") + "/other",
            "client_id": idp.credential("identity_rp_client_id"),
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 400, (
        f"a code was exchanged with another redirect_uri (HTTP {response.status_code})"
    )
    assert response.json().get("error") == "invalid_grant", response.text


@pytest.mark.requirement(
    "IC-ID-010",
    catches=("no-token", "garbage-token", "signature-unchecked", "revoked-token", "post-refused",
             "id-token-accepted"),
)  # fmt: skip
def test_userinfo_needs_a_valid_access_token(idp: IdP) -> None:
    tokens = idp.user_tokens()
    access_token = tokens["access_token"]
    endpoint = idp.config["userinfo_endpoint"]
    # Answered once, so that a cache of answers is warm for what follows.
    answered = idp.userinfo(access_token)
    assert answered.status_code == 200, "userinfo refused a fresh token"
    # OpenID Connect Core section 5.3.1: GET and POST alike.
    posted = idp.http.post(endpoint, headers={"Authorization": f"Bearer {access_token}"})
    assert posted.status_code == 200, f"userinfo refused a POST: HTTP {posted.status_code}"
    assert posted.json().get("sub") == answered.json().get("sub"), "POST answers another sub"

    def refused(response: httpx.Response, what: str) -> None:
        assert response.status_code == 401, f"userinfo answered {what}: HTTP {response.status_code}"
        challenge = response.headers.get("www-authenticate", "")
        assert challenge.lower().startswith("bearer"), (
            f"userinfo refused {what} without a Bearer challenge: {challenge!r}"
        )

    refused(idp.http.get(endpoint), "a request without a token")
    refused(idp.userinfo("not-a-token-" + secrets.token_urlsafe(16)), "a made-up bearer value")
    head, body, signature = access_token.split(".")
    claims = idp.payload_of(access_token)
    claims["exp"] = int(claims.get("exp", time.time())) + 3600
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    refused(idp.userinfo(f"{head}.{altered}.{signature}"), "a token altered after signing")
    # Signed by the IdP for the same person, yet for the relying party to read, not to present:
    # an IdP that checks the signature and the subject only answers it.
    refused(idp.userinfo(tokens["id_token"]), "the ID token as a bearer token")
    revoked = idp.revoke(access_token)
    assert revoked.status_code == 200, f"the relying party cannot revoke its token: {revoked.text}"
    refused(idp.userinfo(access_token), "a revoked access token")


# The longest a refresh token may live: a sign-in kept alive by refresh ends within a month.
REFRESH_LIFETIME_BOUND = 30 * 86400


@pytest.mark.requirement(
    "IC-ID-012", catches=("values-wrong", "spent-refresh-active", "refresh-unbounded")
)
def test_introspection_reports_the_token_as_issued(idp: IdP) -> None:
    tokens = idp.user_tokens()
    issued = idp.claims(tokens["access_token"])
    subject = idp.claims(tokens["id_token"])["sub"]
    answer = idp.introspect(tokens["access_token"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body.get("active") is True, f"a fresh access token is not active: {body}"
    # Each member it gives must be the token's own value, not merely present.
    expected = {
        "client_id": idp.credential("identity_rp_client_id"),
        "sub": subject,
        "exp": issued["exp"],
        "iat": issued["iat"],
        "iss": idp.issuer,
        "jti": issued.get("jti"),
    }
    wrong = {
        name: (body[name], value)
        for name, value in expected.items()
        if name in body and value is not None and body[name] != value
    }
    assert not wrong, f"introspection answers (given, issued): {wrong}"
    # What a resource server needs to act on the answer (whose token, until when).
    assert "client_id" in body, f"introspection gives no client_id: {body}"
    assert "exp" in body, f"introspection gives no exp: {body}"
    if "scope" in body:
        assert set(str(body["scope"]).split()) == set(str(issued.get("scope", "")).split()), (
            f"introspection scope {body['scope']!r}, the token has {issued.get('scope')!r}"
        )
    if "token_type" in body:
        assert str(body["token_type"]).lower() == "bearer", f"token_type {body['token_type']!r}"
    # A refresh token spent by rotation is over (whatever introspection says of live ones).
    refreshed = idp.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    spent = idp.introspect(tokens["refresh_token"])
    assert spent.status_code == 200, spent.text
    assert spent.json().get("active") is not True, (
        f"a refresh token spent by rotation is reported active: {spent.json()}"
    )
    # The live refresh token ends: the expiry introspection tells is ahead, and a sign-in
    # session kept by refresh is bounded (GB/T 22239 session end; RFC 9700 §4.14.2).
    live = idp.introspect(refreshed.json()["refresh_token"])
    assert live.status_code == 200, live.text
    facts = live.json()
    if facts.get("active") is True and "exp" in facts:
        now = time.time()
        assert now < facts["exp"] <= now + REFRESH_LIFETIME_BOUND, (
            f"the live refresh token expires at {facts['exp']}, {facts['exp'] - now:.0f} s "
            f"from now (bound {REFRESH_LIFETIME_BOUND} s)"
        )
        assert facts.get("client_id") in (None, idp.credential("identity_rp_client_id")), (
            f"the live refresh token is introspected as another client's: {facts}"
        )


@pytest.mark.requirement(
    "IC-ID-013", catches=("refresh-still-works", "access-still-active", "other-client-revokes")
)
def test_revoking_a_refresh_token_ends_its_grant(idp: IdP) -> None:
    first = idp.user_tokens()
    # Another client of the IdP (the system client) cannot revoke the relying party's token.
    idp.system_post(
        "revocation_endpoint",
        {"token": first["refresh_token"], "token_type_hint": "refresh_token"},
    )
    second = idp.refresh(first["refresh_token"])
    assert second.status_code == 200, (
        f"another client revoked the relying party's refresh token: {second.text}"
    )
    latest = second.json()
    revoked = idp.revoke(latest["refresh_token"])
    assert revoked.status_code == 200, f"the relying party cannot revoke its token: {revoked.text}"
    after = idp.refresh(latest["refresh_token"])
    assert after.status_code == 400, (
        f"a revoked refresh token was exchanged (HTTP {after.status_code})"
    )
    assert after.json().get("error") == "invalid_grant", after.text
    # RFC 7009 section 2.1: the access tokens of the same grant go with it, the sign-in's
    # first one as well as the latest.
    for name, token in (("latest", latest["access_token"]), ("first", first["access_token"])):
        answer = idp.introspect(token)
        assert answer.status_code == 200, answer.text
        assert answer.json().get("active") is False, (
            f"the {name} access token of a revoked refresh token's grant is still active"
        )


@pytest.mark.requirement(
    "IC-ID-014", catches=("openid-scope-unchecked", "claims-beyond-scope", "profile-missing")
)
def test_userinfo_releases_claims_by_scope(idp: IdP) -> None:
    user, password = idp.credential("identity_user"), idp.credential("identity_password")

    def access_token(scope: str) -> str | None:
        """The access token of a sign-in for ``scope``; None if the IdP refused the request."""
        result, verifier = idp.sign_in(user, password, scope=scope)
        if result.location is None and result.response.status_code == 400:
            return None  # refused with an error page
        if result.location is not None and "code=" not in result.location:
            return None  # refused with an error redirect
        response = idp.code_tokens(result.param("code"), verifier)
        assert response.status_code == 200, f"scope {scope!r}: {response.text}"
        return str(response.json()["access_token"])

    def userinfo(scope: str) -> httpx.Response:
        token = access_token(scope)
        assert token is not None, f"the IdP refused a sign-in for scope {scope!r}"
        return idp.userinfo(token)

    full = userinfo("openid profile")
    assert full.status_code == 200, full.text
    assert full.json().get("name"), f"scope profile, yet userinfo has no name: {full.json()}"
    bare = userinfo("openid")
    assert bare.status_code == 200, bare.text
    assert bare.json().get("sub") == full.json().get("sub")
    extra = sorted(set(bare.json()) & {"name", "phone_number", "credit_code",
                                       "legal_representative"})  # fmt: skip
    assert not extra, f"scope openid alone, yet userinfo releases {extra}"
    # Without openid the token is a plain OAuth token (if the IdP grants one at all): userinfo
    # is not for it.
    token = access_token("profile")
    if token is None:
        return
    plain = idp.userinfo(token)
    assert plain.status_code in (401, 403), (
        f"userinfo answered an access token granted without the openid scope "
        f"(HTTP {plain.status_code})"
    )


def _asks_for_password(idp: IdP, browser: httpx.Client, url: str) -> bool:
    """Whether an authorization request in this browser comes to a password form (False:
    it comes back to the relying party or to the consent page without one)."""
    redirect = idp.credential("identity_rp_redirect_uri")
    response = browser.get(url, follow_redirects=False)
    for _ in range(8):
        location = response.headers.get("location", "")
        if not response.is_redirect:
            break
        if location.startswith(redirect):
            return False
        response = browser.get(response.url.join(location), follow_redirects=False)
    return any("password" in form.types.values() for form in idp.forms(response.text))


def _signed_in(idp: IdP, browser: httpx.Client) -> tuple[str, str, bool]:
    """The test user signed in with ``browser``: the ID token (a logout hint), the URL of a
    second authorization request, and whether the IdP remembers the sign-in for it."""
    result, verifier = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password"), browser=browser
    )
    tokens = idp.code_tokens(result.param("code"), verifier)
    assert tokens.status_code == 200, tokens.text
    _, challenge = idp.pkce()
    again = idp.authorize_url(code_challenge=challenge, code_challenge_method="S256")
    return tokens.json()["id_token"], again, not _asks_for_password(idp, browser, again)


def _near_misses(registered: str) -> list[str]:
    """URIs a prefix or a lenient match of ``registered`` would take: a longer path segment,
    a deeper path, another query."""
    joiner = "&" if "?" in registered else "?"
    return [
        registered + "-evil",
        registered.rstrip("/") + "/../../evil",
        registered + joiner + "next=https%3A%2F%2Fevil.invalid%2F",
    ]


@pytest.mark.requirement(
    "IC-ID-011",
    catches=("session-survives", "unregistered-redirect", "registered-not-followed",
             "state-not-returned", "forged-hint-followed", "prefix-matched", "client-id-ignored"),
)  # fmt: skip
def test_logout_ends_the_session(idp: IdP) -> None:
    endpoint = idp.config["end_session_endpoint"]
    registered = idp.credential("identity_rp_post_logout_redirect_uri")
    with idp.browser() as browser:
        hint, again, remembered = _signed_in(idp, browser)
        evil = "https://evil.invalid/signed-out"
        elsewhere = browser.get(
            endpoint,
            params={"id_token_hint": hint, "post_logout_redirect_uri": evil, "state": "s1"},
            follow_redirects=False,
        )
        assert not elsewhere.headers.get("location", "").startswith(evil), (
            "logout redirected to a post_logout_redirect_uri the client never registered"
        )
        # Registered URIs are compared as whole strings (RFC 6749 3.1.2.3, RFC 9700 2.1): one
        # that merely starts with the registered URI, or adds a query to it, is another URI.
        for near_miss in _near_misses(registered):
            answer = browser.get(
                endpoint,
                params={"id_token_hint": hint, "post_logout_redirect_uri": near_miss},
                follow_redirects=False,
            )
            assert not answer.headers.get("location", "").startswith(near_miss), (
                f"logout redirected to {near_miss}, which only starts with the registered "
                f"post_logout_redirect_uri {registered}"
            )
        # The hint names the client whose registered URIs apply: one that does not verify
        # names no client.
        head, payload, signature = hint.split(".")
        tail = "AAAA" if signature[-4:] != "AAAA" else "BBBB"
        forged = f"{head}.{payload}.{signature[:-4]}{tail}"
        unverified = browser.get(
            endpoint,
            params={"id_token_hint": forged, "post_logout_redirect_uri": registered, "state": "s0"},
            follow_redirects=False,
        )
        assert not unverified.headers.get("location", "").startswith(registered), (
            "logout followed a post_logout_redirect_uri for an id_token_hint that does not verify"
        )
        # A client_id names the client whose URIs apply only when it is the hint's own
        # (RP-Initiated Logout 1.0 §2): another client's id is refused, never followed.
        other_client = browser.get(
            endpoint,
            params={"id_token_hint": hint, "client_id": idp.credential("identity_client_id"),
                    "post_logout_redirect_uri": registered, "state": "s2"},
            follow_redirects=False,
        )  # fmt: skip
        assert not other_client.headers.get("location", "").startswith(registered), (
            "logout followed a post_logout_redirect_uri for a client_id other than the hint's"
        )
        state = secrets.token_urlsafe(12)
        out = browser.get(
            endpoint,
            params={"id_token_hint": hint, "post_logout_redirect_uri": registered, "state": state},
            follow_redirects=False,
        )
        assert_returned(out, registered, state)
        # Only a remembered sign-in can survive a logout; an IdP without one passes.
        if remembered:
            assert _asks_for_password(idp, browser, again), (
                "after logout the browser is still signed in (no password asked)"
            )


def assert_returned(out: httpx.Response, registered: str, state: str) -> None:
    """The logout answer returns to the registered post_logout_redirect_uri with ``state``."""
    assert out.is_redirect, (
        f"logout did not return to the client's registered post_logout_redirect_uri: "
        f"HTTP {out.status_code}"
    )
    back = httpx.URL(out.headers["location"])
    assert str(back).split("?")[0] == registered.split("?")[0], (
        f"logout returned to {back}, not to the registered {registered}"
    )
    returned = urllib.parse.parse_qs(back.query.decode())
    assert returned.get("state") == [state], (
        f"logout returned to the client with state {returned.get('state')}, sent {state!r}"
    )


@pytest.mark.requirement("IC-ID-011", catches=("post-not-supported",))
def test_logout_posted_as_a_form_ends_the_session(idp: IdP) -> None:
    # RP-Initiated Logout 1.0 §2: the end_session_endpoint takes GET and POST alike; a
    # relying party posting the form (a hint too long for a URL, or its own choice) is served.
    endpoint = idp.config["end_session_endpoint"]
    registered = idp.credential("identity_rp_post_logout_redirect_uri")
    with idp.browser() as browser:
        hint, again, remembered = _signed_in(idp, browser)
        state = secrets.token_urlsafe(12)
        form = {
            "id_token_hint": hint,
            "client_id": idp.credential("identity_rp_client_id"),
            "post_logout_redirect_uri": registered,
            "state": state,
        }
        out = browser.post(endpoint, data=form, follow_redirects=False)
        assert_returned(out, registered, state)
        if remembered:
            assert _asks_for_password(idp, browser, again), (
                "after a logout posted as a form the browser is still signed in"
            )


# Rounding of iat and exp, and the moment expires_in was computed, may differ by a second.
_LIFETIME_SLACK = 5


@pytest.mark.requirement(
    "IC-ID-018", catches=("response-stored", "token-type-wrong", "expires-in-wrong")
)
def test_token_responses_are_bearer_and_not_stored(idp: IdP) -> None:
    # RFC 6749 section 5.1, for every grant that answers with tokens: each grant is its own
    # code path in an IdP, so a header or a value right in one says nothing of the others.
    result, verifier = idp.sign_in(
        idp.credential("identity_user"), idp.credential("identity_password")
    )
    answers = {"authorization code": idp.code_tokens(result.param("code"), verifier)}
    assert answers["authorization code"].status_code == 200, answers["authorization code"].text
    answers["refresh"] = idp.refresh(answers["authorization code"].json()["refresh_token"])
    answers["client credentials"] = idp.system_post(
        "token_endpoint", {"grant_type": "client_credentials"}
    )
    answers["token exchange"] = idp.exchange(idp.federation_token())
    for grant, answer in answers.items():
        assert answer.status_code == 200, f"{grant}: HTTP {answer.status_code} {answer.text}"
        cache = answer.headers.get("cache-control", "")
        directives = {part.strip().lower() for part in cache.split(",")}
        assert "no-store" in directives, (
            f"the {grant} answer may be stored by caches (Cache-Control {cache!r})"
        )
        body = answer.json()
        assert str(body.get("token_type", "")).lower() == "bearer", (
            f"the {grant} answer's token_type is {body.get('token_type')!r}"
        )
        if "expires_in" in body:
            claims = idp.claims(body["access_token"])
            lifetime = claims["exp"] - claims["iat"]
            assert abs(body["expires_in"] - lifetime) <= _LIFETIME_SLACK, (
                f"the {grant} answer's expires_in is {body['expires_in']}, its access token "
                f"lives {lifetime} seconds"
            )


# How long a service may take to accept tokens of a rotated-in key: it refetches the JWKS when a
# token names a key it does not know, at most every few seconds (kit: 10 s).
_ROTATION_PICKUP_SECONDS = 30.0
# Where each service is tried with the tokens it takes, a person's (the relying party's) or a
# system client's (identity_client_id, scope eseal:read): any answer but 401 says the token
# itself was accepted (a 403 is about the scope).
_TOKEN_ROUTES: dict[ServiceName, tuple[str, Literal["person", "system"]]] = {
    "hall": ("cases", "person"),
    "elicense": ("me/licences", "person"),
    "eseal": ("seals", "system"),
}
_SYSTEM_SCOPE = "eseal:read"
# The retired key is looked for again this long after the rotation at the least: a retention
# shorter than the tokens' lives, or a JWKS rebuilt later from the active key alone, shows then.
_RETENTION_CHECK_SECONDS = 10.0


def _accepted_within(client: httpx.Client, path: str, token: str, seconds: float) -> bool:
    """True when ``token`` is answered without 401 five times in a row within ``seconds``, so
    that every replica behind the service has taken it."""
    deadline, in_a_row = time.monotonic() + seconds, 0
    while in_a_row < 5:
        answer = client.get(path, params={"limit": 1}, headers={"Authorization": f"Bearer {token}"})
        in_a_row = in_a_row + 1 if answer.status_code != 401 else 0
        if in_a_row == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)
    return True


def _system_token(idp: IdP) -> str | None:
    """An access token of the profile's system client for the e-seal service, or None where
    the client may not ask for one."""
    answer = idp.system_post(
        "token_endpoint", {"grant_type": "client_credentials", "scope": _SYSTEM_SCOPE}
    )
    return str(answer.json()["access_token"]) if answer.status_code == 200 else None


@pytest.mark.operation
@pytest.mark.requirement(
    "IC-ID-002",
    catches=(
        "rotation-not-applied",
        "retired-key-dropped",
        "old-tokens-refused",
        "new-key-refused-by-service",
        "retired-key-refused-by-service",
    ),
)
def test_a_signing_key_rotation_keeps_every_token_valid(
    idp: IdP, service_client: Callable[[ServiceName], httpx.Client]
) -> None:
    operations = idp.target.operations
    rotate = operations.rotate_signing_key if operations is not None else None
    if rotate is None:
        raise Inconclusive(
            "the profile declares no way to rotate the IdP's signing key "
            "(operations.rotate_signing_key)"
        )
    before = idp.user_tokens()
    old_kid = idp.header_of(before["access_token"]).get("kid")
    system_before = _system_token(idp)
    outcome = execute(rotate)
    rotated_at = time.monotonic()
    assert outcome.returncode == 0, (
        f"the declared rotation failed (exit {outcome.returncode}): {rotate.describe()}: "
        f"{outcome.output}"
    )
    published = {key.get("kid") for key in idp.fetch(idp.config["jwks_uri"]).json()["keys"]}
    after = idp.user_tokens()
    system_after = _system_token(idp) if system_before is not None else None
    signed_after = {name: after[name] for name in ("id_token", "access_token")}
    if system_after is not None:
        signed_after["client_credentials access token"] = system_after
    for name, token in signed_after.items():
        kid = idp.header_of(token).get("kid")
        assert kid != old_kid, f"after the rotation the {name} is still signed by key {old_kid}"
        assert kid in published, f"the {name}'s new key {kid} is not in the JWKS"
    new_kid = idp.header_of(after["access_token"]).get("kid")
    assert old_kid in published, (
        f"the key retired by the rotation ({old_kid}) left the JWKS while its tokens are valid"
    )
    old_life = idp.claims(before["id_token"])["exp"]  # still verifies with the published keys

    info = idp.userinfo(before["access_token"])
    assert info.status_code == 200, f"userinfo refuses a token signed before the rotation: {info}"
    introspected = idp.introspect(before["access_token"]).json()
    assert introspected.get("active") is True, (
        "a token signed before the rotation is inactive on introspection"
    )
    refreshed = idp.refresh(before["refresh_token"])
    assert refreshed.status_code == 200, (
        f"a refresh token issued before the rotation is refused: {refreshed.text}"
    )
    kid = idp.header_of(refreshed.json()["access_token"]).get("kid")
    assert kid == new_kid, f"a token refreshed after the rotation is signed by key {kid}"

    configured = idp.target.services.configured()
    tokens = {"person": (before["access_token"], after["access_token"])}
    if system_before is not None and system_after is not None:
        tokens["system"] = (system_before, system_after)
    service: ServiceName
    for service, (path, holder) in _TOKEN_ROUTES.items():
        if service not in configured or holder not in tokens:
            continue
        old_token, new_token = tokens[holder]
        client = service_client(service)
        if not _accepted_within(client, path, old_token, 0):
            continue  # these tokens are not addressed to this service
        assert _accepted_within(client, path, new_token, _ROTATION_PICKUP_SECONDS), (
            f"the {service} refuses tokens of the new key {new_kid} "
            f"{_ROTATION_PICKUP_SECONDS:g} s after the rotation (its JWKS is not refetched)"
        )
        assert _accepted_within(client, path, old_token, 0), (
            f"the {service} refuses tokens of the retired key {old_kid} after the rotation"
        )

    time.sleep(max(0.0, rotated_at + _RETENTION_CHECK_SECONDS - time.monotonic()))
    if old_life <= time.time() + _LIFETIME_SLACK:
        return  # the old tokens have expired: nothing is owed to them any more
    later = {key.get("kid") for key in idp.fetch(idp.config["jwks_uri"]).json()["keys"]}
    elapsed = time.monotonic() - rotated_at
    assert old_kid in later, (
        f"the key retired by the rotation ({old_kid}) left the JWKS {elapsed:.0f} s after it, "
        f"while tokens it signed are valid for {old_life - time.time():.0f} s more"
    )
    info = idp.userinfo(before["access_token"])
    assert info.status_code == 200, (
        f"userinfo refuses a token signed before the rotation {elapsed:.0f} s after it: {info}"
    )
