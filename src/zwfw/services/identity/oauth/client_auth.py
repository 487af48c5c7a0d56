"""Cryptographic client authentication: private_key_jwt (RFC 7523) and self-signed certificate
binding (RFC 8705)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from authlib.oauth2.rfc6749 import InvalidClientError, OAuth2Request
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.jwk import KeySet
from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

from zwfw.services.identity.events import current_db
from zwfw.services.identity.models import UsedAssertion
from zwfw.services.identity.oauth.adapters import ClientModel
from zwfw.services.identity.security import (
    CertificateError,
    certificate_fingerprint,
    constant_time_equal,
)

if TYPE_CHECKING:
    from zwfw.services.identity.oauth.provider import IdentityProvider

_USED_ASSERTION = cast(Table, UsedAssertion.__table__)
# Built once per dialect that can insert-unless-present; executing a prepared statement skips
# building and keying a new one per request. RETURNING says whether the row was inserted:
# psycopg reports no rowcount (-1) for these statements.
_CLAIM_JTI: dict[str, Insert] = {
    "sqlite": sqlite.insert(_USED_ASSERTION)
    .on_conflict_do_nothing()
    .returning(_USED_ASSERTION.c.jti),
    "postgresql": postgresql.insert(_USED_ASSERTION)
    .on_conflict_do_nothing()
    .returning(_USED_ASSERTION.c.jti),
}


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    # Parsed key sets by their registered JWKS: importing a JWK costs more than verifying with
    # it. Keyed by content, so a re-registered or rotated key set is parsed afresh.
    KEY_SET_CACHE_SIZE = 1024

    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__(validate_jti=True)
        self.provider = provider
        self._key_sets: dict[str, KeySet] = {}

    def get_audiences(self) -> list[str]:
        issuer = self.provider.issuer
        return [issuer, issuer + "/token", issuer + "/introspect", issuer + "/revoke"]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        db = current_db()
        expires_at = float(claims.get("exp", time.time() + 600))
        claim = _CLAIM_JTI.get(db.get_bind().dialect.name)
        if claim is None:
            if db.get(UsedAssertion, jti) is not None:
                return False
            db.add(UsedAssertion(jti=jti, expires_at=expires_at))
            db.flush()
            return True
        # One statement: the replay store's primary key decides, and a replay inserts nothing.
        result = db.execute(claim, {"jti": jti, "expires_at": expires_at})
        return result.first() is not None

    def resolve_client_public_key(self, client: ClientModel) -> KeySet:
        if not client.row.jwks:
            raise InvalidClientError(description="the client has no registered public keys")
        fingerprint = json.dumps(client.row.jwks, sort_keys=True)
        key_set = self._key_sets.get(fingerprint)
        if key_set is None:
            key_set = KeySet.import_key_set(client.row.jwks)
            if len(self._key_sets) >= self.KEY_SET_CACHE_SIZE:
                self._key_sets.clear()
            self._key_sets[fingerprint] = key_set
        return key_set


class SelfSignedTLS:
    """RFC 8705 self-signed certificate binding: the gateway forwards the client certificate."""

    def __init__(self, header: str | None) -> None:
        self.header = header

    def __call__(
        self, query_client: Callable[[str], ClientModel | None], request: OAuth2Request
    ) -> ClientModel | None:
        if not self.header:
            return None
        escaped = request.headers.get(self.header)
        client_id = request.form.get("client_id")
        if not escaped or not client_id:
            return None
        try:
            thumbprint = certificate_fingerprint(urllib.parse.unquote(escaped))
        except CertificateError:
            raise InvalidClientError(description="the client certificate is unreadable") from None
        client = query_client(client_id)
        if client is None or client.row.tls_thumbprint is None:
            return None
        if not constant_time_equal(client.row.tls_thumbprint, thumbprint):
            raise InvalidClientError(description="the client certificate is not the registered one")
        return client
