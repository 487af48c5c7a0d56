"""Fixtures for the e-seal tests: an app with a fresh KEK and tokens shaped like identity's."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kit.kit_tokens import TokenMint

from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.services.eseal import EsealSettings, build
from zwfw.services.kit import migrate

ISSUER = "https://idp.test.zwfw"
AUDIENCE = "zwfw-eseal"
CREDIT_CODE = "11340100MB0000000T"


def png(width: int = 8, height: int = 8) -> bytes:
    """A real (tiny, red) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def seal_body(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "credit_code": CREDIT_CODE,
        "organisation": "合肥市数据资源局",
        "category": "legal_name",
        "name": "合肥市数据资源局",
        "picture": {"png": base64.b64encode(png()).decode(), "width_mm": 42, "height_mm": 42},
        "valid_start": (now - timedelta(minutes=1)).isoformat(),
        "valid_end": (now + timedelta(days=365)).isoformat(),
        "signers": [{"subject": "officer-1", "name": "张三"}],
    }
    body.update(overrides)
    return body


class Tokens:
    """Bearer tokens as identity issues them: user tokens (pseudonymous sub, user_type, acr,
    region) and client-credentials tokens (sub = client_id)."""

    def __init__(self, mint: TokenMint) -> None:
        self.mint = mint

    def user(self, sub: str, *scopes: str) -> dict[str, str]:
        token = self.mint.token(
            sub=sub,
            scopes=scopes,
            extra={"user_type": "person", "acr": "real_name", "region": "340000"},
        )
        return {"Authorization": f"Bearer {token}"}

    def client(self, client_id: str, *scopes: str) -> dict[str, str]:
        token = self.mint.token(sub=client_id, scopes=scopes, extra={"client_id": client_id})
        return {"Authorization": f"Bearer {token}"}

    def admin(self) -> dict[str, str]:
        return self.client("seal-admin-console", "eseal:admin", "eseal:read")


@pytest.fixture
def mint() -> TokenMint:
    return TokenMint(issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def tokens(mint: TokenMint) -> Tokens:
    return Tokens(mint)


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.generate()


@pytest.fixture
def make_app(mint: TokenMint, kek: KeyEncryptionKey, tmp_path: Path) -> Callable[..., FastAPI]:
    def factory(database_url: str | None = None, **overrides: Any) -> FastAPI:
        settings = EsealSettings(
            database_url=database_url or f"sqlite:///{tmp_path / 'eseal.sqlite3'}",
            public_base_url="http://eseal.test",
            auth={"issuer": ISSUER, "audience": AUDIENCE, "jwks": mint.jwks()},
            **overrides,
        )
        app = build(settings, kek=kek)
        migrate(app)
        return app

    return factory


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def seal(client: TestClient, tokens: Tokens) -> dict[str, Any]:
    response = client.post("/seals", json=seal_body(), headers=tokens.admin())
    assert response.status_code == 201, response.text
    return response.json()
