"""The OAuth 2.0 / OpenID Connect provider: Authlib's authorization server with this IdP's
grants, endpoints, client authentication methods and token storage."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core import UserInfo
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from zwfw.codes.masking import mask_phone
from zwfw.crypto.fields import FieldProtector
from zwfw.services.identity.events import bound_db, current_db, record
from zwfw.services.identity.federation import FederatedSubject, JwksCache
from zwfw.services.identity.keys import ALGORITHM, KeyManager
from zwfw.services.identity.models import Account, Client, IssuedToken
from zwfw.services.identity.oauth.adapters import (
    AccountPrincipal,
    ClientModel,
    Principal,
    TokenModel,
    unverified_claims,
)
from zwfw.services.identity.oauth.client_auth import PrivateKeyJWT, SelfSignedTLS
from zwfw.services.identity.oauth.endpoints import Introspection, Revocation
from zwfw.services.identity.oauth.grants import (
    ClientCredentialsGrant,
    CodeGrant,
    IdToken,
    RefreshGrant,
    S256Challenge,
    TokenExchangeGrant,
)
from zwfw.services.identity.security import token_hash
from zwfw.services.identity.settings import IdentitySettings

# Built once: a new INSERT per token cost more to build and key than to run.
_ISSUE_TOKEN = cast(Table, IssuedToken.__table__).insert()
_CLIENTS = cast(Table, Client.__table__)
_CLIENT_BY_ID = select(_CLIENTS).where(_CLIENTS.c.client_id == bindparam("client_id"))


class IdentityProvider(AuthorizationServer):
    def __init__(self, settings: IdentitySettings, protector: FieldProtector) -> None:
        super().__init__(scopes_supported=None)
        self.settings = settings
        self.protector = protector
        self.keys = KeyManager(protector, settings.max_token_ttl + settings.key_grace_seconds)
        self.jwks_cache = JwksCache()
        self.register_token_generator("default", self._generate_token)
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT(self))
        self.register_client_auth_method(
            "self_signed_tls_client_auth", SelfSignedTLS(settings.mtls_cert_header)
        )
        self.register_grant(CodeGrant, [S256Challenge(), IdToken(self)])
        self.register_grant(RefreshGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(TokenExchangeGrant)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    # Authlib hooks -----------------------------------------------------------------------

    def query_client(self, client_id: str) -> ClientModel | None:
        # Read afresh on every request (a disabled or re-keyed client takes effect at once),
        # as a plain row: nothing on these paths changes a client.
        row = current_db().execute(_CLIENT_BY_ID, {"client_id": client_id}).first()
        if row is None or row.disabled:
            return None
        return ClientModel(row)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        db = current_db()
        claims = unverified_claims(token["access_token"])
        previous: TokenModel | None = request.refresh_token
        principal = request.user
        auth_time, amr = None, []
        if previous is not None:
            family = previous.row.family
            auth_time, amr = previous.row.auth_time, previous.row.amr
        else:
            family = secrets.token_hex(16)
        if request.authorization_code is not None:
            code = request.authorization_code.row
            auth_time, amr = code.auth_time, code.amr
            # What a replay of this code revokes.
            code.family = family
        refresh = token.get("refresh_token")
        # A plain INSERT: nothing reads the row back in this request, and the ORM's unit of
        # work cost more than the statement.
        db.execute(
            _ISSUE_TOKEN,
            {
                "jti": claims["jti"],
                "client_id": request.client.get_client_id(),
                "account_id": principal.account.id
                if isinstance(principal, AccountPrincipal)
                else None,
                "subject": claims["sub"],
                "scope": token.get("scope", ""),
                "family": family,
                "refresh_hash": token_hash(refresh) if refresh else None,
                "issued_at": claims["iat"],
                "access_expires_at": claims["exp"],
                "refresh_expires_at": (
                    claims["iat"] + self.settings.refresh_token_ttl if refresh else None
                ),
                "auth_time": auth_time,
                "amr": amr,
            },
        )
        record(
            db,
            "token.issued",
            "success",
            actor=claims["sub"],
            client_id=request.client.get_client_id(),
            grant_type=request.payload.grant_type,
            jti=claims["jti"],
        )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        if name == "after_revoke_token":
            return
        return

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers)

    def handle_error_response(self, request: OAuth2Request, error: OAuth2Error) -> Any:
        db = bound_db()
        if db is not None and error.error in ("invalid_client", "invalid_grant", "invalid_scope"):
            client = getattr(request, "client", None)
            record(
                db,
                "oauth.error",
                "failure",
                client_id=client.get_client_id() if client else request.payload.client_id,
                error=error.error,
                description=error.description,
            )
        return super().handle_error_response(request, error)

    # tokens ---------------------------------------------------------------------------

    def principal_claims(self, principal: Principal) -> dict[str, Any]:
        if isinstance(principal, FederatedSubject):
            return {
                "user_type": principal.user_type,
                "acr": principal.level,
                "region": principal.region or self.settings.region_code,
            }
        account = principal.account
        return {"user_type": account.kind, "acr": account.level, "region": account.region}

    def _generate_token(
        self,
        grant_type: str,
        client: ClientModel,
        user: Principal | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        ttl = expires_in or self.settings.access_token_ttl
        audiences = [client.get_client_id(), *client.row.audiences]
        claims = self.access_claims(
            sub=user.get_user_id() if user else client.get_client_id(),
            client_id=client.get_client_id(),
            audience=audiences,
            scope=scope or "",
            ttl=ttl,
        )
        if user is not None:
            claims.update(self.principal_claims(user))
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.keys.sign(current_db(), claims, typ="at+jwt"),
            "expires_in": ttl,
            "scope": scope or "",
        }
        if include_refresh_token and user is not None:
            token["refresh_token"] = secrets.token_urlsafe(48)
        return token

    def access_claims(
        self, *, sub: str, client_id: str, audience: list[str] | str, scope: str, ttl: int
    ) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
        }

    def own_token(self, db: Session, token: str) -> tuple[dict[str, Any], IssuedToken] | None:
        """Claims and record of an access token this IdP issued and still considers active."""
        try:
            decoded = jwt.decode(token, self.keys.key_set(db), algorithms=[ALGORITHM])
        except (JoseError, ValueError):
            return None
        claims = dict(decoded.claims)
        if claims.get("iss") != self.issuer or claims.get("exp", 0) < time.time():
            return None
        row = db.scalars(select(IssuedToken).where(IssuedToken.jti == claims.get("jti"))).first()
        if row is None or row.revoked:
            return None
        return claims, row

    def verify_own_token(self, db: Session, token: str) -> dict[str, Any] | None:
        """Claims of an access token this IdP issued and still considers active."""
        found = self.own_token(db, token)
        return found[0] if found is not None else None

    def userinfo(self, db: Session, account: Account, scope: str) -> dict[str, Any]:
        """Claims about the signed-in person; never the resident ID number."""
        scopes = scope.split()
        info = UserInfo(
            sub=account.sub,
            user_type=account.kind,
            acr=account.level,
            region=account.region,
        )
        if "profile" in scopes:
            info["name"] = account.name
            if account.kind == "legal_person":
                info["credit_code"] = account.credit_code
                info["legal_representative"] = account.legal_representative
        if "phone" in scopes and account.phone_enc:
            phone = self.protector.decrypt(account.phone_enc, "phone")
            info["phone_number"] = mask_phone(phone)
        return dict(info)

    def revoke_family(self, db: Session, family: str) -> None:
        db.execute(update(IssuedToken).where(IssuedToken.family == family).values(revoked=True))
