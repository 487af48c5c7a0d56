"""Licence types and issuance: identifiers, GB/T 36903 metadata, the issuer's seal."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from zwfw.codes import parse_licence_id
from zwfw.crypto import ses
from zwfw.crypto.hashing import sm3
from zwfw.crypto.x509 import SM2Certificate
from zwfw.services.elicense.document import canonical, parse_document

from .conftest import DEFINING, HOLDER_A_ID, ISSUER_CODE, TYPE_CODE, Tokens, issue_body


def test_issued_licence_has_a_valid_identifier_and_is_sealed_by_the_issuer(
    client: TestClient, eseal_client: TestClient, issue, issuer_seal: dict[str, Any]
) -> None:
    licence = issue()
    identifier = parse_licence_id(licence["identifier"])
    assert identifier.type_code == TYPE_CODE
    assert identifier.issuer_code == ISSUER_CODE
    assert identifier.version == "001"
    document = base64.b64decode(licence["document"])
    assert canonical(parse_document(document)) == document
    meta = licence["metadata"]
    assert meta["defining_authority_code"] == DEFINING
    assert meta["issuer_name"] == "合肥市市场监督管理局"
    assert meta["type_name"] == "个体工商户营业执照"
    assert meta["holder_code"] == "340***********1234"
    assert HOLDER_A_ID not in document.decode()
    assert meta["issue_date"].isdigit()
    assert len(meta["issue_date"]) == 8
    assert licence["status"] == {"code": "01", "name": "valid", "reason": None, "changed_at": None}
    signature = base64.b64decode(licence["signature"])
    root = SM2Certificate.from_pem(eseal_client.get("/trust").json()["root_certificate"].encode())
    result = ses.verify_signature(signature, document, trust_anchors=[root])
    assert result.valid, [s.reason for s in result.steps]
    assert result.es_id == issuer_seal["es_id"]
    assert result.property_info == f"licence:{licence['identifier']}"
    parsed = ses.parse_signature(signature)
    assert bytes(parsed["to_sign"]["data_hash"].native) == sm3(document)


def test_issuance_refusals_explain_themselves(
    client: TestClient, tokens: Tokens, licence_type: dict[str, Any]
) -> None:
    cases = [
        (issue_body(issuer_code="12441500196720244T"), 400, "not an issuing authority"),
        (issue_body(type_code="11100000000013338W002"), 400, "not registered"),
        (issue_body(data={"scope": "x"}), 422, "registered_capital"),
        (issue_body(jurisdiction="34010"), 422, "jurisdiction"),
        (issue_body(related_item="1137080"), 422, "related_item"),
        (issue_body(valid_from="2024-02-01", valid_until="2024-01-01"), 400, "before"),
    ]
    for body, status, fragment in cases:
        response = client.post("/licences", json=body, headers=tokens.issuer())
        assert response.status_code == status, (fragment, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert fragment in response.text
    holder_token = tokens.holder("holder-a")
    assert client.post("/licences", json=issue_body(), headers=holder_token).status_code == 403


def test_duplicate_serial_conflicts(client: TestClient, tokens: Tokens, issue) -> None:
    issue(serial="0000000001")
    again = client.post("/licences", json=issue_body(serial="0000000001"), headers=tokens.issuer())
    assert again.status_code == 409


def test_licence_types_are_validated_and_public(
    client: TestClient, tokens: Tokens, licence_type: dict[str, Any]
) -> None:
    assert client.get(f"/types/{TYPE_CODE}").json()["defining_authority_code"] == DEFINING
    assert [t["type_code"] for t in client.get("/types").json()] == [TYPE_CODE]
    bad_code = {"type_code": "11100000000013338X001", "name": "x", "defining_authority_name": "y"}
    assert client.post("/types", json=bad_code, headers=tokens.issuer()).status_code == 422
    bad_schema = {**bad_code, "type_code": DEFINING + "002", "data_schema": {"type": 5}}
    response = client.post("/types", json=bad_schema, headers=tokens.issuer())
    assert response.status_code == 422
    assert "JSON Schema" in response.text
    again = {**bad_code, "type_code": TYPE_CODE}
    assert client.post("/types", json=again, headers=tokens.issuer()).status_code == 409


def test_sealing_failure_stores_nothing(
    client: TestClient, eseal_client: TestClient, tokens: Tokens, issuer_seal, licence_type
) -> None:
    admin = tokens.bearer(tokens.client("seal-admin", "eseal:admin", audience="zwfw-eseal"))
    eseal_client.post(
        f"/seals/{issuer_seal['es_id']}/suspend", json={"reason": "核查"}, headers=admin
    )
    response = client.post("/licences", json=issue_body(), headers=tokens.issuer())
    assert response.status_code == 503
    assert "suspended" in response.json()["detail"]
    assert client.get("/me/licences", headers=tokens.holder("holder-a")).json() == []


def test_sealing_token_comes_from_the_kit_client_and_its_failures_are_503(
    make_app, tokens: Tokens, tmp_path
) -> None:
    """Without a usable client-credentials token for the e-seal service the licence cannot be
    sealed: 503 with the reason, and nothing stored."""
    import httpx
    from fastapi.testclient import TestClient

    from zwfw.reference import keys
    from zwfw.services.elicense import SealClient, SealServiceConfig

    key_file = tmp_path / "elicense-client.jwk"
    key_file.write_text(keys.private_jwk_text(keys.client_jwk("elicense-1")))
    refusing = httpx.Client(
        base_url="http://eseal.test/",
        transport=httpx.MockTransport(
            lambda request: httpx.Response(400, json={"error": "invalid_client",
                                                      "error_description": "unknown key"})
        ),
    )  # fmt: skip
    for config, reason in (
        (SealServiceConfig(base_url="http://eseal.test"), "eseal.token_url"),
        (
            SealServiceConfig(
                base_url="http://eseal.test", token_url="http://idp.test/token",
                client_id="elicense-340000", client_key_file=key_file,
            ),
            "unknown key",
        ),
    ):  # fmt: skip
        app = make_app(database_url=f"sqlite:///{tmp_path / (reason[:7] + '.sqlite3')}")
        app.state.elicense.seals = SealClient(config, http=refusing)
        with TestClient(app) as client:
            client.post(
                "/types",
                json={"type_code": TYPE_CODE, "name": "营业执照",
                      "defining_authority_name": "国家市场监督管理总局"},
                headers=tokens.issuer(),
            )  # fmt: skip
            response = client.post("/licences", json=issue_body(data={}), headers=tokens.issuer())
            assert response.status_code == 503, response.text
            assert reason in response.json()["detail"]
            assert client.get("/me/licences", headers=tokens.holder("holder-a")).json() == []
