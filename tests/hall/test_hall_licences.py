"""免证办: licence references fetched and verified through the e-licence library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from zwfw.codes import build_licence_id
from zwfw.crypto.keystore import KeyEncryptionKey
from zwfw.services import eseal
from zwfw.services.elicense import ElicenseSettings, SealClient, SealServiceConfig
from zwfw.services.elicense import build as build_elicense
from zwfw.services.hall.elicense import ElicenseClient, TrustRoots
from zwfw.services.hall.models import Case
from zwfw.services.kit import migrate
from zwfw.services.kit.audit import audit_log

from .support import (
    AUDIENCE,
    DEPT,
    ISSUER,
    LICENCE_ID,
    LICENCE_TYPE,
    OTHER_TYPE_LICENCE,
    REGION,
    RESIDENT_ID,
    FakeLibrary,
    Hall,
    application,
    seal_kit,
    upload,
)


def licence_application(identifier: str = LICENCE_ID) -> dict[str, object]:
    return application(
        materials=[upload(), {"name": "营业执照", "gettype": 3, "licence_id": identifier}]
    )


def case_count(hall: Hall) -> int:
    with hall.db() as db:
        return db.scalar(select(func.count()).select_from(Case)) or 0


def test_licence_reference_is_fetched_with_a_cause(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 201, response.text
    case = response.json()
    licence = case["materials"][1]
    assert licence["gettype"] == 3
    assert licence["licence_id"] == LICENCE_ID
    assert "企业投资项目备案" in licence["licence_cause"]
    stored = licence["licence_copy"]
    assert stored["status"] == "01"
    assert stored["copy_id"] == "copy1"
    assert stored["route"] == "library"
    assert len(stored["sha256"]) == 64
    assert "document" not in stored
    assert case["missing_materials"] == []
    # The hall called with its own token; the applicant's token was the consent.
    (request,) = hall.library.requests
    assert request["caller"] == "hall-340000"
    assert request["sub"] == "citizen-1"
    assert request["cause"] == licence["licence_cause"]
    assert request["expires_at"] == licence["licence_copy"]["expires_at"]
    with hall.db() as db:
        (detail,) = db.execute(
            select(audit_log.c.detail).where(audit_log.c.action == "case.apply")
        ).one()
    assert detail["licences"] == [{"licence_id": LICENCE_ID, "cause": licence["licence_cause"]}]


def test_licence_of_someone_else_is_refused(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-9"
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 422
    assert "not available to the applicant" in response.json()["detail"]
    assert case_count(hall) == 0


def test_invalid_licence_status_is_refused(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    hall.library.status[LICENCE_ID] = "03"
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 422
    assert "cannot be used" in response.json()["detail"]
    assert "status 03" in response.json()["detail"]


def test_applicant_without_consent_scope_is_refused(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    no_consent = hall.bearer("citizen-1", ("openid",), user_type="person", acr="real-name")
    response = hall.client.post("/cases", json=licence_application(), headers=no_consent)
    assert response.status_code == 422
    assert "elicense:consent" in response.json()["detail"]
    assert case_count(hall) == 0


def test_copies_that_do_not_check_out_are_refused(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    for tamper, reason in (
        ("cause", "requested cause"),
        ("identifier", "not " + LICENCE_ID),
        ("signature", "does not verify"),
        ("sealed_cause", "sealed copy does not carry the requested cause"),
    ):
        hall.library.tamper = tamper
        response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
        assert response.status_code == 422, tamper
        assert reason in response.json()["detail"]
    assert case_count(hall) == 0


def test_library_outage_is_a_503_and_stores_nothing(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    hall.library.down = True
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert case_count(hall) == 0


def test_licence_must_fit_the_material(hall: Hall) -> None:
    wrong_type = hall.client.post(
        "/cases", json=licence_application(OTHER_TYPE_LICENCE), headers=hall.citizen()
    )
    assert wrong_type.status_code == 400
    assert "needs type 11100000000013338W001" in wrong_type.json()["detail"]
    not_replaceable = application(
        materials=[{"name": "项目备案申请表", "gettype": 3, "licence_id": LICENCE_ID}]
    )
    response = hall.client.post("/cases", json=not_replaceable, headers=hall.citizen())
    assert response.status_code == 400
    assert "cannot be replaced by an e-licence" in response.json()["detail"]
    malformed = licence_application(LICENCE_ID[:-1] + "0")
    response = hall.client.post("/cases", json=malformed, headers=hall.citizen())
    assert response.status_code == 422
    assert "check character" in response.text
    assert hall.library.requests == []


def test_licence_of_another_province_needs_the_national_token(hall: Hall) -> None:
    # Issued by an authority registered in Zhejiang (division 330100): not this library's.
    zhejiang = build_licence_id(LICENCE_TYPE, "11330100MB0000000N", "00000000016", 1)
    hall.library.holders[str(zhejiang)] = "citizen-1"
    response = hall.client.post(
        "/cases", json=licence_application(str(zhejiang)), headers=hall.citizen()
    )
    assert response.status_code == 422
    assert "province 330000" in response.json()["detail"]
    assert hall.library.requests == []


def test_copy_from_the_real_elicense_service(hall: Hall, tmp_path: Path) -> None:
    """The hall against the real e-licence app (sealing through the real e-seal app): the
    copy verifies with the e-seal's trust root and the library records the hall's use."""
    from eseal.conftest import seal_body

    mint = hall.mint
    kek = KeyEncryptionKey.generate()
    eseal_app = eseal.build(
        eseal.EsealSettings(
            database_url=f"sqlite:///{tmp_path / 'eseal.sqlite3'}",
            auth={"issuer": ISSUER, "audience": "zwfw-eseal", "jwks": mint.jwks()},
        ),
        kek=kek,
    )
    migrate(eseal_app)
    with TestClient(eseal_app) as seals:
        admin = mint.token(sub="seal-admin", scopes=("eseal:admin",), audience="zwfw-eseal")
        made = seals.post(
            "/seals",
            json=seal_body(
                credit_code=DEPT, organisation="合肥市发展和改革委员会", category="business",
                name="合肥市发展和改革委员会电子证照专用章",
                signers=[{"subject": "elicense-340000", "name": "电子证照库"}],
            ),
            headers={"Authorization": f"Bearer {admin}"},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        settings = ElicenseSettings(
            database_url=f"sqlite:///{tmp_path / 'elicense.sqlite3'}",
            public_base_url="http://elicense.test",
            # One audience for the province's services: the applicant's hall token is the
            # consent the library checks.
            auth={"issuer": ISSUER, "audience": AUDIENCE, "jwks": mint.jwks()},
            issuers={DEPT: {"name": "合肥市发展和改革委员会", "es_id": made.json()["es_id"]}},
        )
        sealer = SealClient(
            SealServiceConfig(base_url="http://testserver"),
            http=seals,
            token=lambda: mint.token(
                sub="elicense-340000", scopes=("eseal:sign",), audience="zwfw-eseal"
            ),
        )
        library_app = build_elicense(settings, seal_client=sealer)
        migrate(library_app)
        with TestClient(library_app, base_url="http://elicense.test") as library:
            issuer = mint.token(sub="regulator", scopes=("elicense:issue", "elicense:admin"))
            issuer_auth = {"Authorization": f"Bearer {issuer}"}
            licence_type = library.post(
                "/types",
                json={"type_code": LICENCE_TYPE, "name": "营业执照",
                      "defining_authority_name": "国家市场监督管理总局"},
                headers=issuer_auth,
            )  # fmt: skip
            assert licence_type.status_code == 201, licence_type.text
            issued = library.post(
                "/licences",
                json={"type_code": LICENCE_TYPE, "issuer_code": DEPT,
                      "licence_number": "92340104MA2N0000X1", "jurisdiction": "340100",
                      "holder": {"name": "张三", "code": RESIDENT_ID, "sub": "citizen-1"}},
                headers=issuer_auth,
            )  # fmt: skip
            assert issued.status_code == 201, issued.text
            identifier = issued.json()["identifier"]
            trust = tmp_path / "eseal-root.pem"
            trust.write_text(seals.get("/trust").json()["root_certificate"])
            hall.app.state.hall.elicense = ElicenseClient(
                "http://elicense.test",
                region_code=REGION,
                token=lambda: mint.token(sub="hall-340000", scopes=("elicense:share",)),
                trust=TrustRoots(bundle=trust),
                client=library,
            )
            response = hall.client.post(
                "/cases", json=licence_application(identifier), headers=hall.citizen()
            )
            assert response.status_code == 201, response.text
            stored = response.json()["materials"][1]["licence_copy"]
            assert stored["made_by"] == "hall-340000"
            assert stored["es_id"] == made.json()["es_id"]
            holder = mint.token(sub="citizen-1", scopes=("elicense:read",))
            usage = library.get(
                f"/me/licences/{identifier}/usage",
                headers={"Authorization": f"Bearer {holder}"},
            )
            assert usage.status_code == 200, usage.text
            uses = [u for u in usage.json() if u["action"] == "copy"]
            assert [(u["actor"], u["copy_id"]) for u in uses] == [
                ("hall-340000", stored["copy_id"])
            ]
            assert uses[0]["cause"] == response.json()["materials"][1]["licence_cause"]
            # Someone else's applicant token is no consent for this licence.
            other = hall.client.post(
                "/cases", json=licence_application(identifier), headers=hall.citizen("citizen-2")
            )
            assert other.status_code == 422
            assert "not available to the applicant" in other.json()["detail"]


def test_a_refused_hall_token_is_an_outage_not_a_refusal(hall: Hall) -> None:
    """The hall's own client-credentials token comes from the kit's client; a token endpoint
    that refuses it makes the library unavailable (503), not the licence unusable (422)."""
    from joserfc.jwk import ECKey

    from zwfw.services.kit.tokens import ClientCredentials

    refusing = httpx.Client(
        transport=httpx.MockTransport(
            lambda request: httpx.Response(401, json={"error": "invalid_client"})
        )
    )
    hall.app.state.hall.elicense.token = ClientCredentials(
        "https://idp.test.zwfw/340000/token",
        "hall-340000",
        ECKey.generate_key("P-256"),
        "elicense:share",
        http=refusing,
    )
    hall.library.holders[LICENCE_ID] = "citizen-1"
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 503
    assert "invalid_client" in response.json()["detail"]
    assert hall.library.requests == []
    assert case_count(hall) == 0


def test_a_copy_its_registry_did_not_make_is_refused(hall: Hall) -> None:
    """A validly sealed copy of another holder's licence: the seal verifies offline, so only
    the registry's confirmation tells it apart."""
    hall.library.holders[LICENCE_ID] = "citizen-1"
    hall.library.tamper = "unregistered"
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "the e-licence registry of 340000 does not confirm the annotated copy" in detail
    assert "registry: the copy's licence differs from the one issued" in detail
    assert hall.library.verified == ["copy1"]
    assert case_count(hall) == 0


def test_an_unreachable_registry_is_an_outage(hall: Hall) -> None:
    hall.library.holders[LICENCE_ID] = "citizen-1"
    hall.library.registry_down = True
    response = hall.client.post("/cases", json=licence_application(), headers=hall.citizen())
    assert response.status_code == 503
    assert "POST /verify" in response.json()["detail"]
    assert case_count(hall) == 0


def test_a_copy_through_the_hub_is_confirmed_by_the_issuing_provinces_registry(
    hall: Hall,
) -> None:
    """Province B's copy comes through the hub; B's registry (elicense.registries) confirms
    it, and without B's registry configured the copy is refused."""
    from fastapi import FastAPI

    from zwfw.crypto.sm2 import SM2PrivateKey
    from zwfw.formats.channel import ChannelSigner
    from zwfw.services.hall.elicense import HubRoute

    zhejiang = str(build_licence_id(LICENCE_TYPE, "11330100MB0000000N", "00000000016", 1))
    library_b = FakeLibrary(hall.mint, seal_kit(), prefix="b-copy")
    library_b.holders[zhejiang] = "citizen-1"
    b = TestClient(library_b.app(), base_url="http://elicense-b.test")
    hub = FastAPI()

    @hub.post("/exchange/licences")
    def exchange(body: dict[str, Any]) -> Any:
        # Routed to B with the hub's own share token and the citizen's token as consent.
        token = hall.mint.token(sub="national-hub", scopes=("elicense:share",))
        return b.post(
            f"/licences/{body['identifier']}/copies",
            json={"cause": body["cause"], "expires_at": body["expires_at"],
                  "holder_token": body["subject_token"]},
            headers={"Authorization": f"Bearer {token}"},
        ).json()  # fmt: skip

    hub_client = TestClient(hub, base_url="http://hub.test")
    library_a = hall.app.state.hall.elicense._client
    by_host = {"elicense.test": library_a, "elicense-b.test": b, "hub.test": hub_client}

    def dispatch(request: httpx.Request) -> httpx.Response:
        client = by_host[request.url.host]
        return client.request(
            request.method, str(request.url), content=request.content, headers=request.headers
        )

    routes = httpx.Client(transport=httpx.MockTransport(dispatch))
    key = SM2PrivateKey.generate()
    lib = hall.app.state.hall.elicense
    national = hall.mint.token(sub="citizen-1", scopes=("elicense:consent",))
    answers = []
    for registries in ({}, {"330000": "http://elicense-b.test"}):
        hall.app.state.hall.elicense = ElicenseClient(
            lib.base_url, region_code=REGION, token=lib.token, trust=lib.trust,
            client=routes, registries=registries,
            hub=HubRoute("http://hub.test", ChannelSigner("340000", key, key_id="k1"),
                         lambda: "hub-token", routes),
        )  # fmt: skip
        headers = {**hall.citizen(), "Zwfw-Subject-Token": national}
        answers.append(
            hall.client.post("/cases", json=licence_application(zhejiang), headers=headers)
        )
    unconfirmed, confirmed = answers
    assert unconfirmed.status_code == 422, unconfirmed.text
    assert "no e-licence registry of province 330000 is configured" in unconfirmed.text
    assert confirmed.status_code == 201, confirmed.text
    copy = confirmed.json()["materials"][1]["licence_copy"]
    assert (copy["route"], copy["issuer_region"]) == ("hub", "330000")
    assert library_b.verified == ["b-copy2"]
    assert hall.library.verified == []
