"""一次认证、全网通办: a "national" and a "provincial" IdP, each its own `zwfw serve` process.

The person signs in once at the national IdP; the province's hall exchanges that token
(RFC 8693) for a provincial one. The province trusts the national issuer through its JWKS URL.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from zwfw.services.identity.accounts import AccountIn
from zwfw.services.identity.clients import ClientIn, register_client
from zwfw.services.identity.service import IdentityService

from .browser import sign_in
from .processes import IdpProcess, running, seed, write_config
from .support import PASSWORD, SEEDER, client_assertion

PORTAL_REDIRECT = "https://portal.gov.test/cb"
ID_NUMBER = "11010519491231002X"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TEST_ISSUER = "https://certification-issuer.test"


@dataclass
class Federation:
    national: IdpProcess
    province: IdpProcess
    hall_key: ECKey
    test_issuer_key: ECKey
    secrets: dict[str, str]


def _national_setup(province_url: str, store: dict[str, str]):  # noqa: ANN202
    def setup(svc: IdentityService, db: Session) -> None:
        account = svc.accounts.register(
            db,
            AccountIn(
                kind="person",
                username="wangwu",
                password=PASSWORD,
                name="王五",
                id_number=ID_NUMBER,
                phone="13912345678",
            ),
            actor=SEEDER,
        )
        svc.accounts.change_level(db, account, "real_name", ["id_number", "name", "phone"])
        svc.accounts.change_level(db, account, "face_verified", ["face"])
        store["national_sub"] = account.sub
        for client_id, audiences in (("gov-portal", [province_url]), ("other-portal", [])):
            out = register_client(
                db,
                ClientIn(
                    client_id=client_id,
                    name="全国一体化政务服务平台",
                    auth_method="client_secret_basic",
                    redirect_uris=[PORTAL_REDIRECT],
                    grant_types=["authorization_code", "refresh_token"],
                    scopes=["openid", "profile"],
                    audiences=audiences,
                ),
                actor=SEEDER,
            )
            assert out.client_secret is not None
            store[client_id] = out.client_secret

    return setup


def _province_setup(hall_key: ECKey):  # noqa: ANN202
    def setup(svc: IdentityService, db: Session) -> None:
        register_client(
            db,
            ClientIn(
                client_id="province-hall",
                name="安徽政务服务网",
                auth_method="private_key_jwt",
                jwks={"keys": [hall_key.as_dict(private=False)]},
                grant_types=[EXCHANGE],
                scopes=["openid", "profile"],
                audiences=["hall-api"],
            ),
            actor=SEEDER,
        )

    return setup


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    directory = tmp_path_factory.mktemp("federation")
    national_config, _ = write_config(directory, "national", role="national", region_code="100000")
    hall_key = ECKey.generate_key("P-256", parameters={"kid": "hall-1"})
    test_issuer_key = ECKey.generate_key("P-256", parameters={"kid": "cert-1"})
    stored: dict[str, str] = {}
    with running(national_config) as national:
        province_config, province_url = write_config(
            directory,
            "province",
            region_code="340000",
            trust_list=[
                {
                    "issuer": national.url,
                    "jwks_uri": national.url + "/jwks",
                    "max_level": "real_name",
                },
                {"issuer": TEST_ISSUER, "jwks": {"keys": [test_issuer_key.as_dict(private=False)]}},
            ],
        )
        seed(national_config, _national_setup(province_url, stored))
        seed(province_config, _province_setup(hall_key))
        with running(province_config) as province:
            yield Federation(national, province, hall_key, test_issuer_key, stored)


def _national_token(fed: Federation, client_id: str) -> str:
    """The person signs in at the national IdP through `client_id`'s code + PKCE flow."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": PORTAL_REDIRECT,
            "scope": "openid profile",
            "state": "st",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with httpx.Client() as browser:
        result = sign_in(
            browser,
            f"{fed.national.url}/authorize?{query}",
            PORTAL_REDIRECT,
            "wangwu",
            PASSWORD,
        )
    tokens = httpx.post(
        fed.national.url + "/token",
        auth=(client_id, fed.secrets[client_id]),
        data={
            "grant_type": "authorization_code",
            "code": result.query["code"],
            "redirect_uri": PORTAL_REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text
    return str(tokens.json()["access_token"])


def _exchange(fed: Federation, subject_token: str, **extra: str) -> httpx.Response:
    return httpx.post(
        fed.province.url + "/token",
        data={
            "grant_type": EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(
                fed.hall_key, "province-hall", fed.province.url + "/token"
            ),
            **extra,
        },
    )


def _claims(idp: IdpProcess, token: str, audience: str) -> dict[str, Any]:
    # An independent JOSE library against the published keys.
    signing_key = pyjwt.PyJWKClient(idp.url + "/jwks").get_signing_key_from_jwt(token)
    return pyjwt.decode(token, signing_key.key, algorithms=["ES256"], audience=audience)


def _minted(key: ECKey, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "sub": "someone",
        "aud": [],
        "iat": now,
        "exp": now + 300,
        "acr": "real_name",
        "user_type": "person",
        "jti": secrets.token_hex(8),
    }
    body.update(claims)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key)


def _refused(response: httpx.Response, phrase: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_grant", body
    assert phrase in body["error_description"], body


def test_exchange_keeps_subject_caps_level_and_restricts_audience(federation: Federation) -> None:
    fed = federation
    national_token = _national_token(fed, "gov-portal")
    national = _claims(fed.national, national_token, fed.province.url)
    assert national["sub"] == fed.secrets["national_sub"]
    assert national["acr"] == "face_verified"

    response = _exchange(fed, national_token, audience="hall-api", scope="openid profile")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS
    assert body["token_type"] == "Bearer"
    provincial = _claims(fed.province, body["access_token"], "hall-api")
    assert provincial["iss"] == fed.province.url
    assert provincial["sub"] == national["sub"]
    # The province's trust list caps what a national token carries over.
    assert provincial["acr"] == "real_name"
    assert provincial["aud"] == "hall-api"
    assert provincial["user_type"] == "person"
    assert provincial["federated_from"] == fed.national.url
    assert provincial["exp"] - provincial["iat"] <= 600
    for token in (national_token, body["access_token"]):
        assert ID_NUMBER not in base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()

    # Without a requested audience the token is for the exchanging client only.
    default = _exchange(fed, national_token)
    assert _claims(fed.province, default.json()["access_token"], "province-hall")["aud"] == (
        "province-hall"
    )


def test_level_is_kept_when_the_trust_list_sets_no_cap(federation: Federation) -> None:
    fed = federation
    token = _minted(fed.test_issuer_key, iss=TEST_ISSUER, aud=[fed.province.url], acr="registered")
    response = _exchange(fed, token)
    assert response.status_code == 200, response.text
    claims = _claims(fed.province, response.json()["access_token"], "province-hall")
    assert claims["acr"] == "registered"
    assert claims["sub"] == "someone"


def test_audience_outside_the_clients_list_is_refused(federation: Federation) -> None:
    fed = federation
    token = _minted(fed.test_issuer_key, iss=TEST_ISSUER, aud=[fed.province.url])
    response = _exchange(fed, token, audience="hub")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


def test_untrusted_issuer_is_refused(federation: Federation) -> None:
    rogue = ECKey.generate_key("P-256", parameters={"kid": "rogue"})
    token = _minted(rogue, iss="https://rogue-idp.test", aud=[federation.province.url])
    _refused(_exchange(federation, token), "https://rogue-idp.test is not on the trust list")


def test_expired_token_is_refused(federation: Federation) -> None:
    fed = federation
    past = int(time.time()) - 3600
    token = _minted(
        fed.test_issuer_key, iss=TEST_ISSUER, aud=[fed.province.url], iat=past, exp=past + 600
    )
    _refused(_exchange(fed, token), "subject_token has expired")


def test_token_for_another_audience_is_refused(federation: Federation) -> None:
    fed = federation
    # A genuine national token, but issued for a client that does not name the province.
    token = _national_token(fed, "other-portal")
    _refused(_exchange(fed, token), f"audience does not include {fed.province.url}")


def test_bad_signature_is_refused(federation: Federation) -> None:
    fed = federation
    national_kid = fed.national.jwks()["keys"][0]["kid"]
    forger = ECKey.generate_key("P-256", parameters={"kid": national_kid})
    token = _minted(forger, iss=fed.national.url, aud=[fed.province.url], acr="face_verified")
    _refused(_exchange(fed, token), "signature is invalid")
    # A genuine token with its claims altered fails the same way.
    genuine = _national_token(fed, "gov-portal")
    head, payload, signature = genuine.split(".")
    claims = pyjwt.decode(genuine, options={"verify_signature": False})
    claims["sub"] = "someone-else"
    forged_payload = pyjwt.utils.base64url_encode(pyjwt.api_jws.json.dumps(claims).encode())
    _refused(_exchange(fed, f"{head}.{forged_payload.decode()}.{signature}"), "signature")
