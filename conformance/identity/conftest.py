"""What the identity suite needs from the target's IdP, all named in the target profile.

Credentials (each `{env: VAR}` in the profile's `credentials:`):

- `identity_rp_client_id`, `identity_rp_redirect_uri`: a public relying party (code + PKCE,
  refresh tokens; scopes `openid profile`). It calls the token endpoint with its client id,
  and introspects its own access tokens (RFC 7662) the same way.
- `identity_rp_post_logout_redirect_uri`: a post_logout_redirect_uri registered for that
  relying party (RP-initiated logout returns there with the client's state).
- `identity_user`, `identity_password`: a test person signing in with a password only.
- `identity_lockout_user`, `identity_lockout_password`: a second test person the lockout check
  locks (do not use it for anything else).
- `identity_client_id`, `identity_client_key`: a system client authenticating with
  `private_key_jwt`; the key is its private JWK (JSON). Grants: client_credentials and
  token exchange. Where it may also ask for scope `eseal:read` (addressed to the e-seal
  service), the rotation check tries its tokens at the e-seal service too.
- `federation_issuer`, `federation_issuer_key`: the certification issuer standing in for the
  national IdP, and its private JWK. The target's trust list holds its public key.

The profile's `operations.rotate_signing_key` says how to make the IdP sign with a new key
(a command run locally, over ssh or with kubectl). The rotation check runs it once, after
every other test of the run, and then tries tokens old and new at the province's services:
the relying party's at the hall and the e-licence service, the system client's at the e-seal
service. Without it IC-ID-002 is inconclusive.

Sign-in pages are driven as a person would: the form with a password field, then the form
with an "allow" button (a consent page also needs a second button, to decline). Nothing here
depends on how the target is built.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from zwfw.harness import http as harness_http
from zwfw.harness.forms import Form, page_forms
from zwfw.harness.profile import TargetProfile

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def redirect_params(location: str) -> dict[str, str]:
    """The query parameters of a redirect back to the relying party."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


@dataclass
class SignIn:
    location: str | None
    response: httpx.Response
    # The page answering the submitted password (to compare refusals).
    password_answer: httpx.Response | None = None
    # Whether a consent page was answered on the way.
    consent_asked: bool = False

    def param(self, name: str) -> str:
        if self.location is None:
            pytest.fail(
                f"sign-in did not return to the relying party; last page: "
                f"HTTP {self.response.status_code}",
                pytrace=False,
            )
        values = self.params
        assert name in values, f"the redirect carries no {name}: {self.location}"
        return values[name]

    @property
    def params(self) -> dict[str, str]:
        """The parameters of the return to the relying party (none without one)."""
        return redirect_params(self.location) if self.location is not None else {}


def sign_in(
    browser: httpx.Client,
    url: str,
    redirect_uri: str,
    username: str,
    password: str,
    decline: bool = False,
    posted: bool = False,
) -> SignIn:
    """Through the sign-in pages to the relying party; on a consent page the "allow" button, or
    with ``decline`` its other button (the person says no). With ``posted`` the authorization
    request is sent by POST as a form (OpenID Connect Core 3.1.2.1), not in the URL."""
    if posted:
        endpoint, _, query = url.partition("?")
        form = urllib.parse.parse_qsl(query, keep_blank_values=True)
        response = browser.post(endpoint, data=dict(form), follow_redirects=False)
    else:
        response = browser.get(url, follow_redirects=False)
    done: set[str] = set()
    answer: httpx.Response | None = None
    for _ in range(12):
        here = str(response.request.url)
        if response.is_redirect:
            location = urllib.parse.urljoin(here, response.headers["location"])
            if location.startswith(redirect_uri):
                return SignIn(location, response, answer, "consent" in done)
            response = browser.get(location, follow_redirects=False)
            continue
        chosen: tuple[str, Form, dict[str, str]] | None = None
        for form in page_forms(response.text):
            kinds = form.types
            if "password" in kinds.values():
                data = dict(form.fields)
                user_field = next(n for n, t in kinds.items() if t in ("text", "email", "tel"))
                data[user_field] = username
                data[next(n for n, t in kinds.items() if t == "password")] = password
                chosen = ("password", form, data)
                break
            allow = [(n, v) for n, v in form.buttons if v == "allow"]
            if allow:
                others = [(n, v) for n, v in form.buttons if v != "allow"]
                if decline and not others:
                    return SignIn(None, response, answer, consent_asked=True)
                button = others[0] if decline else allow[0]
                chosen = ("consent", form, {**form.fields, button[0]: button[1]})
                break
        if chosen is None or chosen[0] in done:
            return SignIn(None, response, answer, "consent" in done)
        kind, form, data = chosen
        done.add(kind)
        for _ in range(2):
            response = browser.request(
                form.method.upper(),
                urllib.parse.urljoin(here, form.action),
                data=data,
                follow_redirects=False,
            )
            # A sign-in rate limit (per address, and the harness is one address) is waited out
            # once when it says for how long: the checks are about the sign-in, not the limit.
            wait = _retry_after(response)
            if wait is None:
                break
            time.sleep(wait)
        if kind == "password":
            answer = response
    return SignIn(None, response, answer, "consent" in done)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before sending again, for a 429 that names at most a minute."""
    value = response.headers.get("retry-after", "")
    if response.status_code != 429 or not value.isdigit() or int(value) > 61:
        return None
    return float(value)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned_jwt(claims: dict[str, Any], **header: str) -> str:
    """A JWT with alg none and an empty signature (RFC 7519 §6), as an attacker sends it."""
    head = {"alg": "none", "typ": "JWT", **header}
    return ".".join((b64url(json.dumps(head).encode()), b64url(json.dumps(claims).encode()), ""))


def hs256_jwt(claims: dict[str, Any], secret: bytes, **header: str) -> str:
    """A JWT MACed with HS256 under ``secret``, built by hand: JOSE libraries refuse to use
    public key material as a MAC key, which is exactly what an attacker does."""
    head = {"alg": "HS256", "typ": "JWT", **header}
    signing_input = b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(claims).encode())
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def payload_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


@dataclass
class IdP:
    """The target's IdP as a relying party and a system client see it."""

    http: httpx.Client
    config: dict[str, Any]
    credential: Callable[[str], str]
    target: TargetProfile

    # JWT pieces, for tests (the suite's modules import nothing from here at run time).
    header_of = staticmethod(header_of)
    payload_of = staticmethod(payload_of)
    unsigned_jwt = staticmethod(unsigned_jwt)
    hs256_jwt = staticmethod(hs256_jwt)
    pkce = staticmethod(pkce)

    @property
    def issuer(self) -> str:
        return str(self.config["issuer"])

    def fetch(self, url: str) -> httpx.Response:
        """GET a URL the IdP hands out, with the profile's trust settings, as evidence."""
        with harness_http.client(self.target) as http:
            return http.get(url)

    def keys(self) -> KeySet:
        return KeySet.import_key_set(self.fetch(self.config["jwks_uri"]).json())

    def claims(self, token: str) -> dict[str, Any]:
        return dict(jwt.decode(token, self.keys(), algorithms=["ES256"]).claims)

    def browser(self) -> httpx.Client:
        # A fresh cookie jar per sign-in, with the profile's trust settings; recorded as evidence.
        return harness_http.client(self.target)

    def forms(self, html: str) -> list[Form]:
        return page_forms(html)

    # --- relying party ------------------------------------------------------------------------

    def authorize_url(self, **params: str | None) -> str:
        """The relying party's authorization request; a parameter given as None is left out."""
        base: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.credential("identity_rp_client_id"),
            "redirect_uri": self.credential("identity_rp_redirect_uri"),
            "scope": "openid profile",
            "state": secrets.token_urlsafe(8),
        }
        base.update(params)
        sent = {name: value for name, value in base.items() if value is not None}
        return self.config["authorization_endpoint"] + "?" + urllib.parse.urlencode(sent)

    def sign_in(
        self,
        username: str,
        password: str,
        browser: httpx.Client | None = None,
        decline: bool = False,
        posted: bool = False,
        **params: str | None,
    ) -> tuple[SignIn, str]:
        """A sign-in through the authorization endpoint, in a fresh browser unless one is
        given (to keep its session); returns where it ended and the PKCE verifier. With
        ``decline`` the person refuses on the consent page; with ``posted`` the authorization
        request is a POSTed form."""
        verifier, challenge = pkce()
        url = self.authorize_url(code_challenge=challenge, code_challenge_method="S256", **params)
        redirect_uri = params.get("redirect_uri") or self.credential("identity_rp_redirect_uri")
        if browser is not None:
            return sign_in(
                browser, url, redirect_uri, username, password, decline, posted
            ), verifier
        with self.browser() as fresh:
            result = sign_in(fresh, url, redirect_uri, username, password, decline, posted)
        return result, verifier

    def code_tokens(self, code: str, verifier: str) -> httpx.Response:
        return self.http.post(
            self.config["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.credential("identity_rp_redirect_uri"),
                "client_id": self.credential("identity_rp_client_id"),
                "code_verifier": verifier,
            },
        )

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.http.post(
            self.config["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.credential("identity_rp_client_id"),
            },
        )

    def introspect(self, token: str) -> httpx.Response:
        """The relying party asks whether its own token is active (RFC 7662)."""
        return self.http.post(
            self.config["introspection_endpoint"],
            data={"token": token, "client_id": self.credential("identity_rp_client_id")},
        )

    def userinfo(self, access_token: str) -> httpx.Response:
        return self.http.get(
            self.config["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {access_token}"},
        )

    def revoke(self, token: str) -> httpx.Response:
        """The relying party revokes its own token (RFC 7009)."""
        return self.http.post(
            self.config["revocation_endpoint"],
            data={"token": token, "client_id": self.credential("identity_rp_client_id")},
        )

    def user_tokens(self) -> dict[str, Any]:
        result, verifier = self.sign_in(
            self.credential("identity_user"), self.credential("identity_password")
        )
        response = self.code_tokens(result.param("code"), verifier)
        assert response.status_code == 200, f"token endpoint: {response.text}"
        return dict(response.json())

    # --- system client -----------------------------------------------------------------------

    def client_key(self) -> ECKey:
        return ECKey.import_key(json.loads(self.credential("identity_client_key")))

    def assertion_claims(self, audience: str, **changes: Any) -> dict[str, Any]:
        """RFC 7523 claims of a client assertion; a change of None drops the claim."""
        client_id = self.credential("identity_client_id")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def assertion(self, audience: str, key: ECKey | None = None, **changes: Any) -> dict[str, str]:
        signer = key or self.client_key()
        claims = self.assertion_claims(audience, **changes)
        token = jwt.encode({"alg": "ES256", "kid": signer.kid}, claims, signer)
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}

    def system_post(self, endpoint: str, data: dict[str, str]) -> httpx.Response:
        url = self.config[endpoint]
        return self.http.post(url, data={**data, **self.assertion(url)})

    def exchange(self, subject_token: str, **extra: str) -> httpx.Response:
        return self.system_post(
            "token_endpoint",
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": subject_token,
                "subject_token_type": ACCESS_TOKEN_TYPE,
                **extra,
            },
        )

    # --- the national side ------------------------------------------------------------------

    def federation_key(self) -> ECKey:
        return ECKey.import_key(json.loads(self.credential("federation_issuer_key")))

    def federation_token(self, key: ECKey | None = None, **claims: Any) -> str:
        """A person's token as the (stand-in) national IdP issues it for this province."""
        signer = key or self.federation_key()
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.credential("federation_issuer"),
            "sub": "cert-" + secrets.token_hex(8),
            "aud": [self.issuer],
            "iat": now,
            "exp": now + 300,
            "acr": self.config.get("acr_values_supported", ["registered"])[-1],
            "user_type": "person",
            "jti": secrets.token_hex(8),
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}  # None drops a claim
        return jwt.encode({"alg": "ES256", "kid": signer.kid}, body, signer)


@pytest.fixture
def idp(
    identity_client: httpx.Client, credential: Callable[[str], str], target: TargetProfile
) -> IdP:
    response = identity_client.get(".well-known/openid-configuration")
    assert response.status_code == 200, (
        f"discovery document: HTTP {response.status_code} at {response.request.url}"
    )
    return IdP(identity_client, response.json(), credential, target)
