"""E-licence interconnection checks (IC-LIC-*), against the target's e-licence service.

Credentials (profile `credentials`, each from an environment variable):
`elicense_holder_token` (a test holder holding at least one valid licence; scopes
elicense:read elicense:consent), `elicense_other_holder_token` (another holder with at least
one licence; scope elicense:read), `elicense_share_token` (an organisation; elicense:share).
The seal checks also use the e-seal service's published root when the profile lists it.

The registry checks (IC-LIC-006) need a certification test issuer: an issuing authority of
the province that exists for certification only, with its own seal (never a real issuer's),
on whose signer list the province puts, besides its e-licence service, a signing client whose
token it gives the harness. The test holder holds a valid licence of that issuer. Credentials:
`elicense_test_issuer_code` (the test issuer's credit code) and
`elicense_test_issuer_signer_token` (eseal:sign, on the test issuer's seal). With them the
harness seals documents the registry never issued, under identifiers it did issue.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import rfc8785

from zwfw.codes import parse_licence_id
from zwfw.crypto import ses
from zwfw.crypto.hashing import sm3
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


# --- IC-LIC-006: the registry accepts only what it issued ----------------------------------


@pytest.fixture
def test_issuer_licence(
    elicense_client: httpx.Client, credential: Callable[[str], str]
) -> dict[str, Any]:
    """The test holder's valid licence of the certification test issuer."""
    code = credential("elicense_test_issuer_code")
    token = credential("elicense_holder_token")
    listed = elicense_client.get("me/licences", headers=bearer(token))
    assert listed.status_code == 200, listed.text[:300]
    for entry in listed.json():
        # The issuer part of 1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>, read
        # without judging the check character (IC-LIC-001's business).
        parts = str(entry["identifier"]).split(".")
        ours = len(parts) == 10 and parts[6] == code
        if ours and entry["status"]["code"] == "01":
            response = elicense_client.get(
                f"me/licences/{entry['identifier']}", headers=bearer(token)
            )
            assert response.status_code == 200, response.text[:300]
            return response.json()
    pytest.fail(
        f"the test holder holds no valid licence of the certification test issuer {code}",
        pytrace=False,
    )


def resealed(
    eseal_client: httpx.Client, credential: Callable[[str], str], es_id: str,
    document: dict[str, Any], property_info: str,
) -> dict[str, str]:  # fmt: skip
    """``document`` in canonical form, sealed with the test issuer's seal."""
    data = rfc8785.dumps(document)
    response = eseal_client.post(
        f"seals/{es_id}/sign",
        headers=bearer(credential("elicense_test_issuer_signer_token")),
        json={"digest": sm3(data).hex(), "property_info": property_info},
    )
    assert response.status_code == 200, (
        f"the test issuer's signing credential cannot seal with {es_id}: {response.text[:300]}"
    )
    return {"document": base64.b64encode(data).decode(), "signature": response.json()["signature"]}


def verified(elicense_client: httpx.Client, sealed: dict[str, str]) -> dict[str, Any]:
    response = elicense_client.post("verify", json=sealed)
    assert response.status_code == 200, response.text[:300]
    return response.json()


def check_status(result: dict[str, Any], name: str) -> str | None:
    return next((c["status"] for c in result["checks"] if c["name"] == name), None)


def changed(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(document)), **changes}


def forgeries(licence: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issued licence with another holder, another validity, other data: one each."""
    later = datetime.now(UTC) + timedelta(days=3650)
    data = dict(licence.get("data") or {})
    data["zwfw_conformance"] = "altered"
    return {
        "another holder": changed(licence, holder_name=f"{licence['holder_name']}伪"),
        "another validity": changed(licence, valid_until=later.strftime("%Y%m%d")),
        "other data": changed(licence, data=data),
    }


def assert_only_the_registry_refuses(result: dict[str, Any], what: str, *checks: str) -> None:
    assert result["valid"] is False, f"{what}: a document the registry never issued verifies"
    assert check_status(result, "seal") == "passed", (
        f"{what}: the test issuer's seal did not verify, so the registry was not what refused "
        f"({result['checks']})"
    )
    for name in checks:
        assert check_status(result, name) == "failed", (
            f"{what}: the {name} check did not fail ({result['checks']})"
        )


@pytest.mark.requirement("IC-LIC-006", catches=("resealed-licence", "registry-digest"))
def test_a_licence_resealed_under_its_identifier_fails_at_the_registry(
    elicense_client: httpx.Client, eseal_client: httpx.Client,
    credential: Callable[[str], str], test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    licence, es_id = test_issuer_licence, test_issuer_licence["es_id"]
    genuine = {"document": licence["document"], "signature": licence["signature"]}
    before = verified(elicense_client, genuine)
    assert before["valid"] is True, before["checks"]
    assert check_status(before, "registry") == "passed", before["checks"]
    metadata = json.loads(base64.b64decode(licence["document"]))
    identifier = metadata["identifier"]
    for what, document in forgeries(metadata).items():
        sealed = resealed(eseal_client, credential, es_id, document, f"licence:{identifier}")
        assert_only_the_registry_refuses(verified(elicense_client, sealed), what, "registry")
    # The genuine licence still verifies, and its public record is the issued document.
    assert verified(elicense_client, genuine)["valid"] is True
    record = elicense_client.get(f"verify/{identifier}")
    assert record.status_code == 200, record.text[:300]
    published = record.json()
    assert published["valid"] is True, published["checks"]
    assert check_status(published, "registry") == "passed", published["checks"]
    assert published["licence"]["document_sm3"] == sm3(base64.b64decode(licence["document"])).hex()


@pytest.mark.requirement("IC-LIC-006", catches=("copy-of-another-licence", "copy-not-as-made"))
def test_an_annotated_copy_must_carry_the_issued_licence_and_be_the_copy_made(
    elicense_client: httpx.Client, eseal_client: httpx.Client,
    credential: Callable[[str], str], test_issuer_licence: dict[str, Any],
) -> None:  # fmt: skip
    es_id = test_issuer_licence["es_id"]
    response = make_copy(elicense_client, credential, test_issuer_licence["identifier"], days=1)
    assert response.status_code == 201, response.text[:300]
    copy = response.json()
    genuine = verified(
        elicense_client, {"document": copy["document"], "signature": copy["signature"]}
    )
    assert genuine["valid"] is True, genuine["checks"]
    assert check_status(genuine, "registry") == check_status(genuine, "copy_registry") == "passed"
    document = json.loads(base64.b64decode(copy["document"]))
    prop = f"copy:{document['annotation']['copy_id']}"
    for what, licence in forgeries(document["licence"]).items():
        sealed = resealed(eseal_client, credential, es_id, changed(document, licence=licence), prop)
        result = verified(elicense_client, sealed)
        assert_only_the_registry_refuses(result, f"a copy of {what}", "registry", "copy_registry")
    expires = datetime.fromisoformat(document["annotation"]["expires_at"])
    for what, annotation in (
        ("another cause", {"cause": "任意用途"}),
        ("a longer life", {"expires_at": (expires + timedelta(days=365)).isoformat()}),
    ):
        forged = changed(document, annotation={**document["annotation"], **annotation})
        result = verified(elicense_client, resealed(eseal_client, credential, es_id, forged, prop))
        assert_only_the_registry_refuses(result, f"a copy with {what}", "copy_registry")
        assert check_status(result, "registry") == "passed", result["checks"]
