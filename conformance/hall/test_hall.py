"""The hall (IC-DISC, IC-CAT, IC-CASE, IC-EVAL): discovery, catalog, cases, evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from zwfw.codes import (
    CodeError,
    parse_case_number,
    parse_credit_code,
    parse_handling_item_code,
    parse_implementation_code,
)
from zwfw.codes.workdays import WorkdayCalendar
from zwfw.harness.profile import TargetProfile

from .conftest import Actor, application_for, published_items, step

PROBLEM = "application/problem+json"
BEIJING = ZoneInfo("Asia/Shanghai")


def is_problem(response: httpx.Response, status: int | tuple[int, ...]) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, f"expected {statuses}, got {response.status_code}"
    assert response.headers.get("content-type", "").startswith(PROBLEM), (
        f"expected {PROBLEM}, got {response.headers.get('content-type')}"
    )


@pytest.mark.requirement("IC-DISC-001")
def test_discovery_document(hall_client: httpx.Client, target: TargetProfile) -> None:
    response = hall_client.get(".well-known/zwfw")
    assert response.status_code == 200, f"GET /.well-known/zwfw: {response.status_code}"
    document = response.json()
    assert document.get("region_code") == target.region_code, (
        f"region_code {document.get('region_code')!r}, certified as {target.region_code}"
    )
    assert isinstance(document.get("spec_version"), str)
    assert document["spec_version"]
    services = document.get("services") or {}
    for name in ("hall", "identity"):
        assert str(services.get(name, "")).startswith(("https://", "http://")), (
            f"services.{name} missing"
        )
    endpoints = document.get("endpoints") or {}
    for name in ("catalog", "cases"):
        assert endpoints.get(name), f"endpoints.{name} missing"
    jwks = document.get("jwks_uris") or {}
    assert jwks, "jwks_uris lists no token issuer"
    for name, uri in jwks.items():
        assert str(uri).startswith(("https://", "http://")), f"jwks_uris.{name} is not a URL"


def _codes_problems(item: dict[str, Any]) -> list[str]:
    problems = []
    code = item["implementation_code"]
    guide = item["guide"]
    try:
        parse_implementation_code(code)
        parse_credit_code(guide["dept_code"])
    except CodeError as error:
        return [f"{code}: {error}"]
    if guide["dept_code"] != code[:18]:
        problems.append(f"{code}: dept_code {guide['dept_code']} is not the implementing body")
    if item.get("basic_code") != code[19:]:
        problems.append(f"{code}: basic_code {item.get('basic_code')} is not {code[19:]}")
    for handling in guide.get("handling_items", []):
        try:
            parse_handling_item_code(handling["code"])
        except CodeError as error:
            problems.append(f"{code}: {error}")
            continue
        if handling["code"][:31] != code:
            problems.append(f"{code}: handling item {handling['code']} is of another item")
    return problems


@pytest.mark.requirement("IC-CAT-001")
def test_catalog_codes_are_valid(hall_client: httpx.Client) -> None:
    items = published_items(hall_client)
    assert items, "the catalog has no published item"
    problems = [p for item in items for p in _codes_problems(item)]
    assert not problems, "; ".join(problems[:5]) + (
        f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    )


GUIDE_TEXT = ("accept_condition", "link_way", "supervise_way", "transact_addr", "transact_time")
GUIDE_LISTS = ("by_law", "handle_flow", "handle_type", "server_type")
MATERIAL_FIELDS = ("name", "basis", "formats", "copies", "seal_required", "signature_required")


def _guide_problems(item: dict[str, Any]) -> list[str]:
    code, guide = item["implementation_code"], item["guide"]
    problems = [f"{code}: {name} is empty" for name in GUIDE_TEXT if not guide.get(name)]
    problems += [f"{code}: {name} lists nothing" for name in GUIDE_LISTS if not guide.get(name)]
    for name in ("anticipate_day", "promise_day", "limit_scene_num", "project_type"):
        if not isinstance(guide.get(name), int):
            problems.append(f"{code}: {name} is missing")
    same_unit = guide.get("promise_day_unit") == guide.get("anticipate_day_unit")
    if not problems and same_unit and guide["promise_day"] > guide["anticipate_day"]:
        problems.append(f"{code}: promised time limit exceeds the legal one")
    if guide.get("is_fee") and not all(f.get("standard") and f.get("basis") for f in guide["fees"]):
        problems.append(f"{code}: charges fees without standard and basis")
    for material in guide.get("materials", []):
        missing = [f for f in MATERIAL_FIELDS if material.get(f) in (None, "", [])]
        if missing:
            problems.append(f"{code}: material {material.get('name')!r} lacks {missing}")
    return problems


@pytest.mark.requirement("IC-CAT-002")
def test_catalog_guides_are_complete(hall_client: httpx.Client) -> None:
    items = published_items(hall_client)
    assert items, "the catalog has no published item"
    problems = [p for item in items for p in _guide_problems(item)]
    assert not problems, "; ".join(problems[:5])


@pytest.mark.requirement("IC-CAT-003")
def test_catalog_is_public_and_closed_to_anonymous_edits(
    hall_client: httpx.Client, applicant: Actor
) -> None:
    before = published_items(hall_client)
    assert before, "the catalog has no published item"
    guide = dict(before[0]["guide"], name="未经授权的修改")
    code = before[0]["implementation_code"]
    is_problem(hall_client.put(f"items/{code}/draft", json=guide), 401)
    is_problem(hall_client.post("items", json=guide), 401)
    is_problem(applicant.post("items", guide), (401, 403))
    after = hall_client.get(f"items/{code}")
    assert after.status_code == 200
    assert after.json()["guide"]["name"] == before[0]["guide"]["name"]


@pytest.mark.requirement("IC-CASE-001")
def test_case_runs_through_legal_steps(
    applicant: Actor, staff: Actor, concluded_case: dict[str, Any]
) -> None:
    number = concluded_case["case_number"]
    parsed = parse_case_number(number)
    assert str(parsed.implementation_code) == concluded_case["implementation_code"]
    seen = applicant.get(f"cases/{number}")
    assert seen.status_code == 200
    case = seen.json()
    assert case["state"] == "finished"
    assert [(s["nodetype"], s["noderesult"]) for s in case["steps"]] == [(1, 4), (2, 1), (3, 1)]
    applied = datetime.fromisoformat(case["applied_at"]).astimezone(BEIJING).date()
    assert parsed.day == applied, f"case number date {parsed.day}, applied {applied}"


@pytest.mark.requirement("IC-CASE-002")
def test_illegal_steps_are_refused(staff: Actor, submitted_case: dict[str, Any]) -> None:
    number = submitted_case["case_number"]
    for nodetype, noderesult in ((2, 1), (3, 1), (3, 7), (1, 0)):
        response = step(staff, number, nodetype, noderesult)
        is_problem(response, 409)
        assert response.json().get("rule"), "the refusal does not name the rule"
    for nodetype, noderesult in ((1, 4), (2, 1), (3, 1)):
        assert step(staff, number, nodetype, noderesult).status_code == 201
    is_problem(step(staff, number, 2, 1), 409)
    case = staff.get(f"cases/{number}").json()
    assert len(case["steps"]) == 3
    assert case["state"] == "finished"


@pytest.mark.requirement("IC-CASE-003")
def test_promised_deadline_counts_working_days(
    staff: Actor, submitted_case: dict[str, Any], hall_client: httpx.Client
) -> None:
    number = submitted_case["case_number"]
    response = step(staff, number, 1, 4)
    assert response.status_code == 201
    case = response.json()
    item = hall_client.get(f"items/{case['implementation_code']}").json()
    days, unit = item["guide"]["promise_day"], item["guide"]["promise_day_unit"]
    accepted = datetime.fromisoformat(case["accepted_at"]).astimezone(BEIJING).date()
    deadline = case["deadline"]
    assert deadline["promised_days"] == days
    if unit == "working_day":
        expected = WorkdayCalendar().add(accepted, days)
        assert deadline["date"] == expected.date.isoformat(), (
            f"{days} working days after {accepted} is {expected.date}, not {deadline['date']}"
        )
        assert deadline["provisional"] == expected.provisional


@pytest.mark.requirement("IC-CASE-004")
def test_applicants_see_only_their_own_cases(
    applicant: Actor, other_applicant: Actor, submitted_case: dict[str, Any]
) -> None:
    number = submitted_case["case_number"]
    is_problem(other_applicant.get(f"cases/{number}"), 404)
    listed = other_applicant.get("cases", params={"limit": 200}).json()
    assert number not in [c["case_number"] for c in listed["cases"]]
    mine = applicant.get(f"cases/{number}").json()
    assert "*" in mine["applicant"]["certificate_number"], "the ID number is not masked"


def rate(actor: Actor, number: str, **body: Any) -> httpx.Response:
    return actor.post(f"cases/{number}/evaluation", body)


@pytest.mark.requirement("IC-EVAL-001")
def test_concluded_case_is_rated_once(
    applicant: Actor,
    other_applicant: Actor,
    staff: Actor,
    person_item: dict[str, Any],
    target: TargetProfile,
) -> None:
    open_case = applicant.post("cases", application_for(person_item, target)).json()
    number = open_case["case_number"]
    is_problem(rate(applicant, number, level=5), 409)
    for nodetype, noderesult in ((1, 4), (2, 1), (3, 1)):
        step(staff, number, nodetype, noderesult)
    is_problem(rate(applicant, number, level=6), 422)
    is_problem(rate(other_applicant, number, level=5), (403, 404))
    first = rate(applicant, number, level=4, text="办理顺利")
    assert first.status_code == 201
    assert first.json()["level"] == 4
    is_problem(rate(applicant, number, level=5), 409)


@pytest.mark.requirement("IC-EVAL-002")
def test_bad_rating_opens_rectification(
    applicant: Actor, staff: Actor, concluded_case: dict[str, Any]
) -> None:
    number = concluded_case["case_number"]
    response = rate(applicant, number, level=1, text="多次往返")
    assert response.status_code == 201
    task = response.json()["rectification"]
    assert task is not None, "a 差评 opened no rectification task"
    assert task["state"] == "open"
    opened = datetime.fromisoformat(task["opened_at"]).astimezone(BEIJING).date()
    expected = WorkdayCalendar().add(opened, task["working_days"])
    assert task["deadline"] == expected.date.isoformat()
    closed = staff.post(f"rectifications/{task['id']}/close", {"response": "已整改并回访"})
    assert closed.status_code == 200
    assert closed.json()["state"] == "closed"
    is_problem(staff.post(f"rectifications/{task['id']}/close", {"response": "再次"}), 409)


@pytest.mark.requirement("IC-EVAL-003")
def test_follow_up_once(applicant: Actor, concluded_case: dict[str, Any]) -> None:
    number = concluded_case["case_number"]
    assert rate(applicant, number, level=3, text="一般").status_code == 201
    first = applicant.post(f"cases/{number}/evaluation/follow-up", {"text": "补充说明"})
    assert first.status_code == 200
    is_problem(applicant.post(f"cases/{number}/evaluation/follow-up", {"text": "再次"}), 409)
