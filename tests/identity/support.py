"""Fixtures: an identity service on a temporary SQLite database, driven in-process."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from zwfw.services.identity import IdentitySettings, build
from zwfw.services.identity.accounts import AccountIn
from zwfw.services.identity.clients import ClientIn, register_client
from zwfw.services.identity.service import IdentityService
from zwfw.services.kit import migrate

ISSUER = "https://idp.test"
PASSWORD = "Correct-Horse-9-battery"
# The audit actor of what tests put into an IdP's database before using it.
SEEDER = "test setup"


def make_settings(tmp_path: Path, issuer: str = ISSUER, **overrides: Any) -> IdentitySettings:
    values: dict[str, Any] = {
        "public_base_url": issuer,
        "database_url": f"sqlite:///{tmp_path / 'identity.sqlite3'}",
        "data_key": os.urandom(16).hex(),
        "lookup_key": os.urandom(32).hex(),
    }
    values.update(overrides)
    return IdentitySettings(**values)


@dataclass
class Idp:
    client: TestClient
    svc: IdentityService
    settings: IdentitySettings

    def db(self):  # noqa: ANN201 - a context manager from sessionmaker.begin()
        return self.client.app.state.kit.sessions.begin()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def client_assertion(key: ECKey, client_id: str, audience: str) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode({"alg": "ES256"}, claims, key)


@contextmanager
def started(tmp_path: Path, **overrides: Any) -> Iterator[Idp]:
    settings = make_settings(tmp_path, **overrides)
    app = build(settings)
    migrate(app)
    with TestClient(app, base_url=ISSUER) as client:
        yield Idp(client, app.state.identity, settings)


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[Idp]:
    with started(tmp_path) as instance:
        yield instance


def add_client(idp: Idp, **fields: Any) -> str | None:
    with idp.db() as db:
        return register_client(db, ClientIn(**fields), actor=SEEDER).client_secret


def add_person(idp: Idp, username: str = "zhangsan", **fields: Any) -> str:
    body = {
        "kind": "person",
        "username": username,
        "password": PASSWORD,
        "name": "张三",
        "id_number": "11010519491231002X",
        "phone": "13812345678",
    }
    body.update(fields)
    with idp.db() as db:
        return idp.svc.accounts.register(db, AccountIn(**body), actor=SEEDER).sub
