"""Fixtures for the e-licence tests: an e-seal service holding the issuer's seal, the e-licence
service sealing through it over HTTP, a registered type, and holders A and B."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eseal.conftest import seal_body  # noqa: F401 - re-exported for the suite test
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kit.kit_tokens import TokenMint

from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.services import eseal
from zwfw.services.elicense import ElicenseSettings, SealClient, SealServiceConfig, build
from zwfw.services.kit import migrate

ISSUER = "https://idp.test.zwfw"
ESEAL_AUDIENCE = "zwfw-eseal"
AUDIENCE = "zwfw-elicense"
ISSUER_CODE = "11340100MB0000000T"  # 合肥市市场监督管理局 (issuing authority)
DEFINING = "11100000000013338W"  # defining authority
TYPE_CODE = DEFINING + "001"
PLATFORM_CLIENT = "elicense-platform"
# A certification test issuer: its own seal, on which a test signing client may seal besides
# the e-licence service, so the tests can make validly sealed forgeries.
TEST_ISSUER_CODE = "11340100MB0000009N"
TEST_SIGNER = "certify-signer"
HOLDER_A_ID = "340104199001021234"


class Tokens:
    def __init__(self, mint: TokenMint) -> None:
        self.mint = mint

    def user(self, sub: str, *scopes: str, expires_in: int = 300) -> str:
        return self.mint.token(
            sub=sub, scopes=scopes, expires_in=expires_in,
            extra={"user_type": "person", "acr": "real_name", "region": "340000",
                   "client_id": "hall-web"},
        )  # fmt: skip

    def client(self, client_id: str, *scopes: str, audience: str = AUDIENCE) -> str:
        return self.mint.token(
            sub=client_id, scopes=scopes, audience=audience, extra={"client_id": client_id}
        )

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def holder(self, sub: str) -> dict[str, str]:
        return self.bearer(self.user(sub, "elicense:read"))

    def issuer(self) -> dict[str, str]:
        return self.bearer(self.client("market-regulator", "elicense:issue", "elicense:admin"))

    def organisation(self, client_id: str = "hall-340000") -> dict[str, str]:
        return self.bearer(self.client(client_id, "elicense:share"))


@pytest.fixture
def mint() -> TokenMint:
    return TokenMint(issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def tokens(mint: TokenMint) -> Tokens:
    return Tokens(mint)


@pytest.fixture
def eseal_client(mint: TokenMint, tmp_path: Path) -> Iterator[TestClient]:
    settings = eseal.EsealSettings(
        database_url=f"sqlite:///{tmp_path / 'eseal.sqlite3'}",
        auth={"issuer": ISSUER, "audience": ESEAL_AUDIENCE, "jwks": mint.jwks()},
    )
    app = eseal.build(settings, kek=KeyEncryptionKey.generate())
    migrate(app)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def issuer_seal(eseal_client: TestClient, tokens: Tokens) -> dict[str, Any]:
    admin = tokens.bearer(tokens.client("seal-admin", "eseal:admin", audience=ESEAL_AUDIENCE))
    body = seal_body(
        credit_code=ISSUER_CODE,
        organisation="合肥市市场监督管理局",
        category="business",
        name="合肥市市场监督管理局电子证照专用章",
        signers=[{"subject": PLATFORM_CLIENT, "name": "电子证照库"}],
    )
    response = eseal_client.post("/seals", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def test_issuer_seal(eseal_client: TestClient, tokens: Tokens) -> dict[str, Any]:
    admin = tokens.bearer(tokens.client("seal-admin", "eseal:admin", audience=ESEAL_AUDIENCE))
    body = seal_body(
        credit_code=TEST_ISSUER_CODE,
        organisation="互联互通认证测试颁证机构",
        category="business",
        name="互联互通认证测试专用章",
        signers=[
            {"subject": PLATFORM_CLIENT, "name": "电子证照库"},
            {"subject": TEST_SIGNER, "name": "认证测试签章客户端"},
        ],
    )
    response = eseal_client.post("/seals", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def make_app(
    mint: TokenMint, tokens: Tokens, eseal_client: TestClient, issuer_seal: dict[str, Any],
    test_issuer_seal: dict[str, Any], tmp_path: Path,
) -> Callable[..., FastAPI]:  # fmt: skip
    def factory(database_url: str | None = None, **overrides: Any) -> FastAPI:
        settings = ElicenseSettings(
            database_url=database_url or f"sqlite:///{tmp_path / 'elicense.sqlite3'}",
            public_base_url="https://elicense.test",
            auth={"issuer": ISSUER, "audience": AUDIENCE, "jwks": mint.jwks()},
            issuers={
                ISSUER_CODE: {"name": "合肥市市场监督管理局", "es_id": issuer_seal["es_id"]},
                TEST_ISSUER_CODE: {
                    "name": "互联互通认证测试颁证机构",
                    "es_id": test_issuer_seal["es_id"],
                },
            },
            **overrides,
        )
        seals = SealClient(
            SealServiceConfig(base_url="http://testserver"),
            http=eseal_client,
            token=lambda: tokens.client(PLATFORM_CLIENT, "eseal:sign", audience=ESEAL_AUDIENCE),
        )
        app = build(settings, seal_client=seals)
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


BUSINESS_LICENCE_SCHEMA = {
    "type": "object",
    "required": ["registered_capital"],
    "properties": {"registered_capital": {"type": "string"}, "scope": {"type": "string"}},
    "additionalProperties": False,
}


@pytest.fixture
def licence_type(client: TestClient, tokens: Tokens) -> dict[str, Any]:
    response = client.post(
        "/types",
        json={
            "type_code": TYPE_CODE,
            "name": "个体工商户营业执照",
            "defining_authority_name": "国家市场监督管理总局",
            "data_schema": BUSINESS_LICENCE_SCHEMA,
        },
        headers=tokens.issuer(),
    )
    assert response.status_code == 201, response.text
    return response.json()


def issue_body(holder_sub: str = "holder-a", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type_code": TYPE_CODE,
        "issuer_code": ISSUER_CODE,
        "licence_number": "92340104MA2N0000X1",
        "jurisdiction": "340104",
        "valid_from": str(date(2024, 1, 1)),
        "valid_until": None,
        "holder": {"name": "张三", "code": HOLDER_A_ID, "code_type": "111", "sub": holder_sub},
        "related_item": "11370800MB285591843370117002011",
        "data": {"registered_capital": "10万元", "scope": "餐饮服务"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def issue(client: TestClient, tokens: Tokens, licence_type: dict[str, Any]) -> Callable[..., dict]:
    def issue_one(holder_sub: str = "holder-a", **overrides: Any) -> dict[str, Any]:
        response = client.post(
            "/licences", json=issue_body(holder_sub, **overrides), headers=tokens.issuer()
        )
        assert response.status_code == 201, response.text
        return response.json()

    return issue_one


# --- both services served for real (uvicorn on free ports) ---------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(app: FastAPI, port: int | None = None) -> tuple[str, uvicorn.Server]:
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return base, server
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the service did not start")


@dataclass(frozen=True)
class Served:
    """The e-seal and e-licence services on localhost, as a province runs them: the issuer's
    licence seal signs only for the e-licence service; the certification test issuer's seal
    also for ``TEST_SIGNER``. holder-a and holder-b hold a licence each, holder-a one more
    under the test issuer."""

    mint: TokenMint
    eseal_url: str
    elicense_url: str
    test_issuer_es_id: str

    def token(self, sub: str, audience: str, *scopes: str) -> str:
        return self.mint.token(sub=sub, scopes=scopes, audience=audience, expires_in=600)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    mint = TokenMint(audience="eseal")
    auth = {"issuer": mint.issuer, "jwks": mint.jwks()}
    seal_app = eseal.build(
        eseal.EsealSettings(
            database_url=f"sqlite:///{tmp_path / 'eseal.db'}",
            auth={**auth, "audience": "eseal"},
            licence_client=PLATFORM_CLIENT,
        ),
        kek=KeyEncryptionKey.generate(),
    )
    migrate(seal_app)
    eseal_url, eseal_server = serve(seal_app)
    admin = {"Authorization": "Bearer " + mint.token(sub="admin", scopes=["eseal:admin"])}
    seals = {}
    for code, category, signers in (
        (ISSUER_CODE, "licence", [PLATFORM_CLIENT]),
        (TEST_ISSUER_CODE, "business", [PLATFORM_CLIENT, TEST_SIGNER]),
    ):
        body = seal_body(
            credit_code=code, category=category,
            signers=[{"subject": subject, "name": subject} for subject in signers],
        )  # fmt: skip
        response = httpx.post(f"{eseal_url}/seals", json=body, headers=admin)
        assert response.status_code == 201, response.text
        seals[code] = response.json()["es_id"]
    sealing = SealClient(
        SealServiceConfig(base_url=eseal_url),
        token=lambda: mint.token(sub=PLATFORM_CLIENT, scopes=["eseal:sign"]),
    )
    # The licence faces' 2-D codes name the service's public address: the one it is served at.
    licence_port = free_port()
    licence_app = build(
        ElicenseSettings(
            database_url=f"sqlite:///{tmp_path / 'elicense.db'}",
            public_base_url=f"http://127.0.0.1:{licence_port}",
            auth={**auth, "audience": "elicense"},
            issuers={
                ISSUER_CODE: {"name": "合肥市市场监督管理局", "es_id": seals[ISSUER_CODE]},
                TEST_ISSUER_CODE: {
                    "name": "互联互通认证测试颁证机构",
                    "es_id": seals[TEST_ISSUER_CODE],
                },
            },
        ),
        seal_client=sealing,
    )
    migrate(licence_app)
    elicense_url, elicense_server = serve(licence_app, licence_port)
    issuer = {
        "Authorization": "Bearer "
        + mint.token(sub="regulator", scopes=["elicense:issue", "elicense:admin"],
                     audience="elicense")
    }  # fmt: skip
    httpx.post(
        f"{elicense_url}/types",
        json={"type_code": TYPE_CODE, "name": "营业执照", "defining_authority_name": "总局"},
        headers=issuer,
    ).raise_for_status()
    for sub, overrides in (
        ("holder-a", {}),
        ("holder-b", {}),
        ("holder-a", {"issuer_code": TEST_ISSUER_CODE}),
    ):
        response = httpx.post(
            f"{elicense_url}/licences", json=issue_body(sub, data={}, **overrides), headers=issuer
        )
        response.raise_for_status()
    try:
        yield Served(mint, eseal_url, elicense_url, seals[TEST_ISSUER_CODE])
    finally:
        eseal_server.should_exit = elicense_server.should_exit = True
