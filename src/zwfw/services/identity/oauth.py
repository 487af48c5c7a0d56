"""The OAuth 2.0 / OpenID Connect provider, built on Authlib's grant and endpoint classes."""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode, UserInfo
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from zwfw.codes.masking import mask_phone
from zwfw.crypto.fields import FieldProtector
from zwfw.services.identity.federation import (
    SUBJECT_TOKEN_TYPES,
    FederatedSubject,
    FederationError,
    JwksCache,
    verify_subject_token,
)
from zwfw.services.identity.keys import ALGORITHM, KeyManager
from zwfw.services.identity.models import (
    Account,
    AuthorizationCode,
    Client,
    IssuedToken,
    UsedAssertion,
)
from zwfw.services.identity.security import (
    constant_time_equal,
    token_hash,
)
from zwfw.services.identity.settings import IdentitySettings
from zwfw.services.kit import audit

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# Client authentication methods; 密评 asks for cryptographic ones on system channels.
SYSTEM_AUTH_METHODS = ["private_key_jwt", "self_signed_tls_client_auth"]
ALL_AUTH_METHODS = ["none", "client_secret_basic", *SYSTEM_AUTH_METHODS]
STANDARD_SCOPES = ["openid", "profile", "phone"]
# Administration of the IdP itself (clients, accounts, trust list, keys).
ADMIN_SCOPE = "identity:admin"

_db: ContextVar[Session] = ContextVar("identity_db")
_address: ContextVar[str | None] = ContextVar("identity_address", default=None)


@contextmanager
def bound(db: Session, address: str | None) -> Iterator[None]:
    """Make the request's database session visible to Authlib's callbacks."""
    token_db = _db.set(db)
    token_addr = _address.set(address)
    try:
        yield
    finally:
        _db.reset(token_db)
        _address.reset(token_addr)


def current_db() -> Session:
    return _db.get()


def record(
    db: Session,
    event: str,
    outcome: str,
    *,
    actor: str | None = None,
    client_id: str | None = None,
    **detail: Any,
) -> None:
    """Append one authentication or administration event to the kit's audit log."""
    if client_id is not None:
        detail["client_id"] = client_id
    audit.record(
        db,
        actor=actor,
        action=event,
        resource=f"client/{client_id}" if client_id else "identity",
        result=outcome,
        detail=detail,
        source_ip=_address.get(),
    )


# --- Authlib request adapter ------------------------------------------------------------


class _Payload(OAuth2Payload):
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    @property
    def data(self) -> dict[str, str]:
        return {key: items[0] for key, items in self._values.items() if items}

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return defaultdict(list, self._values)


class FormRequest(OAuth2Request):
    """An already-read HTTP request (query + form) in the shape Authlib expects."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._query = query
        self._form = form
        values: dict[str, list[str]] = defaultdict(list)
        for key, value in [*query, *form]:
            values[key].append(value)
        self.payload = _Payload(dict(values))

    @property
    def args(self) -> dict[str, str]:
        return dict(self._query)

    @property
    def form(self) -> dict[str, str]:
        return dict(self._form)


# --- model adapters ------------------------------------------------------------------------


class ClientModel(ClientMixin):
    def __init__(self, row: Client) -> None:
        self.row = row

    @property
    def client_id(self) -> str:
        return self.row.client_id

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.row.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.row.scopes)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.row.secret_hash is not None and constant_time_equal(
            self.row.secret_hash, token_hash(client_secret)
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.row.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


class AccountPrincipal:
    def __init__(self, account: Account) -> None:
        self.account = account

    def get_user_id(self) -> str:
        return self.account.sub


Principal = AccountPrincipal | FederatedSubject


class CodeModel:
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time)

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str]:
        return list(self.row.amr)


class TokenModel:
    def __init__(self, row: IssuedToken, kind: str) -> None:
        self.row = row
        self.kind = kind  # access_token | refresh_token

    def check_client(self, client: ClientModel) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at() - self.row.issued_at)

    def expires_at(self) -> float:
        if self.kind == "refresh_token":
            return self.row.refresh_expires_at or 0.0
        return self.row.access_expires_at

    def is_expired(self) -> bool:
        return self.expires_at() < time.time()

    def is_revoked(self) -> bool:
        return self.row.revoked or (self.kind == "refresh_token" and self.row.rotated)


# --- the provider ------------------------------------------------------------------------


def _jwt_claims(token: str) -> dict[str, Any]:
    # Only for tokens this server has just signed itself.
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class IdentityProvider(AuthorizationServer):
    def __init__(self, settings: IdentitySettings, protector: FieldProtector) -> None:
        super().__init__(scopes_supported=None)
        self.settings = settings
        self.protector = protector
        self.keys = KeyManager(protector, settings.max_token_ttl + settings.key_grace_seconds)
        self.jwks_cache = JwksCache()
        self.register_token_generator("default", self._generate_token)
        self.register_client_auth_method("private_key_jwt", _PrivateKeyJWT(self))
        self.register_client_auth_method(
            "self_signed_tls_client_auth", _SelfSignedTLS(settings.mtls_cert_header)
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
        row = current_db().get(Client, client_id)
        if row is None or row.disabled:
            return None
        return ClientModel(row)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        db = current_db()
        claims = _jwt_claims(token["access_token"])
        previous: TokenModel | None = request.refresh_token
        principal = request.user
        auth_time, amr = None, []
        if previous is not None:
            family = previous.row.family
            auth_time, amr = previous.row.auth_time, previous.row.amr
        else:
            family = secrets.token_hex(16)
        if request.authorization_code is not None:
            auth_time = request.authorization_code.row.auth_time
            amr = request.authorization_code.row.amr
        refresh = token.get("refresh_token")
        db.add(
            IssuedToken(
                jti=claims["jti"],
                client_id=request.client.get_client_id(),
                account_id=principal.account.id
                if isinstance(principal, AccountPrincipal)
                else None,
                subject=claims["sub"],
                scope=token.get("scope", ""),
                family=family,
                refresh_hash=token_hash(refresh) if refresh else None,
                issued_at=claims["iat"],
                access_expires_at=claims["exp"],
                refresh_expires_at=(
                    claims["iat"] + self.settings.refresh_token_ttl if refresh else None
                ),
                auth_time=auth_time,
                amr=amr,
            )
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
        db = _db.get(None)
        if db is not None and error.error in ("invalid_client", "invalid_grant"):
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

    def verify_own_token(self, db: Session, token: str) -> dict[str, Any] | None:
        """Claims of an access token this IdP issued and still considers active."""
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
        return claims

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


# --- client authentication -------------------------------------------------------------------


class _PrivateKeyJWT(JWTBearerClientAssertion):
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


class _SelfSignedTLS:
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
        from zwfw.services.identity.security import CertificateError, certificate_fingerprint

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


# --- grants -------------------------------------------------------------------------------


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
        row = current_db().get(AuthorizationCode, token_hash(code))
        if row is None or row.client_id != client.get_client_id() or row.expires_at < time.time():
            return None
        return CodeModel(row)

    def delete_authorization_code(self, authorization_code: CodeModel) -> None:
        current_db().delete(authorization_code.row)

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


# --- introspection and revocation -------------------------------------------------------------


def _query_token(token_string: str, hint: str | None) -> TokenModel | None:
    db = current_db()
    if hint != "refresh_token" and token_string.count(".") == 2:
        try:
            jti = _jwt_claims(token_string).get("jti")
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
        return token.check_client(client) or "identity:introspect" in client.row.scopes

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
