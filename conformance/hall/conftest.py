"""What the hall suite needs from the target, all named in the target profile.

Credentials (each `{env: VAR}` in the profile's `credentials:`):

- `hall_applicant_token`: an access token of a test person (claim `user_type: person`) valid
  at the hall.
- `hall_other_applicant_token`: the same for a second test person.
- `hall_staff_token`: an access token of a test officer with the scopes `hall:case:handle`
  and `hall:rectification`.
- `hall_catalog_editor_token`: an access token with the scope `hall:catalog:write`; the
  catalog life-cycle check (IC-CAT-005) creates, edits and withdraws one certification test
  item with it per run (left withdrawn).
- For 免证办 (IC-CASE-009), the licence suite's `elicense_holder_token` (the same person as
  `hall_applicant_token`, holding a valid licence of the type a listed material takes) and
  `elicense_other_holder_token`.

The suite applies for the first published item that serves persons, as synthetic
applicants of the target's region, and drives those cases through the legal steps (special
procedures, 补齐补正 with the applicant's supplements, 不予受理 and 即办 included), rates them
and closes the rectification tasks bad ratings open; run it against a certification sandbox,
not production.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from zwfw.codes.personal import build_resident_id
from zwfw.harness.profile import TargetProfile

PDF = b"%PDF-1.4\n% zwfw conformance material\n"


class Actor:
    """One party at the hall: an httpx client plus its bearer token."""

    def __init__(self, client: httpx.Client, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers, **kw)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.client.post(path, json=body, headers=self.headers)


@pytest.fixture
def applicant(hall_client: httpx.Client, credential: Callable[[str], str]) -> Actor:
    return Actor(hall_client, credential("hall_applicant_token"))


@pytest.fixture
def other_applicant(hall_client: httpx.Client, credential: Callable[[str], str]) -> Actor:
    return Actor(hall_client, credential("hall_other_applicant_token"))


@pytest.fixture
def staff(hall_client: httpx.Client, credential: Callable[[str], str]) -> Actor:
    return Actor(hall_client, credential("hall_staff_token"))


@pytest.fixture
def catalog_editor(hall_client: httpx.Client, credential: Callable[[str], str]) -> Actor:
    return Actor(hall_client, credential("hall_catalog_editor_token"))


def published_items(hall_client: httpx.Client, page_size: int = 500) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = hall_client.get("items", params={"limit": page_size, "offset": offset})
        assert response.status_code == 200, f"GET items: {response.status_code} {response.text}"
        page = response.json()
        items.extend(page["items"])
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return items


@pytest.fixture
def person_item(hall_client: httpx.Client) -> dict[str, Any]:
    for item in published_items(hall_client):
        if "person" in item["guide"]["server_type"]:
            return item
    pytest.fail("the catalog has no published item serving persons to apply for", pytrace=False)


def application_for(item: dict[str, Any], target: TargetProfile) -> dict[str, Any]:
    """A complete application: every required material, electronic where the guide allows."""
    materials = []
    for material in item["guide"]["materials"]:
        if not material.get("required", True):
            continue
        if "electronic" in material["formats"]:
            materials.append(
                {
                    "name": material["name"],
                    "gettype": 2,
                    "media_type": "application/pdf",
                    "content_base64": base64.b64encode(PDF).decode(),
                }
            )
        else:
            materials.append({"name": material["name"], "gettype": 1})
    sequence = 100 + secrets.randbelow(800)
    return {
        "implementation_code": item["implementation_code"],
        "channel": "online",
        "applicant": {
            "name": "测试申请人",
            "certificate_type": "10",
            "certificate_number": str(
                build_resident_id(target.region_code, date(1990, 1, 1), sequence)
            ),
        },
        "materials": materials,
    }


def step(staff: Actor, number: str, nodetype: int, noderesult: int) -> httpx.Response:
    return staff.post(
        f"cases/{number}/steps",
        {"nodetype": nodetype, "noderesult": noderesult, "handler_name": "conformance"},
    )


@pytest.fixture
def submitted_case(
    applicant: Actor, person_item: dict[str, Any], target: TargetProfile
) -> dict[str, Any]:
    response = applicant.post("cases", application_for(person_item, target))
    assert response.status_code == 201, f"POST cases: {response.status_code} {response.text}"
    return response.json()


@pytest.fixture
def concluded_case(staff: Actor, submitted_case: dict[str, Any]) -> dict[str, Any]:
    number = submitted_case["case_number"]
    for nodetype, noderesult in ((1, 4), (2, 1), (3, 1)):
        response = step(staff, number, nodetype, noderesult)
        assert response.status_code == 201, (
            f"step {nodetype}/{noderesult}: {response.status_code} {response.text}"
        )
    return response.json()
