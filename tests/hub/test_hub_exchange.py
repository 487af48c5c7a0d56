"""Cross-province licence exchange through the hub, the province registry and the catalog."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from hub_support import (
    HUB_CLIENT_AT_PROVINCES,
    IMPL_330,
    IMPL_340,
    IMPL_OUTSIDE,
    licence_id,
    make_province,
    send,
    soon,
)
from sqlalchemy import select

from zwfw.crypto.x509 import CertificateAuthority
from zwfw.services.hub.models import LicenceUse
from zwfw.services.kit import kit_state
from zwfw.services.kit.tokens import TOKEN_EXCHANGE

EXCHANGE = "/exchange/licences"


def request_for(hub, sub: str = "citizen-b-1", **overrides: Any) -> dict[str, Any]:
    return {
        "issuer_region": "330000",
        "identifier": licence_id(),
        "cause": "安徽省户口迁移办件 340000 使用",
        "expires_at": soon(),
        "subject_token": hub.idp.citizen_token(sub),
        **overrides,
    }


def _uses(hub) -> list[LicenceUse]:
    with kit_state(hub.client.app).sessions() as db:
        return list(db.scalars(select(LicenceUse)))


def test_a_licence_of_province_b_reaches_province_a_through_the_hub(hub) -> None:
    token = hub.token(hub.a, "hub:exchange")
    response = send(hub.client, hub.a, token, EXCHANGE, request_for(hub))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["identifier"] == licence_id()
    assert body["cause"].startswith("安徽省户口迁移")
    assert {"copy_id", "document", "signature", "es_id", "verify_url"} <= set(body)
    assert response.headers["zwfw-issuer-region"] == "330000"
    # B saw the hub's own client (elicense:share) and the citizen's consent, exchanged from
    # the national token at B's IdP: the hub has no standing access to the licence.
    call = hub.elicense_calls[-1]
    assert (call["caller"], call["sub"], call["holder_scope"]) == (
        HUB_CLIENT_AT_PROVINCES,
        "citizen-b-1",
        "elicense:consent",
    )
    [use] = _uses(hub)
    assert (use.requester_region, use.issuer_region, use.outcome) == (
        "340000",
        "330000",
        "delivered",
    )
    document = base64.b64decode(body["document"])
    assert use.copy_sha256 == hashlib.sha256(document).hexdigest()
    assert use.copy_id == body["copy_id"]
    # The hub keeps who/what/why, never the licence file.
    assert "OFD-SECRET-CONTENT" not in repr(use.__dict__)
    assert body["document"] not in repr(use.__dict__)
    listed = hub.client.get("/exchange/uses?region=330000", headers=hub.ops()).json()
    assert [u["outcome"] for u in listed] == ["delivered"]


def test_the_hubs_own_token_at_b_is_reused_and_the_consent_exchanged_every_time(hub) -> None:
    token = hub.token(hub.a, "hub:exchange")
    for _ in range(2):
        response = send(hub.client, hub.a, token, EXCHANGE, request_for(hub))
        assert response.status_code == 201, response.text
    assert hub.province_idp.state.token_grants == [TOKEN_EXCHANGE, "client_credentials",
                                                   TOKEN_EXCHANGE]  # fmt: skip
    assert [call["caller"] for call in hub.elicense_calls] == [HUB_CLIENT_AT_PROVINCES] * 2


def test_an_outage_of_the_issuing_idp_is_a_recorded_502_not_a_refusal(hub) -> None:
    hub.province_idp.state.token_outage = True
    token = hub.token(hub.a, "hub:exchange")
    response = send(hub.client, hub.a, token, EXCHANGE, request_for(hub))
    assert response.status_code == 502, response.text
    assert "330000" in response.json()["detail"]
    assert hub.elicense_calls == []
    assert [u.outcome for u in _uses(hub)] == ["unavailable"]


def test_the_hub_cannot_fetch_a_licence_for_someone_who_does_not_hold_it(hub) -> None:
    token = hub.token(hub.a, "hub:exchange")
    response = send(hub.client, hub.a, token, EXCHANGE, request_for(hub, sub="someone-else"))
    assert response.status_code == 404
    assert "does not exist" in response.json()["detail"]
    assert [u.outcome for u in _uses(hub)] == ["refused"]


def test_a_citizen_token_the_issuing_idp_refuses_is_a_recorded_refusal(hub) -> None:
    # Signed by the national IdP but without an assurance level: B's IdP will not exchange it.
    bare = hub.idp.token(sub="citizen-b-1", client_id="national-portal", user_type="person")
    token = hub.token(hub.a, "hub:exchange")
    response = send(hub.client, hub.a, token, EXCHANGE, request_for(hub, subject_token=bare))
    assert response.status_code == 403
    assert "no assurance level" in response.json()["detail"]
    assert hub.elicense_calls == []
    assert [u.outcome for u in _uses(hub)] == ["refused"]


def test_a_forged_citizen_token_is_not_forwarded(hub) -> None:
    from hub_support import NationalIdP

    forged = NationalIdP().citizen_token("citizen-b-1")
    token = hub.token(hub.a, "hub:exchange")
    response = send(hub.client, hub.a, token, EXCHANGE, request_for(hub, subject_token=forged))
    assert response.status_code == 403
    assert "citizen's token" in response.json()["detail"]
    assert hub.elicense_calls == []


def test_exchange_needs_its_scope_and_a_signed_request(hub) -> None:
    report_only = hub.token(hub.a, "hub:report")
    assert send(hub.client, hub.a, report_only, EXCHANGE, request_for(hub)).status_code == 403
    unsigned = hub.client.post(
        EXCHANGE,
        json=request_for(hub),
        headers={"Authorization": f"Bearer {hub.token(hub.a, 'hub:exchange')}"},
    )
    assert unsigned.status_code == 400
    assert hub.elicense_calls == []


def test_exchange_refuses_unknown_or_suspended_issuers_and_long_expiry(hub) -> None:
    token = hub.token(hub.a, "hub:exchange")
    unknown = send(hub.client, hub.a, token, EXCHANGE, request_for(hub, issuer_region="440000"))
    assert unknown.status_code == 404
    too_long = send(hub.client, hub.a, token, EXCHANGE, request_for(hub, expires_at=soon(400)))
    assert too_long.status_code == 422
    own = send(hub.client, hub.a, token, EXCHANGE, request_for(hub, issuer_region="340000"))
    assert own.status_code == 422
    hub.client.patch("/provinces/330000", json={"status": "suspended"}, headers=hub.ops())
    suspended = send(hub.client, hub.a, token, EXCHANGE, request_for(hub))
    assert suspended.status_code == 409
    assert hub.elicense_calls == []


# --- registry -----------------------------------------------------------------------------


def test_registration_is_refused_for_a_certificate_not_from_the_national_ca(hub) -> None:
    rogue = make_province(CertificateAuthority.create_root("rogue CA"), "440000", "广东省")
    response = hub.client.post("/provinces", json=rogue.registration(), headers=hub.ops())
    assert response.status_code == 422
    assert "national CA" in response.json()["detail"]


def test_registration_validates_codes_and_uniqueness(hub) -> None:
    guangdong = make_province(hub.ca, "440000", "广东省")
    bad_region = {**guangdong.registration(), "region_code": "440100"}
    assert hub.client.post("/provinces", json=bad_region, headers=hub.ops()).status_code == 422
    same_client = {**guangdong.registration(), "oauth_client_id": hub.a.client_id}
    assert hub.client.post("/provinces", json=same_client, headers=hub.ops()).status_code == 409
    again = hub.client.post("/provinces", json=hub.a.registration(), headers=hub.ops())
    assert again.status_code == 409
    ok = hub.client.post("/provinces", json=guangdong.registration(), headers=hub.ops())
    assert ok.status_code == 201
    assert ok.json()["signing_key_id"] == guangdong.signer.key_id


def test_registry_needs_the_ops_scopes(hub) -> None:
    token = hub.token(hub.a)
    headers = {"Authorization": f"Bearer {token}"}
    assert hub.client.get("/provinces", headers=headers).status_code == 403
    assert hub.client.get("/provinces").status_code == 401
    listed = hub.client.get("/provinces", headers=hub.ops()).json()
    assert [p["region_code"] for p in listed] == ["330000", "340000"]


# --- catalog ------------------------------------------------------------------------------

GUIDE = {
    "accept_condition": "本市户籍居民",
    "by_law": "《户口登记条例》",
    "anticipate_day": 20,
    "promise_day": 5,
    "dept_code": IMPL_340[:18],
    "dept_name": "合肥市公安局",
    "is_fee": "0",
    "handle_flow": "申请—受理—审核—办结",
    "handle_type": "网上办理",
    "link_way": "0551-12345",
    "supervise_way": "12345 热线",
    "project_type": "2",
    "server_type": "自然人",
    "transact_addr": "合肥市政务服务中心",
    "transact_time": "工作日 9:00-17:00",
    "materials": [{"name": "户口簿", "format": "原件", "copies": 1}],
}


def test_catalog_items_are_aggregated_with_a_reason_per_rejected_item(hub) -> None:
    items = [
        {
            "code": IMPL_340 + "01",
            "name": "户口迁移",
            "version": 1,
            "state": "published",
            "guide": GUIDE,
        },
        {
            "code": IMPL_340[:17] + "Y" + IMPL_340[18:],
            "name": "坏编码",
            "version": 1,
            "state": "published",
            "guide": GUIDE,
        },
        {"code": IMPL_330, "name": "外省事项", "version": 1, "state": "published", "guide": GUIDE},
        {
            "code": IMPL_OUTSIDE[:2] + "340100" + IMPL_OUTSIDE[8:],
            "name": "x",
            "version": 1,
            "state": "published",
            "guide": GUIDE,
        },
        {
            "code": IMPL_340,
            "name": "缺字段",
            "version": 1,
            "state": "published",
            "guide": {**GUIDE, "by_law": ""},
        },
    ]
    payload = {"report": "catalog", "version": 1, "region_code": "340000", "items": items}
    response = send(
        hub.client,
        hub.a,
        hub.token(hub.a),
        "/reports/catalog",
        payload,
        idempotency_key="catalog-0001",
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert (receipt["accepted"], receipt["rejected"]) == (1, 4)
    reasons = [" ".join(v["reasons"]) for v in receipt["items"]]
    assert reasons[0] == ""
    assert "check character" in reasons[1]
    assert "outside province 340000" in reasons[2]
    assert "credit" in reasons[3] or "check" in reasons[3]
    assert "by_law" in reasons[4]
    public = hub.client.get("/catalog/items?region=340000")
    assert public.status_code == 200
    assert [i["code"] for i in public.json()] == [IMPL_340 + "01"]
