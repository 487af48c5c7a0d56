"""Interconnection end to end: the national IdP and hub, and provinces A (340000) and B
(330000), each service its own process started by ``zwfw.reference``.

A citizen with a national account holds a business licence issued by B; signed in once at the
national IdP and federated into A by token exchange, they apply in A for an item whose
business licence may be replaced by an e-licence (免证办). A's hall fetches the licence through
the hub from B's library, the case runs through its steps, a bad rating opens a rectification
task, staff close it, and the hub sees all of it, even across a hub outage.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from zwfw.codes.workdays import WorkdayCalendar
from zwfw.reference import ReferencePlatform
from zwfw.reference.platform import FORM_MATERIAL, LICENCE_MATERIAL

A, B = "340000", "330000"
ZWFW = str(Path(sys.executable).with_name("zwfw"))
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferencePlatform]:
    with ReferencePlatform(tmp_path_factory.mktemp("reference")) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, Any]:
    # Only to look at what the IdP put in; the services verify signatures themselves.
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def eventually(fetch: Callable[[], httpx.Response], timeout: float = 30.0) -> httpx.Response:
    """The first 200 answer of ``fetch`` (the outbox delivers asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        response = fetch()
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def application(platform: ReferencePlatform, materials: list[dict[str, Any]]) -> dict[str, Any]:
    assert platform.citizen is not None
    return {
        "implementation_code": platform.provinces[A].spec.implementation_code,
        "channel": "online",
        "applicant": {
            "name": platform.citizen.name,
            "certificate_type": "10",
            "certificate_number": platform.citizen.id_number,
        },
        "materials": materials,
    }


def china_today() -> date:
    # Deadlines count from the Beijing calendar date.
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def form_upload() -> dict[str, Any]:
    return {
        "name": FORM_MATERIAL,
        "gettype": 2,
        "media_type": "application/pdf",
        "content_base64": base64.b64encode(b"%PDF-1.7 project filing form").decode(),
    }


@pytest.fixture(scope="module")
def citizen(platform: ReferencePlatform) -> dict[str, str]:
    """The citizen's national token, and their token at A obtained by token exchange."""
    national = platform.person_token("national", "citizen")
    at_a = platform.exchange_token(
        A, national, audience=platform.url(A, "hall"), scope="openid elicense:consent"
    )
    return {"national": national, "a": at_a}


def test_the_citizen_is_federated_into_province_a(
    platform: ReferencePlatform, citizen: dict[str, str]
) -> None:
    assert platform.citizen is not None
    federated = claims(citizen["a"])
    assert federated["iss"] == platform.url(A, "identity")
    assert federated["sub"] == platform.citizen.sub == claims(citizen["national"])["sub"]
    assert federated["federated_from"] == platform.url("national", "identity")
    assert federated["user_type"] == "person"


@pytest.fixture(scope="module")
def cross_province_case(platform: ReferencePlatform, citizen: dict[str, str]) -> dict[str, Any]:
    licence = platform.provinces[B].licences["citizen"]
    body = application(
        platform,
        [form_upload(), {"name": LICENCE_MATERIAL, "gettype": 3, "licence_id": licence}],
    )
    response = httpx.post(
        platform.url(A, "hall") + "/cases",
        json=body,
        headers={**bearer(citizen["a"]), "Zwfw-Subject-Token": citizen["national"]},
        timeout=60.0,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_licence_of_b_is_used_in_a_through_the_hub(
    platform: ReferencePlatform, citizen: dict[str, str], cross_province_case: dict[str, Any]
) -> None:
    licence = platform.provinces[B].licences["citizen"]
    material = cross_province_case["materials"][1]
    copy = material["licence_copy"]
    assert (material["licence_id"], copy["route"], copy["issuer_region"]) == (licence, "hub", B)
    assert copy["cause"] == material["licence_cause"]
    assert "企业投资项目备案" in copy["cause"]
    assert copy["es_id"] == platform.provinces[B].seal_es_id

    # B's usage records (用证记录), as the holder sees them at B: the hub made the copy.
    at_b = platform.exchange_token(
        B, citizen["national"], audience=platform.url(B, "elicense"), scope="elicense:read"
    )
    usage = httpx.get(
        f"{platform.url(B, 'elicense')}/me/licences/{licence}/usage",
        headers=bearer(at_b),
        timeout=20.0,
    )
    assert usage.status_code == 200, usage.text
    copies = [u for u in usage.json() if u["action"] == "copy"]
    assert [(u["actor"], u["copy_id"], u["cause"]) for u in copies] == [
        ("national-hub", copy["copy_id"], copy["cause"])
    ]

    # The hub's record of the exchange: who asked whom, for what, and the copy's digest.
    supervise = platform.national_token("national-ops", "hub:supervise")
    uses = httpx.get(
        platform.url("national", "hub") + "/exchange/uses",
        params={"identifier": licence},
        headers=bearer(supervise),
        timeout=20.0,
    )
    assert uses.status_code == 200, uses.text
    [use] = uses.json()
    assert (use["requester_region"], use["issuer_region"], use["outcome"]) == (A, B, "delivered")
    assert (use["copy_id"], use["copy_sha256"]) == (copy["copy_id"], copy["sha256"])
    assert use["cause"] == copy["cause"]


def test_without_the_national_token_the_licence_of_b_is_refused(
    platform: ReferencePlatform, citizen: dict[str, str]
) -> None:
    licence = platform.provinces[B].licences["citizen"]
    body = application(
        platform,
        [form_upload(), {"name": LICENCE_MATERIAL, "gettype": 3, "licence_id": licence}],
    )
    response = httpx.post(
        platform.url(A, "hall") + "/cases", json=body, headers=bearer(citizen["a"]), timeout=30.0
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "national token" in response.json()["detail"]
    # Another person's national token is no consent for this citizen's licence.
    other = platform.person_token(B, "applicant")
    response = httpx.post(
        platform.url(A, "hall") + "/cases",
        json=body,
        headers={**bearer(citizen["a"]), "Zwfw-Subject-Token": other},
        timeout=30.0,
    )
    assert response.status_code == 422, response.text


def test_the_case_runs_to_its_end_and_a_bad_rating_is_rectified(
    platform: ReferencePlatform, citizen: dict[str, str], cross_province_case: dict[str, Any]
) -> None:
    number = cross_province_case["case_number"]
    hall = platform.url(A, "hall")
    staff = bearer(platform.province_token(A, f"staff-{A}", "hall:case:handle hall:rectification"))

    def step(nodetype: int, noderesult: int) -> httpx.Response:
        return httpx.post(
            f"{hall}/cases/{number}/steps",
            json={"nodetype": nodetype, "noderesult": noderesult, "handler_name": "李四"},
            headers=staff,
            timeout=20.0,
        )

    illegal = step(3, 1)  # the end before the start
    assert illegal.status_code == 409
    assert illegal.json()["rule"] == "step-start-first"
    for nodetype, noderesult in ((1, 4), (2, 1), (3, 1)):
        response = step(nodetype, noderesult)
        assert response.status_code == 201, response.text
    assert response.json()["state"] == "finished"

    rated = httpx.post(
        f"{hall}/cases/{number}/evaluation",
        json={"level": 1, "text": "材料被要求重复提交"},
        headers=bearer(citizen["a"]),
        timeout=20.0,
    )
    assert rated.status_code == 201, rated.text
    task = rated.json()["rectification"]
    assert task["state"] == "open"
    assert task["working_days"] == 5
    expected = WorkdayCalendar().add(china_today(), 5)
    assert task["deadline"] == expected.date.isoformat()
    closed = httpx.post(
        f"{hall}/rectifications/{task['id']}/close",
        json={"response": "已整改：取消重复提交要求并回访"},
        headers=staff,
        timeout=20.0,
    )
    assert closed.status_code == 200, closed.text

    # Everything reaches the hub through the outbox.
    supervise = bearer(platform.national_token("national-ops", "hub:supervise"))
    hub = platform.url("national", "hub")

    def reported_case() -> httpx.Response:
        response = httpx.get(f"{hub}/cases/{number}", headers=supervise, timeout=10.0)
        if response.status_code == 200 and response.json()["state"] != "finished":
            return httpx.Response(425)
        return response

    case = eventually(reported_case)
    assert case.status_code == 200, case.text
    assert case.json()["licence_materials"] == 1
    assert [s["nodetype"] for s in case.json()["steps"]] == [1, 2, 3]

    def reported_evaluation() -> httpx.Response:
        response = httpx.get(f"{hub}/evaluations/{number}", headers=supervise, timeout=10.0)
        if response.status_code == 200 and response.json()["rectification_state"] != "closed":
            return httpx.Response(425)
        return response

    evaluation = eventually(reported_evaluation)
    assert evaluation.status_code == 200, evaluation.text
    assert evaluation.json()["level"] == 1
    assert evaluation.json()["rectification_deadline"] == task["deadline"]
    assert evaluation.json()["rectification_response"] == "已整改：取消重复提交要求并回访"


def test_a_hub_outage_loses_no_report(platform: ReferencePlatform, citizen: dict[str, str]) -> None:
    platform.stop_service("national", "hub")
    try:
        response = httpx.post(
            platform.url(A, "hall") + "/cases",
            json=application(platform, [form_upload()]),
            headers=bearer(citizen["a"]),
            timeout=30.0,
        )
        assert response.status_code == 201, response.text
        number = response.json()["case_number"]
        time.sleep(1.5)  # the hall tries, fails and backs off while the hub is down
    finally:
        platform.start_service("national", "hub")
    supervise = bearer(platform.national_token("national-ops", "hub:supervise"))
    case = eventually(
        lambda: httpx.get(
            f"{platform.url('national', 'hub')}/cases/{number}", headers=supervise, timeout=10.0
        )
    )
    assert case.status_code == 200, case.text
    assert case.json()["state"] == "submitted"


def test_certify_province_a_against_the_reference(
    platform: ReferencePlatform, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWFW_REF_")}
    env.update(platform.credentials(A))
    env["ZWFW_HARNESS_HOME"] = str(tmp_path / "harness")
    result = subprocess.run(
        [ZWFW, "certify", "--target", str(platform.profile_path(A)), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    failing = {
        r["id"]: r.get("reason")
        for r in report["requirements"]
        if r["in_scope"] and r["status"] != "pass"
    }
    assert failing == {}, result.stdout[-3000:] + result.stderr[-2000:]
    assert report["certified"] is True
    assert result.returncode == 0
    verified = subprocess.run(
        [ZWFW, "verify-report", str(out)], env=env, capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_generated_env_file_is_private(platform: ReferencePlatform) -> None:
    path = platform.env_path(A)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text(encoding="utf-8")
    # Every credential the profile names is in it; the profile itself holds no secret.
    profile = platform.profile_path(A).read_text(encoding="utf-8")
    for name in platform.credentials(A):
        assert f"export {name}=" in text
        assert f"env: {name}" in profile
    assert "PRIVATE KEY" not in profile
    assert "eyJ" not in profile  # no token either


def test_only_the_elicense_service_seals_with_the_issuers_licence_seal(
    platform: ReferencePlatform,
) -> None:
    """The province's signing client may seal with the certification test issuer's seal,
    never with the real issuer's: that is the e-licence service's alone."""
    from zwfw.crypto import ses

    a = platform.provinces[A]
    issuer = bearer(platform.province_token(A, f"ops-{A}", "elicense:issue"))
    licence = httpx.get(
        f"{a.url('elicense')}/licences/{a.licences['applicant']}", headers=issuer, timeout=20.0
    )
    assert licence.status_code == 200, licence.text
    # The seal a licence carries lists exactly one signer certificate: the e-licence service's.
    seal = ses.parse_signature(base64.b64decode(licence.json()["signature"]))["to_sign"]["eseal"]
    assert str(seal["e_seal_info"]["es_id"].native) == a.seal_es_id
    assert len(seal["e_seal_info"]["property"]["cert_list"]) == 1
    signer = bearer(platform.province_token(A, f"signer-{A}", "eseal:sign"))
    body = {"digest": "00" * 32, "property_info": "licence:e2e"}
    refused = httpx.post(
        f"{a.url('eseal')}/seals/{a.seal_es_id}/sign", json=body, headers=signer, timeout=20.0
    )
    assert refused.status_code == 403, refused.text
    test_seal = httpx.post(
        f"{a.url('eseal')}/seals/{a.test_seal_es_id}/sign", json=body, headers=signer, timeout=20.0
    )
    assert test_seal.status_code == 200, test_seal.text
    issuers = httpx.get(f"{a.url('elicense')}/issuers", timeout=20.0).json()["issuers"]
    assert {i["issuer_code"]: i["es_id"] for i in issuers} == {
        a.spec.issuer_code: a.seal_es_id,
        a.spec.test_issuer_code: a.test_seal_es_id,
    }
