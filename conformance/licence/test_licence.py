"""E-licence interconnection checks (IC-LIC-*), against the target's e-licence service.

Credentials (profile `credentials`, each from an environment variable):
`elicense_holder_token` (a test holder holding at least one valid licence; scopes
elicense:read elicense:consent), `elicense_other_holder_token` (another holder with at least
one licence; scope elicense:read), `elicense_share_token` (an organisation; elicense:share).
The seal checks also use the e-seal service's published root when the profile lists it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from zwfw.codes import parse_licence_id
from zwfw.crypto import ses
from zwfw.services.elicense.document import verify_document

CAUSE = "互联互通测试：免提交证照"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def first_licence(client: httpx.Client, token: str) -> dict[str, Any]:
    listed = client.get("me/licences", headers=bearer(token))
    assert listed.status_code == 200, listed.text[:300]
    valid = [entry for entry in listed.json() if entry["status"]["code"] == "01"]
    assert valid, "the test holder holds no valid licence"
    response = client.get(f"me/licences/{valid[0]['identifier']}", headers=bearer(token))
    assert response.status_code == 200, response.text[:300]
    return response.json()


@pytest.fixture
def licence(elicense_client: httpx.Client, credential: Callable[[str], str]) -> dict[str, Any]:
    return first_licence(elicense_client, credential("elicense_holder_token"))


def make_copy(
    client: httpx.Client, credential: Callable[[str], str], identifier: str, days: float
) -> httpx.Response:
    return client.post(
        f"licences/{identifier}/copies",
        headers=bearer(credential("elicense_share_token")),
        json={
            "cause": CAUSE,
            "expires_at": (datetime.now(UTC) + timedelta(days=days)).isoformat(),
            "holder_token": credential("elicense_holder_token"),
        },
    )


@pytest.mark.requirement("IC-LIC-001")
def test_identifier_is_valid_and_matches_the_sealed_metadata(licence: dict[str, Any]) -> None:
    identifier = parse_licence_id(licence["identifier"])
    document = json.loads(base64.b64decode(licence["document"]))
    assert document["identifier"] == str(identifier)
    assert document["issuer_code"] == identifier.issuer_code
    assert document["type_code"] == identifier.type_code
    assert document["defining_authority_code"] == identifier.type_code[:18]


@pytest.mark.requirement("IC-LIC-002")
def test_licence_seal_verifies_with_status_and_tampering_fails(
    elicense_client: httpx.Client, licence: dict[str, Any]
) -> None:
    der = base64.b64decode(licence["signature"])
    assert ses.parse_signature(der)["to_sign"]["version"].native == 4
    result = elicense_client.post(
        "verify", json={"document": licence["document"], "signature": licence["signature"]}
    ).json()
    assert result["valid"] is True, result["checks"]
    assert [s["status"] for s in result["seal"]["steps"]] == ["passed"] * 5
    assert result["status"]["code"] == "01"
    document = base64.b64decode(licence["document"])
    tampered = document.replace(b'"licence_number":"', b'"licence_number":"X', 1)
    forged = elicense_client.post(
        "verify",
        json={"document": base64.b64encode(tampered).decode(), "signature": licence["signature"]},
    ).json()
    assert forged["valid"] is False


@pytest.mark.requirement("IC-LIC-003", catches=("detail-leak", "list-leak", "existence-oracle"))
def test_holder_cannot_read_another_holders_licence(
    elicense_client: httpx.Client, credential: Callable[[str], str], licence: dict[str, Any]
) -> None:
    other = bearer(credential("elicense_other_holder_token"))
    theirs = elicense_client.get(f"me/licences/{licence['identifier']}", headers=other)
    assert theirs.status_code == 404, "another holder's licence must answer 404"
    listed = elicense_client.get("me/licences", headers=other).json()
    assert licence["identifier"] not in [entry["identifier"] for entry in listed]
    serial = licence["identifier"].split(".")
    nowhere = elicense_client.get(f"me/licences/{'.'.join(serial[:-2])}.999.0", headers=other)
    assert nowhere.status_code == theirs.status_code


@pytest.mark.requirement("IC-LIC-004")
def test_annotated_copy_carries_cause_and_expiry(
    elicense_client: httpx.Client,
    credential: Callable[[str], str],
    licence: dict[str, Any],
    target,
) -> None:
    response = make_copy(elicense_client, credential, licence["identifier"], days=1)
    assert response.status_code == 201, response.text[:300]
    copy = response.json()
    document = json.loads(base64.b64decode(copy["document"]))
    assert document["annotation"]["cause"] == CAUSE
    expires = datetime.fromisoformat(document["annotation"]["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1, minutes=1)
    result = elicense_client.post(
        "verify", json={"document": copy["document"], "signature": copy["signature"]}
    ).json()
    assert result["valid"] is True, result["checks"]
    assert result["cause"] == CAUSE
    too_long = make_copy(elicense_client, credential, licence["identifier"], days=3660)
    assert too_long.status_code == 400
    if target.base_url("eseal") is not None:
        from zwfw.crypto.x509 import SM2Certificate
        from zwfw.harness.http import service_client

        with service_client(target, "eseal") as eseal:
            pem = eseal.get("trust").json()["root_certificate"].encode()
        later = verify_document(
            base64.b64decode(copy["document"]),
            base64.b64decode(copy["signature"]),
            trust_anchors=[SM2Certificate.from_pem(pem)],
            now=expires + timedelta(seconds=1),
        )
        assert later.check("copy_expiry").status == "failed"


@pytest.mark.requirement("IC-LIC-005")
def test_copies_appear_in_the_holders_usage_records(
    elicense_client: httpx.Client, credential: Callable[[str], str], licence: dict[str, Any]
) -> None:
    copy = make_copy(elicense_client, credential, licence["identifier"], days=1).json()
    usage = elicense_client.get(
        f"me/licences/{licence['identifier']}/usage",
        headers=bearer(credential("elicense_holder_token")),
    )
    assert usage.status_code == 200, usage.text[:300]
    records = [r for r in usage.json() if r.get("copy_id") == copy["copy_id"]]
    assert len(records) == 1, "the annotated copy is not in the usage records"
    assert records[0]["cause"] == CAUSE
    assert records[0]["actor_kind"] == "organisation"
    assert records[0]["at"]
