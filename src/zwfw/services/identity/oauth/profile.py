"""The OAuth 2.0 profile this IdP implements: grants, client authentication methods, scopes."""

from __future__ import annotations

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE)
# Client authentication methods; 密评 asks for cryptographic ones on system channels.
SYSTEM_AUTH_METHODS = ["private_key_jwt", "self_signed_tls_client_auth"]
ALL_AUTH_METHODS = ["none", "client_secret_basic", *SYSTEM_AUTH_METHODS]
STANDARD_SCOPES = ["openid", "profile", "phone"]
# Administration of the IdP itself (clients, accounts, trust list, keys).
ADMIN_SCOPE = "identity:admin"
# Lets a system client introspect tokens issued to other clients.
INTROSPECT_SCOPE = "identity:introspect"
