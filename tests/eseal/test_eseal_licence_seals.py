"""Licence seals (电子证照专用章): the e-licence service is their one and only signer."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from .conftest import Tokens, seal_body

LICENCE_CLIENT = "elicense-340000"


def licence_seal(*subjects: str) -> dict[str, object]:
    return seal_body(
        category="licence",
        name="合肥市市场监督管理局电子证照专用章",
        signers=[{"subject": s, "name": f"签章人 {s}"} for s in subjects],
    )


def sign(client: TestClient, tokens: Tokens, es_id: str, subject: str):
    return client.post(
        f"/seals/{es_id}/sign",
        json={"content": base64.b64encode(os.urandom(32)).decode(), "property_info": "licence:x"},
        headers=tokens.client(subject, "eseal:sign"),
    )


def test_licence_seals_need_the_configured_elicense_client(
    client: TestClient, tokens: Tokens
) -> None:
    response = client.post("/seals", json=licence_seal(LICENCE_CLIENT), headers=tokens.admin())
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "licence_client" in response.json()["detail"]


def test_a_licence_seal_has_exactly_the_elicense_client_as_signer(
    make_app: Callable[..., FastAPI], tokens: Tokens
) -> None:
    with TestClient(make_app(licence_client=LICENCE_CLIENT)) as client:
        for subjects in (
            (LICENCE_CLIENT, "signer-340000"),
            ("signer-340000",),
            ("signer-340000", LICENCE_CLIENT),
        ):
            refused = client.post("/seals", json=licence_seal(*subjects), headers=tokens.admin())
            assert refused.status_code == 400, subjects
            detail = refused.json()["detail"]
            assert f"exactly one signer, the e-licence service's client {LICENCE_CLIENT}" in detail
        assert client.get("/seals", headers=tokens.admin()).json() == []
        made = client.post("/seals", json=licence_seal(LICENCE_CLIENT), headers=tokens.admin())
        assert made.status_code == 201, made.text
        seal = made.json()
        assert seal["category"] == "licence"
        assert seal["category_name"] == "电子证照专用章"
        assert [s["subject"] for s in seal["signers"]] == [LICENCE_CLIENT]
        assert sign(client, tokens, seal["es_id"], LICENCE_CLIENT).status_code == 200
        assert sign(client, tokens, seal["es_id"], "signer-340000").status_code == 403
        # Other categories keep any signer list.
        business = client.post(
            "/seals",
            json=seal_body(
                category="business",
                signers=[
                    {"subject": LICENCE_CLIENT, "name": "电子证照库"},
                    {"subject": "signer-340000", "name": "签章测试客户端"},
                ],
            ),
            headers=tokens.admin(),
        )
        assert business.status_code == 201, business.text
        assert sign(client, tokens, business.json()["es_id"], "signer-340000").status_code == 200


def test_a_licence_seal_stops_signing_for_a_client_that_is_no_longer_configured(
    make_app: Callable[..., FastAPI], tokens: Tokens
) -> None:
    with TestClient(make_app(licence_client=LICENCE_CLIENT)) as client:
        made = client.post("/seals", json=licence_seal(LICENCE_CLIENT), headers=tokens.admin())
        assert made.status_code == 201, made.text
    es_id = made.json()["es_id"]
    with TestClient(make_app(licence_client="elicense-340000-v2")) as moved:
        refused = sign(moved, tokens, es_id, LICENCE_CLIENT)
        assert refused.status_code == 403
        assert "only the e-licence service signs" in refused.json()["detail"]
