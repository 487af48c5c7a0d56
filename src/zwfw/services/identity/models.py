"""Persistent state of the identity service."""

from __future__ import annotations

import time

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from zwfw.services.kit.db import naming_metadata


def now() -> float:
    return time.time()


class Base(DeclarativeBase):
    metadata = naming_metadata()


class Client(Base):
    """A relying party or a system client (hub, other services)."""

    __tablename__ = "idn_client"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # none | client_secret_basic | private_key_jwt | self_signed_tls_client_auth
    auth_method: Mapped[str] = mapped_column(String(40))
    secret_hash: Mapped[str | None] = mapped_column(String(128))
    jwks: Mapped[dict | None] = mapped_column(JSON)
    tls_thumbprint: Mapped[str | None] = mapped_column(String(64))
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    # Extra audiences of this client's access tokens (e.g. a province IdP for federation).
    audiences: Mapped[list] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # A provisioning client of the settings: kept in line with them at start-up, never changed
    # through the admin API.
    from_settings: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Account(Base):
    """A natural person or a legal person (and their users: admins are accounts too)."""

    __tablename__ = "idn_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sub: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # person | legal_person
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    password_changed_at: Mapped[float] = mapped_column(Float, default=now)
    name: Mapped[str] = mapped_column(String(200))
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_lookup: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)
    legal_representative: Mapped[str | None] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(6))
    totp_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class AuthorizationCode(Base):
    __tablename__ = "idn_auth_code"

    code: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int] = mapped_column(ForeignKey("idn_account.id"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    auth_time: Mapped[float] = mapped_column(Float)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    expires_at: Mapped[float] = mapped_column(Float)
    # Set when the code is redeemed; the row stays so that a replay is recognised and revokes
    # the token family issued from it.
    used_at: Mapped[float | None] = mapped_column(Float)
    family: Mapped[str | None] = mapped_column(String(64))


class IssuedToken(Base):
    """One issued access token and, when present, its refresh token (hash only)."""

    __tablename__ = "idn_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int | None] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text, default="")
    # Every refresh of one login shares a family; reuse of a spent refresh token revokes it.
    family: Mapped[str] = mapped_column(String(64), index=True)
    refresh_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    issued_at: Mapped[float] = mapped_column(Float, default=now)
    access_expires_at: Mapped[float] = mapped_column(Float)
    refresh_expires_at: Mapped[float | None] = mapped_column(Float)
    auth_time: Mapped[float | None] = mapped_column(Float)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    rotated: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class SigningKey(Base):
    __tablename__ = "idn_signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_jwk_enc: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set when rotated out: the key stays in the JWKS until tokens it signed have expired.
    publish_until: Mapped[float | None] = mapped_column(Float)


class LoginThrottle(Base):
    """Failure counter per login name, kept for unknown names too (no enumeration)."""

    __tablename__ = "idn_login_throttle"

    name_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class BrowserSession(Base):
    __tablename__ = "idn_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(Integer)
    # password | second_factor | password_change | complete
    stage: Mapped[str] = mapped_column(String(24))
    csrf: Mapped[str] = mapped_column(String(64))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    challenge: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    last_seen_at: Mapped[float] = mapped_column(Float, default=now)
    auth_time: Mapped[float | None] = mapped_column(Float)


class UsedAssertion(Base):
    """Client-assertion JWT IDs already seen (replay protection)."""

    __tablename__ = "idn_used_assertion"

    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)


class TrustedIssuer(Base):
    __tablename__ = "idn_trusted_issuer"

    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    jwks: Mapped[dict | None] = mapped_column(JSON)
    max_level: Mapped[str | None] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
