"""Clients of the IdP (relying parties and system clients): registration with its checks."""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from zwfw.services.identity.models import Client
from zwfw.services.identity.oauth import ALL_AUTH_METHODS, GRANT_TYPES
from zwfw.services.identity.security import token_hash
from zwfw.services.kit import bad_request, conflict


class ClientIn(BaseModel):
    client_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{2,128}$")
    name: str
    auth_method: str
    jwks: dict[str, Any] | None = None
    tls_thumbprint: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    redirect_uris: list[str] = []
    post_logout_redirect_uris: list[str] = []
    grant_types: list[str]
    scopes: list[str] = []
    audiences: list[str] = []


class ClientOut(BaseModel):
    client_id: str
    name: str
    auth_method: str
    grant_types: list[str]
    scopes: list[str]
    redirect_uris: list[str]
    audiences: list[str]
    client_secret: str | None = None


def register_client(db: Session, body: ClientIn) -> ClientOut:
    """Validate and store a client; a secret is generated only for client_secret_basic."""
    if body.auth_method not in ALL_AUTH_METHODS:
        raise bad_request(f"auth_method must be one of {ALL_AUTH_METHODS}")
    unknown = set(body.grant_types) - set(GRANT_TYPES)
    if unknown:
        raise bad_request(f"unknown grant types {sorted(unknown)}")
    if "client_credentials" in body.grant_types and body.auth_method not in (
        "private_key_jwt",
        "self_signed_tls_client_auth",
    ):
        raise bad_request("client_credentials needs private_key_jwt or mutual-TLS authentication")
    if body.auth_method == "private_key_jwt" and not body.jwks:
        raise bad_request("private_key_jwt needs the client's public JWKS")
    if body.auth_method == "self_signed_tls_client_auth" and not body.tls_thumbprint:
        raise bad_request("mutual-TLS authentication needs the certificate's SHA-256 thumbprint")
    if "authorization_code" in body.grant_types and not body.redirect_uris:
        raise bad_request("authorization_code needs at least one redirect URI")
    if db.get(Client, body.client_id) is not None:
        raise conflict(f"client {body.client_id} exists")
    secret = secrets.token_urlsafe(32) if body.auth_method == "client_secret_basic" else None
    db.add(
        Client(
            client_id=body.client_id,
            name=body.name,
            auth_method=body.auth_method,
            secret_hash=token_hash(secret) if secret else None,
            jwks=body.jwks,
            tls_thumbprint=body.tls_thumbprint,
            redirect_uris=body.redirect_uris,
            post_logout_redirect_uris=body.post_logout_redirect_uris,
            grant_types=body.grant_types,
            scopes=body.scopes,
            audiences=body.audiences,
        )
    )
    return ClientOut(**body.model_dump(), client_secret=secret)
