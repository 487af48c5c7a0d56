"""Clients of the IdP (relying parties and system clients): the one place that registers,
changes, lists and disables them, with every check a registration must pass, and that keeps
the provisioning clients of the settings in force. Every change is audited with its actor."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from zwfw.services.identity.events import Actor, record
from zwfw.services.identity.models import Client, IssuedToken
from zwfw.services.identity.oauth.profile import ADMIN_SCOPE, SYSTEM_AUTH_METHODS
from zwfw.services.identity.security import token_hash
from zwfw.services.identity.settings import IdentitySettings, ProvisioningClientConfig
from zwfw.services.identity.validation import (
    CLIENT_ID_PATTERN,
    SCOPE_PATTERN,
    http_url,
    public_jwks,
)

AuthMethod = Literal[
    "none", "client_secret_basic", "private_key_jwt", "self_signed_tls_client_auth"
]
# The grant types of oauth.profile.GRANT_TYPES, spelt out for the OpenAPI document.
GrantType = Literal[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]
Change = Literal["created", "updated", "unchanged"]
# Who the settings' provisioning clients are registered by, in the audit log.
SETTINGS_ACTOR = "settings:provisioning_clients"


class ClientError(ValueError):
    """The registration is refused; the message says why."""


class ClientConflict(ClientError):
    """The client exists already, or it is a provisioning client owned by the settings."""


class UnknownClient(LookupError):
    """No client has this id."""


class ClientSpec(BaseModel):
    """What is registered for one client: the body of ``PUT /admin/clients/{client_id}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    auth_method: AuthMethod
    # private_key_jwt: the client's public ES256 keys.
    jwks: dict[str, Any] | None = None
    # self_signed_tls_client_auth: SHA-256 of the client certificate (hex).
    tls_thumbprint: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    redirect_uris: list[str] = Field(default=[], max_length=20)
    post_logout_redirect_uris: list[str] = Field(default=[], max_length=20)
    grant_types: list[GrantType] = Field(min_length=1, max_length=4)
    scopes: list[str] = Field(default=[], max_length=50)
    # Extra audiences of its access tokens (resource servers, a province IdP for federation).
    audiences: list[str] = Field(default=[], max_length=20)
    disabled: bool = False


class ClientIn(ClientSpec):
    """A new client: the body of ``POST /admin/clients``."""

    client_id: str = Field(pattern=CLIENT_ID_PATTERN)


class ClientOut(BaseModel):
    """A registered client. ``client_secret`` is there once, when a secret was just made."""

    client_id: str
    name: str
    auth_method: str
    jwks: dict[str, Any] | None
    tls_thumbprint: str | None
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scopes: list[str]
    audiences: list[str]
    disabled: bool
    # Registered from the IdP's settings (provisioning_clients): changed only there.
    from_settings: bool
    client_secret: str | None = None


class ClientPut(BaseModel):
    """The answer to ``PUT /admin/clients/{client_id}``: what the request changed."""

    result: Change
    client: ClientOut


_SPEC_FIELDS = tuple(ClientSpec.model_fields)


_T = TypeVar("_T")


def _unique(values: Sequence[_T]) -> list[_T]:
    return list(dict.fromkeys(values))


def checked(spec: ClientSpec) -> ClientSpec:
    """``spec`` with duplicates removed, if it describes a client this IdP can serve safely."""
    grants = set(spec.grant_types)
    method = spec.auth_method
    if "client_credentials" in grants and method not in SYSTEM_AUTH_METHODS:
        raise ClientError("client_credentials needs private_key_jwt or mutual-TLS authentication")
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise ClientError("refresh_token is only issued with authorization_code")
    if method == "private_key_jwt":
        if not spec.jwks:
            raise ClientError("private_key_jwt needs the client's public JWKS")
        try:
            public_jwks(spec.jwks)
        except ValueError as exc:
            raise ClientError(f"jwks: {exc}") from None
    elif spec.jwks is not None:
        raise ClientError("jwks is only used with private_key_jwt")
    if method == "self_signed_tls_client_auth":
        if not spec.tls_thumbprint:
            raise ClientError(
                "mutual-TLS authentication needs the certificate's SHA-256 thumbprint"
            )
    elif spec.tls_thumbprint is not None:
        raise ClientError("tls_thumbprint is only used with self_signed_tls_client_auth")
    if "authorization_code" in grants and not spec.redirect_uris:
        raise ClientError("authorization_code needs at least one redirect URI")
    if spec.redirect_uris and "authorization_code" not in grants:
        raise ClientError("redirect URIs are only used with authorization_code")
    try:
        for uri in [*spec.redirect_uris, *spec.post_logout_redirect_uris]:
            # RFC 6749 §3.1.2: absolute, compared exactly, without a fragment.
            http_url(uri, "a redirect URI")
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    for scope in spec.scopes:
        if not SCOPE_PATTERN.match(scope):
            raise ClientError(f"scope {scope!r} is not a scope token (RFC 6749 §3.3)")
    for audience in spec.audiences:
        if not audience.strip() or len(audience) > 255 or " " in audience:
            raise ClientError(f"audience {audience!r} is not an identifier or URL")
    return spec.model_copy(
        update={
            "redirect_uris": _unique(spec.redirect_uris),
            "post_logout_redirect_uris": _unique(spec.post_logout_redirect_uris),
            "grant_types": _unique(spec.grant_types),
            "scopes": _unique(spec.scopes),
            "audiences": _unique(spec.audiences),
        }
    )


def _out(row: Client, secret: str | None = None) -> ClientOut:
    return ClientOut(
        client_id=row.client_id,
        name=row.name,
        auth_method=row.auth_method,
        jwks=row.jwks,
        tls_thumbprint=row.tls_thumbprint,
        redirect_uris=list(row.redirect_uris),
        post_logout_redirect_uris=list(row.post_logout_redirect_uris),
        grant_types=list(row.grant_types),
        scopes=list(row.scopes),
        audiences=list(row.audiences),
        disabled=row.disabled,
        from_settings=row.from_settings,
        client_secret=secret,
    )


def _registered(row: Client) -> ClientSpec:
    return ClientSpec(
        name=row.name,
        auth_method=row.auth_method,  # type: ignore[arg-type]
        jwks=row.jwks,
        tls_thumbprint=row.tls_thumbprint,
        redirect_uris=row.redirect_uris,
        post_logout_redirect_uris=row.post_logout_redirect_uris,
        grant_types=row.grant_types,
        scopes=row.scopes,
        audiences=row.audiences,
        disabled=row.disabled,
    )


def _apply(row: Client, spec: ClientSpec) -> str | None:
    """Write ``spec`` into ``row``; the new client secret when one had to be made."""
    secret = None
    if spec.auth_method == "client_secret_basic":
        if row.auth_method != "client_secret_basic" or row.secret_hash is None:
            secret = secrets.token_urlsafe(32)
            row.secret_hash = token_hash(secret)
    else:
        row.secret_hash = None
    for name in _SPEC_FIELDS:
        setattr(row, name, getattr(spec, name))
    return secret


def _revoke_tokens(db: Session, client_id: str) -> None:
    # A disabled client's tokens stop working now, not when they expire.
    db.execute(
        update(IssuedToken)
        .where(IssuedToken.client_id == client_id, IssuedToken.revoked.is_(False))
        .values(revoked=True)
    )


def _owned_by_settings(row: Client) -> None:
    if row.from_settings:
        raise ClientConflict(
            f"client {row.client_id} is a provisioning client of the IdP's settings; "
            "change it there (provisioning_clients)"
        )


def find_client(db: Session, client_id: str) -> ClientOut | None:
    row = db.get(Client, client_id)
    return _out(row) if row is not None else None


def get_client(db: Session, client_id: str) -> ClientOut:
    found = find_client(db, client_id)
    if found is None:
        raise UnknownClient(f"client {client_id} does not exist")
    return found


def list_clients(db: Session) -> list[ClientOut]:
    return [_out(row) for row in db.scalars(select(Client).order_by(Client.client_id))]


def register_client(db: Session, body: ClientIn, *, actor: Actor | str) -> ClientOut:
    """Register a new client (``ClientConflict`` if the id is taken); a secret is made only
    for client_secret_basic and returned this once."""
    spec = checked(ClientSpec.model_validate(body.model_dump(exclude={"client_id"})))
    if db.get(Client, body.client_id) is not None:
        raise ClientConflict(f"client {body.client_id} exists")
    row = Client(client_id=body.client_id, from_settings=False)
    secret = _apply(row, spec)
    db.add(row)
    db.flush()
    record(db, "admin.client.create", "success", actor=actor, client_id=body.client_id)
    return _out(row, secret)


def put_client(
    db: Session, client_id: str, spec: ClientSpec, *, actor: Actor | str
) -> tuple[ClientOut, Change]:
    """Make the client ``client_id`` be as ``spec`` says: created, updated, or left alone when
    it already is (a rerun of the same provisioning changes nothing). An existing
    client_secret_basic client keeps its secret."""
    spec = checked(spec)
    row = db.get(Client, client_id)
    if row is None:
        body = ClientIn(client_id=client_id, **spec.model_dump())
        return register_client(db, body, actor=actor), "created"
    _owned_by_settings(row)
    before = _registered(row)
    changed = [name for name in _SPEC_FIELDS if getattr(before, name) != getattr(spec, name)]
    if not changed:
        return _out(row), "unchanged"
    secret = _apply(row, spec)
    if spec.disabled and not before.disabled:
        _revoke_tokens(db, client_id)
    record(db, "admin.client.update", "success", actor=actor, client_id=client_id, changed=changed)
    return _out(row, secret), "updated"


def disable_client(db: Session, client_id: str, *, actor: Actor | str) -> bool:
    """Disable the client and revoke its tokens; False when it was disabled already."""
    row = db.get(Client, client_id)
    if row is None:
        raise UnknownClient(f"client {client_id} does not exist")
    _owned_by_settings(row)
    if row.disabled:
        return False
    row.disabled = True
    _revoke_tokens(db, client_id)
    record(db, "admin.client.disable", "success", actor=actor, client_id=client_id)
    return True


def provisioning_spec(settings: IdentitySettings, entry: ProvisioningClientConfig) -> ClientSpec:
    """How a provisioning client of the settings is registered: private_key_jwt, client
    credentials, the identity:admin scope only, for this IdP's own audience."""
    return ClientSpec(
        name=entry.name or f"provisioning client {entry.client_id}",
        auth_method="private_key_jwt",
        jwks=entry.jwks,
        grant_types=["client_credentials"],
        scopes=[ADMIN_SCOPE],
        audiences=[settings.issuer],
    )


def sync_provisioning_clients(db: Session, settings: IdentitySettings) -> dict[str, Change]:
    """Bring the provisioning clients in the database in line with the settings: register or
    update those listed, disable those no longer listed. A changed or removed provisioning
    client's tokens are revoked (its key may be the reason for the change)."""
    wanted = {entry.client_id: entry for entry in settings.provisioning_clients}
    outcome: dict[str, Change] = {}
    for client_id, entry in wanted.items():
        spec = checked(provisioning_spec(settings, entry))
        row = db.get(Client, client_id)
        if row is None:
            row = Client(client_id=client_id, from_settings=True)
            _apply(row, spec)
            db.add(row)
            db.flush()
            record(db, "provisioning.client.create", "success", actor=SETTINGS_ACTOR,
                   client_id=client_id)  # fmt: skip
            outcome[client_id] = "created"
            continue
        before = _registered(row)
        changed = [name for name in _SPEC_FIELDS if getattr(before, name) != getattr(spec, name)]
        if not row.from_settings:
            # The settings win over a client of the same id registered through the API.
            changed.append("from_settings")
            row.from_settings = True
        if not changed:
            outcome[client_id] = "unchanged"
            continue
        _apply(row, spec)
        _revoke_tokens(db, client_id)
        record(db, "provisioning.client.update", "success", actor=SETTINGS_ACTOR,
               client_id=client_id, changed=changed)  # fmt: skip
        outcome[client_id] = "updated"
    stale = select(Client).where(
        Client.from_settings.is_(True),
        Client.disabled.is_(False),
        Client.client_id.not_in(list(wanted)),
    )
    for row in db.scalars(stale):
        # Kept (disabled, still owned by the settings) so that its history stays readable.
        row.disabled = True
        _revoke_tokens(db, row.client_id)
        record(db, "provisioning.client.disable", "success", actor=SETTINGS_ACTOR,
               client_id=row.client_id)  # fmt: skip
        outcome[row.client_id] = "updated"
    return outcome
