"""Seal registry: making seals, who may, what is refused, status changes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zwfw.crypto import ses
from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.crypto.sm2 import SM2PrivateKey
from zwfw.crypto.x509 import CertProfile, SM2Certificate, verify_chain
from zwfw.services.eseal.authority import Keys, SealAuthority, ensure_authority
from zwfw.services.eseal.models import Authority, KeyBlob
from zwfw.services.kit import audit, kit_state

from .conftest import CREDIT_CODE, Tokens, seal_body


def test_made_seal_is_a_gbt38540_seal_listing_its_signers(
    client: TestClient, seal: dict[str, Any]
) -> None:
    assert seal["credit_code"] == CREDIT_CODE
    assert seal["category_name"] == "法定名称章"
    assert seal["status"]["status"] == "valid"
    assert seal["status"]["within_validity"] is True
    parsed = ses.parse_seal(base64.b64decode(seal["seal"]))
    info = parsed["e_seal_info"]
    assert info["header"]["id"].native == "ES"
    assert info["es_id"].native == seal["es_id"]
    assert info["property"]["name"].native == "合肥市数据资源局"
    assert info["picture"]["type"].native == "PNG"
    assert info["picture"]["width"].native == 42
    root = SM2Certificate.from_pem(client.get("/trust").json()["root_certificate"].encode())
    maker = SM2Certificate.from_der(parsed["cert"].native)
    verify_chain(maker, [root])
    [signer] = seal["signers"]
    assert signer["subject"] == "officer-1"
    signer_cert = SM2Certificate.from_pem(signer["certificate"].encode())
    verify_chain(signer_cert, [root])
    assert ses.seal_lists_certificate(parsed, signer_cert.der)


def test_registry_lists_and_gets_seals_by_organisation(
    client: TestClient, tokens: Tokens, seal: dict[str, Any]
) -> None:
    other = client.post(
        "/seals",
        json=seal_body(credit_code="12441500196720244T", category="finance", name="财务专用章"),
        headers=tokens.admin(),
    )
    assert other.status_code == 201
    listed = client.get("/seals", params={"credit_code": CREDIT_CODE}, headers=tokens.admin())
    assert [s["es_id"] for s in listed.json()] == [seal["es_id"]]
    assert len(client.get("/seals", headers=tokens.admin()).json()) == 2
    got = client.get(f"/seals/{seal['es_id']}", headers=tokens.admin())
    assert got.json()["es_id"] == seal["es_id"]
    missing = client.get("/seals/340000NOPE", headers=tokens.admin())
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"credit_code": "11340100MB0000000Y"}, "credit_code", "check character"),
        ({"category": "toy"}, "category", ""),
        ({"signers": []}, "signers", ""),
    ],
)
def test_invalid_seal_requests_are_refused_with_problem_details(
    client: TestClient, tokens: Tokens, change: dict[str, Any], field: str, fragment: str
) -> None:
    response = client.post("/seals", json=seal_body(**change), headers=tokens.admin())
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422
    assert any(e["field"].endswith(field) for e in body["errors"])
    assert fragment in response.text


def test_picture_must_be_png_and_window_sensible(client: TestClient, tokens: Tokens) -> None:
    not_png = seal_body(picture={"png": base64.b64encode(b"GIF89a" * 10).decode()})
    response = client.post("/seals", json=not_png, headers=tokens.admin())
    assert response.status_code == 400
    assert "PNG" in response.json()["detail"]
    bad_b64 = client.post("/seals", json=seal_body(picture={"png": "***"}), headers=tokens.admin())
    assert bad_b64.status_code == 400
    backwards = seal_body(valid_end="2000-01-01T00:00:00+08:00")
    assert client.post("/seals", json=backwards, headers=tokens.admin()).status_code == 400
    twice = seal_body(signers=[{"subject": "a", "name": "甲"}, {"subject": "a", "name": "乙"}])
    assert client.post("/seals", json=twice, headers=tokens.admin()).status_code == 400
    assert client.get("/seals", headers=tokens.admin()).json() == []


def test_making_seals_needs_the_admin_scope(client: TestClient, tokens: Tokens) -> None:
    assert client.post("/seals", json=seal_body()).status_code == 401
    response = client.post(
        "/seals", json=seal_body(), headers=tokens.client("elicense", "eseal:sign")
    )
    assert response.status_code == 403
    assert response.json()["required_scopes"] == ["eseal:admin"]


def test_status_changes_follow_the_life_cycle_and_are_public(
    client: TestClient, tokens: Tokens, seal: dict[str, Any]
) -> None:
    es_id = seal["es_id"]
    suspended = client.post(
        f"/seals/{es_id}/suspend", json={"reason": "公章遗失待查"}, headers=tokens.admin()
    )
    assert suspended.json()["status"] == "suspended"
    public = client.get(f"/seals/{es_id}/status").json()
    assert public["status"] == "suspended"
    assert public["reason"] == "公章遗失待查"
    assert public["changed_at"] is not None
    resumed = client.post(f"/seals/{es_id}/resume", json={"reason": "找回"}, headers=tokens.admin())
    assert resumed.json()["status"] == "valid"
    revoked = client.post(
        f"/seals/{es_id}/revoke", json={"reason": "机构撤销"}, headers=tokens.admin()
    )
    assert revoked.json()["status"] == "revoked"
    again = client.post(f"/seals/{es_id}/resume", json={"reason": "x"}, headers=tokens.admin())
    assert again.status_code == 409
    assert "revoked" in again.json()["detail"]
    no_reason = client.post(f"/seals/{es_id}/suspend", json={}, headers=tokens.admin())
    assert no_reason.status_code == 422
    assert client.get("/seals/unknown/status").status_code == 404


def test_keys_are_stored_wrapped_and_the_authority_survives_restarts(
    app: FastAPI, make_app: Callable[..., FastAPI], seal: dict[str, Any]
) -> None:
    state = kit_state(app)
    with state.sessions() as session:
        blobs = session.scalars(select(KeyBlob)).all()
        records = [r.action for r in session.execute(select(audit.audit_log)).all()]
    assert {b.key_id for b in blobs} >= {"authority-root", "authority-maker"}
    assert all(bytes(b.blob).startswith(b"ZKS1") for b in blobs)
    root_key = app.state.eseal.keys.get(state.sessions(), "authority-root")
    assert all(root_key.private_scalar() not in bytes(b.blob) for b in blobs)
    assert "seal.make" in records
    first_root = app.state.eseal.authority.root
    with TestClient(make_app()) as again:
        assert again.get("/trust").json()["root_certificate"] == first_root.to_pem().decode()
    assert first_root.is_ca
    assert CertProfile.SIGNER.value == "signer"


def test_registry_works_on_sqlite_and_postgresql(
    make_app: Callable[..., FastAPI], database_url: str, tokens: Tokens
) -> None:
    with TestClient(make_app(database_url)) as client:
        made = client.post("/seals", json=seal_body(), headers=tokens.admin())
        assert made.status_code == 201, made.text
        es_id = made.json()["es_id"]
        signed = client.post(
            f"/seals/{es_id}/sign",
            json={"content": base64.b64encode(b"doc").decode()},
            headers=tokens.user("officer-1", "eseal:sign"),
        )
        assert signed.status_code == 200, signed.text
        verdict = client.post(
            "/verify",
            json={
                "signature": signed.json()["signature"],
                "content": base64.b64encode(b"doc").decode(),
            },
        )
        assert verdict.json()["valid"] is True


def test_workers_starting_together_on_an_empty_database_share_one_authority(
    make_app: Callable[..., FastAPI], kek: KeyEncryptionKey
) -> None:
    """Two workers' first starts: the other worker commits its authority between this one's
    check and its own write, so this one meets the other's keys and must take its authority."""
    app = make_app()
    sessions = kit_state(app).sessions
    settings = app.state.eseal.settings
    winner: list[SealAuthority] = []

    class RacedKeys(Keys):
        def put(self, session: Session, key_id: str, key: SM2PrivateKey) -> None:
            if not winner:
                winner.append(ensure_authority(sessions, Keys(kek), settings))
            super().put(session, key_id, key)

    loser = ensure_authority(sessions, RacedKeys(kek), settings)
    assert winner, "the competing start did not run"
    assert loser.root.der == winner[0].root.der
    assert loser.maker.der == winner[0].maker.der
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Authority)) == 1
