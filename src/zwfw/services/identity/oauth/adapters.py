"""What Authlib sees of the IdP's rows: clients, signed-in persons, codes and tokens."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import Row

from zwfw.services.identity.federation import FederatedSubject
from zwfw.services.identity.models import Account, AuthorizationCode, Client, IssuedToken
from zwfw.services.identity.security import constant_time_equal, token_hash

# A registered client as Authlib sees it: the mapped row, or the same columns read as a plain
# row on the token path (read-only either way).
ClientRecord = Client | Row[Any]


class ClientModel(ClientMixin):
    def __init__(self, row: ClientRecord) -> None:
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


def unverified_claims(token: str) -> dict[str, Any]:
    # Only for tokens this server has just signed itself.
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
