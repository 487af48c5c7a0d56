"""Test support for the hub: a national IdP stand-in minting tokens shaped like identity's, a
national SM2 CA, provinces with channel keys, and a fake e-licence library."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from zwfw.codes import build_credit_code, build_implementation_code, build_licence_id
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertificateAuthority, CertProfile
from zwfw.formats.channel import ChannelSigner

NATIONAL_ISSUER = "https://idp.national.test"
HUB_AUDIENCE = "hub"


class NationalIdP:
    """Signs ES256 access tokens the way the identity service does (iss, sub, aud list,
    client_id, scope, jti; citizens also user_type, acr, region)."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key(
            "P-256", parameters={"kid": uuid.uuid4().hex[:12], "use": "sig", "alg": "ES256"}
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def token(self, *, sub: str, client_id: str, scopes: tuple[str, ...] = (), **extra: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": NATIONAL_ISSUER,
            "sub": sub,
            "aud": [client_id, HUB_AUDIENCE],
            "client_id": client_id,
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        return jwt.encode({"alg": "ES256", "kid": self.key.kid, "typ": "at+jwt"}, claims, self.key)

    def client_token(self, client_id: str, *scopes: str) -> str:
        return self.token(sub=client_id, client_id=client_id, scopes=scopes)

    def citizen_token(self, sub: str, region: str = "330000") -> str:
        return self.token(
            sub=sub,
            client_id="national-portal",
            scopes=("openid",),
            user_type="person",
            acr="real_name",
            region=region,
        )


@dataclass
class ProvinceIdentity:
    region_code: str
    name: str
    client_id: str
    tls_fingerprint: str
    signer: ChannelSigner

    def registration(self, elicense: str | None = None) -> dict[str, Any]:
        assert self.signer.certificate is not None
        endpoints = {
            "hall": f"https://hall.{self.region_code}.test",
            "identity": f"https://identity.{self.region_code}.test",
        }
        endpoints["elicense"] = elicense or f"https://elicense.{self.region_code}.test"
        return {
            "region_code": self.region_code,
            "name": self.name,
            "endpoints": endpoints,
            "oauth_client_id": self.client_id,
            "tls_fingerprint": self.tls_fingerprint,
            "tls_subject": f"CN=platform.{self.region_code}.gov.cn",
            "signing_certificate": self.signer.certificate.to_pem().decode(),
        }


def make_province(ca: CertificateAuthority, region_code: str, name: str) -> ProvinceIdentity:
    key = SM2PrivateKey.generate()
    certificate = ca.issue(key.public_key, f"{region_code} channel", CertProfile.SIGNER)
    return ProvinceIdentity(
        region_code=region_code,
        name=name,
        client_id=f"province-{region_code}",
        tls_fingerprint=hashlib.sha256(region_code.encode()).hexdigest(),
        signer=ChannelSigner(region_code, key, certificate),
    )


def send(
    client: TestClient,
    province: ProvinceIdentity,
    token: str,
    path: str,
    payload: Any,
    *,
    idempotency_key: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Any:
    """POST ``payload`` as a signed channel message from ``province``."""
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    signed = province.signer.headers(
        "POST", path, raw, recipient="hub", idempotency_key=idempotency_key
    )
    all_headers = {
        **signed,
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        **(headers or {}),
    }
    return client.post(path, content=body if body is not None else raw, headers=all_headers)


# An implementing body in Hefei (340100), one in Hangzhou (330100), and one in Shandong.
BODY_340 = str(build_credit_code("11340100MB0000001"))
BODY_330 = str(build_credit_code("11330100MB0000002"))
IMPL_340 = str(build_implementation_code(BODY_340, 3, "370117002011"))
IMPL_330 = str(build_implementation_code(BODY_330, 3, "370117002011"))
IMPL_OUTSIDE = "11370800MB285591843370117002011"


def licence_id(serial: str = "00000000001") -> str:
    return str(
        build_licence_id(
            type_code="11100000000013338W001",
            issuer_code=BODY_330,
            serial=serial,
            version="001",
        )
    )


HUB_CLIENT_AT_PROVINCES = "national-hub"


def fake_elicense(
    holders: dict[str, str], national: NationalIdP, hub_key: ECKey
) -> tuple[FastAPI, list[dict[str, Any]]]:
    """Province B's IdP and e-licence library in one app. The IdP knows the hub as a
    private_key_jwt client (``hub_key``) and trusts the national IdP for token exchange; the
    library gives an annotated copy only to a caller with ``elicense:share`` and a
    ``holder_token`` of the licence's holder (``holders``: identifier → sub)."""
    app = FastAPI()
    calls: list[dict[str, Any]] = []
    province_key = ECKey.generate_key("P-256", parameters={"kid": "b1"})

    def mint(sub: str, scope: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://identity.330000.test",
            "sub": sub,
            "scope": scope,
            "aud": "https://elicense.330000.test",
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode({"alg": "ES256"}, claims, province_key)  # fmt: skip

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, str]:
        return {"token_endpoint": "https://identity.330000.test/token"}

    # What B's IdP was asked for, in order; set ``token_outage`` to answer 503.
    app.state.token_grants = []
    app.state.token_outage = False

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        app.state.token_grants.append(str(form["grant_type"]))
        if app.state.token_outage:
            return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
        try:
            assertion = jwt.decode(str(form["client_assertion"]), hub_key).claims
        except Exception:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if assertion["sub"] != HUB_CLIENT_AT_PROVINCES:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form["grant_type"] == "client_credentials":
            return JSONResponse({"access_token": mint(HUB_CLIENT_AT_PROVINCES, str(form["scope"]))})
        try:
            citizen = jwt.decode(str(form["subject_token"]), national.key).claims
        except Exception:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "subject_token signature"},
                status_code=400,
            )
        if citizen.get("acr") is None:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "no assurance level"},
                status_code=400,
            )
        return JSONResponse({"access_token": mint(citizen["sub"], str(form["scope"]))})

    @app.post("/licences/{identifier}/copies")
    async def copies(identifier: str, request: Request) -> JSONResponse:
        body = await request.json()
        caller = jwt.decode(
            request.headers.get("authorization", "").removeprefix("Bearer "), province_key
        ).claims
        holder = jwt.decode(body["holder_token"], province_key).claims
        calls.append(
            {"identifier": identifier, "caller": caller["sub"], "sub": holder["sub"],
             "holder_scope": holder["scope"], "headers": request.headers}
        )  # fmt: skip
        if "elicense:share" not in caller["scope"].split():
            return JSONResponse({"detail": "the token lacks elicense:share"}, status_code=403)
        if holders.get(identifier) != holder["sub"]:
            return JSONResponse({"detail": f"licence {identifier} does not exist"}, status_code=404)
        copy_id = uuid.uuid4().hex
        document = json.dumps(
            {"format": "zwfw-licence-copy/1", "secret": "OFD-SECRET-CONTENT",
             "annotation": {"copy_id": copy_id, "cause": body["cause"]}}
        ).encode()  # fmt: skip
        return JSONResponse(
            {
                "copy_id": copy_id,
                "identifier": identifier,
                "cause": body["cause"],
                "made_at": datetime.now(UTC).isoformat(),
                "made_by": caller["sub"],
                "expires_at": body["expires_at"],
                "es_id": "3301000000001",
                "document": base64.b64encode(document).decode(),
                "signature": "MEUCIQ==",
                "verify_url": f"https://elicense.330000.test/verify/{identifier}",
            },
            status_code=201,
        )

    return app, calls


def soon(days: int = 7) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()
