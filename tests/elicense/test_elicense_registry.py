"""The registry keeps what it issued: a document re-sealed under an existing identifier (or
copy id) fails verification at the registry, whoever could seal it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from zwfw.codes import build_licence_id
from zwfw.crypto.hashing import sm3
from zwfw.services.elicense.document import canonical, copy_property, licence_property

from .conftest import ESEAL_AUDIENCE, TEST_ISSUER_CODE, TEST_SIGNER, TYPE_CODE, Tokens
from .test_elicense_access import copy_request, failed, verify

NOT_AS_ISSUED = "the document differs from the one issued under this identifier"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def resealed(
    eseal_client: TestClient, tokens: Tokens, es_id: str, data: bytes, property_info: str
) -> str:
    """``data`` sealed with the test issuer's seal by its test signing client."""
    token = tokens.client(TEST_SIGNER, "eseal:sign", audience=ESEAL_AUDIENCE)
    response = eseal_client.post(
        f"/seals/{es_id}/sign",
        json={"digest": sm3(data).hex(), "property_info": property_info},
        headers=tokens.bearer(token),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["signature"])


def altered(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(document)), **changes}


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in result["checks"]}


def reason(result: dict[str, Any], name: str) -> str:
    return next(c["reason"] for c in result["checks"] if c["name"] == name)


FORGERIES: dict[str, dict[str, Any]] = {
    "other holder": {"holder_name": "李四"},
    "other validity": {"valid_until": "20991231"},
    "other data": {"data": {"registered_capital": "1000万元", "scope": "餐饮服务"}},
}


def test_a_resealed_licence_under_an_issued_identifier_fails_at_the_registry(
    client: TestClient, eseal_client: TestClient, tokens: Tokens, issue,
    test_issuer_seal: dict[str, Any],
) -> None:  # fmt: skip
    licence = issue(issuer_code=TEST_ISSUER_CODE)
    genuine = verify(client, licence["document"], licence["signature"])
    assert genuine["valid"] is True, genuine["checks"]
    assert statuses(genuine)["registry"] == "passed"
    es_id, identifier = test_issuer_seal["es_id"], licence["identifier"]
    for what, changes in FORGERIES.items():
        data = canonical(altered(licence["metadata"], **changes))
        signature = resealed(eseal_client, tokens, es_id, data, licence_property(identifier))
        result = verify(client, b64(data), signature)
        assert result["valid"] is False, what
        assert failed(result) == {"registry": "not_as_issued"}, what
        assert reason(result, "registry") == NOT_AS_ISSUED
        # Everything else checks out: only the registry tells the forgery apart.
        assert statuses(result)["seal"] == statuses(result)["issuer_seal"] == "passed"
        assert statuses(result)["status"] == "passed"


def test_a_sealed_licence_under_an_identifier_never_issued_fails_at_the_registry(
    client: TestClient, eseal_client: TestClient, tokens: Tokens, issue,
    test_issuer_seal: dict[str, Any],
) -> None:  # fmt: skip
    licence = issue(issuer_code=TEST_ISSUER_CODE, serial="4000000001")
    identifier = str(build_licence_id(TYPE_CODE, TEST_ISSUER_CODE, "4000000002", 1))
    data = canonical(altered(licence["metadata"], identifier=identifier))
    signature = resealed(
        eseal_client, tokens, test_issuer_seal["es_id"], data, licence_property(identifier)
    )
    result = verify(client, b64(data), signature)
    assert failed(result) == {"registry": "not_issued", "status": "unknown"}


def test_annotated_copies_must_carry_the_issued_licence_and_be_the_copy_made(
    client: TestClient, eseal_client: TestClient, tokens: Tokens, issue,
    test_issuer_seal: dict[str, Any],
) -> None:  # fmt: skip
    licence = issue(issuer_code=TEST_ISSUER_CODE)
    response = copy_request(tokens, client, licence["identifier"])
    assert response.status_code == 201, response.text
    copy = response.json()
    genuine = verify(client, copy["document"], copy["signature"])
    assert genuine["valid"] is True, genuine["checks"]
    assert statuses(genuine)["registry"] == statuses(genuine)["copy_registry"] == "passed"
    document = json.loads(base64.b64decode(copy["document"]))
    es_id, copy_id = test_issuer_seal["es_id"], copy["copy_id"]

    def check(forged: dict[str, Any], prop: str = copy_property(copy_id)) -> dict[str, Any]:
        data = canonical(forged)
        return verify(client, b64(data), resealed(eseal_client, tokens, es_id, data, prop))

    for what, changes in FORGERIES.items():
        result = check(altered(document, licence=altered(document["licence"], **changes)))
        assert result["valid"] is False, what
        assert failed(result) == {"registry": "not_as_issued", "copy_registry": "not_as_made"}
        assert reason(result, "registry") == (
            "the copy's licence differs from the one issued under this identifier"
        )
    later = (datetime.fromisoformat(copy["expires_at"]) + timedelta(days=20)).isoformat()
    for what, annotation in (
        ("other cause", {"cause": "任意用途"}),
        ("longer life", {"expires_at": later}),
    ):
        result = check(altered(document, annotation={**document["annotation"], **annotation}))
        assert failed(result) == {"copy_registry": "not_as_made"}, what
        assert reason(result, "copy_registry") == (
            "the copy differs from the one made under its id"
        )
    invented = {**document["annotation"], "copy_id": "f" * 32}
    result = check(altered(document, annotation=invented), copy_property("f" * 32))
    assert failed(result) == {"copy_registry": "not_made"}
    assert reason(result, "copy_registry") == "no annotated copy was made under this id"
    assert datetime.now(UTC) < datetime.fromisoformat(copy["expires_at"])
