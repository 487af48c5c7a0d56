"""The admin API: authenticated with an identity:admin token, every change audited."""

from __future__ import annotations

from joserfc.jwk import ECKey
from sqlalchemy import select

from zwfw.services.kit import audit

from .support import ISSUER, PASSWORD, Idp, add_client, client_assertion

ID_NUMBER = "11010519491231002X"


def _admin_token(idp: Idp) -> dict[str, str]:
    key = ECKey.generate_key("P-256")
    add_client(
        idp,
        client_id="ops",
        name="运维",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials"],
        scopes=["identity:admin"],
    )
    r = idp.client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "identity:admin",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(key, "ops", ISSUER + "/token"),
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_admin_api_needs_a_token(idp: Idp) -> None:
    r = idp.client.get("/admin/clients")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


def test_assurance_level_changes_need_evidence_and_are_audited(idp: Idp) -> None:
    headers = _admin_token(idp)
    person = {
        "kind": "person",
        "username": "zhaoliu",
        "password": PASSWORD,
        "name": "赵六",
        "id_number": ID_NUMBER,
        "phone": "13812345678",
    }
    created = idp.client.post("/admin/accounts", json=person, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["level"] == "registered"
    assert ID_NUMBER not in created.text
    sub = body["sub"]
    duplicate = idp.client.post(
        "/admin/accounts", json={**person, "username": "other"}, headers=headers
    )
    assert duplicate.status_code == 400
    assert ID_NUMBER not in duplicate.text

    level = f"/admin/accounts/{sub}/level"
    two = {"level": "real_name", "verified_attributes": ["id_number", "name"], "evidence_ref": "v1"}
    assert idp.client.post(level, json=two, headers=headers).status_code == 400
    skip = {"level": "face_verified", "verified_attributes": ["face"], "evidence_ref": "v1"}
    assert "must follow real_name" in idp.client.post(level, json=skip, headers=headers).text
    three = {**two, "verified_attributes": ["id_number", "name", "phone"]}
    ok = idp.client.post(level, json=three, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["level"] == "real_name"
    with idp.db() as db:
        rows = list(
            db.execute(
                select(audit.audit_log).where(audit.audit_log.c.action == "admin.account.level")
            )
        )
    assert len(rows) == 1
    assert rows[0].actor == "ops"
    assert rows[0].detail["evidence"] == "v1"
    assert rows[0].detail["previous"] == "registered"


def test_legal_person_credit_code_is_validated(idp: Idp) -> None:
    headers = _admin_token(idp)
    body = {
        "kind": "legal_person",
        "username": "acme",
        "password": PASSWORD,
        "name": "示例公司",
        "credit_code": "91340100MA2N0000XX",
        "legal_representative": "钱七",
    }
    r = idp.client.post("/admin/accounts", json=body, headers=headers)
    assert r.status_code == 400
    assert "credit code" in r.json()["detail"]
