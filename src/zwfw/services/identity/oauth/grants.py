"""Grants: authorization code with PKCE (S256 only) and ID tokens, refresh with rotation,
client credentials, and RFC 8693 token exchange for federation."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.errors import RequestNotSupportedError, RequestURINotSupportedError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from zwfw.services.identity.events import current_db, record
from zwfw.services.identity.federation import (
    SUBJECT_TOKEN_TYPES,
    FederatedSubject,
    FederationError,
    verify_subject_token,
)
from zwfw.services.identity.keys import ALGORITHM
from zwfw.services.identity.models import Account, AuthorizationCode, IssuedToken
from zwfw.services.identity.oauth.adapters import (
    AccountPrincipal,
    ClientModel,
    CodeModel,
    TokenModel,
)
from zwfw.services.identity.oauth.profile import (
    ACCESS_TOKEN_TYPE,
    ADMIN_SCOPE,
    ALL_AUTH_METHODS,
    SYSTEM_AUTH_METHODS,
    TOKEN_EXCHANGE,
)
from zwfw.services.identity.security import token_hash

if TYPE_CHECKING:
    from zwfw.services.identity.oauth.provider import IdentityProvider


class S256Challenge(CodeChallenge):
    """PKCE is mandatory for every client, and only S256 is accepted."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        # OpenID Connect Core 6.1, 6.2: request objects are not supported (the discovery says
        # so), and a request that carries one is refused rather than answered without it: its
        # values, which supersede the query's, would be silently ignored.
        payload = self.request.payload
        refused = (
            RequestNotSupportedError if "request" in payload.data
            else RequestURINotSupportedError if "request_uri" in payload.data
            else None
        )  # fmt: skip
        if refused is not None:
            raise refused(redirect_uri=redirect_uri, state=payload.state)
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        db = current_db()
        provider: IdentityProvider = self.server
        data = request.payload.data
        principal: AccountPrincipal = request.user
        amr = list(getattr(request, "amr", []))
        scope = (request.scope or "").split()
        if ADMIN_SCOPE in scope and not (principal.account.is_admin and "mfa" in amr):
            # 等保: remote administration only for administrators who passed two factors.
            scope.remove(ADMIN_SCOPE)
        db.add(
            AuthorizationCode(
                code=token_hash(code),
                client_id=request.client.get_client_id(),
                account_id=principal.account.id,
                redirect_uri=request.payload.redirect_uri or "",
                scope=" ".join(scope),
                nonce=data.get("nonce"),
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                auth_time=getattr(request, "auth_time", time.time()),
                amr=amr,
                expires_at=time.time() + provider.settings.code_ttl,
            )
        )

    def query_authorization_code(self, code: str, client: ClientModel) -> CodeModel | None:
        db = current_db()
        row = db.get(AuthorizationCode, token_hash(code))
        if row is None or row.client_id != client.get_client_id():
            return None
        if row.used_at is not None:
            self._replayed(db, row)
            return None
        if row.expires_at < time.time():
            return None
        # Claimed here, atomically: of two redemptions racing, one gets tokens and the other
        # is a replay. A failed redemption (wrong code_verifier) spends the code too.
        claimed = db.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code == row.code, AuthorizationCode.used_at.is_(None))
            .values(used_at=time.time())
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            db.refresh(row)
            self._replayed(db, row)
            return None
        return CodeModel(row)

    def _replayed(self, db: Session, row: AuthorizationCode) -> None:
        """RFC 6749 §4.1.2: a code used twice revokes the tokens issued from its first use (the
        code may have been stolen; which of the two callers is legitimate is unknown)."""
        provider: IdentityProvider = self.server
        if row.family is not None:
            provider.revoke_family(db, row.family)
        record(
            db,
            "token.code_replay",
            "failure",
            actor=None,
            client_id=row.client_id,
            family=row.family,
        )

    def delete_authorization_code(self, authorization_code: CodeModel) -> None:
        # Kept, marked used when it was claimed, so that a replay is recognised (see above).
        return

    def authenticate_user(self, authorization_code: CodeModel) -> AccountPrincipal | None:
        account = current_db().get(Account, authorization_code.row.account_id)
        if account is None or account.disabled:
            return None
        return AccountPrincipal(account)


class IdToken(OpenIDCode):
    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        found = current_db().scalars(
            select(AuthorizationCode.code).where(
                AuthorizationCode.client_id == request.payload.client_id,
                AuthorizationCode.nonce == nonce,
            )
        )
        return found.first() is not None

    def get_client_algorithm(self, client: ClientModel) -> str:
        return ALGORITHM

    def get_encode_header(self, client: ClientModel) -> dict[str, str]:
        kid, _ = self.provider.keys.active(current_db())
        return {"alg": ALGORITHM, "kid": kid, "typ": "JWT"}

    def resolve_client_private_key(self, client: ClientModel) -> Any:
        return self.provider.keys.active(current_db())[1]

    def get_client_claims(self, client: ClientModel) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.provider.issuer,
            "aud": [client.get_client_id()],
            "iat": now,
            "exp": now + self.provider.settings.id_token_ttl,
        }

    def generate_user_info(self, user: AccountPrincipal, scope: str) -> dict[str, Any]:
        return self.provider.userinfo(current_db(), user.account, scope)


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> TokenModel | None:
        db = current_db()
        row = db.scalars(
            select(IssuedToken).where(IssuedToken.refresh_hash == token_hash(refresh_token))
        ).first()
        if row is None:
            return None
        if row.rotated and not row.revoked:
            # A spent refresh token came back: someone holds a copy. End the whole login.
            self.server.revoke_family(db, row.family)
            record(
                db,
                "token.refresh_reuse",
                "failure",
                actor=row.subject,
                client_id=row.client_id,
                family=row.family,
            )
            return None
        model = TokenModel(row, "refresh_token")
        if model.is_revoked() or model.is_expired():
            return None
        return model

    def authenticate_user(self, refresh_token: TokenModel) -> AccountPrincipal | None:
        account_id = refresh_token.row.account_id
        account = current_db().get(Account, account_id) if account_id is not None else None
        if account is None or account.disabled:
            return None
        return AccountPrincipal(account)

    def revoke_old_credential(self, refresh_token: TokenModel) -> None:
        refresh_token.row.rotated = True


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SYSTEM_AUTH_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        # Authlib hands the requested scope through unchecked: a client would get any scope
        # it asks for (identity:admin included). It gets only those registered for it.
        client: ClientModel = self.request.client
        allowed = set(client.row.scopes)
        refused = [s for s in scope_to_list(self.request.payload.scope) or [] if s not in allowed]
        if refused:
            raise InvalidScopeError(f"the client may not request {' '.join(refused)}")


class TokenExchangeGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    """RFC 8693: a token from a trusted IdP becomes a token of this IdP for the same person."""

    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"the client may not use grant_type={self.GRANT_TYPE}")
        form = self.request.form
        subject_token = form.get("subject_token")
        subject_token_type = form.get("subject_token_type")
        if not subject_token or not subject_token_type:
            raise InvalidRequestError("subject_token and subject_token_type are required")
        if subject_token_type not in SUBJECT_TOKEN_TYPES:
            raise InvalidRequestError(f"unsupported subject_token_type {subject_token_type}")
        if form.get("actor_token"):
            raise InvalidRequestError("delegation (actor_token) is not supported")
        requested_type = form.get("requested_token_type", ACCESS_TOKEN_TYPE)
        if requested_type != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError("only access tokens can be requested")
        audience = form.get("audience") or client.get_client_id()
        allowed = {client.get_client_id(), *client.row.audiences}
        if audience not in allowed:
            raise InvalidTargetError(f"audience {audience} is not allowed for this client")
        provider: IdentityProvider = self.server
        try:
            subject = verify_subject_token(
                current_db(),
                subject_token,
                own_issuer=provider.issuer,
                levels=provider.settings.assurance_levels,
                jwks_cache=provider.jwks_cache,
            )
        except FederationError as exc:
            record(
                current_db(),
                "federation.exchange",
                "failure",
                client_id=client.get_client_id(),
                reason=str(exc),
            )
            raise InvalidGrantError(str(exc)) from None
        self.request.client = client
        self.request.user = subject
        self.request.audience = audience

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        provider: IdentityProvider = self.server
        subject: FederatedSubject = self.request.user
        client: ClientModel = self.request.client
        level = self._capped_level(provider, subject)
        scope = client.get_allowed_scope(self.request.payload.scope) or ""
        ttl = provider.settings.exchanged_token_ttl
        claims = provider.access_claims(
            sub=subject.sub,
            client_id=client.get_client_id(),
            audience=self.request.audience,
            scope=scope,
            ttl=ttl,
        )
        claims.update(
            {
                "user_type": subject.user_type,
                "acr": level,
                "region": subject.region or provider.settings.region_code,
                # Where the person actually authenticated (一次认证、全网通办).
                "federated_from": subject.issuer,
            }
        )
        db = current_db()
        access_token = provider.keys.sign(db, claims, typ="at+jwt")
        db.add(
            IssuedToken(
                jti=claims["jti"],
                client_id=client.get_client_id(),
                account_id=None,
                subject=subject.sub,
                scope=scope,
                family=secrets.token_hex(16),
                issued_at=claims["iat"],
                access_expires_at=claims["exp"],
            )
        )
        record(
            db,
            "federation.exchange",
            "success",
            actor=subject.sub,
            client_id=client.get_client_id(),
            issuer=subject.issuer,
            level=level,
            audience=self.request.audience,
        )
        body = {
            "access_token": access_token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scope,
        }
        return 200, body, self.TOKEN_RESPONSE_HEADER

    @staticmethod
    def _capped_level(provider: IdentityProvider, subject: FederatedSubject) -> str:
        levels = provider.settings.assurance_levels
        rank = levels.index(subject.level)
        if subject.max_level in levels:
            rank = min(rank, levels.index(subject.max_level))
        return levels[rank]


class InvalidTargetError(OAuth2Error):
    error = "invalid_target"
