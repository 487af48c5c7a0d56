"""Token introspection (RFC 7662) and revocation (RFC 7009)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select

from zwfw.services.identity.events import current_db, record
from zwfw.services.identity.keys import ALGORITHM
from zwfw.services.identity.models import Account, IssuedToken
from zwfw.services.identity.oauth.adapters import (
    AccountPrincipal,
    ClientModel,
    TokenModel,
    unverified_claims,
)
from zwfw.services.identity.oauth.profile import ALL_AUTH_METHODS, INTROSPECT_SCOPE
from zwfw.services.identity.security import token_hash

if TYPE_CHECKING:
    from zwfw.services.identity.oauth.provider import IdentityProvider


def _query_token(token_string: str, hint: str | None) -> TokenModel | None:
    db = current_db()
    if hint != "refresh_token" and token_string.count(".") == 2:
        try:
            jti = unverified_claims(token_string).get("jti")
        except (ValueError, IndexError):
            jti = None
        if jti:
            row = db.scalars(select(IssuedToken).where(IssuedToken.jti == jti)).first()
            if row is not None:
                return TokenModel(row, "access_token")
    row = db.scalars(
        select(IssuedToken).where(IssuedToken.refresh_hash == token_hash(token_string))
    ).first()
    return TokenModel(row, "refresh_token") if row is not None else None


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ALL_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenModel | None:
        token = _query_token(token_string, token_type_hint)
        if token is not None and token.kind == "access_token":
            # The JWT must also carry this server's valid signature, not just a known jti.
            provider: IdentityProvider = self.server
            try:
                jwt.decode(token_string, provider.keys.key_set(current_db()), [ALGORITHM])
            except (JoseError, ValueError):
                return None
        return token

    def check_permission(self, token: TokenModel, client: ClientModel, request: Any) -> bool:
        return token.check_client(client) or INTROSPECT_SCOPE in client.row.scopes

    def introspect_token(self, token: TokenModel) -> dict[str, Any]:
        row = token.row
        provider: IdentityProvider = self.server
        body: dict[str, Any] = {
            "active": True,
            "client_id": row.client_id,
            "scope": row.scope,
            "sub": row.subject,
            "iss": provider.issuer,
            "iat": int(row.issued_at),
            "exp": int(token.expires_at()),
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "jti": row.jti,
        }
        if row.account_id is not None:
            account = current_db().get(Account, row.account_id)
            if account is not None:
                body.update(provider.principal_claims(AccountPrincipal(account)))
        return body


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ALL_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenModel | None:
        return _query_token(token_string, token_type_hint)

    def revoke_token(self, token: TokenModel, request: Any) -> None:
        db = current_db()
        if token.kind == "refresh_token":
            self.server.revoke_family(db, token.row.family)
        else:
            token.row.revoked = True
        record(
            db,
            "token.revoked",
            "success",
            actor=token.row.subject,
            client_id=token.row.client_id,
            kind=token.kind,
        )
