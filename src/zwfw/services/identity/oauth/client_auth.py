"""Cryptographic client authentication: private_key_jwt (RFC 7523) and self-signed certificate
binding (RFC 8705)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidClientError, OAuth2Request
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.jwk import KeySet

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


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__(validate_jti=True)
        self.provider = provider

    def get_audiences(self) -> list[str]:
        issuer = self.provider.issuer
        return [issuer, issuer + "/token", issuer + "/introspect", issuer + "/revoke"]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        db = current_db()
        if db.get(UsedAssertion, jti) is not None:
            return False
        db.add(UsedAssertion(jti=jti, expires_at=float(claims.get("exp", time.time() + 600))))
        db.flush()
        return True

    def resolve_client_public_key(self, client: ClientModel) -> KeySet:
        if not client.row.jwks:
            raise InvalidClientError(description="the client has no registered public keys")
        return KeySet.import_key_set(client.row.jwks)


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
