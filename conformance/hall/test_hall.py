"""The hall (IC-DISC, IC-CAT, IC-CASE, IC-EVAL): discovery, catalog, cases, evaluations."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from zwfw.codes import (
    CodeError,
    build_credit_code,
    build_licence_id,
    parse_case_number,
    parse_credit_code,
    parse_handling_item_code,
    parse_implementation_code,
    parse_licence_id,
)
from zwfw.codes.masking import mask_phone, mask_resident_id
from zwfw.codes.workdays import WorkdayCalendar
from zwfw.harness.profile import TargetProfile
from zwfw.harness.results import Inconclusive

from .conftest import PDF, Actor, application_for, published_items, step

PROBLEM = "application/problem+json"
BEIJING = ZoneInfo("Asia/Shanghai")


def is_problem(response: httpx.Response, status: int | tuple[int, ...]) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, f"expected {statuses}, got {response.status_code}"
    assert response.headers.get("content-type", "").startswith(PROBLEM), (
        f"expected {PROBLEM}, got {response.headers.get('content-type')}"
    )


PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


@pytest.mark.requirement(
    "IC-DISC-001",
    catches=(
        "wrong-region",
        "service-missing",
        "endpoint-missing",
        "jwks-missing",
        "jwks-unusable",
        "not-public",
        "endpoint-unusable",
        "service-wrong",
        "jwks-wrong",
        "hub-wrong",
    ),
)
def test_discovery_document(
    hall_client: httpx.Client, target_http: httpx.Client, target: TargetProfile
) -> None:
    response = hall_client.get(".well-known/zwfw")
    assert response.status_code == 200, f"GET /.well-known/zwfw: {response.status_code}"
    assert response.headers.get("content-type", "").startswith("application/json")
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
    # Values, not presence. The IdP is known by its issuer, however the harness reaches it; the
    # other services may be reached by another address than the one they publish.
    reached_at = target.base_url("identity") or str(services["identity"])
    idp = target_http.get(f"{reached_at.rstrip('/')}/.well-known/openid-configuration")
    assert idp.status_code == 200, f"the province's IdP discovery answers {idp.status_code}"
    idp_config = idp.json()
    assert str(services["identity"]).rstrip("/") == str(idp_config.get("issuer")).rstrip("/"), (
        f"services.identity is {services['identity']}, the province's IdP is "
        f"{idp_config.get('issuer')}"
    )
    if target.base_url("hub") is not None:
        assert str(document.get("hub") or "").startswith(("https://", "http://")), (
            f"the document names no national hub the province reports to: {document.get('hub')!r}"
        )
    endpoints = document.get("endpoints") or {}
    for name in ("catalog", "cases"):
        assert str(endpoints.get(name, "")).startswith(("https://", "http://")), (
            f"endpoints.{name} missing or not a URL"
        )
    # The endpoints named are the hall's own: the catalog is served there, cases need a token.
    catalog = target_http.get(str(endpoints["catalog"]))
    assert catalog.status_code == 200, f"endpoints.catalog answers {catalog.status_code}"
    assert "items" in catalog.json(), f"endpoints.catalog {endpoints['catalog']} is no catalog"
    cases = target_http.get(str(endpoints["cases"]))
    assert cases.status_code == 401, (
        f"endpoints.cases {endpoints['cases']} answers {cases.status_code} without a token"
    )
    jwks = document.get("jwks_uris") or {}
    assert jwks, "jwks_uris lists no token issuer"
    # The province's own IdP issues the tokens its services take first of all.
    idp_jwks = str(idp_config.get("jwks_uri", ""))
    assert idp_jwks in {str(uri) for uri in jwks.values()}, (
        f"jwks_uris ({sorted(jwks.values())}) does not list the IdP's key set {idp_jwks}"
    )
    for name, uri in jwks.items():
        assert str(uri).startswith(("https://", "http://")), f"jwks_uris.{name} is not a URL"
        # The URI must serve what token validation needs: a JWK set of public keys.
        served = target_http.get(str(uri))
        assert served.status_code == 200, f"jwks_uris.{name}: GET {uri} {served.status_code}"
        try:
            keys = served.json().get("keys")
        except ValueError:
            keys = None
        assert isinstance(keys, list), f"jwks_uris.{name}: {uri} serves no JWK set"
        assert keys, f"jwks_uris.{name}: {uri} serves an empty JWK set"
        for key in keys:
            assert key.get("kty"), f"jwks_uris.{name}: a key without kty"
            private = [m for m in PRIVATE_JWK_MEMBERS if m in key]
            assert not private, f"jwks_uris.{name}: key {key.get('kid')} has private {private}"


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


def item_detail(hall_client: httpx.Client, code: str) -> dict[str, Any]:
    response = hall_client.get(f"items/{code}")
    assert response.status_code == 200, f"GET items/{code}: {response.status_code}"
    detail: dict[str, Any] = response.json()
    return detail


@pytest.mark.requirement(
    "IC-CAT-001",
    catches=(
        "bad-implementation-code",
        "dept-mismatch",
        "basic-code-mismatch",
        "bad-handling-item",
        "detail-codes-differ",
    ),
)
def test_catalog_codes_are_valid(hall_client: httpx.Client) -> None:
    items = published_items(hall_client)
    assert items, "the catalog has no published item"
    problems = [p for item in items for p in _codes_problems(item)]
    # The codes a citizen or another province reads on the item's own pages must be the same.
    for item in items:
        code = item["implementation_code"]
        detail = item_detail(hall_client, code)
        problems += _codes_problems(detail)
        if detail["implementation_code"] != code or detail["basic_code"] != item["basic_code"]:
            problems.append(f"{code}: the detail shows {detail['implementation_code']}")
        versions = hall_client.get(f"items/{code}/versions")
        assert versions.status_code == 200, f"GET items/{code}/versions: {versions.status_code}"
        for version in versions.json():
            if version["implementation_code"] != code:
                problems.append(f"{code}: version {version['version']} shows another code")
            problems += _codes_problems(version)
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
    if not guide.get("materials"):
        problems.append(f"{code}: lists no material")
    for material in guide.get("materials", []):
        missing = [f for f in MATERIAL_FIELDS if material.get(f) in (None, "", [])]
        if missing:
            problems.append(f"{code}: material {material.get('name')!r} lacks {missing}")
    return problems


@pytest.mark.requirement(
    "IC-CAT-002",
    catches=(
        "field-missing",
        "promise-exceeds-legal",
        "fees-without-basis",
        "material-incomplete",
        "detail-incomplete",
    ),
)
def test_catalog_guides_are_complete(hall_client: httpx.Client) -> None:
    items = published_items(hall_client)
    assert items, "the catalog has no published item"
    problems = [p for item in items for p in _guide_problems(item)]
    for item in items:
        detail = item_detail(hall_client, item["implementation_code"])
        problems += _guide_problems(detail)
        if detail["guide"] != item["guide"]:
            differ = sorted(
                k
                for k in set(item["guide"]) | set(detail["guide"])
                if item["guide"].get(k) != detail["guide"].get(k)
            )
            problems.append(
                f"{item['implementation_code']}: the detail's guide differs in {differ}"
            )
    assert not problems, "; ".join(problems[:5])


@pytest.mark.requirement(
    "IC-CAT-003",
    catches=(
        "read-needs-auth",
        "anonymous-edit",
        "wrong-scope-edit",
        "not-problem",
        "refused-edit-applied",
        "draft-public",
    ),
)
def test_catalog_is_public_and_closed_to_anonymous_edits(
    hall_client: httpx.Client, applicant: Actor
) -> None:
    before = published_items(hall_client)
    assert before, "the catalog has no published item"
    code = before[0]["implementation_code"]
    published = item_detail(hall_client, code)
    versions_before = hall_client.get(f"items/{code}/versions").json()
    guide = dict(before[0]["guide"], name="未经授权的修改")
    is_problem(hall_client.put(f"items/{code}/draft", json=guide), 401)
    is_problem(hall_client.post("items", json=guide), 401)
    is_problem(
        hall_client.post(f"items/{code}/versions/{published['version']}/publish", json={}), 401
    )
    is_problem(applicant.post("items", guide), (401, 403))
    is_problem(applicant.client.put(f"items/{code}/draft", json=guide, headers=applicant.headers),
               (401, 403))  # fmt: skip
    is_problem(applicant.post(f"items/{code}/cancel", {"reason": "未经授权"}), (401, 403))
    # Drafts are the editors' work in progress, not the published catalog.
    is_problem(hall_client.get(f"items/{code}/draft"), 401)
    is_problem(applicant.get(f"items/{code}/draft"), (401, 403))
    after = item_detail(hall_client, code)
    assert after == published, "a refused edit changed the published item"
    versions_after = hall_client.get(f"items/{code}/versions").json()
    assert versions_after == versions_before, "a refused edit changed the item's versions"


def _offset_problems(where: str, values: dict[str, Any]) -> list[str]:
    problems = []
    for name, value in values.items():
        if value is None:
            continue
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            problems.append(f"{where}: {name} {value!r} is not an ISO 8601 timestamp")
            continue
        if moment.utcoffset() is None:
            problems.append(f"{where}: {name} {value!r} has no UTC offset")
    return problems


def unused_dept_code(used: set[str]) -> str:
    """A valid credit code of no implementing body in the catalog (for a filter that must
    match nothing)."""
    first = sorted(used)[0]
    for n in range(1, 1000):
        candidate = str(build_credit_code(f"{first[:8]}MA{n:07d}"))
        if candidate not in used:
            return candidate
    raise AssertionError("no unused credit code")


ITEM_TIMES = ("created_at", "updated_at", "published_at", "cancelled_at")


@pytest.mark.requirement(
    "IC-CAT-004",
    catches=("page-drops-or-repeats", "filter-ignored", "detail-differs", "naive-timestamp",
             "versions-current-wrong", "unknown-item", "page-bounds"),
)  # fmt: skip
def test_catalog_pages_filters_and_details_agree(hall_client: httpx.Client) -> None:
    whole = hall_client.get("items", params={"limit": 500})
    assert whole.status_code == 200
    everything = whole.json()
    assert everything["items"], "the catalog has no published item"
    codes = [item["implementation_code"] for item in everything["items"]]
    if everything["total"] <= 500:
        assert len(codes) == everything["total"], (
            f"total {everything['total']}, one page of 500 holds {len(codes)}"
        )
    # Every page size must give the same items once each, in the same order.
    paged = [i["implementation_code"] for i in published_items(hall_client, page_size=1)]
    assert len(paged) == len(set(paged)), "paging repeats an item"
    assert paged[: len(codes)] == codes, "paging by one item drops or reorders items"
    problems: list[str] = []
    for item in everything["items"]:
        code = item["implementation_code"]
        problems += _offset_problems(code, {k: item.get(k) for k in ITEM_TIMES})
        detail = item_detail(hall_client, code)
        if detail != item:
            differ = sorted(k for k in set(item) | set(detail) if item.get(k) != detail.get(k))
            problems.append(f"{code}: detail and list entry differ in {differ}")
    assert not problems, "; ".join(problems[:5])
    for dept in sorted({item["guide"]["dept_code"] for item in everything["items"]}):
        filtered = hall_client.get("items", params={"dept_code": dept, "limit": 500}).json()
        expected = [i["implementation_code"] for i in everything["items"]
                    if i["guide"]["dept_code"] == dept]  # fmt: skip
        shown = [i["implementation_code"] for i in filtered["items"]]
        assert shown == expected, f"dept_code={dept} lists {shown}, its items are {expected}"
        assert filtered["total"] == len(expected)
    unused = unused_dept_code({item["guide"]["dept_code"] for item in everything["items"]})
    other = hall_client.get("items", params={"dept_code": unused, "limit": 500})
    assert other.status_code == 200
    assert other.json()["items"] == [], "a dept_code filter of no body's code lists items"
    # The version history marks the detail's version, and only it, as current.
    for item in everything["items"][:3]:
        code = item["implementation_code"]
        history = hall_client.get(f"items/{code}/versions").json()
        current = [(v["version"], v["state"]) for v in history if v["current"]]
        assert current == [(item["version"], "published")], (
            f"{code}: the versions mark {current} current, the detail is {item['version']}"
        )
        assert all(v["state"] in ("published", "cancelled") for v in history), (
            f"{code}: the public history shows {[v['state'] for v in history]}"
        )
    # An item that is not in the catalog is not found, in detail and history alike.
    absent = f"{unused}{codes[0][18:]}"
    for path in (f"items/{absent}", f"items/{absent}/versions"):
        is_problem(hall_client.get(path), 404)
    # Page bounds of the interface (limit 1-500, offset from 0) are enforced, not stretched.
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        is_problem(hall_client.get("items", params=params), (400, 422))
    single = hall_client.get("items", params={"limit": 1})
    assert len(single.json()["items"]) == 1, "limit=1 does not give one item"


# --- IC-CAT-005: catalog edits reach every representation --------------------------------


def catalog_views(hall_client: httpx.Client, code: str, dept_code: str) -> dict[str, Any]:
    """How each public representation shows item ``code``: its list entries, its entries in
    its body's filter, the totals, its detail and its version history (None when not found)."""
    listed = [i for i in published_items(hall_client) if i["implementation_code"] == code]
    filtered = hall_client.get("items", params={"dept_code": dept_code, "limit": 500})
    assert filtered.status_code == 200, filtered.text[:300]
    total = hall_client.get("items", params={"limit": 1})
    assert total.status_code == 200, total.text[:300]
    views: dict[str, Any] = {
        "listed": listed,
        "filtered": [i for i in filtered.json()["items"] if i["implementation_code"] == code],
        "total": total.json()["total"],
        "dept_total": filtered.json()["total"],
    }
    for name, path in (("detail", f"items/{code}"), ("history", f"items/{code}/versions")):
        response = hall_client.get(path)
        assert response.status_code in (200, 404), f"GET {path}: {response.status_code}"
        if response.status_code == 404:
            is_problem(response, 404)
        views[name] = response.json() if response.status_code == 200 else None
    return views


def assert_not_shown(views: dict[str, Any], when: str) -> None:
    assert not views["listed"], f"{when}: the item is in the catalog list"
    assert not views["filtered"], f"{when}: the item is in its body's dept_code filter"
    assert views["detail"] is None, f"{when}: the item's detail is found"
    assert views["history"] is None, f"{when}: the item's version history is found"


def assert_shown(
    views: dict[str, Any], version: int, guide: dict[str, Any], history: list[tuple[int, str]],
    when: str,
) -> None:  # fmt: skip
    """Every representation shows ``version`` with ``guide`` as written, and the history is
    ``history`` ((version, state) in order) with only ``version`` current."""
    for name in ("listed", "filtered"):
        assert len(views[name]) == 1, f"{when}: the item is {len(views[name])} times in the {name}"
    entries = {
        "list": views["listed"][0], "filter": views["filtered"][0], "detail": views["detail"],
    }  # fmt: skip
    for name, entry in entries.items():
        assert entry is not None, f"{when}: the item's {name} is not found"
        assert (entry["version"], entry["state"]) == (version, "published"), (
            f"{when}: the {name} shows version {entry['version']} {entry['state']}"
        )
        assert entry["guide"] == guide, f"{when}: the {name} shows another guide than published"
        assert entry["name"] == guide["name"], f"{when}: the {name} shows the name {entry['name']}"
    assert views["detail"] == views["listed"][0], f"{when}: the detail differs from the list"
    shown = [(v["version"], v["state"]) for v in views["history"] or []]
    assert shown == history, f"{when}: the history shows {shown}, expected {history}"
    current = [v["version"] for v in views["history"] if v["current"]]
    assert current == [version], f"{when}: the history marks {current} current, not {version}"


def certification_item(model: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``model``'s guide under a fresh basic code of the same implementing body."""
    # The body's credit code rebuilt from its first 17 characters: the test item's codes are
    # the harness's own, valid whatever the catalog shows (IC-CAT-001 judges those).
    body = str(build_credit_code(model["implementation_code"][:17]))
    level = model["implementation_code"][18]
    code = f"{body}{level}{secrets.randbelow(10**12):012d}"
    guide = copy.deepcopy(model["guide"])
    guide["implementation_code"], guide["dept_code"] = code, body
    guide["name"] = f"互联互通测试事项（仅供认证测试）{code[-6:]}"
    for handling in guide.get("handling_items") or []:
        handling["code"] = code + handling["code"][31:]
    return guide


@pytest.mark.requirement(
    "IC-CAT-005",
    catches=("draft-shown", "publication-not-shown", "edit-not-shown", "withdrawal-not-shown"),
)
def test_catalog_edits_reach_every_representation_at_once(
    hall_client: httpx.Client, catalog_editor: Actor
) -> None:
    items = published_items(hall_client)
    assert items, "the catalog has no published item"
    first = certification_item(items[0])
    code, dept = first["implementation_code"], first["dept_code"]
    before = catalog_views(hall_client, code, dept)
    assert_not_shown(before, "before the item exists")
    created = catalog_editor.post("items", first)
    assert created.status_code == 201, f"the editor cannot create an item: {created.text[:300]}"
    drafted = catalog_views(hall_client, code, dept)
    assert_not_shown(drafted, "while the new item is a draft")
    assert (drafted["total"], drafted["dept_total"]) == (before["total"], before["dept_total"]), (
        "a draft is counted in the catalog's total"
    )
    published = catalog_editor.post(f"items/{code}/versions/1/publish", {})
    assert published.status_code == 200, published.text[:300]
    views = catalog_views(hall_client, code, dept)
    assert_shown(views, 1, first, [(1, "published")], "once published")
    counted = (before["total"] + 1, before["dept_total"] + 1)
    assert (views["total"], views["dept_total"]) == counted, (
        "the published item is not counted once in the catalog's totals"
    )
    second = dict(first, transact_time=f"{first['transact_time']}（互联互通测试第二版）")
    edited = catalog_editor.client.put(
        f"items/{code}/draft", json=second, headers=catalog_editor.headers
    )
    assert edited.status_code == 200, f"the editor cannot draft a new version: {edited.text[:300]}"
    version = edited.json()["version"]
    assert version == 2, f"the draft of a published item is version {version}"
    views = catalog_views(hall_client, code, dept)
    assert_shown(views, 1, first, [(1, "published")], "while version 2 is a draft")
    republished = catalog_editor.post(f"items/{code}/versions/2/publish", {})
    assert republished.status_code == 200, republished.text[:300]
    views = catalog_views(hall_client, code, dept)
    assert_shown(views, 2, second, [(1, "published"), (2, "published")], "once edited")
    reason = "互联互通测试结束"
    withdrawn = catalog_editor.post(f"items/{code}/cancel", {"reason": reason})
    assert withdrawn.status_code == 200, withdrawn.text[:300]
    views = catalog_views(hall_client, code, dept)
    assert not views["listed"], "a withdrawn item is still in the catalog list"
    assert not views["filtered"], "a withdrawn item is still in its body's dept_code filter"
    assert (views["total"], views["dept_total"]) == (before["total"], before["dept_total"]), (
        "a withdrawn item is still counted in the catalog's totals"
    )
    assert views["detail"] is None, "a withdrawn item's detail is still found"
    history = views["history"] or []
    last = history[-1] if history else {}
    assert (last.get("version"), last.get("state"), last.get("cancel_reason")) == (
        2, "cancelled", reason
    ), f"the withdrawn item's history ends with {last}"  # fmt: skip


# How many of the applicant's cases are walked in pages of two: every certification run adds
# cases to the test applicant, and a walk through all of them would grow with each run.
PAGED_WINDOW = 40


def all_cases(
    actor: Actor, page_size: int = 200, stop_after: int | None = None, **params: Any
) -> list[dict[str, Any]]:
    """Every case the actor's list shows, page by page (the first ``stop_after`` or more)."""
    cases: list[dict[str, Any]] = []
    while True:
        response = actor.get("cases", params={**params, "limit": page_size, "offset": len(cases)})
        assert response.status_code == 200, f"GET cases {params}: {response.status_code}"
        page = response.json()
        cases.extend(page["cases"])
        if not page["cases"] or len(cases) >= page["total"]:
            return cases
        if stop_after is not None and len(cases) >= stop_after:
            return cases


CASE_TIMES = ("applied_at", "accepted_at", "finished_at")


@pytest.mark.requirement(
    "IC-CASE-001",
    catches=(
        "case-number-format",
        "case-number-date",
        "case-number-repeated",
        "legal-step-refused",
        "steps-not-shown",
        "state-wrong-midway",
        "naive-timestamp",
    ),
)
def test_case_runs_through_legal_steps(
    applicant: Actor,
    staff: Actor,
    person_item: dict[str, Any],
    target: TargetProfile,
    concluded_case: dict[str, Any],
) -> None:
    number = concluded_case["case_number"]
    parsed = parse_case_number(number)
    assert str(parsed.implementation_code) == concluded_case["implementation_code"]
    seen = applicant.get(f"cases/{number}")
    assert seen.status_code == 200
    case = seen.json()
    assert case["state"] == "finished"
    assert case["result"] == "approved", f"concluded with 3/1 同意, result {case['result']}"
    assert case["finished_at"], "the concluded case has no finished_at"
    assert [(s["nodetype"], s["noderesult"]) for s in case["steps"]] == [(1, 4), (2, 1), (3, 1)]
    problems = _offset_problems(number, {k: case.get(k) for k in CASE_TIMES})
    for taken in case["steps"]:
        problems += _offset_problems(f"{number} step {taken['seq']}", {"at": taken["at"]})
    assert not problems, "; ".join(problems[:5])
    applied = datetime.fromisoformat(case["applied_at"]).astimezone(BEIJING).date()
    assert parsed.day == applied, f"case number date {parsed.day}, applied {applied}"
    # Two more applications: each gets its own number of the day's sequence.
    numbers = {number}
    for _ in range(2):
        response = applicant.post("cases", application_for(person_item, target))
        assert response.status_code == 201, f"POST cases: {response.status_code}"
        again = response.json()
        assert again["case_number"] not in numbers, f"case number {again['case_number']} repeated"
        parse_case_number(again["case_number"])
        numbers.add(again["case_number"])
    # Midway, after acceptance only: accepted, not concluded.
    assert step(staff, again["case_number"], 1, 4).status_code == 201
    midway = applicant.get(f"cases/{again['case_number']}").json()
    assert midway["state"] == "accepted", f"an accepted case is {midway['state']}"
    assert midway["accepted_at"], "an accepted case has no accepted_at"
    assert midway["finished_at"] is None, "an accepted case has a finished_at"
    assert midway["result"] is None, f"an accepted case has result {midway['result']}"


def _refusals(staff: Actor, number: str, pairs: list[tuple[int, int]]) -> list[str]:
    """Takes each step expecting a 409 naming a rule; the case must stay as it was."""
    before = staff.get(f"cases/{number}").json()
    problems = []
    for nodetype, noderesult in pairs:
        response = step(staff, number, nodetype, noderesult)
        where = f"step {nodetype}/{noderesult} in state {before['state']}"
        if response.status_code != 409:
            problems.append(f"{where}: {response.status_code}, not 409")
        elif not response.headers.get("content-type", "").startswith(PROBLEM):
            problems.append(f"{where}: refused as {response.headers.get('content-type')}")
        elif not response.json().get("rule"):
            problems.append(f"{where}: the refusal does not name the rule")
    after = staff.get(f"cases/{number}").json()
    if after != before:
        differ = sorted(k for k in before if before[k] != after.get(k))
        problems.append(f"refused steps in state {before['state']} changed the case: {differ}")
    return problems


ALLOWED = {1: {4, 5, 6}, 2: {0, 1, 5, 6, 7}, 3: {0, 1}, 4: {1, 2, 3, 4}}
NOT_ALLOWED = [(t, r) for t in range(1, 5) for r in range(8) if r not in ALLOWED[t]]
START_AGAIN = [(1, 4), (1, 5), (4, 1), (4, 4)]


@pytest.mark.requirement(
    "IC-CASE-002",
    catches=(
        "result-not-allowed",
        "before-acceptance",
        "after-acceptance",
        "after-conclusion",
        "rule-not-named",
        "refusal-changes-case",
        "during-special",
        "while-waiting",
        "waiting-after-acceptance",
        "after-start-end",
    ),
)
def test_illegal_steps_are_refused(
    applicant: Actor,
    staff: Actor,
    submitted_case: dict[str, Any],
    person_item: dict[str, Any],
    target: TargetProfile,
) -> None:
    number = submitted_case["case_number"]
    # Each state where a faulty state machine lets something through, not only the first.
    problems = _refusals(staff, number, [*NOT_ALLOWED, (2, 1), (2, 0), (3, 1), (3, 0)])
    assert step(staff, number, 1, 4).status_code == 201
    problems += _refusals(staff, number, [*START_AGAIN, (2, 7)])
    assert step(staff, number, 2, 1).status_code == 201
    problems += _refusals(staff, number, [*START_AGAIN, *NOT_ALLOWED[:4]])
    assert step(staff, number, 3, 1).status_code == 201
    problems += _refusals(staff, number, [(1, 4), (2, 1), (2, 7), (3, 1), (3, 0), (4, 1)])
    # While a special procedure runs, and while 补齐补正 waits for the applicant's materials.
    special, waiting, waiting_accepted, at_once = (
        applicant.post("cases", application_for(person_item, target)).json()["case_number"]
        for _ in range(4)
    )
    assert step(staff, special, 1, 6).status_code == 201
    problems += _refusals(staff, special, [(1, 6), (2, 1), (3, 1)])
    assert step(staff, special, 1, 4).status_code == 201
    assert step(staff, special, 2, 6).status_code == 201
    problems += _refusals(staff, special, [(2, 6), (2, 7), (1, 4)])
    assert step(staff, waiting, 1, 5).status_code == 201
    problems += _refusals(staff, waiting, [(1, 4), (4, 1), (2, 1)])
    # Waiting after acceptance: 不予受理 (4/3) no longer fits, nor does ending the case.
    assert step(staff, waiting_accepted, 1, 4).status_code == 201
    assert step(staff, waiting_accepted, 2, 5).status_code == 201
    problems += _refusals(staff, waiting_accepted, [(4, 3), (2, 1), (3, 1), (2, 6)])
    # 不予受理 concludes the case as surely as an end step.
    assert step(staff, waiting, 4, 3).status_code == 201
    problems += _refusals(staff, waiting, [(1, 4), (4, 1)])
    # So does 即办 (4/1), which never passed through the middle and end steps.
    assert step(staff, at_once, 4, 1).status_code == 201
    problems += _refusals(staff, at_once, [(2, 1), (3, 1), (2, 5), (1, 4)])
    assert not problems, "; ".join(problems[:6])
    case = staff.get(f"cases/{number}").json()
    assert len(case["steps"]) == 3
    assert case["state"] == "finished"


def _deadline_problems(case: dict[str, Any], guide: dict[str, Any], where: str) -> list[str]:
    """Where an accepted case's deadline is not the guide's promised days after acceptance."""
    days, unit = guide["promise_day"], guide["promise_day_unit"]
    deadline = case["deadline"] or {}
    if (deadline.get("promised_days"), deadline.get("unit")) != (days, unit):
        return [f"{where}: promised {deadline.get('promised_days')} {deadline.get('unit')}, "
                f"the guide {days} {unit}"]  # fmt: skip
    # From the province's own acceptance time in Beijing time: the verdict is the same
    # whatever the hour of the run.
    accepted = datetime.fromisoformat(case["accepted_at"]).astimezone(BEIJING).date()
    if unit == "working_day":
        expected = WorkdayCalendar().add(accepted, days)
        if deadline.get("date") != expected.date.isoformat():
            return [f"{where}: {days} working days after {accepted} is {expected.date}, "
                    f"not {deadline.get('date')}"]  # fmt: skip
        if deadline.get("provisional") != expected.provisional:
            return [f"{where}: provisional {deadline.get('provisional')}"]
    elif deadline.get("date") != (accepted + timedelta(days=days)).isoformat():
        return [f"{where}: {days} days after {accepted} is not {deadline.get('date')}"]
    return []


def _tells_working_days(days: int) -> bool:
    """Whether ``days`` working days from an acceptance today or tomorrow in Beijing (a run
    near midnight accepts on either) end on another day than as many calendar days."""
    today = datetime.now(BEIJING).date()
    return all(
        WorkdayCalendar().add(day, days).date != day + timedelta(days=days)
        for day in (today, today + timedelta(days=1))
    )


@pytest.fixture
def deadline_item(
    hall_client: httpx.Client, catalog_editor: Actor, person_item: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """An item whose promised working days tell working from calendar days for a case
    accepted during this run: the catalog's own item when they do, otherwise a certification
    item with more promised days (5 working days from a Sunday end on the Friday that 5
    calendar days reach too, so the verdict would depend on the day of the run)."""
    guide = person_item["guide"]
    if guide["promise_day_unit"] != "working_day" or _tells_working_days(guide["promise_day"]):
        yield person_item
        return
    own = certification_item(person_item)
    own["promise_day"] = next(
        n for n in range(guide["promise_day"] + 1, guide["promise_day"] + 15)
        if _tells_working_days(n)
    )  # fmt: skip
    own["anticipate_day"] = max(int(own.get("anticipate_day") or 0), own["promise_day"])
    code = own["implementation_code"]
    created = catalog_editor.post("items", own)
    assert created.status_code == 201, f"the editor cannot create an item: {created.text[:300]}"
    published = catalog_editor.post(f"items/{code}/versions/1/publish", {})
    assert published.status_code == 200, published.text[:300]
    try:
        yield {"implementation_code": code, "guide": own}
    finally:
        catalog_editor.post(f"items/{code}/cancel", {"reason": "互联互通测试结束"})


@pytest.mark.requirement(
    "IC-CASE-003",
    catches=(
        "calendar-days",
        "makeup-weekend",
        "utc-date",
        "wrong-promised-days",
        "provisional-wrong",
        "representations-differ",
    ),
)
def test_promised_deadline_counts_working_days(
    applicant: Actor, staff: Actor, deadline_item: dict[str, Any], hall_client: httpx.Client,
    target: TargetProfile,
) -> None:  # fmt: skip
    submitted = applicant.post("cases", application_for(deadline_item, target))
    assert submitted.status_code == 201, f"POST cases: {submitted.status_code} {submitted.text}"
    submitted_case = submitted.json()
    number = submitted_case["case_number"]
    assert submitted_case["deadline"] is None, "a case not yet accepted has a deadline"
    response = step(staff, number, 1, 4)
    assert response.status_code == 201
    case = response.json()
    item = item_detail(hall_client, case["implementation_code"])
    problems = _deadline_problems(case, item["guide"], "accepted")
    assert not problems, "; ".join(problems)
    deadline = case["deadline"]
    shown = applicant.get(f"cases/{number}").json()
    assert shown["deadline"] == deadline, f"the detail shows {shown['deadline']}"
    listed = [c for c in all_cases(applicant) if c["case_number"] == number]
    assert listed, "the accepted case is missing from its applicant's list"
    assert listed[0]["deadline"] == deadline, f"the list shows {listed[0]['deadline']}"


def _masking_problems(
    response: httpx.Response, id_number: str, phone: str, numbers: set[str]
) -> list[str]:
    """Where a case response shows personal data otherwise than masked."""
    where = f"{response.request.method} {response.request.url.path}"
    problems = []
    cache = response.headers.get("cache-control", "").lower()
    if "no-store" not in cache and "private" not in cache:
        problems.append(f"{where}: Cache-Control {cache!r} lets caches store it")
    for name, value in response.headers.items():
        if id_number in value or phone in value:
            problems.append(f"{where}: header {name} carries the full ID or phone number")
    if id_number in response.text or phone in response.text:
        problems.append(f"{where}: the body carries the full ID or phone number")
    body = response.json()
    cases = body.get("cases", []) if "cases" in body else [body]
    for case in cases:
        if case.get("case_number") not in numbers:
            continue
        shown = case["applicant"]
        if shown["certificate_number"] != mask_resident_id(id_number):
            problems.append(f"{where}: ID number shown as {shown['certificate_number']!r}")
        if shown.get("phone") != mask_phone(phone):
            problems.append(f"{where}: phone shown as {shown.get('phone')!r}")
    return problems


CASE_STATES = ("submitted", "accepted", "in_progress", "finished")


@pytest.mark.requirement(
    "IC-CASE-004",
    catches=(
        "detail-leak",
        "list-leak",
        "existence-oracle",
        "id-number-unmasked",
        "phone-unmasked",
        "personal-data-elsewhere",
        "cacheable",
        "lookup-open",
        "staff-views-unmasked",
    ),
)
def test_applicants_see_only_their_own_cases(
    applicant: Actor,
    other_applicant: Actor,
    staff: Actor,
    person_item: dict[str, Any],
    target: TargetProfile,
) -> None:
    application = application_for(person_item, target)
    phone = f"139{secrets.randbelow(10**8):08d}"
    application["applicant"]["phone"] = phone
    id_number = application["applicant"]["certificate_number"]
    applied = applicant.post("cases", application)
    assert applied.status_code == 201, f"POST cases: {applied.status_code}"
    number = applied.json()["case_number"]
    numbers = {number}
    problems = _masking_problems(applied, id_number, phone, numbers)
    accepted = step(staff, number, 1, 4)
    assert accepted.status_code == 201
    problems += _masking_problems(accepted, id_number, phone, numbers)
    for reader in (applicant, staff):
        problems += _masking_problems(reader.get(f"cases/{number}"), id_number, phone, numbers)
    mine = applicant.get("cases", params={"limit": 200})
    problems += _masking_problems(mine, id_number, phone, numbers)
    # Staff see the same masked numbers in their list and in a lookup by the full number.
    handled = staff.get("cases", params={"limit": 50})
    problems += _masking_problems(handled, id_number, phone, numbers)
    if number not in {c["case_number"] for c in handled.json().get("cases", [])}:
        problems.append("the staff's list of 50 does not show the new case")
    found = staff.post("cases/lookup", {"certificate_number": id_number})
    problems += _masking_problems(found, id_number, phone, numbers)
    assert not problems, "; ".join(problems[:5])

    # Another applicant: not found, exactly as a case that does not exist.
    theirs = other_applicant.get(f"cases/{number}")
    is_problem(theirs, 404)
    missing = other_applicant.get(f"cases/{number[:-4]}9999")
    is_problem(missing, 404)
    assert theirs.json().get("title") == missing.json().get("title"), (
        "another applicant's case answers otherwise than one that does not exist"
    )
    # Not in any of their lists: unfiltered on every page, per state, overdue.
    views: list[dict[str, Any]] = [{}, {"overdue": "true"}]
    views += [{"state": state} for state in CASE_STATES]
    for params in views:
        seen = [c["case_number"] for c in all_cases(other_applicant, page_size=20, **params)]
        assert number not in seen, f"another applicant lists the case (filter {params})"
    # Looking cases up by certificate number is for staff, not for another applicant.
    lookup = other_applicant.post("cases/lookup", {"certificate_number": id_number})
    is_problem(lookup, (401, 403))


@pytest.mark.requirement(
    "IC-CASE-005",
    catches=(
        "page-drops-or-repeats",
        "filter-ignored",
        "filter-stale",
        "list-differs",
        "staff-list-misses",
        "lookup-misses",
        "list-differs-after-steps",
        "staff-filter-ignored",
        "overdue-filter-ignored",
    ),
)
def test_case_lists_page_filter_and_agree_with_details(
    applicant: Actor, staff: Actor, person_item: dict[str, Any], target: TargetProfile
) -> None:
    new, id_numbers = [], []
    for _ in range(3):
        application = application_for(person_item, target)
        response = applicant.post("cases", application)
        assert response.status_code == 201, f"POST cases: {response.status_code}"
        new.append(response.json()["case_number"])
        id_numbers.append(application["applicant"]["certificate_number"])
    # Staff see every applicant's cases, and find them by the applicant's certificate number.
    handled = staff.get("cases", params={"limit": 50})
    assert handled.status_code == 200, f"GET cases (staff): {handled.status_code}"
    assert set(new) <= {c["case_number"] for c in handled.json()["cases"]}, (
        "the staff's list misses new cases"
    )
    found = staff.post("cases/lookup", {"certificate_number": id_numbers[0]})
    assert found.status_code == 200, f"POST cases/lookup: {found.status_code}"
    matches = [c["case_number"] for c in found.json()["cases"]]
    others = {n for n, i in zip(new[1:], id_numbers[1:], strict=True) if i != id_numbers[0]}
    assert new[0] in matches, f"a lookup by its applicant's number misses {new[0]}: {matches}"
    assert not others & set(matches), f"a lookup by one number finds others' cases {matches}"
    if len(matches) < 50:
        assert found.json()["total"] == len(matches), "the lookup's total is not its cases"
    whole = all_cases(applicant)
    numbers = [c["case_number"] for c in whole]
    paged = [c["case_number"] for c in all_cases(applicant, page_size=2, stop_after=PAGED_WINDOW)]
    assert len(paged) == len(set(paged)), "paging by two repeats a case"
    assert paged == numbers[: len(paged)], "paging by two drops or reorders cases"
    assert set(new) <= set(numbers), "a new case is missing from its applicant's list"
    for case in whole:
        if case["case_number"] in new:
            detail = applicant.get(f"cases/{case['case_number']}").json()
            differ = sorted(k for k in set(case) | set(detail) if case.get(k) != detail.get(k))
            assert not differ, f"{case['case_number']}: list and detail differ in {differ}"

    def listed(state: str) -> list[str]:
        cases = all_cases(applicant, state=state)
        wrong = [c["case_number"] for c in cases if c["state"] != state]
        assert not wrong, f"state={state} lists cases in other states: {wrong[:3]}"
        return [c["case_number"] for c in cases]

    assert set(new) <= set(listed("submitted")), "state=submitted misses submitted cases"
    assert not set(new) & set(listed("accepted"))
    # A step changes the state: the lists must follow at once.
    assert step(staff, new[0], 1, 4).status_code == 201
    assert new[0] in listed("accepted"), "an accepted case is missing from state=accepted"
    assert new[0] not in listed("submitted"), "an accepted case is still listed as submitted"
    entry = next(c for c in all_cases(applicant) if c["case_number"] == new[0])
    assert entry == applicant.get(f"cases/{new[0]}").json(), "list and detail differ after a step"
    # With several steps taken, the applicant's and the staff's lists show the case as its
    # detail does: the same steps in the same order, the same state and deadline.
    assert step(staff, new[0], 2, 1).status_code == 201
    detail = applicant.get(f"cases/{new[0]}").json()
    for who, actor in (("applicant's", applicant), ("staff's", staff)):
        entry = next(c for c in all_cases(actor, 50, stop_after=50) if c["case_number"] == new[0])
        differ = sorted(k for k in set(entry) | set(detail) if entry.get(k) != detail.get(k))
        assert not differ, f"the {who} list and the detail differ in {differ} after two steps"
    # The staff's state filter is as exact as the applicant's; overdue lists only open cases
    # past their deadline (none of the new ones, accepted today or not at all).
    handling = all_cases(staff, 50, stop_after=50, state="in_progress")
    assert new[0] in {c["case_number"] for c in handling}, "staff state=in_progress misses it"
    wrong = [c["case_number"] for c in handling if c["state"] != "in_progress"]
    assert not wrong, f"the staff's state=in_progress lists cases in other states: {wrong[:3]}"
    for who, actor in (("applicant's", applicant), ("staff's", staff)):
        overdue = all_cases(actor, 50, stop_after=50, overdue="true")
        wrong = [c["case_number"] for c in overdue
                 if c["case_number"] in new or not c["overdue"]]  # fmt: skip
        assert not wrong, f"the {who} overdue=true lists cases not overdue: {wrong[:3]}"


@pytest.mark.requirement("IC-CASE-005", catches=("page-bounds",))
def test_case_list_page_bounds_are_enforced(applicant: Actor, staff: Actor) -> None:
    # The interface's bounds (limit 1-200, offset from 0), on both sides, for both lists.
    for who, actor in (("applicant", applicant), ("staff", staff)):
        for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}):
            response = actor.get("cases", params=params)
            assert response.status_code in (400, 422), (
                f"the {who}'s GET cases {params}: {response.status_code}, not refused"
            )
            assert response.headers.get("content-type", "").startswith(PROBLEM)
        largest = actor.get("cases", params={"limit": 200})
        assert largest.status_code == 200, f"the {who}'s page of 200: {largest.status_code}"


def rate(actor: Actor, number: str, **body: Any) -> httpx.Response:
    return actor.post(f"cases/{number}/evaluation", body)


BAD_LEVELS: tuple[Any, ...] = (0, 6, -1, 4.5, "很好", None)
LEVEL_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


def _evaluation_problems(shown: dict[str, Any], given: dict[str, Any], where: str) -> list[str]:
    """Where an evaluation as shown differs from the rating given (GB/T 39734 levels)."""
    level = given["level"]
    expected = {
        "level": level,
        "level_name": LEVEL_NAMES[level],
        "bad": level <= 2,
        "dimensions": given.get("dimensions", {}),
        "text": given.get("text", ""),
        "channel": given.get("channel", "online"),
    }
    problems = [f"{where}: {name} {shown.get(name)!r}, rated {value!r}"
                for name, value in expected.items() if shown.get(name) != value]  # fmt: skip
    if (shown.get("rectification") is not None) != (level <= 2):
        problems.append(f"{where}: rated {level}, rectification {shown.get('rectification')}")
    return problems


@pytest.mark.requirement(
    "IC-EVAL-001",
    catches=("open-case-rated", "level-out-of-range", "other-rater", "second-rating",
             "level-not-kept", "shown-wrong", "bad-without-reason", "evaluation-leak",
             "not-accepted-unrated"),
)  # fmt: skip
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
    # Refused in each open state on the way, not only in the first.
    for nodetype, noderesult in ((1, 4), (2, 1)):
        step(staff, number, nodetype, noderesult)
        is_problem(rate(applicant, number, level=5), 409)
    step(staff, number, 3, 1)
    for level in BAD_LEVELS:
        is_problem(rate(applicant, number, level=level), (400, 422))
    # A dimension is rated on the same five levels; a 差评 says what went wrong.
    is_problem(rate(applicant, number, level=4, dimensions={"办理时效": 6}), (400, 422))
    is_problem(rate(applicant, number, level=4, dimensions={"办理时效": 0}), (400, 422))
    is_problem(rate(applicant, number, level=2), (400, 422))
    is_problem(rate(other_applicant, number, level=5), (403, 404))
    is_problem(rate(staff, number, level=5), (403, 404))
    given = {"level": 4, "text": "办理顺利", "dimensions": {"办理时效": 5, "服务态度": 4},
             "channel": "mobile"}  # fmt: skip
    first = rate(applicant, number, **given)
    assert first.status_code == 201, f"rating: {first.status_code} {first.text}"
    assert first.json()["level"] == 4
    is_problem(rate(applicant, number, level=5), 409)
    kept = applicant.get(f"cases/{number}/evaluation")
    assert kept.status_code == 200
    assert kept.json()["level"] == 4, f"rated 4, stored {kept.json()['level']}"
    problems = _evaluation_problems(first.json(), given, "the rating's answer")
    problems += _evaluation_problems(kept.json(), given, "the evaluation read back")
    assert not problems, "; ".join(problems[:5])
    # The evaluation is the applicant's: another applicant finds none, as for any case.
    is_problem(other_applicant.get(f"cases/{number}/evaluation"), 404)
    # 不予受理 concludes a case too: it is rated like one that was handled.
    refused = applicant.post("cases", application_for(person_item, target)).json()
    assert step(staff, refused["case_number"], 4, 3).status_code == 201
    given = {"level": 3, "text": "未予受理"}
    rated = rate(applicant, refused["case_number"], **given)
    assert rated.status_code == 201, f"rating a case not accepted: {rated.status_code}"
    problems = _evaluation_problems(rated.json(), given, "the rating of a case not accepted")
    assert not problems, "; ".join(problems[:5])


def _listed_tasks(staff: Actor, **params: Any) -> dict[int, dict[str, Any]]:
    response = staff.get("rectifications", params=params)
    assert response.status_code == 200, f"GET rectifications {params}: {response.status_code}"
    return {task["id"]: task for task in response.json()}


@pytest.mark.requirement(
    "IC-EVAL-002",
    catches=("no-task", "deadline-wrong", "close-refused", "closed-twice", "task-not-listed",
             "closed-still-open", "tasks-open-to-applicants", "applicant-closes",
             "rerated-after-closing"),
)  # fmt: skip
def test_bad_rating_opens_rectification(
    applicant: Actor, staff: Actor, concluded_case: dict[str, Any]
) -> None:
    number = concluded_case["case_number"]
    # Level 2 (不满意) is a 差评 as well as level 1.
    response = rate(applicant, number, level=2, text="多次往返")
    assert response.status_code == 201
    task = response.json()["rectification"]
    assert task is not None, "a 差评 opened no rectification task"
    assert task["state"] == "open"
    assert (task["case_number"], task["level"]) == (number, 2), f"the task shows {task}"
    opened = datetime.fromisoformat(task["opened_at"]).astimezone(BEIJING).date()
    expected = WorkdayCalendar().add(opened, task["working_days"])
    assert task["deadline"] == expected.date.isoformat()
    assert task["overdue"] is False, "a task opened today is overdue"
    # Staff find it among the open tasks (not the closed ones); applicants see no task list.
    assert _listed_tasks(staff, state="open").get(task["id"]) == task, "open tasks list it not so"
    assert task["id"] not in _listed_tasks(staff, state="closed"), "listed as closed while open"
    is_problem(applicant.get("rectifications"), (401, 403))
    # Nor do they close one: the rating's author is not the one who rectifies.
    is_problem(applicant.post(f"rectifications/{task['id']}/close", {"response": "自行关闭"}),
               (401, 403))  # fmt: skip
    assert _listed_tasks(staff, state="open").get(task["id"]) == task, "an applicant closed it"
    closed = staff.post(f"rectifications/{task['id']}/close", {"response": "已整改并回访"})
    assert closed.status_code == 200
    assert closed.json()["state"] == "closed"
    assert closed.json()["response"] == "已整改并回访"
    assert closed.json()["closed_at"], "a closed task has no closed_at"
    is_problem(staff.post(f"rectifications/{task['id']}/close", {"response": "再次"}), 409)
    # Every view follows the closing at once.
    seen = applicant.get(f"cases/{number}/evaluation").json()["rectification"]
    assert seen == closed.json(), f"the evaluation still shows the task as {seen}"
    assert _listed_tasks(staff, state="closed").get(task["id"]) == closed.json()
    assert task["id"] not in _listed_tasks(staff, state="open"), "a closed task is listed open"
    assert task["id"] not in _listed_tasks(staff, overdue="true"), "a closed task is overdue"
    # A rectified 差评 stays the case's one rating: no second rating replaces it.
    is_problem(rate(applicant, number, level=5), 409)
    kept = applicant.get(f"cases/{number}/evaluation").json()
    assert (kept["level"], kept["rectification"]) == (2, closed.json()), (
        f"after a refused second rating the evaluation shows level {kept['level']}"
    )


@pytest.mark.requirement(
    "IC-EVAL-003",
    catches=("follow-up-before-rating", "other-follows-up", "follow-up-not-kept",
             "second-follow-up", "follow-up-level"),
)  # fmt: skip
def test_follow_up_once(
    applicant: Actor, other_applicant: Actor, staff: Actor, concluded_case: dict[str, Any]
) -> None:
    number = concluded_case["case_number"]
    path = f"cases/{number}/evaluation/follow-up"
    is_problem(applicant.post(path, {"text": "未评先追"}), (404, 409))
    assert rate(applicant, number, level=3, text="一般").status_code == 201
    is_problem(other_applicant.post(path, {"text": "他人追评"}), (403, 404))
    # Staff may read the case, yet the follow-up is the applicant's word alone.
    is_problem(staff.post(path, {"text": "工作人员代追评"}), (403, 404))
    # A follow-up's level is one of the rating's five, as the rating's own.
    for level in (0, 6, 4.5, "很好"):
        is_problem(applicant.post(path, {"text": "追评", "level": level}), (400, 422))
    first = applicant.post(path, {"text": "补充说明", "level": 4})
    assert first.status_code == 200
    is_problem(applicant.post(path, {"text": "再次"}), 409)
    kept = applicant.get(f"cases/{number}/evaluation").json()
    follow_up = kept.get("follow_up") or {}
    assert (follow_up.get("text"), follow_up.get("level")) == ("补充说明", 4), (
        f"the follow-up is shown as {follow_up}"
    )
    assert _offset_problems("the follow-up", {"at": follow_up.get("at")}) == []
    assert follow_up.get("at"), "the follow-up has no time"
    assert kept["level"] == 3, f"a follow-up changed the rating to {kept['level']}"
    assert kept == first.json(), "the follow-up's answer and the evaluation read back differ"


def _at_hub(
    hub_client: httpx.Client,
    supervise: dict[str, str],
    number: str,
    wait: float,
    arrived: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """The case's evaluation at the hub once ``arrived`` holds for it (the hall reports through
    its outbox), or the last one seen."""
    deadline = time.monotonic() + wait
    shown: dict[str, Any] = {}
    while True:
        answer = hub_client.get(f"evaluations/{number}", headers=supervise)
        assert answer.status_code in (200, 404), (
            f"GET evaluations/{number} at the hub: {answer.status_code} {answer.text[:200]}"
        )
        if answer.status_code == 200:
            shown = answer.json()
            if arrived(shown):
                return shown
        if time.monotonic() > deadline:
            return shown
        time.sleep(0.25)


def _same_instant(left: Any, right: Any) -> bool:
    if not left or not right:
        return left == right
    first, second = datetime.fromisoformat(str(left)), datetime.fromisoformat(str(right))
    if first.tzinfo is None or second.tzinfo is None:
        return True  # a time without its offset names no instant: IC-CASE-001 judges those
    return first == second


@pytest.mark.requirement(
    "IC-EVAL-004",
    catches=("rating-not-reported", "follow-up-not-reported", "closing-not-reported",
             "reported-differently", "change-reported-twice"),
)  # fmt: skip
def test_the_evaluation_reaches_the_hub_with_each_change(
    applicant: Actor,
    staff: Actor,
    concluded_case: dict[str, Any],
    hub_client: httpx.Client,
    target: TargetProfile,
    credential: Callable[[str], str],
) -> None:
    if "hub_supervise_token" not in target.credentials:
        pytest.skip("the profile names no hub_supervise_token: the hub cannot be inspected")
    supervise = {"Authorization": f"Bearer {credential('hub_supervise_token')}"}
    wait = max(60.0, 2 * target.timeout_seconds)
    number = concluded_case["case_number"]
    rated = rate(applicant, number, level=2, text="多次往返")
    assert rated.status_code == 201, f"rating: {rated.status_code} {rated.text[:300]}"
    task = rated.json()["rectification"]
    assert task is not None, "a 差评 opened no rectification task"

    shown = _at_hub(hub_client, supervise, number, wait, lambda e: True)
    assert shown, f"the rating of case {number} did not reach the hub"
    problems = [
        f"{member}: hub {shown.get(member)!r}, hall {value!r}"
        for member, value in (("level", 2), ("rectification_state", "open"),
                              ("rectification_deadline", task["deadline"]),
                              ("followed_up", False), ("region_code", target.region_code),
                              ("implementation_code", concluded_case["implementation_code"]))
        if shown.get(member) != value
    ]  # fmt: skip
    if not _same_instant(shown.get("rated_at"), rated.json()["at"]):
        problems.append(f"rated_at: hub {shown.get('rated_at')}, hall {rated.json()['at']}")
    assert not problems, "the hub holds the rating otherwise: " + "; ".join(problems)

    followed = applicant.post(f"cases/{number}/evaluation/follow-up", {"text": "仍需改进"})
    assert followed.status_code == 200, f"follow-up: {followed.status_code} {followed.text[:300]}"
    shown = _at_hub(hub_client, supervise, number, wait, lambda e: e.get("followed_up") is True)
    assert shown.get("followed_up") is True, f"the follow-up did not reach the hub: {shown}"
    assert (shown.get("level"), shown.get("rectification_state")) == (2, "open"), shown

    closed = staff.post(f"rectifications/{task['id']}/close", {"response": "已整改并回访"})
    assert closed.status_code == 200, f"closing: {closed.status_code} {closed.text[:300]}"
    shown = _at_hub(
        hub_client, supervise, number, wait, lambda e: e.get("rectification_state") == "closed"
    )
    assert shown.get("rectification_state") == "closed", (
        f"the closed rectification did not reach the hub: {shown}"
    )
    assert shown.get("rectification_response") == "已整改并回访", shown
    assert _same_instant(shown.get("rectification_closed_at"), closed.json()["closed_at"]), (
        f"closed_at: hub {shown.get('rectification_closed_at')}, hall {closed.json()['closed_at']}"
    )
    assert (shown.get("level"), shown.get("followed_up")) == (2, True), shown

    # One report per change: the rating, the follow-up, the closing, each once.
    rows = hub_client.get(f"cases/{number}/reports", headers=supervise)
    assert rows.status_code == 200, f"GET cases/{number}/reports: {rows.status_code}"
    versions = sorted(r["version"] for r in rows.json() if r["kind"] == "evaluation")
    assert versions == [1, 2, 3], (
        f"the hub took the evaluation's reports as versions {versions}: one per change expected"
    )
    assert shown.get("version") == 3, shown


def _state_problems(
    response: httpx.Response, step_taken: str, state: str, *, accepted: bool, result: str | None
) -> list[str]:
    """What is wrong with a case after a legal step: its state, acceptance and conclusion."""
    if response.status_code != 201:
        return [f"step {step_taken}: {response.status_code}, not 201"]
    case = response.json()
    problems = []
    if case["state"] != state:
        problems.append(f"step {step_taken}: state {case['state']}, not {state}")
    if bool(case["accepted_at"]) != accepted or (case["deadline"] is not None) != accepted:
        problems.append(
            f"step {step_taken}: accepted_at {case['accepted_at']!r} and deadline "
            f"{case['deadline']!r} where the case is {'' if accepted else 'not '}accepted"
        )
    if case["result"] != result or bool(case["finished_at"]) != (result is not None):
        problems.append(
            f"step {step_taken}: result {case['result']!r}, finished_at "
            f"{case['finished_at']!r}; expected result {result!r}"
        )
    if case["steps"] and case["revision"] != len(case["steps"]) + 1:
        problems.append(f"step {step_taken}: revision {case['revision']} after {len(case['steps'])}"
                        " steps and no supplement")  # fmt: skip
    return problems


@pytest.mark.requirement(
    "IC-CASE-006",
    catches=(
        "special-procedure",
        "return-step",
        "disapproval",
        "start-end-step",
        "not-accepted",
        "revision-not-counted",
        "deadline-of-step",
    ),
)
def test_each_legal_step_has_its_effect(
    applicant: Actor, staff: Actor, deadline_item: dict[str, Any], target: TargetProfile
) -> None:
    numbers = []
    for _ in range(3):
        response = applicant.post("cases", application_for(deadline_item, target))
        assert response.status_code == 201, f"POST cases: {response.status_code}"
        numbers.append(response.json()["case_number"])
    first, quick, refused = numbers
    # 特别程序 before acceptance, acceptance, 特别程序 again, 退回 after a middle step, 不同意.
    problems = _state_problems(step(staff, first, 1, 6), "1/6", "special", accepted=False,
                               result=None)  # fmt: skip
    accepted = step(staff, first, 1, 4)
    problems += _state_problems(accepted, "1/4 after 1/6", "accepted", accepted=True,
                                result=None)  # fmt: skip
    problems += _state_problems(step(staff, first, 2, 6), "2/6", "special", accepted=True,
                                result=None)  # fmt: skip
    problems += _state_problems(step(staff, first, 2, 1), "2/1 after 2/6", "in_progress",
                                accepted=True, result=None)  # fmt: skip
    problems += _state_problems(step(staff, first, 2, 7), "2/7 after 2/1", "in_progress",
                                accepted=True, result=None)  # fmt: skip
    problems += _state_problems(step(staff, first, 3, 0), "3/0", "finished", accepted=True,
                                result="disapproved")  # fmt: skip
    # 即办 (start = end): accepted and concluded at once, with its deadline.
    at_once = step(staff, quick, 4, 1)
    problems += _state_problems(at_once, "4/1", "finished", accepted=True,
                                result="approved")  # fmt: skip
    # The deadline a step sets is the guide's promised days, whichever step accepts: not
    # only present (即办 concluded the same day still promised its working days).
    guide = deadline_item["guide"]
    for where, response in (("1/4 after 1/6", accepted), ("4/1", at_once)):
        if response.status_code == 201 and response.json()["deadline"] is not None:
            problems += _deadline_problems(response.json(), guide, f"step {where}")
    # 不予受理: concluded without acceptance; nothing follows.
    problems += _state_problems(step(staff, refused, 4, 3), "4/3", "not_accepted",
                                accepted=False, result="not_accepted")  # fmt: skip
    assert not problems, "; ".join(problems[:6])
    shown = applicant.get(f"cases/{first}").json()
    taken = [(s["nodetype"], s["noderesult"]) for s in shown["steps"]]
    assert taken == [(1, 6), (1, 4), (2, 6), (2, 1), (2, 7), (3, 0)], f"steps shown: {taken}"
    assert [s["seq"] for s in shown["steps"]] == list(range(1, 7)), "steps are not numbered 1-6"


def _omitting_last(application: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The application without its last material, and that material."""
    missing = application["materials"][-1]
    return {**application, "materials": application["materials"][:-1]}, missing


def _supplement(actor: Actor, number: str, material: dict[str, Any]) -> httpx.Response:
    return actor.post(f"cases/{number}/supplements", {"materials": [material]})


@pytest.mark.requirement(
    "IC-CASE-007",
    catches=(
        "missing-not-shown",
        "supplement-without-correction",
        "other-supplies",
        "supplement-not-kept",
        "resumes-elsewhere",
        "waiting-not-refusable",
        "supplement-after-answer",
        "accepted-anew",
    ),
)
def test_correction_waits_for_the_applicants_supplement(
    applicant: Actor,
    other_applicant: Actor,
    staff: Actor,
    person_item: dict[str, Any],
    target: TargetProfile,
) -> None:
    application, missing = _omitting_last(application_for(person_item, target))
    response = applicant.post("cases", application)
    assert response.status_code == 201, f"POST cases: {response.status_code} {response.text}"
    case = response.json()
    number = case["case_number"]
    assert case["missing_materials"] == [missing["name"]], (
        f"{missing['name']!r} was not given; missing_materials {case['missing_materials']}"
    )
    # No supplement before 补齐补正 is asked for.
    early = _supplement(applicant, number, missing)
    is_problem(early, 409)
    assert early.json().get("rule"), "the refused supplement does not name the rule"
    waiting = step(staff, number, 1, 5)
    assert waiting.status_code == 201, f"step 1/5: {waiting.status_code}"
    assert waiting.json()["state"] == "correction", f"1/5 leaves {waiting.json()['state']}"
    before = applicant.get(f"cases/{number}").json()
    is_problem(_supplement(other_applicant, number, missing), 404)
    is_problem(_supplement(staff, number, missing), (403, 404))
    assert applicant.get(f"cases/{number}").json() == before, "a refused supplement changed it"
    supplied = _supplement(applicant, number, missing)
    assert supplied.status_code == 200, f"supplement: {supplied.status_code} {supplied.text}"
    case = supplied.json()
    assert case["state"] == "submitted", f"supplied before acceptance, now {case['state']}"
    assert case["missing_materials"] == [], f"still missing {case['missing_materials']}"
    added = case["materials"][-1]
    assert (added["name"], added["supplement"]) == (missing["name"], True), (
        f"the supplied material is shown as {added}"
    )
    assert [m["seq"] for m in case["materials"]] == list(range(1, len(case["materials"]) + 1))
    assert not any(m["supplement"] for m in case["materials"][:-1])
    assert case["revision"] == before["revision"] + 1, "a supplement does not count a revision"
    assert applicant.get(f"cases/{number}").json() == case, "the detail differs after supplement"
    # The supplement answered the 补齐补正: another one is refused until it is asked again.
    is_problem(_supplement(applicant, number, missing), 409)
    # After acceptance, 补齐补正 returns the case to where it was, accepted: accepted once,
    # at the time it was (the correction does not accept it anew).
    accepted = step(staff, number, 1, 4)
    assert accepted.status_code == 201
    accepted_at = accepted.json()["accepted_at"]
    correction = step(staff, number, 2, 5).json()
    assert correction["state"] == "correction"
    again = _supplement(applicant, number, missing)
    assert again.status_code == 200, f"second supplement: {again.status_code}"
    assert again.json()["state"] == "accepted", f"resumed as {again.json()['state']}"
    for shown, where in ((correction, "the correction"), (again.json(), "the supplement")):
        assert shown["accepted_at"] == accepted_at, (
            f"after {where} the case shows accepted_at {shown['accepted_at']}, "
            f"not {accepted_at} when it was accepted"
        )
    is_problem(_supplement(applicant, number, missing), 409)
    assert applicant.get(f"cases/{number}").json() == again.json(), "a refused supplement counted"
    # An unaccepted case waiting for materials may still be refused (不予受理, 4/3).
    other = applicant.post("cases", application).json()["case_number"]
    assert step(staff, other, 1, 5).status_code == 201
    ended = step(staff, other, 4, 3)
    assert ended.status_code == 201, f"4/3 while waiting: {ended.status_code}"
    assert (ended.json()["state"], ended.json()["result"]) == ("not_accepted", "not_accepted")


def _case_total(actor: Actor) -> int:
    response = actor.get("cases", params={"limit": 1})
    assert response.status_code == 200, f"GET cases: {response.status_code}"
    return int(response.json()["total"])


def _invalid_applications(
    application: dict[str, Any], item: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Applications the guide or the data set forbids, each with one fault."""
    materials = application["materials"]
    first = materials[0]
    upload = next((m for m in materials if m["gettype"] == 2), None)

    def altered(**changes: Any) -> dict[str, Any]:
        return {**application, **changes}

    def with_material(**changes: Any) -> dict[str, Any]:
        return altered(materials=[{**first, **changes}, *materials[1:]])

    resident = application["applicant"]["certificate_number"]
    wrong_check = resident[:-1] + ("0" if resident[-1] != "0" else "1")
    handling = {h["code"] for h in item["guide"].get("handling_items", [])}
    foreign = next(f"{item['implementation_code']}{n:02d}" for n in range(99, 0, -1)
                   if f"{item['implementation_code']}{n:02d}" not in handling)  # fmt: skip
    cases = {
        "material not in the guide": altered(
            materials=[*materials, {"name": "指南未列明的材料", "gettype": 1}]
        ),
        "material given twice": altered(materials=[*materials, first]),
        # A valid credit code: refused for the applicant's kind, not for its form.
        "certificate type of a legal person": altered(
            applicant={
                **application["applicant"],
                "certificate_type": "001",
                "certificate_number": item["guide"]["dept_code"],
            }
        ),
        "ID number with a wrong check character": altered(
            applicant={**application["applicant"], "certificate_number": wrong_check}
        ),
        "handling item of another item": altered(handling_item_code=foreign),
        "paper material with content": with_material(
            gettype=1, content_base64="JVBERi0=", media_type="application/pdf"
        ),
        "licence reference without its number": altered(
            materials=[*materials[1:], {"name": first["name"], "gettype": 3}]
        ),
    }
    if upload is not None:
        index = materials.index(upload)

        def with_upload(**changes: Any) -> dict[str, Any]:
            changed = [dict(m) for m in materials]
            changed[index].update(changes)
            return altered(materials=changed)

        cases["upload not base64"] = with_upload(content_base64="%%不是base64%%")
        cases["upload of a type not accepted"] = with_upload(media_type="text/html")
        cases["upload without content"] = with_upload(content_base64=None)
    paper_only = [m["name"] for m in item["guide"]["materials"] if "electronic" not in m["formats"]]
    if paper_only:
        cases["upload of a paper-only material"] = altered(
            materials=[
                {"name": paper_only[0], "gettype": 2, "media_type": "application/pdf",
                 "content_base64": base64.b64encode(PDF).decode()}
            ]
        )  # fmt: skip
    return cases


@pytest.mark.requirement(
    "IC-CASE-008",
    catches=(
        "unlisted-material",
        "duplicate-material",
        "bad-upload",
        "certificate-mismatch",
        "bad-id-number",
        "foreign-handling-item",
        "refused-application-kept",
        "upload-not-recorded",
    ),
)
def test_applications_are_checked_against_the_guide(
    applicant: Actor, person_item: dict[str, Any], target: TargetProfile
) -> None:
    application = application_for(person_item, target)
    total = _case_total(applicant)
    problems = []
    for fault, body in _invalid_applications(application, person_item).items():
        response = applicant.post("cases", body)
        if response.status_code not in (400, 422):
            problems.append(f"{fault}: {response.status_code}, not 400 or 422")
        elif not response.headers.get("content-type", "").startswith(PROBLEM):
            problems.append(f"{fault}: refused as {response.headers.get('content-type')}")
    assert not problems, "; ".join(problems[:5])
    assert _case_total(applicant) == total, "a refused application left a case behind"
    # A valid application with one of the item's handling items: recorded as given.
    handling = person_item["guide"].get("handling_items", [])
    if handling:
        application["handling_item_code"] = handling[0]["code"]
    response = applicant.post("cases", application)
    assert response.status_code == 201, f"POST cases: {response.status_code} {response.text}"
    case = response.json()
    assert case["handling_item_code"] == application.get("handling_item_code")
    assert case["missing_materials"] == [], f"complete, yet missing {case['missing_materials']}"
    digest = hashlib.sha256(PDF).hexdigest()
    for given, shown in zip(application["materials"], case["materials"], strict=True):
        if given["gettype"] != 2:
            continue
        recorded = (shown["name"], shown["media_type"], shown["size"], shown["sha256"])
        assert recorded == (given["name"], given["media_type"], len(PDF), digest), (
            f"upload {given['name']!r} recorded as {recorded}"
        )


# --- IC-CASE-009: an e-licence replaces a listed material (免证办) --------------------------


def _licence_item(hall_client: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first published item serving persons with a required material an e-licence
    replaces, and that material."""
    for item in published_items(hall_client):
        if "person" not in item["guide"]["server_type"]:
            continue
        for material in item["guide"]["materials"]:
            if material.get("licence_type_code") and material.get("required", True):
                return item, material
    raise Inconclusive("the catalog lists no material of a person's item an e-licence replaces")


def _held_licence(elicense_client: httpx.Client, token: str, type_code: str) -> str | None:
    """A valid licence of ``type_code`` the token's holder holds, by the identifier its
    issuer sealed (the licence suite judges how the library shows it: IC-LIC-001)."""
    headers = {"Authorization": f"Bearer {token}"}
    listed = elicense_client.get("me/licences", headers=headers)
    assert listed.status_code == 200, f"GET me/licences: {listed.status_code}"
    for entry in listed.json():
        if entry["status"]["code"] != "01":
            continue
        detail = elicense_client.get(f"me/licences/{entry['identifier']}", headers=headers)
        if detail.status_code != 200:
            continue
        try:
            sealed = json.loads(base64.b64decode(detail.json()["document"]))
            identifier = str(parse_licence_id(str(sealed["identifier"])))
        except (KeyError, TypeError, ValueError, CodeError):
            continue
        if parse_licence_id(identifier).type_code == type_code:
            return identifier
    return None


def _usage(elicense_client: httpx.Client, token: str, identifier: str) -> list[dict[str, Any]]:
    response = elicense_client.get(
        f"me/licences/{identifier}/usage", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, f"GET usage of {identifier}: {response.status_code}"
    return list(response.json())


def _with_licence(application: dict[str, Any], name: str, licence_id: str) -> dict[str, Any]:
    materials = [m for m in application["materials"] if m["name"] != name]
    reference = {"name": name, "gettype": 3, "licence_id": licence_id}
    return {**application, "materials": [*materials, reference]}


@pytest.mark.requirement(
    "IC-CASE-009",
    catches=(
        "licence-not-fetched",
        "copy-not-shown",
        "cause-not-stated",
        "copy-expiry-wrong",
        "wrong-type-accepted",
        "other-holders-licence",
        "unknown-licence-accepted",
        "malformed-identifier-accepted",
        "refused-application-kept",
    ),
)
def test_an_e_licence_replaces_a_listed_material(
    applicant: Actor,
    staff: Actor,
    hall_client: httpx.Client,
    elicense_client: httpx.Client,
    credential: Callable[[str], str],
    target: TargetProfile,
) -> None:
    item, material = _licence_item(hall_client)
    type_code = str(material["licence_type_code"])
    holder = credential("elicense_holder_token")
    own = _held_licence(elicense_client, holder, type_code)
    if own is None:
        raise Inconclusive(f"the test holder (the hall applicant) holds no valid licence of "
                           f"type {type_code} for {material['name']!r}")  # fmt: skip
    other_holder = credential("elicense_other_holder_token")
    theirs = _held_licence(elicense_client, other_holder, type_code)
    application = application_for(item, target)
    total = _case_total(applicant)
    others_usage = len(_usage(elicense_client, other_holder, theirs)) if theirs else 0

    # Refused, and nothing left behind: another holder's licence (no consent), one that does
    # not exist (a valid identifier of the type), and a licence of another type.
    held = parse_licence_id(own)
    # The same type and issuer, a serial no registry issues: valid, yet no licence.
    unknown = str(build_licence_id(held.type_code, held.issuer_code,
                                   "Z" + secrets.token_hex(8).upper(), held.version))  # fmt: skip
    check = own[-1]
    garbled = own[:-1] + ("0" if check != "0" else "1")  # a wrong check character
    refusals = {
        "a licence that does not exist": _with_licence(application, material["name"], unknown),
        "an identifier with a wrong check character": _with_licence(
            application, material["name"], garbled
        ),
    }
    if theirs is not None:
        refusals["another holder's licence"] = _with_licence(application, material["name"], theirs)
    others = [m for m in item["guide"]["materials"] if m["name"] != material["name"]]
    if others:
        # The licence named for a material it does not replace.
        wrong = {**application, "materials": [
            {"name": others[0]["name"], "gettype": 3, "licence_id": own},
            *[m for m in application["materials"] if m["name"] != others[0]["name"]],
        ]}  # fmt: skip
        refusals["a licence for a material it does not replace"] = wrong
    problems = []
    for fault, body in refusals.items():
        response = applicant.post("cases", body)
        if response.status_code not in (400, 403, 404, 409, 422):
            problems.append(f"{fault}: {response.status_code}, not refused")
        elif not response.headers.get("content-type", "").startswith(PROBLEM):
            problems.append(f"{fault}: refused as {response.headers.get('content-type')}")
    assert not problems, "; ".join(problems)
    assert _case_total(applicant) == total, "a refused licence reference left a case behind"
    if theirs is not None:
        assert len(_usage(elicense_client, other_holder, theirs)) == others_usage, (
            "another holder's licence was used without their consent"
        )

    before = {r.get("copy_id") for r in _usage(elicense_client, holder, own)}
    response = applicant.post("cases", _with_licence(application, material["name"], own))
    assert response.status_code == 201, f"POST cases: {response.status_code} {response.text}"
    number = response.json()["case_number"]
    views = {"applicant": applicant.get(f"cases/{number}"), "staff": staff.get(f"cases/{number}")}
    copies = {}
    for who, view in views.items():
        assert view.status_code == 200, f"GET cases/{number} as {who}: {view.status_code}"
        shown = [m for m in view.json()["materials"] if m["name"] == material["name"]]
        assert len(shown) == 1, f"the {who}'s view lists {material['name']!r} {len(shown)} times"
        entry = shown[0]
        assert (entry.get("gettype"), entry.get("licence_id")) == (3, own), (
            f"the {who}'s view shows the material as {entry.get('gettype')} "
            f"{entry.get('licence_id')}, not the licence reference {own}"
        )
        copy = entry.get("licence_copy") or {}
        cause = entry.get("licence_cause") or ""
        assert copy.get("copy_id"), f"the {who}'s view shows no annotated copy of {own}"
        assert material["name"] in cause, f"the copy's cause {cause!r} does not name the material"
        assert copy.get("cause") == cause, "the case and its copy state different causes"
        assert copy.get("identifier") == own, f"the copy is of {copy.get('identifier')}"
        copies[who] = copy
    assert copies["applicant"] == copies["staff"], "the applicant and staff see different copies"
    copy = copies["applicant"]
    expires = datetime.fromisoformat(str(copy["expires_at"]))
    assert expires.tzinfo is not None, f"the copy's expiry {copy['expires_at']} has no offset"
    made = datetime.fromisoformat(str(copy.get("made_at") or views["staff"].json()["created_at"]))
    assert made < expires <= made + timedelta(days=366), (
        f"the copy made {made} expires {expires}: not within a year after it was made"
    )
    # The registry made that copy for the hall, and shows it to the holder (用证记录).
    recorded = [r for r in _usage(elicense_client, holder, own) if r.get("copy_id") not in before]
    made_here = [r for r in recorded if r.get("copy_id") == copy["copy_id"]]
    assert len(made_here) == 1, (
        f"the registry's usage records of {own} show the case's copy {len(made_here)} times "
        f"({len(recorded)} new records)"
    )
    assert made_here[0].get("cause") == copy["cause"], (
        f"the registry recorded the cause {made_here[0].get('cause')!r}, not the case's"
    )
