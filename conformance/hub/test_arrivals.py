"""What arrived at the hub from the province under test: the suite applies at the province's
hall as a citizen, then looks at the hub (a certification sandbox, ``zwfw sandbox``, or the
reference platform) through its supervision API to see how the hall's report of that case
arrived: signed with the province's registered channel key, and stored once.

Runs when the profile names `hub_supervise_token` (a national-IdP token with `hub:supervise`
and `hub:provinces:read`: the sandbox's env file holds one); it also needs the hall suite's
`hall_applicant_token`. The hall reports through its outbox, so the suite waits for the
report up to twice the profile's `timeout_seconds` (at least 60 s).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from zwfw.codes.personal import build_resident_id
from zwfw.harness.profile import TargetProfile

PDF = b"%PDF-1.4\n% zwfw conformance material\n"


@pytest.fixture
def supervisor(target: TargetProfile, credential: Callable[[str], str]) -> dict[str, str]:
    if "hub_supervise_token" not in target.credentials:
        pytest.skip("the profile names no hub_supervise_token: arrivals cannot be inspected")
    return {"Authorization": f"Bearer {credential('hub_supervise_token')}"}


def _person_item(hall_client: httpx.Client) -> dict[str, Any]:
    offset = 0
    while True:
        response = hall_client.get("items", params={"limit": 500, "offset": offset})
        assert response.status_code == 200, f"GET items: {response.status_code}"
        page = response.json()
        for item in page["items"]:
            if "person" in item["guide"]["server_type"]:
                return item
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            pytest.fail("the hall publishes no item serving persons to apply for", pytrace=False)


def _application(item: dict[str, Any], target: TargetProfile) -> dict[str, Any]:
    materials = []
    for material in item["guide"]["materials"]:
        if not material.get("required", True):
            continue
        if "electronic" in material["formats"]:
            materials.append({
                "name": material["name"], "gettype": 2, "media_type": "application/pdf",
                "content_base64": base64.b64encode(PDF).decode(),
            })  # fmt: skip
        else:
            materials.append({"name": material["name"], "gettype": 1})
    number = build_resident_id(target.region_code, date(1990, 1, 1), 100 + secrets.randbelow(800))
    return {
        "implementation_code": item["implementation_code"],
        "channel": "online",
        "applicant": {"name": "到达测试申请人", "certificate_type": "10",
                      "certificate_number": str(number)},
        "materials": materials,
    }  # fmt: skip


@pytest.fixture
def arrived(
    hall_client: httpx.Client,
    hub_client: httpx.Client,
    supervisor: dict[str, str],
    credential: Callable[[str], str],
    target: TargetProfile,
) -> dict[str, Any]:
    """A case submitted at the hall, and what the hub holds of it once it arrived."""
    registered = hub_client.get(f"provinces/{target.region_code}", headers=supervisor)
    assert registered.status_code == 200, (
        f"GET provinces/{target.region_code} at the hub: {registered.status_code} "
        "(the supervise token needs hub:provinces:read)"
    )
    applicant = {"Authorization": f"Bearer {credential('hall_applicant_token')}"}
    submitted = hall_client.post(
        "cases", json=_application(_person_item(hall_client), target), headers=applicant
    )
    assert submitted.status_code == 201, f"POST cases: {submitted.status_code} {submitted.text}"
    number = submitted.json()["case_number"]
    deadline = time.monotonic() + max(60.0, 2 * target.timeout_seconds)
    while True:
        case = hub_client.get(f"cases/{number}", headers=supervisor)
        if case.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert case.status_code == 200, f"case {number} did not arrive at the hub: {case.status_code}"
    reports = hub_client.get(f"cases/{number}/reports", headers=supervisor)
    assert reports.status_code == 200, f"GET cases/{number}/reports: {reports.status_code}"
    return {
        "number": number,
        "case": case.json(),
        "reports": [r for r in reports.json() if r["kind"] == "case"],
        "province": registered.json(),
    }


@pytest.mark.requirement("IC-CHAN-001")
@pytest.mark.requirement("IC-CHAN-004", catches=("arrived-unregistered-key",))
def test_the_halls_report_arrives_signed_with_the_registered_key(
    arrived: dict[str, Any], target: TargetProfile
) -> None:
    assert arrived["reports"], "the hub shows the case but no case report of it"
    assert arrived["case"]["region_code"] == target.region_code
    registered_key = arrived["province"]["signing_key_id"]
    for report in arrived["reports"]:
        assert report["sender"] == target.region_code, report
        # The hub verifies every message against the registered channel certificate and
        # records which key it was; a report verified with any other key would show here.
        assert report["signing_key_id"] == registered_key, report


@pytest.mark.requirement("IC-CHAN-005", catches=("outbox-delivers-twice",))
def test_the_halls_report_arrives_once(arrived: dict[str, Any]) -> None:
    versions = [r["version"] for r in arrived["reports"]]
    # One delivery per version: a retry with a new Idempotency-Key would be a second row.
    assert len(versions) == len(set(versions)), arrived["reports"]
    first = [r for r in arrived["reports"] if r["version"] == min(versions)]
    assert len(first) == 1
    assert first[0]["outcome"] in ("stored", "superseded")
    stored = [r for r in arrived["reports"] if r["version"] == arrived["case"]["version"]]
    assert [r["outcome"] for r in stored] == ["stored"], arrived["reports"]
