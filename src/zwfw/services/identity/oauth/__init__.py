"""The OAuth 2.0 / OpenID Connect provider, built on Authlib's grant and endpoint classes."""

from __future__ import annotations

from zwfw.services.identity.oauth.adapters import AccountPrincipal
from zwfw.services.identity.oauth.profile import (
    ACCESS_TOKEN_TYPE,
    ADMIN_SCOPE,
    ALL_AUTH_METHODS,
    GRANT_TYPES,
    STANDARD_SCOPES,
    SYSTEM_AUTH_METHODS,
    TOKEN_EXCHANGE,
)
from zwfw.services.identity.oauth.provider import IdentityProvider
from zwfw.services.identity.oauth.requests import FormRequest

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ADMIN_SCOPE",
    "ALL_AUTH_METHODS",
    "GRANT_TYPES",
    "STANDARD_SCOPES",
    "SYSTEM_AUTH_METHODS",
    "TOKEN_EXCHANGE",
    "AccountPrincipal",
    "FormRequest",
    "IdentityProvider",
]
