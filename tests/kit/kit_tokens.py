"""Minting bearer tokens for tests: an EC key, its JWKS, and signed JWTs."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

ISSUER = "https://idp.test.zwfw"
AUDIENCE = "zwfw-example"


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenMint:
    """An issuer's signing key (rotatable) and tokens signed with it."""

    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.key = self.new_key()

    @staticmethod
    def new_key(kid: str | None = None) -> ECKey:
        return ECKey.generate_key(
            "P-256", parameters={"kid": kid or uuid.uuid4().hex[:12], "use": "sig", "alg": "ES256"}
        )

    def jwks(self, *keys: ECKey) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in (keys or (self.key,))]}

    def rotate(self) -> ECKey:
        self.key = self.new_key()
        return self.key

    def token(
        self,
        *,
        sub: str = "citizen-1",
        scopes: tuple[str, ...] | list[str] = (),
        audience: str | None = None,
        issuer: str | None = None,
        expires_in: int = 300,
        not_before: int | None = None,
        key: ECKey | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "aud": audience or self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + expires_in,
            "client_id": "test-client",
            "scope": " ".join(scopes),
        }
        if not_before is not None:
            claims["nbf"] = not_before
        claims.update(extra or {})
        signer = key or self.key
        return jwt.encode({"alg": "ES256", "kid": signer.kid}, claims, signer)

    def unsigned_token(self, **claims: Any) -> str:
        """An ``alg: none`` token, which must never be accepted."""
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "attacker",
            "exp": now + 300,
            **claims,
        }
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(body)}."
