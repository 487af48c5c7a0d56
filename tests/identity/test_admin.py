"""The admin API: authenticated with an identity:admin token meant for the IdP, rerunnable
(PUT creates or replaces, lookups find what an earlier run made), every change audited with
its actor, every refusal a problem."""

from __future__ import annotations

import base64
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select

from zwfw.services.identity.models import IssuedToken
from zwfw.services.kit import audit

from .support import ISSUER, PASSWORD, Idp, add_client, client_assertion

ID_NUMBER = "11010519491231002X"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def _client_token(idp: Idp, client_id: str, key: ECKey, scope: str) -> str:
    r = idp.client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, client_id, ISSUER + "/token"),
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _admin_token(idp: Idp, audiences: tuple[str, ...] = (ISSUER,)) -> dict[str, str]:
    key = ECKey.generate_key("P-256")
    add_client(
        idp,
        client_id="ops",
        name="运维",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials"],
        scopes=["identity:admin"],
        audiences=list(audiences),
    )
    return {"Authorization": f"Bearer {_client_token(idp, 'ops', key, 'identity:admin')}"}


def _audit(idp: Idp, action: str) -> list[Any]:
    with idp.db() as db:
        return list(
            db.execute(
                select(audit.audit_log)
                .where(audit.audit_log.c.action == action)
                .order_by(audit.audit_log.c.seq)
            )
        )


def _problem(response: Any, status: int, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if fragment:
        assert fragment in response.json()["detail"], response.json()


def _system_client(key: ECKey, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "省级大厅",
        "auth_method": "private_key_jwt",
        "jwks": {"keys": [key.as_dict(private=False)]},
        "grant_types": ["client_credentials"],
        "scopes": ["elicense:share"],
        "audiences": ["https://elicense.test"],
    }
    body.update(changes)
    return body


# --- who may call it -----------------------------------------------------------------------


def test_admin_api_needs_a_token(idp: Idp) -> None:
    _problem(idp.client.get("/admin/clients"), 401)
    _problem(idp.client.get("/admin/clients", headers={"Authorization": "Bearer x.y.z"}), 401)
    denied = _audit(idp, "auth.denied")
    assert [(r.actor, r.resource, r.result) for r in denied] == [
        ("anonymous", "GET /admin/clients", "denied:401"),
        ("anonymous", "GET /admin/clients", "denied:401"),
    ]


def test_admin_token_must_be_meant_for_the_idp(idp: Idp) -> None:
    # identity:admin, but the token's audience is only the client itself.
    headers = _admin_token(idp, audiences=())
    refused = idp.client.get("/admin/clients", headers=headers)
    _problem(refused, 401, "not meant for this IdP")
    denied = _audit(idp, "auth.denied")
    assert [(r.actor, r.resource, r.result) for r in denied] == [
        ("ops", "GET /admin/clients", "denied:401")
    ]


def test_a_token_without_the_admin_scope_is_refused_and_audited(idp: Idp) -> None:
    key = ECKey.generate_key("P-256")
    add_client(
        idp,
        client_id="hall",
        name="hall",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials"],
        scopes=["elicense:share"],
        audiences=[ISSUER],
    )
    token = _client_token(idp, "hall", key, "elicense:share")
    refused = idp.client.put(
        "/admin/clients/rogue",
        json=_system_client(key),
        headers={"Authorization": f"Bearer {token}"},
    )
    _problem(refused, 403, "identity:admin")
    assert [(r.actor, r.result) for r in _audit(idp, "auth.denied")] == [("hall", "denied:403")]
    assert [r.resource for r in _audit(idp, "admin.client.create")] == ["client/hall"]


def test_an_exchanged_token_of_a_federated_person_is_no_admin_token(idp: Idp) -> None:
    # A client allowed identity:admin and token exchange must not turn a person's token
    # from a trusted IdP into this IdP's administration.
    national = ECKey.generate_key("P-256", parameters={"kid": "national-1"})
    key = ECKey.generate_key("P-256")
    headers = _admin_token(idp)
    trusted = {"issuer": "https://idp.gov.test", "jwks": {"keys": [national.as_dict()]}}
    assert idp.client.put("/admin/trust", json=trusted, headers=headers).status_code == 201
    add_client(
        idp,
        client_id="console",
        name="console",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials", EXCHANGE],
        scopes=["identity:admin"],
        audiences=[ISSUER],
    )
    now = int(time.time())
    person = jwt.encode(
        {"alg": "ES256", "kid": "national-1"},
        {"iss": "https://idp.gov.test", "sub": "citizen-1", "aud": [ISSUER], "iat": now,
         "exp": now + 300, "acr": "registered", "user_type": "person"},
        national,
    )  # fmt: skip
    exchanged = idp.client.post(
        "/token",
        data={
            "grant_type": EXCHANGE,
            "subject_token": person,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": ISSUER,
            "scope": "identity:admin",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, "console", ISSUER + "/token"),
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    bearer = {"Authorization": f"Bearer {exchanged.json()['access_token']}"}
    refused = idp.client.get("/admin/clients", headers=bearer)
    _problem(refused, 403, "not an administrator")
    # The client's own token is one.
    own = _client_token(idp, "console", key, "identity:admin")
    assert idp.client.get("/admin/clients", headers={"Authorization": f"Bearer {own}"}).is_success


# --- clients -------------------------------------------------------------------------------


def test_put_client_creates_then_changes_nothing_then_updates(idp: Idp) -> None:
    headers = _admin_token(idp)
    key = ECKey.generate_key("P-256")
    body = _system_client(key)
    created = idp.client.put("/admin/clients/hall-340000", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["result"] == "created"
    assert created.json()["client"]["scopes"] == ["elicense:share"]
    assert created.json()["client"]["from_settings"] is False

    rerun = idp.client.put("/admin/clients/hall-340000", json=body, headers=headers)
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["result"] == "unchanged"
    assert rerun.json()["client"] == created.json()["client"]

    changed = _system_client(key, scopes=["elicense:share", "eseal:sign"])
    updated = idp.client.put("/admin/clients/hall-340000", json=changed, headers=headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["result"] == "updated"
    detail = idp.client.get("/admin/clients/hall-340000", headers=headers).json()
    assert detail["scopes"] == ["elicense:share", "eseal:sign"]
    listed = idp.client.get("/admin/clients", headers=headers).json()
    assert [c["client_id"] for c in listed] == ["hall-340000", "ops"]
    # The rerun left no trace; the two changes did, with who made them.
    assert [r.actor for r in _audit(idp, "admin.client.create")] == ["test setup", "ops"]
    updates = _audit(idp, "admin.client.update")
    assert [(r.actor, r.detail["changed"]) for r in updates] == [("ops", ["scopes"])]
    assert updates[0].source_ip == "testclient"
    # The registered key is the one that authenticates.
    _client_token(idp, "hall-340000", key, "eseal:sign")


def test_put_keeps_a_client_secret_and_post_refuses_a_taken_id(idp: Idp) -> None:
    headers = _admin_token(idp)
    portal = {
        "name": "政务服务网",
        "auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://portal.test/cb"],
        "scopes": ["openid"],
    }
    created = idp.client.put("/admin/clients/portal", json=portal, headers=headers)
    secret = created.json()["client"]["client_secret"]
    assert secret
    rerun = idp.client.put("/admin/clients/portal", json=portal, headers=headers)
    assert rerun.json()["client"]["client_secret"] is None

    def introspect(password: str) -> int:
        basic = base64.b64encode(f"portal:{password}".encode()).decode()
        return idp.client.post(
            "/introspect", data={"token": "x"}, headers={"Authorization": f"Basic {basic}"}
        ).status_code

    # The secret from the first run still authenticates; a guess does not.
    assert introspect(secret) == 200
    assert introspect("guess") == 401
    again = idp.client.post(
        "/admin/clients", json={"client_id": "portal", **portal}, headers=headers
    )
    _problem(again, 409, "client portal exists")


def test_refused_client_registrations_store_nothing(idp: Idp) -> None:
    headers = _admin_token(idp)
    key = ECKey.generate_key("P-256")
    cases = [
        (_system_client(key, jwks={"keys": [key.as_dict(private=True)]}), 400, "private key"),
        (_system_client(key, auth_method="none", jwks=None), 400, "client_credentials needs"),
        (_system_client(key, jwks=None), 400, "needs the client's public JWKS"),
        (
            _system_client(
                key,
                grant_types=["authorization_code"],
                redirect_uris=["https://rp.test/cb#fragment"],
            ),
            400,
            "fragment",
        ),
        (_system_client(key, scopes=["two words"]), 400, "not a scope token"),
        (_system_client(key, grant_types=["password"]), 422, ""),
        (_system_client(key, scope="typo"), 422, ""),
    ]
    for body, status, fragment in cases:
        _problem(idp.client.put("/admin/clients/x-1", json=body, headers=headers), status, fragment)
    bad_id = idp.client.put("/admin/clients/a b", json=_system_client(key), headers=headers)
    _problem(bad_id, 422)
    _problem(idp.client.get("/admin/clients/x-1", headers=headers), 404)


def test_disabling_a_client_revokes_its_tokens_and_can_be_repeated(idp: Idp) -> None:
    headers = _admin_token(idp)
    key = ECKey.generate_key("P-256")
    idp.client.put("/admin/clients/hall-1", json=_system_client(key), headers=headers)
    token = _client_token(idp, "hall-1", key, "elicense:share")
    first = idp.client.delete("/admin/clients/hall-1", headers=headers)
    assert first.status_code == 204
    assert idp.client.get("/admin/clients/hall-1", headers=headers).json()["disabled"] is True
    with idp.db() as db:
        row = db.scalars(select(IssuedToken).where(IssuedToken.client_id == "hall-1")).one()
        assert row.revoked
    assert idp.svc is not None
    with idp.db() as db:
        assert idp.svc.provider.verify_own_token(db, token) is None
    refused = idp.client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, "hall-1", ISSUER + "/token"),
        },
    )
    assert refused.json()["error"] == "invalid_client"
    assert idp.client.delete("/admin/clients/hall-1", headers=headers).status_code == 204
    assert len(_audit(idp, "admin.client.disable")) == 1
    _problem(idp.client.delete("/admin/clients/nobody", headers=headers), 404)
    # PUT of the registration as it was, but enabled, brings it back.
    back = idp.client.put("/admin/clients/hall-1", json=_system_client(key), headers=headers)
    assert back.json()["result"] == "updated"
    assert back.json()["client"]["disabled"] is False


# --- accounts ------------------------------------------------------------------------------


def test_accounts_are_found_by_login_name(idp: Idp) -> None:
    headers = _admin_token(idp)
    person = {
        "kind": "person",
        "username": "lisi",
        "password": PASSWORD,
        "name": "李四",
        "id_number": ID_NUMBER,
    }
    created = idp.client.post("/admin/accounts", json=person, headers=headers)
    assert created.status_code == 201, created.text
    sub = created.json()["sub"]
    found = idp.client.get("/admin/accounts", params={"username": "lisi"}, headers=headers)
    assert [a["sub"] for a in found.json()] == [sub]
    assert found.json()[0]["second_factors"] == []
    missing = idp.client.get("/admin/accounts", params={"username": "nobody"}, headers=headers)
    assert missing.status_code == 200
    assert missing.json() == []
    detail = idp.client.get(f"/admin/accounts/{sub}", headers=headers)
    assert detail.json()["username"] == "lisi"
    _problem(idp.client.get("/admin/accounts/no-such-sub", headers=headers), 404)
    _problem(idp.client.get("/admin/accounts", headers=headers), 422)
    taken = idp.client.post("/admin/accounts", json=person, headers=headers)
    _problem(taken, 409, "login name lisi is taken")
    for response in (created, found, detail, taken):
        assert ID_NUMBER not in response.text
    enrolled = idp.client.post(f"/admin/accounts/{sub}/totp", headers=headers)
    assert enrolled.json()["totp_secret"]
    shown = idp.client.get(f"/admin/accounts/{sub}", headers=headers).json()
    assert shown["second_factors"] == ["totp"]
    assert shown["totp_secret"] is None
    assert [r.actor for r in _audit(idp, "admin.account.create")] == ["ops"]
    assert [r.actor for r in _audit(idp, "admin.account.totp")] == ["ops"]


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
    _problem(duplicate, 409, "resident ID number already has an account")
    assert ID_NUMBER not in duplicate.text

    level = f"/admin/accounts/{sub}/level"
    two = {"level": "real_name", "verified_attributes": ["id_number", "name"], "evidence_ref": "v1"}
    _problem(idp.client.post(level, json=two, headers=headers), 400, "at least 3")
    skip = {"level": "face_verified", "verified_attributes": ["face"], "evidence_ref": "v1"}
    assert "must follow real_name" in idp.client.post(level, json=skip, headers=headers).text
    three = {**two, "verified_attributes": ["id_number", "name", "phone"]}
    ok = idp.client.post(level, json=three, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["level"] == "real_name"
    # The same request again changes nothing and records nothing more.
    again = idp.client.post(level, json=three, headers=headers)
    assert again.status_code == 200
    rows = _audit(idp, "admin.account.level")
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
    _problem(r, 400, "credit code")


# --- trust list ----------------------------------------------------------------------------


def test_trust_entries_have_put_semantics(idp: Idp) -> None:
    headers = _admin_token(idp)
    entry = {"issuer": "https://idp.gov.test", "jwks_uri": "https://idp.gov.test/jwks"}
    created = idp.client.put("/admin/trust", json=entry, headers=headers)
    assert (created.status_code, created.json()["result"]) == (201, "created")
    rerun = idp.client.put("/admin/trust", json=entry, headers=headers)
    assert (rerun.status_code, rerun.json()["result"]) == (200, "unchanged")
    capped = idp.client.put(
        "/admin/trust", json={**entry, "max_level": "real_name"}, headers=headers
    )
    assert (capped.status_code, capped.json()["result"]) == (200, "updated")
    listed = idp.client.get("/admin/trust", headers=headers).json()
    assert listed == [{**entry, "jwks": None, "max_level": "real_name"}]

    def remove() -> int:
        return idp.client.delete(
            "/admin/trust", params={"issuer": entry["issuer"]}, headers=headers
        ).status_code

    assert remove() == 204
    assert remove() == 204
    assert idp.client.get("/admin/trust", headers=headers).json() == []
    _problem(
        idp.client.delete("/admin/trust", params={"issuer": "https://x.test"}, headers=headers),
        404,
    )
    back = idp.client.put("/admin/trust", json=entry, headers=headers)
    assert (back.status_code, back.json()["result"]) == (200, "updated")
    assert [r.detail["result"] for r in _audit(idp, "admin.trust.put")] == [
        "created",
        "updated",
        "updated",
    ]
    assert len(_audit(idp, "admin.trust.remove")) == 1


def test_refused_trust_entries(idp: Idp) -> None:
    headers = _admin_token(idp)
    key = ECKey.generate_key("P-256")
    cases = [
        ({"issuer": "https://a.test"}, "exactly one of jwks_uri or jwks"),
        (
            {"issuer": "https://a.test", "jwks_uri": "https://a.test/jwks", "jwks": {"keys": []}},
            "exactly one",
        ),
        ({"issuer": "a.test", "jwks_uri": "https://a.test/jwks"}, "issuer must be an absolute"),
        ({"issuer": "https://a.test", "jwks": {"keys": [key.as_dict(private=True)]}}, "private"),
        (
            {"issuer": "https://a.test", "jwks_uri": "https://a.test/jwks", "max_level": "gold"},
            "unknown assurance level gold",
        ),
    ]
    for body, fragment in cases:
        _problem(idp.client.put("/admin/trust", json=body, headers=headers), 400, fragment)
    assert idp.client.get("/admin/trust", headers=headers).json() == []


def test_key_rotation_is_audited(idp: Idp) -> None:
    headers = _admin_token(idp)
    first = idp.client.post("/admin/keys/rotate", headers=headers).json()
    second = idp.client.post("/admin/keys/rotate", headers=headers).json()
    assert first["active_kid"] != second["active_kid"]
    assert first["active_kid"] in second["published"]
    published = [k["kid"] for k in idp.client.get("/jwks").json()["keys"]]
    assert second["active_kid"] in published
    assert [r.detail["kid"] for r in _audit(idp, "admin.keys.rotate")] == [
        first["active_kid"],
        second["active_kid"],
    ]
