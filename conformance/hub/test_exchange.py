"""IC-XPROV-*: cross-province licence exchange through the hub (跨省通办), as the province
under test asking for a licence another province issued to a citizen."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from zwfw.codes import build_licence_id

from .conftest import Province

EXCHANGE = "/exchange/licences"
RESIDENT_ID = re.compile(r"\d{6}(?:\d{8}|\*{8})\d{3}[\dXx*]")
CAUSE = "互联互通测试：跨省免提交证照"


def exchange_request(credential: Callable[[str], str], **overrides: Any) -> dict[str, Any]:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    return {
        "issuer_region": credential("xprov_issuer_region"),
        "identifier": credential("xprov_licence_id"),
        "cause": CAUSE,
        "expires_at": expires.isoformat(),
        "subject_token": credential("xprov_citizen_token"),
        **overrides,
    }


@pytest.fixture
def delivered(province: Province, credential: Callable[[str], str]) -> dict[str, Any]:
    # The case it is for, as a province's hall names it (recorded with the use).
    request = exchange_request(credential, case_number=f"XPROV-{uuid.uuid4().hex[:16]}")
    response = province.send(EXCHANGE, request, credential("hub_exchange_token"))
    assert response.status_code == 201, response.text[:300]
    return {"request": request, "answer": response.json(), "headers": response.headers}


@pytest.mark.requirement("IC-XPROV-001", catches=("annotation-missing", "seal-unverifiable"))
def test_a_licence_of_another_province_arrives_sealed_with_cause_and_expiry(
    delivered: dict[str, Any],
) -> None:
    request, answer = delivered["request"], delivered["answer"]
    assert answer["identifier"] == request["identifier"]
    assert answer["cause"] == request["cause"]
    assert datetime.fromisoformat(answer["expires_at"]) == datetime.fromisoformat(
        request["expires_at"]
    )
    assert delivered["headers"]["zwfw-issuer-region"] == request["issuer_region"]
    # The sealed document itself carries the cause and expiry (加注件), not only the envelope.
    document = json.loads(base64.b64decode(answer["document"]))
    annotation = document["annotation"]
    assert annotation["cause"] == request["cause"]
    assert datetime.fromisoformat(annotation["expires_at"]) == datetime.fromisoformat(
        request["expires_at"]
    )
    # And the issuer's seal verifies at the issuer's public verification endpoint.
    verify_base = answer["verify_url"].split("/verify/")[0]
    result = httpx.post(
        f"{verify_base}/verify",
        json={"document": answer["document"], "signature": answer["signature"]},
        timeout=30.0,
    )
    assert result.status_code == 200, result.text[:300]
    assert (result.json()["valid"], result.json()["kind"]) == (True, "copy")


@pytest.mark.requirement("IC-XPROV-001", catches=("scope-unchecked",))
def test_exchange_needs_the_exchange_scope_and_a_signed_message(
    province: Province, credential: Callable[[str], str], hub_client: httpx.Client
) -> None:
    request = exchange_request(credential)
    report_only = province.send(EXCHANGE, request, credential("hub_report_token"))
    assert report_only.status_code == 403
    unsigned = hub_client.post(
        EXCHANGE.lstrip("/"),
        json=request,
        headers={"Authorization": f"Bearer {credential('hub_exchange_token')}"},
    )
    assert unsigned.status_code == 400


@pytest.mark.requirement(
    "IC-XPROV-002", catches=("client-token-as-consent", "citizen-token-unverified")
)
def test_without_a_valid_citizen_token_nothing_is_routed(
    province: Province, credential: Callable[[str], str]
) -> None:
    token = credential("hub_exchange_token")
    # A token of the requesting province's own client is no citizen's consent.
    not_a_citizen = province.send(
        EXCHANGE, exchange_request(credential, subject_token=token), token
    )
    assert not_a_citizen.status_code == 403, not_a_citizen.text[:300]
    assert not_a_citizen.headers["content-type"].startswith("application/problem+json")
    header, payload, signature = credential("xprov_citizen_token").split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    refused = province.send(EXCHANGE, exchange_request(credential, subject_token=forged), token)
    assert refused.status_code == 403, refused.text[:300]
    assert refused.headers["content-type"].startswith("application/problem+json")
    missing = exchange_request(credential)
    del missing["subject_token"]
    assert province.send(EXCHANGE, missing, token).status_code == 422


@pytest.mark.requirement("IC-XPROV-002", catches=("content-kept",))
def test_the_hub_keeps_no_licence_content(
    delivered: dict[str, Any], hub_client: httpx.Client, supervise: dict[str, str]
) -> None:
    identifier = delivered["request"]["identifier"]
    uses = hub_client.get("exchange/uses", params={"identifier": identifier}, headers=supervise)
    assert uses.status_code == 200, uses.text[:300]
    text = uses.text
    assert delivered["answer"]["document"][:64] not in text
    assert delivered["answer"]["signature"][:64] not in text
    for use in uses.json():
        assert not {"document", "signature", "subject_token"} & set(use)


@pytest.mark.requirement(
    "IC-XPROV-003", catches=("use-unrecorded", "digest-wrong", "issuer-unrecorded")
)
def test_every_exchange_is_recorded_at_the_hub_and_the_issuer(
    delivered: dict[str, Any],
    hub_client: httpx.Client,
    supervise: dict[str, str],
    credential: Callable[[str], str],
    target: Any,
) -> None:
    request, answer = delivered["request"], delivered["answer"]
    uses = hub_client.get(
        "exchange/uses", params={"identifier": request["identifier"]}, headers=supervise
    ).json()
    mine = [u for u in uses if u["copy_id"] == answer["copy_id"]]
    assert len(mine) == 1, uses
    use = mine[0]
    assert (use["requester_region"], use["issuer_region"], use["outcome"]) == (
        target.region_code,
        request["issuer_region"],
        "delivered",
    )
    assert (use["identifier"], use["cause"]) == (request["identifier"], request["cause"])
    assert datetime.fromisoformat(use["copy_expires_at"]) == datetime.fromisoformat(
        request["expires_at"]
    )
    digest = hashlib.sha256(base64.b64decode(answer["document"])).hexdigest()
    assert use["copy_sha256"] == digest
    assert (use["case_number"], use["issuer_status"]) == (request["case_number"], 201), use
    # Listed under both provinces it concerns, and under no third one.
    for region, expected in (
        (target.region_code, 1),
        (request["issuer_region"], 1),
        (_third_region(target.region_code, request["issuer_region"]), 0),
    ):
        listed = hub_client.get(
            "exchange/uses",
            params={"region": region, "identifier": request["identifier"]},
            headers=supervise,
        )
        assert listed.status_code == 200, listed.text[:300]
        ids = [u["copy_id"] for u in listed.json()]
        assert ids.count(answer["copy_id"]) == expected, (region, ids)
        assert all(region in (u["requester_region"], u["issuer_region"]) for u in listed.json())
    # A pseudonymous subject, never a resident ID number (nor one masked).
    assert use["subject"]
    assert not RESIDENT_ID.search(use["subject"]), use["subject"]
    # The issuing province's usage records (用证记录) list the same copy and cause.
    usage = httpx.get(
        f"{credential('xprov_issuer_elicense_url').rstrip('/')}/me/licences/"
        f"{request['identifier']}/usage",
        headers={"Authorization": f"Bearer {credential('xprov_issuer_holder_token')}"},
        timeout=30.0,
    )
    assert usage.status_code == 200, usage.text[:300]
    copies = [u for u in usage.json() if u["copy_id"] == answer["copy_id"]]
    assert [(u["action"], u["cause"]) for u in copies] == [("copy", request["cause"])]


def _third_region(*regions: str) -> str:
    return next(r for r in ("110000", "120000", "130000") if r not in regions)


@pytest.mark.requirement("IC-XPROV-001", catches=("misrouted",))
@pytest.mark.parametrize("issuer", ["own-province", "unregistered-province"])
def test_an_exchange_naming_no_other_registered_province_is_refused(
    province: Province,
    credential: Callable[[str], str],
    hub_client: httpx.Client,
    supervise: dict[str, str],
    target: Any,
    issuer: str,
) -> None:
    region = target.region_code if issuer == "own-province" else "990000"
    identifier = credential("xprov_licence_id")
    before = hub_client.get(
        "exchange/uses", params={"region": region, "identifier": identifier}, headers=supervise
    ).json()
    request = exchange_request(credential, issuer_region=region)
    response = province.send(EXCHANGE, request, credential("hub_exchange_token"))
    # Its own licences a province asks of its own library; an unregistered one has none.
    status = 422 if issuer == "own-province" else 404
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json().get("status") == status, response.json()
    assert "zwfw-issuer-region" not in response.headers, response.headers
    after = hub_client.get(
        "exchange/uses", params={"region": region, "identifier": identifier}, headers=supervise
    ).json()
    assert [u["id"] for u in after] == [u["id"] for u in before], after[:3]


@pytest.mark.requirement("IC-XPROV-003", catches=("refusal-unrecorded",))
def test_a_refused_exchange_is_recorded_too(
    province: Province,
    credential: Callable[[str], str],
    hub_client: httpx.Client,
    supervise: dict[str, str],
) -> None:
    identifier = credential("xprov_licence_id")
    before = len(
        hub_client.get("exchange/uses", params={"identifier": identifier}, headers=supervise).json()
    )
    # A licence the citizen does not hold at the issuer: refused there, and recorded.
    parts = identifier.split(".")
    unknown = str(build_licence_id(parts[5], parts[6], "ZZ" + parts[7][2:], parts[8]))
    response = province.send(
        EXCHANGE, exchange_request(credential, identifier=unknown), credential("hub_exchange_token")
    )
    assert response.status_code == 404, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json().get("issuer_status") == 404, response.json()
    refused = hub_client.get("exchange/uses", params={"identifier": unknown}, headers=supervise)
    outcomes = [(u["outcome"], u["issuer_status"], u["copy_id"]) for u in refused.json()]
    assert ("refused", 404, None) in outcomes, outcomes
    after = len(
        hub_client.get("exchange/uses", params={"identifier": identifier}, headers=supervise).json()
    )
    assert after == before


@pytest.mark.requirement("IC-XPROV-001", catches=("expiry-unchecked", "expiry-routed"))
@pytest.mark.parametrize("expiry", ["past", "years-ahead"])
def test_a_copy_expiring_outside_its_window_is_refused_by_the_hub(
    province: Province,
    credential: Callable[[str], str],
    hub_client: httpx.Client,
    supervise: dict[str, str],
    expiry: str,
) -> None:
    # Both sides of the copy's life: already over, and far beyond any allowed life. The hub
    # refuses either itself: routed, the citizen's token would reach the issuing province
    # for a copy that cannot be made.
    now = datetime.now(UTC).replace(microsecond=0)
    expires = now - timedelta(hours=1) if expiry == "past" else now + timedelta(days=3650)
    request = exchange_request(credential, expires_at=expires.isoformat())

    def uses() -> list[dict[str, Any]]:
        answer = hub_client.get(
            "exchange/uses", params={"identifier": request["identifier"]}, headers=supervise
        )
        assert answer.status_code == 200, f"GET exchange/uses: {answer.status_code}"
        return list(answer.json())

    before = {u["id"] for u in uses()}
    response = province.send(EXCHANGE, request, credential("hub_exchange_token"))
    assert response.status_code == 422, (
        f"a copy expiring {expiry} was answered HTTP {response.status_code}, not refused as "
        f"unprocessable: {response.text[:300]}"
    )
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "zwfw-issuer-region" not in response.headers, response.headers
    new = [u for u in uses() if u["id"] not in before]
    delivered = [u for u in new if u["outcome"] == "delivered"]
    assert delivered == [], f"a copy expiring {expiry} was delivered or routed: {delivered}"
    routed = [u for u in new if u.get("issuer_status") is not None]
    assert routed == [], f"a copy expiring {expiry} was routed to the issuing province: {routed}"
