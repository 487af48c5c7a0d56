"""RFC 8693 subject-token checks: tokens from IdPs on the trust list (e.g. the national IdP)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, DecodeError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from zwfw.services.identity.models import TrustedIssuer

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
SUBJECT_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, ID_TOKEN_TYPE)


class FederationError(ValueError):
    """The subject token is refused; the message says exactly why."""


@dataclass(frozen=True)
class FederatedSubject:
    issuer: str
    sub: str
    user_type: str
    level: str
    region: str | None
    max_level: str | None

    def get_user_id(self) -> str:
        return self.sub


class JwksCache:
    """Peer JWKS fetched over HTTPS, refetched when a token names an unknown key id."""

    def __init__(self, ttl: float = 300.0, timeout: float = 5.0) -> None:
        self._ttl = ttl
        self._timeout = timeout
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, uri: str, kid: str | None) -> dict[str, Any]:
        entry = self._entries.get(uri)
        fresh = entry is not None and time.monotonic() - entry[0] < self._ttl
        known = entry is not None and any(k.get("kid") == kid for k in entry[1].get("keys", []))
        if entry is not None and fresh and (kid is None or known):
            return entry[1]
        try:
            response = httpx.get(uri, timeout=self._timeout)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise FederationError(f"cannot fetch the issuer's JWKS from {uri}: {exc}") from None
        self._entries[uri] = (time.monotonic(), document)
        return document


def verify_subject_token(
    db: Session,
    token: str,
    *,
    own_issuer: str,
    levels: list[str],
    jwks_cache: JwksCache,
    leeway: int = 30,
) -> FederatedSubject:
    try:
        compact = jws.extract_compact(token.encode())
        claims_unverified = json.loads(compact.payload)
    except (DecodeError, ValueError, JoseError):
        raise FederationError("subject_token is not a signed JWT") from None
    if not isinstance(claims_unverified, dict) or not isinstance(claims_unverified.get("iss"), str):
        raise FederationError("subject_token has no issuer")
    issuer = claims_unverified["iss"]
    trusted = db.get(TrustedIssuer, issuer)
    if trusted is None or not trusted.enabled:
        raise FederationError(f"subject_token issuer {issuer} is not on the trust list")
    header = compact.protected
    if header.get("alg") != "ES256":
        raise FederationError("subject_token must be signed with ES256")
    if trusted.jwks:
        document = trusted.jwks
    elif trusted.jwks_uri:
        document = jwks_cache.get(trusted.jwks_uri, header.get("kid"))
    else:
        raise FederationError(f"trust list entry for {issuer} has no keys")
    try:
        decoded = jwt.decode(
            token, KeySet.import_key_set({"keys": document["keys"]}), algorithms=["ES256"]
        )
    except BadSignatureError:
        raise FederationError("subject_token signature is invalid") from None
    except (JoseError, ValueError) as exc:
        raise FederationError(f"subject_token cannot be verified: {exc}") from None
    claims = decoded.claims
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise FederationError("subject_token has no expiry")
    if exp + leeway < now:
        raise FederationError("subject_token has expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf - leeway > now:
        raise FederationError("subject_token is not yet valid")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or [])
    if own_issuer not in audiences:
        raise FederationError(f"subject_token audience does not include {own_issuer}")
    sub = claims.get("sub")
    level = claims.get("acr")
    if not isinstance(sub, str) or not sub:
        raise FederationError("subject_token has no subject")
    if level not in levels:
        raise FederationError(f"subject_token assurance level {level!r} is not recognised")
    user_type = claims.get("user_type")
    if user_type not in ("person", "legal_person"):
        raise FederationError("subject_token is not about a person or legal person")
    region = claims.get("region")
    return FederatedSubject(
        issuer=issuer,
        sub=sub,
        user_type=user_type,
        level=level,
        region=region if isinstance(region, str) else None,
        max_level=trusted.max_level,
    )
