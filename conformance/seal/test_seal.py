"""E-seal interconnection checks (IC-SEAL-*), against the target's e-seal service.

Credentials (profile `credentials`, each from an environment variable):
`eseal_admin_token` (scope eseal:admin), `eseal_signer_token` (scope eseal:sign) and
`eseal_signer_subject` (that token's `sub`). Each test makes its own throw-away seal.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from zwfw.crypto import ses
from zwfw.crypto.x509 import SM2Certificate

# A 1x1 PNG: the registry only needs a well-formed image.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def made_seal(eseal_client: httpx.Client, credential: Callable[[str], str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    response = eseal_client.post(
        "seals",
        headers=bearer(credential("eseal_admin_token")),
        json={
            "credit_code": "11340100MB0000000T",
            "organisation": "zwfw conformance",
            "category": "business",
            "name": "互联互通测试专用章",
            "picture": {"png": base64.b64encode(PNG).decode()},
            "valid_end": (now + timedelta(days=2)).isoformat(),
            "signers": [{"subject": credential("eseal_signer_subject"), "name": "测试签章人"}],
        },
    )
    assert response.status_code == 201, f"making a seal failed: {response.text[:300]}"
    return response.json()


def signed(client: httpx.Client, credential: Callable[[str], str], es_id: str, content: bytes):
    return client.post(
        f"seals/{es_id}/sign",
        headers=bearer(credential("eseal_signer_token")),
        json={"content": base64.b64encode(content).decode(), "property_info": "conformance"},
    )


def verify(client: httpx.Client, signature: bytes | str, content: bytes) -> dict[str, Any]:
    sig = signature if isinstance(signature, str) else base64.b64encode(signature).decode()
    response = client.post(
        "verify", json={"signature": sig, "content": base64.b64encode(content).decode()}
    )
    assert response.status_code == 200, response.text[:300]
    return response.json()


def step_statuses(result: dict[str, Any]) -> list[str]:
    return [step["status"] for step in result["steps"]]


@pytest.mark.requirement("IC-SEAL-001")
def test_signature_is_gbt38540_der_and_verifies(
    eseal_client: httpx.Client, credential: Callable[[str], str], made_seal: dict[str, Any]
) -> None:
    content = os.urandom(64)
    response = signed(eseal_client, credential, made_seal["es_id"], content)
    assert response.status_code == 200, response.text[:300]
    der = base64.b64decode(response.json()["signature"])
    parsed = ses.parse_signature(der)
    assert parsed["to_sign"]["version"].native == 4
    root = SM2Certificate.from_pem(eseal_client.get("trust").json()["root_certificate"].encode())
    local = ses.verify_signature(der, content, trust_anchors=[root])
    assert local.valid, [s.reason for s in local.steps]
    remote = verify(eseal_client, der, content)
    assert [s["step"] for s in remote["steps"]] == [1, 2, 3, 4, 5]
    assert step_statuses(remote) == ["passed"] * 5
    assert remote["seal_status"]["status"] == "valid"


@pytest.mark.requirement(
    "IC-SEAL-002",
    catches=("content-unchecked", "signature-unchecked", "wrong-step", "no-reason"),
)
def test_tampering_fails_the_right_step(
    eseal_client: httpx.Client, credential: Callable[[str], str], made_seal: dict[str, Any]
) -> None:
    content = os.urandom(64)
    der = base64.b64decode(
        signed(eseal_client, credential, made_seal["es_id"], content).json()["signature"]
    )
    altered_content = verify(eseal_client, der, content + b"x")
    assert step_statuses(altered_content) == ["passed"] * 4 + ["failed"]
    assert altered_content["steps"][4]["reason"]
    broken = bytearray(der)
    broken[-1] ^= 0x01
    altered_signature = verify(eseal_client, bytes(broken), content)
    assert altered_signature["valid"] is False
    assert altered_signature["steps"][0]["status"] == "failed"


@pytest.mark.requirement(
    "IC-SEAL-003", catches=("status-not-public", "still-verifies", "still-signs")
)
def test_revoked_seal_fails_step_3_and_cannot_sign(
    eseal_client: httpx.Client, credential: Callable[[str], str], made_seal: dict[str, Any]
) -> None:
    es_id = made_seal["es_id"]
    content = os.urandom(64)
    signature = signed(eseal_client, credential, es_id, content).json()["signature"]
    revoked = eseal_client.post(
        f"seals/{es_id}/revoke",
        headers=bearer(credential("eseal_admin_token")),
        json={"reason": "互联互通测试结束"},
    )
    assert revoked.status_code == 200, revoked.text[:300]
    status = eseal_client.get(f"seals/{es_id}/status").json()
    assert status["status"] == "revoked"
    assert status["reason"] == "互联互通测试结束"
    result = verify(eseal_client, signature, content)
    assert result["steps"][2]["status"] == "failed"
    assert "revoked" in result["steps"][2]["reason"]
    assert signed(eseal_client, credential, es_id, content).status_code in (403, 409)
